// The checks an export bundle adds to the log's (FORMAT.md §9, bundle.rs
// `check`): SHA256SUMS lists every other file and every checksum holds;
// the manifest parses and agrees with the log (origin, size, root,
// identity); the `checkpoint` file is the last checkpoint of the journal;
// the last valid checkpoint covers every record.

import { toHex, fromBase64, utf8, quote } from './util.js';
import { parseJson, HAS_DUPLICATES, isObject, asU64, typeName } from './json.js';
import { splitJournal, peekCheckpoint, CHECKPOINTS_JOURNAL } from './formats.js';
import { verifyConsistency } from './merkle.js';
import { subject } from './verify.js';
import { equalBytes } from './util.js';
import { checkTpmQuote, TPM_QUOTE } from './tpmquote.js';

export const MANIFEST = 'bundle.json';
export const SUMS = 'SHA256SUMS';
export const CHECKPOINT = 'checkpoint';
export const README = 'README.txt';
export const FORMAT = 'cairn-export/v1';
// Incremental bundles (FORMAT.md §9)
export const GENESIS = 'genesis';
export const PREVIOUS_CHECKPOINT = 'previous-checkpoint';
export const FRONTIER = 'frontier';
export const PREDECESSOR_PROOF = 'predecessor.proof';
export const CONSISTENCY_PROOF = 'consistency.proof';

const MISSING = 'is missing (not among the files given)';

/**
 * `files`: Map name → bytes of the files in the bundle directory;
 * `names`: every name in that directory (files and folders);
 * `sha256hex(bytes)`: async SHA-256 in hex. Returns findings on files.
 */
export async function checkBundle(files, names, report, sha256hex, prefix = null, quote = checkTpmQuote(files)) {
  const findings = [];
  const problem = (file, why) => findings.push({ subject: subject.file(file), why });
  const sums = files.get(SUMS);
  if (!sums) problem(SUMS, `${MISSING}: this page verifies cairn export bundles, which always have one`);
  else {
    const listed = await checkSums(files, sums, problem, sha256hex);
    for (const name of names) if (name !== SUMS && !listed.has(name)) problem(name, `is not listed in ${SUMS}`);
  }

  const mbytes = files.get(MANIFEST);
  let m = null;
  if (!mbytes) problem(MANIFEST, MISSING);
  else {
    try {
      m = parseManifest(mbytes);
      if (m.format !== FORMAT) {
        problem(MANIFEST, `format ${quote(m.format)}, expected ${quote(FORMAT)}`);
        m = null;
      }
    } catch (e) {
      problem(MANIFEST, `is not a bundle manifest: ${e.message}`);
    }
  }
  if (m) {
    const r = fromBase64(m.root);
    const rootHex = r ? toHex(r) : '';
    const fp = report.identity ? report.identity.fingerprint : null;
    if (
      report.origin !== m.origin ||
      report.recordsBig !== m.records ||
      report.fromBig !== m.from ||
      report.root !== rootHex ||
      fp !== m.identity_fingerprint
    ) {
      problem(
        MANIFEST,
        `says log ${m.origin} with ${m.records} records from ${m.from}, root ${m.root} and identity ${m.identity_fingerprint}; ` +
          `the journals hold log ${report.origin ?? '?'} with ${report.recordsBig} records from ${report.fromBig}, root ${report.root} and identity ${fp ?? '?'}`,
      );
    }
  }
  // bundle.rs `check_consistency`: the RFC 9162 consistency proof from the
  // previous checkpoint (F, its root as its text says) to the log's root
  if (report.fromBig > 0n) {
    let why = null;
    const old = prefix ? peekCheckpoint(prefix.checkpoint) : null;
    if (!prefix) why = 'the manifest does not say the bundle is incremental';
    else if (!old) why = 'the previous checkpoint does not parse';
    else if (!verifyConsistency(prefix.from, report.recordsBig, old.root, report.rootBytes, prefix.consistency))
      why = `does not prove the tree of ${report.recordsBig} records extends the previous checkpoint's of ${prefix.from}`;
    if (why) problem(CONSISTENCY_PROOF, why);
  }
  if (report.checkpointedSize !== report.records)
    problem(CHECKPOINTS_JOURNAL, `the last valid checkpoint covers ${report.checkpointedSize} of the bundle's ${report.records} records`);
  const alone = files.get(CHECKPOINT);
  const journal = files.get(CHECKPOINTS_JOURNAL);
  if (!alone) problem(CHECKPOINT, MISSING);
  else if (!journal) problem(CHECKPOINTS_JOURNAL, MISSING);
  else {
    const { frames } = splitJournal(journal);
    const last = frames.length ? journal.subarray(frames[frames.length - 1].start, frames[frames.length - 1].start + frames[frames.length - 1].len) : null;
    if (!last || !equalBytes(last, alone)) problem(CHECKPOINT, `is not the last checkpoint in ${CHECKPOINTS_JOURNAL}`);
  }
  // verify_tpm.rs: a TPM's quote over the checkpoint, when the bundle has
  // one (`quote`: checkTpmQuote's answer, when the caller has it already)
  if (quote && quote.why) problem(TPM_QUOTE, quote.why);
  return findings;
}

