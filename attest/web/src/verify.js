// Verifying a log (FORMAT.md §8), as verify.rs `verify_log` does it: the
// genesis record names the keys; every entry is checked on its own (in the
// workers: checksum, syntax, signature, hashes); then one sequential pass
// checks sequence numbers, chain links, origin and kinds and builds the
// Merkle tree; then every checkpoint is opened and its size and root
// compared with the tree. Findings are sorted as verify.rs sorts them, so
// the first one is the one `cairn verify` names first.

import { Frontier } from './merkle.js';
import { crc32 } from './crc32.js';
import { toHex, equalBytes, quote } from './util.js';
import {
  splitJournal,
  genesisKeys,
  openCheckpoint,
  KIND_GENESIS,
  RECORDS_JOURNAL,
  CHECKPOINTS_JOURNAL,
} from './formats.js';

export const subject = {
  record: (seq, offset) => ({ type: 'record', seq, offset }),
  checkpoint: (index, offset) => ({ type: 'checkpoint', index, offset }),
  storage: (file, offset) => ({ type: 'storage', file, offset }),
  file: (file) => ({ type: 'file', file }),
  log: () => ({ type: 'log' }),
};

/** A subject as `cairn verify` prints it (verify.rs `Display for Subject`). */
export function describe(s) {
  switch (s.type) {
    case 'record':
      return `record ${s.seq} (offset ${s.offset})`;
    case 'checkpoint':
      return `checkpoint #${s.index} (offset ${s.offset})`;
    case 'storage':
      return `${s.file} at offset ${s.offset}`;
    case 'file':
      return s.file;
    default:
      return 'log';
  }
}

function sortKey(f) {
  const s = f.subject;
  switch (s.type) {
    case 'log':
      return [0, 0];
    case 'record':
      return [1, s.seq];
    case 'storage':
      return [2, s.offset];
    case 'checkpoint':
      return [3, s.index];
    default:
      return [4, 0];
  }
}

/** Stable sort of findings in verify.rs order. */
export function sortFindings(findings) {
  return findings
    .map((f, i) => [sortKey(f), i, f])
    .sort((a, b) => a[0][0] - b[0][0] || a[0][1] - b[0][1] || a[1] - b[1])
    .map((x) => x[2]);
}

/** Whether `expected` (a verifier key, or a fingerprint in any case) names `identity`. */
export function identityMatches(identity, expected) {
  const e = expected.trim();
  return e === identity.vkey || e.toLowerCase() === identity.fingerprint.toLowerCase();
}

/**
 * Verifies the journals. `files` maps names to bytes (records.journal
 * must be there); `runEntries(journal, frames, operational, onProgress)`
 * runs entrycheck over every frame (in workers) and resolves to the
 * results in order. Returns the report: {origin, identity: {vkey,
 * fingerprint} | null, records, checkpoints, checkpointedSize, root (hex),
 * rootBytes, findings, checkpointBytes (stored checkpoints)}.
 */
