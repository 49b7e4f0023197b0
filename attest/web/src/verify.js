// Verifying a log (FORMAT.md §8), as verify.rs `verify_log` does it: the
// genesis record names the keys; every entry is checked on its own (in the
// workers: checksum, syntax, signature, hashes); then one sequential pass
// checks sequence numbers, chain links, origin and kinds and builds the
// Merkle tree; then every checkpoint is opened and its size and root
// compared with the tree. Findings are sorted as verify.rs sorts them, so
// the first one is the one `cairn verify` names first.

import { Frontier, verifyInclusion } from './merkle.js';
import { crc32 } from './crc32.js';
import { toHex, equalBytes, quote } from './util.js';
import {
  splitJournal,
  genesisKeys,
  openCheckpoint,
  peekCheckpoint,
  parseNote,
  parseCheckpointText,
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
 * results in order. `options.prefix`, for an incremental bundle (FORMAT.md
 * §9, verify.rs `Prefix`): {genesis (bytes of record 0), checkpoint (the
 * previous checkpoint's bytes), frontier, proof (arrays of 32-byte
 * hashes)}; the stored entries then start with the predecessor. Returns
 * the report: {origin, identity: {vkey, fingerprint} | null, records (the
 * log's size, counting the records before `from`), from (0, or F),
 * checkpoints, checkpointedSize, root (hex), rootBytes, findings,
 * lastCheckpointBytes, extends}.
 */
export async function verifyLog(files, options, runEntries, onProgress = () => {}) {
  const records = files.get(RECORDS_JOURNAL);
  const cpsBytes = files.get(CHECKPOINTS_JOURNAL) || new Uint8Array(0);
  const prefix = options.prefix || null;
  const findings = [];
  const rj = splitJournal(records);
  const cj = splitJournal(cpsBytes);
  for (const d of rj.damage) findings.push({ subject: subject.storage(RECORDS_JOURNAL, d.offset), why: d.why });
  for (const d of cj.damage) findings.push({ subject: subject.storage(CHECKPOINTS_JOURNAL, d.offset), why: d.why });
  const entries = rj.frames;
  // The sequence number of the first stored entry: 0, or the predecessor's
  // in an incremental bundle, as its previous checkpoint says (checked in
  // checkPrefix and the sequential pass).
  let base = 0n;
  if (prefix) {
    const pc = peekCheckpoint(prefix.checkpoint);
    if (pc && pc.size > 0n) base = pc.size - 1n;
  }
  const seqOf = (i) => base + BigInt(i);
  const rec = (i) => subject.record(Number(seqOf(i)), entries[i] ? entries[i].offset : 0);

  // 1. The genesis record names the keys everything else is checked against.
  let keys = null;
  const genesis = prefix ? { bytes: prefix.genesis, subject: subject.log() } : entries.length ? { bytes: records.subarray(entries[0].start, entries[0].start + entries[0].len), subject: rec(0) } : null;
  if (!genesis) findings.push({ subject: subject.log(), why: 'the log holds no records' });
  else {
    try {
      keys = genesisKeys(genesis.bytes);
    } catch (e) {
      findings.push({ subject: genesis.subject, why: e.message });
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
  const roots = new Map();
  let frontier = new Frontier();
  if (prefix) {
    try {
      frontier = checkPrefix(prefix, keys, entries.length ? checked[0].leaf : null);
    } catch (e) {
      findings.push({ subject: subject.log(), why: e.message });
    }
  }
  // sizes up to the prefix's: only its own has a root
  for (const w of wanted) if (w === frontier.size) roots.set(w, frontier.root());

  // 3. Sequential: sequence, chain, origin, kinds; Merkle leaves and roots.
  let prevHash = null;
  for (let i = 0; i < entries.length; i++) {
    const c = checked[i];
    if (!c.ok) findings.push({ subject: rec(i), why: c.why });
    else {
      const seq = seqOf(i);
      // A full log's first record links to nothing; an incremental
      // bundle's predecessor links to a record it does not hold (the
      // previous checkpoint vouches for it).
      const expectedPrev = i === 0 ? (prefix ? null : new Uint8Array(32)) : prevHash;
      let problem = null;
      if (c.seq !== String(seq))
        problem = `has sequence number ${c.seq} where ${seq} was expected (records missing, added or reordered)`;
      else if (expectedPrev !== null && (c.prev === null || !equalBytes(c.prev, expectedPrev)))
        problem = `its chain link does not match the hash of record ${seq > 0n ? seq - 1n : 0n}`;
      else if (origin !== null && origin !== c.log) problem = `belongs to log ${quote(c.log)}, not this one`;
      else if ((seq === 0n) !== (c.kind === KIND_GENESIS)) problem = `kind ${quote(c.kind)} is out of place`;
      if (problem) findings.push({ subject: rec(i), why: problem });
    }
    // the next link is checked against what is stored, even if damaged
    prevHash = c.hash;
    // the predecessor's leaf is already in the prefix's frontier
    if (i > 0 || !prefix) {
      frontier.push(c.leaf);
      if (wanted.has(frontier.size)) roots.set(frontier.size, frontier.root());
    }
  }

  // 4. Checkpoints in stored order.
  const n = base + BigInt(entries.length);
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

  // An earlier checkpoint the log must extend (FORMAT.md §9, verify.rs
  // `verify_extends`, `cairn verify --since`).
  let extendsResult = null;
  if (options.earlier) {
    try {
      extendsResult = { size: Number(checkExtends(options.earlier, keys, prefix, checked)) };
    } catch (e) {
      extendsResult = { why: e.message };
    }
  }

  const rootBytes = frontier.root();
  return {
    extends: extendsResult,
    origin,
    identity: keys ? { vkey: keys.identity.vkey, fingerprint: keys.identity.fingerprint } : null,
    records: Number(n),
    recordsBig: n,
    from: prefix ? Number(base + 1n) : 0,
    fromBig: prefix ? base + 1n : 0n,
    stored: entries.length,
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

/**
 * verify.rs `verify_extends`: the earlier checkpoint verifies under the
 * log's keys, covers no more records than the log holds, and the tree of
 * the log's first records of its size has its root. For an incremental
 * bundle the tree starts from the prefix's frontier. Returns the earlier
 * checkpoint's size; throws an Error saying what fails.
 */
function checkExtends(bytes, keys, prefix, checked) {
  if (!keys) throw new Error('the genesis record is unusable, so the log has no keys to check it with');
  const cp = openCheckpoint(bytes, keys);
  let frontier = new Frontier();
  let skip = 0;
  if (prefix) {
    const f = parseCheckpointText(parseNote(prefix.checkpoint).textStr).size;
    if (cp.size < f)
      throw new Error(`this bundle holds records from ${f} on; check the earlier checkpoint of size ${cp.size} against the bundle that holds it`);
    frontier = Frontier.fromCompact(f, prefix.frontier);
    skip = 1;
  }
  const held = frontier.size + BigInt(Math.max(0, checked.length - skip));
  if (cp.size > held) throw new Error(`the earlier checkpoint covers ${cp.size} records, this log holds ${held}: records were removed`);
  for (let i = skip; i < checked.length && frontier.size !== cp.size; i++) frontier.push(checked[i].leaf);
  if (!equalBytes(frontier.root(), cp.root))
    throw new Error(`this log's first ${cp.size} records are not the ones the earlier checkpoint signed: the log was rewritten`);
  return cp.size;
}

/**
 * Checks an incremental bundle's prefix (FORMAT.md §9, verify.rs
 * `check_prefix`) and returns the tree of its F records: the previous
 * checkpoint verifies under the keys, the frontier folds to its root, and
 * the predecessor (the first stored entry, whose leaf hash is `leaf`) is
 * its leaf F-1. Throws an Error saying what fails.
 */
export function checkPrefix(prefix, keys, leaf) {
  if (!keys) throw new Error('no trusted keys (the genesis record is unusable)');
  let cp;
  try {
    cp = openCheckpoint(prefix.checkpoint, keys);
  } catch (e) {
    throw new Error(`the previous checkpoint does not verify: ${e.message}`);
  }
  if (cp.size === 0n) throw new Error('the previous checkpoint covers no records');
  let frontier;
  try {
    frontier = Frontier.fromCompact(cp.size, prefix.frontier);
  } catch (e) {
    throw new Error(`the frontier does not fit the previous checkpoint: ${e.message}`);
  }
  if (!equalBytes(frontier.root(), cp.root)) throw new Error(`the frontier is not the previous checkpoint's tree of ${cp.size} records`);
  if (!leaf) throw new Error('the bundle holds no records');
  if (!verifyInclusion(cp.size - 1n, cp.size, leaf, prefix.proof, cp.root))
    throw new Error(`the first stored record is not record ${cp.size - 1n} of the previous checkpoint`);
  return frontier;
}