/** Checks each `HEX  NAME` line (bundle.rs `check_sums`); returns the names listed. */
async function checkSums(files, sums, problem, sha256hex) {
  const listed = new Set();
  const hashes = new Map(); // a hostile list may name one big file many times
  const text = utf8(sums);
  if (text === null) {
    problem(SUMS, 'is not UTF-8');
    return listed;
  }
  // Rust's str::lines: split at "\n", drop one final empty line, strip a "\r"
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    const sep = line.indexOf('  ');
    if (sep < 0) {
      problem(SUMS, `line ${i + 1} is not \`HASH  NAME\``);
      continue;
    }
    const hash = line.slice(0, sep);
    const name = line.slice(sep + 2);
    if (name.includes('/') || name.startsWith('.') || name === '') {
      problem(SUMS, `line ${i + 1} names ${quote(name)}, not a file of the bundle`);
      continue;
    }
    listed.add(name);
    const bytes = files.get(name);
    if (!bytes) problem(name, `listed in ${SUMS} but ${MISSING}`);
    else {
      if (!hashes.has(name)) hashes.set(name, await sha256hex(bytes));
      if (hashes.get(name) !== asciiLower(hash)) problem(name, `does not match its SHA-256 in ${SUMS}`);
    }
  }
  return listed;
}

function asciiLower(s) {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** bundle.rs `Manifest` as serde_json reads it (unknown fields ignored). */
function parseManifest(bytes) {
  const text = utf8(bytes);
  if (text === null) throw new Error('invalid UTF-8');
  const o = parseJson(text);
  if (!isObject(o)) throw new Error(`invalid type: ${typeName(o)}, expected struct Manifest`);
  if (HAS_DUPLICATES.has(o)) throw new Error('duplicate field');
  const out = {};
  for (const k of ['format', 'origin', 'root', 'identity_fingerprint']) {
    if (o[k] === undefined) throw new Error(`missing field \`${k}\``);
    if (typeof o[k] !== 'string') throw new Error(`invalid type: ${typeName(o[k])}, expected a string (field \`${k}\`)`);
    out[k] = o[k];
  }
  for (const k of ['records', 'created_unix']) {
    if (o[k] === undefined) throw new Error(`missing field \`${k}\``);
    const v = asU64(o[k]);
    if (v === null) throw new Error(`invalid value: ${typeName(o[k])}, expected u64 (field \`${k}\`)`);
    out[k] = v;
  }
  // `from` (incremental bundles): #[serde(default)]
  out.from = 0n;
  if (o.from !== undefined) {
    const v = asU64(o.from);
    if (v === null) throw new Error(`invalid value: ${typeName(o.from)}, expected u64 (field \`from\`)`);
    out.from = v;
  }
  return out;
}

/**
 * The prefix of an incremental bundle (bundle.rs `PrefixFiles::read`), as
 * verify.js takes it: null when the manifest says the bundle is full (or
 * cannot be read: checkBundle then reports it, and the journals are
 * verified as a full log). Throws an Error with `.file` (the file at
 * fault) when the manifest says `from` > 0 and a prefix file is missing or
 * unreadable: `cairn verify` then refuses the bundle, and so does the page.
 */
export function readPrefix(files) {
  const mbytes = files.get(MANIFEST);
  if (!mbytes) return null;
  let m;
  try {
    m = parseManifest(mbytes);
  } catch {
    return null;
  }
  if (m.from === 0n) return null;
  const fail = (file, why) => {
    const e = new Error(`${file} ${why}`);
    e.file = file;
    return e;
  };
  const read = (name) => {
    const b = files.get(name);
    if (!b) throw fail(name, `${MISSING}: the manifest says the bundle continues an export of ${m.from} records, which needs it`);
    return b;
  };
  const hashes = (name) => {
    const text = utf8(read(name));
    if (text === null) throw fail(name, 'is not UTF-8');
    // Rust's str::lines
    const lines = text.split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    return lines.map((l, i) => {
      const line = l.endsWith('\r') ? l.slice(0, -1) : l;
      const h = fromBase64(line);
      if (h === null || h.length !== 32) throw fail(name, `line ${i + 1} (${quote(line)}) is not a base64 hash`);
      return h;
    });
  };
  return {
    from: m.from,
    genesis: read(GENESIS),
    checkpoint: read(PREVIOUS_CHECKPOINT),
    frontier: hashes(FRONTIER),
    proof: hashes(PREDECESSOR_PROOF),
    consistency: hashes(CONSISTENCY_PROOF),
  };
}