export async function verifyLog(files, options, runEntries, onProgress = () => {}) {
  const records = files.get(RECORDS_JOURNAL);
  const cpsBytes = files.get(CHECKPOINTS_JOURNAL) || new Uint8Array(0);
  const findings = [];
  const rj = splitJournal(records);
  const cj = splitJournal(cpsBytes);
  for (const d of rj.damage) findings.push({ subject: subject.storage(RECORDS_JOURNAL, d.offset), why: d.why });
  for (const d of cj.damage) findings.push({ subject: subject.storage(CHECKPOINTS_JOURNAL, d.offset), why: d.why });
  const entries = rj.frames;
  const rec = (i) => subject.record(i, entries[i] ? entries[i].offset : 0);

  // 1. The genesis record names the keys everything else is checked against.
  let keys = null;
  if (entries.length === 0) findings.push({ subject: subject.log(), why: 'the log holds no records' });
  else {
    const g = entries[0];
    try {
      keys = genesisKeys(records.subarray(g.start, g.start + g.len));
    } catch (e) {
      findings.push({ subject: rec(0), why: e.message });
    }
  }
  if (keys && options.expectedIdentity && options.expectedIdentity.trim() && !identityMatches(keys.identity, options.expectedIdentity)) {
    findings.push({
      subject: subject.log(),
      why: `the log's identity key (fingerprint ${keys.identity.fingerprint}) is not the expected key`,
      pin: true,
    });
  }

  // 2. Per-entry checks, in parallel.
  const t0 = performance.now();
  const checked = await runEntries(records, entries, keys ? keys.operational : null, onProgress);
  const entriesMs = performance.now() - t0;

  // Checkpoints: parse and check signatures (before the pass, to know
  // which sizes need a root).
  const origin = keys ? keys.origin : null;
  const cps = cj.frames.map((f, i) => {
    const bytes = cpsBytes.subarray(f.start, f.start + f.len);
    let cp = null;
    let why = null;
    if (crc32(bytes) !== f.crc) why = 'stored checksum does not match: the bytes were altered or damaged';
    else if (!keys) why = 'no trusted keys (the genesis record is unusable)';
    else {
      try {
        cp = openCheckpoint(bytes, keys);
      } catch (e) {
        why = e.message;
      }
    }
    return { i, offset: f.offset, cp, why };
  });
  const wanted = new Set(cps.filter((c) => c.cp).map((c) => c.cp.size));
  // An earlier checkpoint the log must extend (FORMAT.md §9, verify.rs
  // `verify_extends`, `cairn verify --since`).
  let earlier = null;
  if (options.earlier) {
    try {
      if (!keys) throw new Error('the genesis record is unusable, so the log has no keys to check it with');
      earlier = { cp: openCheckpoint(options.earlier, keys) };
      if (earlier.cp.size > BigInt(entries.length))
        throw new Error(`the earlier checkpoint covers ${earlier.cp.size} records, this log holds ${entries.length}: records were removed`);
      wanted.add(earlier.cp.size);
    } catch (e) {
      earlier = { why: e.message };
    }
  }
  const roots = new Map();
  const frontier = new Frontier();
  if (wanted.has(0n)) roots.set(0n, frontier.root());

  // 3. Sequential: sequence, chain, origin, kinds; Merkle leaves and roots.
  let prevHash = null;
  for (let i = 0; i < entries.length; i++) {
    const c = checked[i];
    if (!c.ok) findings.push({ subject: rec(i), why: c.why });
    else {
      const expectedPrev = i === 0 ? new Uint8Array(32) : prevHash;
      let problem = null;
      if (c.seq !== String(i))
        problem = `has sequence number ${c.seq} where ${i} was expected (records missing, added or reordered)`;
      else if (expectedPrev !== null && (c.prev === null || !equalBytes(c.prev, expectedPrev)))
        problem = `its chain link does not match the hash of record ${Math.max(0, i - 1)}`;
      else if (origin !== null && origin !== c.log) problem = `belongs to log ${quote(c.log)}, not this one`;
      else if ((i === 0) !== (c.kind === KIND_GENESIS)) problem = `kind ${quote(c.kind)} is out of place`;
      if (problem) findings.push({ subject: rec(i), why: problem });
    }
    // the next link is checked against what is stored, even if damaged
    prevHash = c.hash;
    frontier.push(c.leaf);
    const size = BigInt(frontier.size);
    if (wanted.has(size)) roots.set(size, frontier.root());
  }

  // 4. Checkpoints in stored order.
  const n = BigInt(entries.length);
  let checkpointed = 0n;
  let lastSize = 0n;
  for (const c of cps) {
    const subj = subject.checkpoint(c.i, c.offset);
    if (!c.cp) {
      findings.push({ subject: subj, why: c.why });
      continue;
    }
    const size = c.cp.size;
    let problem = null;
    if (size > n) problem = `covers ${size} records but only ${n} are present: records were removed`;
    else if (size < lastSize) problem = `size ${size} is smaller than an earlier checkpoint's ${lastSize}`;
    else if (!roots.has(size) || !equalBytes(roots.get(size), c.cp.root))
      problem = `its root does not match the Merkle root of the first ${size} records`;
    if (problem) findings.push({ subject: subj, why: problem });
    else {
      if (size > checkpointed) checkpointed = size;
      lastSize = size;
    }
  }

  let extendsResult = null;
  if (earlier) {
    if (earlier.cp && !equalBytes(roots.get(earlier.cp.size), earlier.cp.root))
      earlier = { why: `this log's first ${earlier.cp.size} records are not the ones the earlier checkpoint signed: the log was rewritten` };
    extendsResult = earlier.cp ? { size: Number(earlier.cp.size) } : { why: earlier.why };
  }

  const rootBytes = frontier.root();
  return {
    extends: extendsResult,
    origin,
    identity: keys ? { vkey: keys.identity.vkey, fingerprint: keys.identity.fingerprint } : null,
    records: entries.length,
    checkpoints: cj.frames.length,
    checkpointedSize: Number(checkpointed),
    root: toHex(rootBytes),
    rootBytes,
    findings: sortFindings(findings),
    entriesMs,
    lastCheckpointBytes: cj.frames.length
      ? cpsBytes.subarray(cj.frames[cj.frames.length - 1].start, cj.frames[cj.frames.length - 1].start + cj.frames[cj.frames.length - 1].len)
      : null,
  };
}
