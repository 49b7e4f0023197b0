// The byte formats of attest/FORMAT.md: journals (§6), signed notes (§2),
// verifier keys and fingerprints (§1), records and the genesis record (§3),
// checkpoints (§4). Mirrors the Rust reference (journal.rs, note.rs,
// keys.rs, record.rs, keyring.rs, checkpoint.rs) check for check; every
// parser throws an Error whose message says what is wrong, in the words
// `cairn verify` uses where it has them.

import { sha256 } from '@noble/hashes/sha2.js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { fromBase64, fromBase64Bytes, toBase64, toHex, utf8, utf8Bytes, equalBytes, concat, quote } from './util.js';
import { parseJson, HAS_DUPLICATES, isObject, asU32, asU64, asI32, typeName } from './json.js';

export const MAGIC = utf8Bytes('CAIRNJ1\n');
export const FRAME_HEADER = 8;
export const MAX_ENTRY_BYTES = 1024 * 1024;
export const MAX_RECORD_BYTES = 256 * 1024;
export const MAX_SIGNATURES = 100;
// More frames than any bundle a browser can hold (about 25 GB of records):
// a crafted journal of tiny frames must not exhaust the page's memory.
export const MAX_FRAMES = 5_000_000;
export const KIND_GENESIS = 'log.genesis';
export const CTX_RECORD = utf8Bytes('cairn/record/v1');
export const CTX_CHECKPOINT = utf8Bytes('cairn/checkpoint/v1');
export const CTX_KEY_CERTIFICATE = utf8Bytes('cairn/key-certificate/v1');
export const RECORDS_JOURNAL = 'records.journal';
export const CHECKPOINTS_JOURNAL = 'checkpoints.journal';

const malformed = (what, why) => new Error(`malformed ${what}: ${why}`);

// ---------------------------------------------------------------- journals

/**
 * Splits a journal file into frames (FORMAT.md §6, journal.rs
 * `split_frames` and ledger_files.rs `frames`). Does not compute the
 * checksums (the workers do): each frame is {offset, start, len, crc}.
 * Returns {frames, damage: [{offset, why}]}.
 */
export function splitJournal(bytes) {
  const frames = [];
  const damage = [];
  if (bytes.length === 0) return { frames, damage };
  if (bytes.length < MAGIC.length || !equalBytes(bytes.subarray(0, MAGIC.length), MAGIC)) {
    damage.push({ offset: 0, why: 'not a cairn journal (bad magic)' });
    return { frames, damage };
  }
  let pos = MAGIC.length;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  while (pos < bytes.length) {
    const rest = bytes.length - pos;
    let why = null;
    if (rest < FRAME_HEADER) why = `${rest} stray bytes, not a frame header`;
    else {
      const len = dv.getUint32(pos, true);
      if (len === 0 || len > MAX_ENTRY_BYTES) why = `frame length ${len} is impossible`;
      else if (rest < FRAME_HEADER + len) why = `frame of ${len} bytes is cut off after ${rest - FRAME_HEADER}`;
      else if (frames.length >= MAX_FRAMES) why = `more than ${MAX_FRAMES} frames, more than this page handles (use cairn verify)`;
      else {
        frames.push({ offset: pos, start: pos + FRAME_HEADER, len, crc: dv.getUint32(pos + 4, true) });
        pos += FRAME_HEADER + len;
        continue;
      }
    }
    damage.push({
      offset: pos,
      why: `${why} (${bytes.length - pos} bytes to the end); if cairnd was interrupted, starting it once recovers an unacknowledged tail`,
    });
    break;
  }
  return { frames, damage };
}

// ------------------------------------------------------------ signed notes

const NL = 10;

function findLastBlankLine(bytes) {
  for (let i = bytes.length - 2; i >= 0; i--) if (bytes[i] === NL && bytes[i + 1] === NL) return i;
  return -1;
}

/** note.rs `check_text`: valid UTF-8, ends in "\n", no control characters but "\n". Returns the string. */
export function checkText(text) {
  const s = utf8(text);
  if (s === null) throw malformed('signed note', 'text is not valid UTF-8');
  if (!s.endsWith('\n')) throw malformed('signed note', 'text does not end with a newline');
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== NL) || (c >= 0x7f && c <= 0x9f))
      throw malformed('signed note', `text contains control character U+${c.toString(16).toUpperCase().padStart(4, '0')}`);
  }
  return s;
}

// Rust's char::is_whitespace (Unicode White_Space).
const WHITESPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/** note.rs `check_key_name`: non-empty, no white space, no "+". */
export function checkKeyName(name) {
  if (name.length === 0 || name.includes('+') || WHITESPACE.test(name))
    throw malformed('key name', `${quote(name)} must be non-empty without spaces or '+'`);
}

/**
 * Parses a signed note (FORMAT.md §2, note.rs `Note::parse`): split at the
 * last blank line; the signature block is UTF-8, ends in "\n", and holds at
 * most 100 lines "— NAME BASE64". Returns {text (bytes), textStr, signatures:
 * [{name, keyId (4 bytes), signature}]}.
 */
export function parseNote(bytes) {
  const split = findLastBlankLine(bytes);
  if (split < 0) throw malformed('signed note', 'no blank line before signatures');
  const text = bytes.subarray(0, split + 1);
  const textStr = checkText(text);
  const signatures = fastSignatures(bytes, split + 2);
  if (signatures) return { text, textStr, signatures };
  // The general path, which also finds the exact fault.
  const block = utf8(bytes.subarray(split + 2));
  if (block === null) throw malformed('signed note', 'signature block is not UTF-8');
  if (!block.endsWith('\n')) throw malformed('signed note', 'signature block does not end with a newline');
  const sigs = [];
  for (const line of block.slice(0, -1).split('\n')) {
    if (sigs.length === MAX_SIGNATURES) throw malformed('signed note', 'too many signatures');
    sigs.push(parseSigLine(line));
  }
  return { text, textStr, signatures: sigs };
}

/**
 * The signature lines read straight from the bytes, for the common case of
 * well-formed lines with ASCII names: null as soon as anything is unusual,
 * and parseNote then takes the general path (same result, or the error).
 */
function fastSignatures(bytes, start) {
  const n = bytes.length;
  if (start >= n || bytes[n - 1] !== NL) return null;
  const sigs = [];
  let p = start;
  while (p < n) {
    if (sigs.length === MAX_SIGNATURES) return null;
    if (p + 4 > n || bytes[p] !== 0xe2 || bytes[p + 1] !== 0x80 || bytes[p + 2] !== 0x94 || bytes[p + 3] !== 0x20) return null;
    const nameStart = p + 4;
    let q = nameStart;
    // names: printable ASCII but "+" (white space and non-ASCII: general path)
    while (q < n && bytes[q] > 0x20 && bytes[q] < 0x7f && bytes[q] !== 0x2b) q++;
    if (q === nameStart || q >= n || bytes[q] !== 0x20) return null;
    const sigStart = q + 1;
    let e = sigStart;
    while (e < n && bytes[e] !== NL) e++;
    const raw = fromBase64Bytes(bytes, sigStart, e);
    if (raw === null || raw.length < 5) return null;
    let name = '';
    for (let k = nameStart; k < q; k++) name += String.fromCharCode(bytes[k]);
    sigs.push({ name, keyId: raw.subarray(0, 4), signature: raw.subarray(4) });
    p = e + 1;
  }
  return sigs;
}

function parseSigLine(line) {
  if (!line.startsWith('\u2014 ')) throw malformed('signed note', "signature line does not start with '— '");
  const rest = line.slice(2);
  const sp = rest.indexOf(' ');
  if (sp < 0) throw malformed('signed note', 'signature line has no signature');
  const name = rest.slice(0, sp);
  checkKeyName(name);
  const raw = fromBase64(rest.slice(sp + 1));
  if (raw === null) throw malformed('signed note', 'signature is not base64');
  if (raw.length < 5) throw malformed('signed note', 'signature too short');
  return { name, keyId: raw.subarray(0, 4), signature: raw.subarray(4) };
}

// -------------------------------------------------------------------- keys

export const ED25519 = 'ed25519';
export const MLDSA65 = 'ml-dsa-65';
const TYPE = {
  [ED25519]: Uint8Array.of(0x01),
  // 0xFF, then ASCII "cairn/ml-dsa-65"
  [MLDSA65]: concat(Uint8Array.of(0xff), utf8Bytes('cairn/ml-dsa-65')),
};
const PUBLIC_LEN = { [ED25519]: 32, [MLDSA65]: 1952 };

/** The signed-note type bytes of an algorithm (FORMAT.md §1). */
export function noteType(alg) {
  return TYPE[alg];
}

/**
 * A public key (keys.rs `PublicKey::new`): checks the name and length and
 * that an Ed25519 key is a curve point. Computes the key ID, verifier key
 * and fingerprint.
 */
export function makePublicKey(name, alg, bytes) {
  checkKeyName(name);
  if (bytes.length !== PUBLIC_LEN[alg])
    throw malformed('public key', `${alg} key is ${bytes.length} bytes, expected ${PUBLIC_LEN[alg]}`);
  if (alg === ED25519) {
    try {
      // ed25519-dalek's VerifyingKey::from_bytes: a decompressible point
      ed25519.Point.fromBytes(bytes, true);
    } catch {
      throw malformed('public key', `not a valid ${alg} key`);
    }
  }
  const typed = concat(TYPE[alg], bytes);
  const id = sha256(concat(utf8Bytes(name), Uint8Array.of(NL), typed)).subarray(0, 4);
  return {
    name,
    alg,
    bytes,
    keyId: id,
    vkey: `${name}+${toHex(id)}+${toBase64(typed)}`,
    fingerprint: toHex(sha256(typed)),
  };
}

/** Parses a verifier key "name+hex(key ID)+base64(type ‖ key)" (keys.rs `from_vkey`). */
export function parseVkey(vkey) {
  const t = vkey.trim();
  const a = t.indexOf('+');
  const b = a < 0 ? -1 : t.indexOf('+', a + 1);
  if (a < 0 || b < 0) throw malformed('verifier key', 'expected name+id+key');
  const name = t.slice(0, a);
  const id = t.slice(a + 1, b);
  const raw = fromBase64(t.slice(b + 1));
  if (raw === null) throw malformed('verifier key', 'key is not base64');
  let alg = null;
  for (const cand of [ED25519, MLDSA65]) {
    const ty = TYPE[cand];
    if (raw.length >= ty.length && equalBytes(raw.subarray(0, ty.length), ty)) {
      alg = cand;
      break;
    }
  }
  if (alg === null)
    throw malformed('verifier key', `unknown signature type [${raw.length ? raw[0].toString(16).padStart(2, '0') : ''}]`);
  const pk = makePublicKey(name, alg, raw.subarray(TYPE[alg].length));
  if (id !== toHex(pk.keyId)) throw malformed('verifier key', 'key id does not match the key');
  return pk;
}

/** Whether a note signature line is by `key` (same name and key ID). */
export function isBy(sig, key) {
  return sig.name === key.name && equalBytes(sig.keyId, key.keyId);
}

/**
 * Verifies one signature with a public key (keys.rs `PublicKey::verify`):
 * ML-DSA-65 with context `ctx` (noble's verify), Ed25519 plain and strict.
 */
export function verifyWith(key, msg, sig, ctx) {
  if (key.alg === MLDSA65) {
    if (sig.length !== 3309) return false;
    try {
      return ml_dsa65.verify(sig, msg, key.bytes, { context: ctx });
    } catch {
      return false;
    }
  }
  return ed25519VerifyStrict(key.bytes, msg, sig);
}

/**
 * Ed25519 as ed25519-dalek's `verify_strict`: canonical encodings, S < ℓ,
 * neither A nor R of small order, and the cofactorless equation
 * [S]B = R + [k]A with k = SHA-512(R ‖ A ‖ M) mod ℓ.
 */
export function ed25519VerifyStrict(pub, msg, sig) {
  if (sig.length !== 64 || pub.length !== 32) return false;
  try {
    const P = ed25519.Point;
    const A = P.fromBytes(pub, false);
    const R = P.fromBytes(sig.subarray(0, 32), false);
    if (A.isSmallOrder() || R.isSmallOrder()) return false;
    const ell = P.Fn.ORDER;
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i]);
    if (s >= ell) return false;
    const h = sha512(concat(sig.subarray(0, 32), pub, msg));
    let k = 0n;
    for (let i = 63; i >= 0; i--) k = (k << 8n) | BigInt(h[i]);
    k %= ell;
    const SB = s === 0n ? P.ZERO : P.BASE.multiply(s);
    const rhs = k === 0n ? R : R.add(A.multiply(k));
    return SB.equals(rhs);
  } catch {
    return false;
  }
}

/**
 * note.rs `verify_by`: the first signature line by `key` that verifies.
 * Returns null when one does, else 'missing' (no line by the key) or
 * 'invalid' (lines by it, none verifies).
 */
export function verifyNoteBy(note, key, ctx, verify = verifyWith) {
  let found = false;
  for (const s of note.signatures) {
    if (!isBy(s, key)) continue;
    found = true;
    if (verify(key, note.text, s.signature, ctx)) return null;
  }
  return found ? 'invalid' : 'missing';
}

export const FAULT_TEXT = {
  missing: 'no signature by the expected key',
  invalid: 'signature does not verify',
};

// ----------------------------------------------------------------- records

function field(what) {
  return (why) => malformed(what, why);
}

function checkFields(o, allowed, bad) {
  if (HAS_DUPLICATES.has(o)) throw bad('duplicate field');
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw bad(`unknown field \`${k}\`, expected one of ${allowed.map((a) => '`' + a + '`').join(', ')}`);
}

function str(o, k, bad, optional = false) {
  const v = o[k];
  if (v === undefined) {
    if (optional) return undefined;
    throw bad(`missing field \`${k}\``);
  }
  if (typeof v !== 'string') throw bad(`invalid type: ${typeName(v)}, expected a string (field \`${k}\`)`);
  return v;
}

function num(o, k, bad, conv, what) {
  const v = o[k];
  if (v === undefined) throw bad(`missing field \`${k}\``);
  const n = conv(v);
  if (n === null) throw bad(`invalid value: ${typeName(v)}${v && v.raw ? ' ' + v.raw : ''}, expected ${what} (field \`${k}\`)`);
  return n;
}

/**
 * Parses a record text (FORMAT.md §3, record.rs `Record::parse`): at most
 * 262,144 bytes, exactly one line, a JSON object with the version-1 fields
 * and no others. Returns {v, log, seq (BigInt), time, kind, actor, model,
 * prev, ref, commits, body}.
 */
export function parseRecord(text, textStr) {
  if (text.length > MAX_RECORD_BYTES)
    throw new Error(`record is ${text.length} bytes, over the limit of ${MAX_RECORD_BYTES} bytes`);
  const nl = textStr.indexOf('\n');
  if (nl !== textStr.length - 1) throw malformed('record', 'text must be exactly one line');
  const bad = field('record');
  let o;
  try {
    o = parseJson(textStr.slice(0, -1));
  } catch (e) {
    throw bad(e.message);
  }
  if (!isObject(o)) throw bad(`invalid type: ${typeName(o)}, expected struct Record`);
  checkFields(o, ['v', 'log', 'seq', 'time', 'kind', 'actor', 'model', 'prev', 'ref', 'commits', 'body'], bad);
  const v = num(o, 'v', bad, asU32, 'u32');
  const log = str(o, 'log', bad);
  const seq = num(o, 'seq', bad, asU64, 'u64');
  const time = str(o, 'time', bad);
  const kind = str(o, 'kind', bad);
  if (o.actor === undefined) throw bad('missing field `actor`');
  const actor = parseActor(o.actor, bad);
  let model = o.model;
  if (model === undefined) model = null;
  if (model !== null && typeof model !== 'string') throw bad(`invalid type: ${typeName(model)}, expected a string (field \`model\`)`);
  const prev = str(o, 'prev', bad);
  let ref = o.ref === undefined ? null : o.ref;
  if (ref !== null) {
    if (!isObject(ref)) throw bad(`invalid type: ${typeName(ref)}, expected struct RecordRef`);
    checkFields(ref, ['seq', 'hash'], bad);
    ref = { seq: num(ref, 'seq', bad, asU64, 'u64'), hash: str(ref, 'hash', bad) };
  }
  const commits = o.commits === undefined ? Object.create(null) : o.commits;
  if (!isObject(commits)) throw bad(`invalid type: ${typeName(commits)}, expected a map (field \`commits\`)`);
  for (const k of Object.keys(commits))
    if (typeof commits[k] !== 'string') throw bad(`invalid type: ${typeName(commits[k])}, expected a string (commits)`);
  const body = o.body === undefined ? null : o.body;
  if (v !== 1) throw bad(`unsupported format version ${v}`);
  return { v, log, seq, time, kind, actor, model, prev, ref, commits, body };
}

function parseActor(a, bad) {
  if (!isObject(a)) throw bad(`invalid type: ${typeName(a)}, expected internally tagged enum Actor`);
  if (a.type === undefined) throw bad('missing field `type`');
  if (typeof a.type !== 'string') throw bad(`invalid type: ${typeName(a.type)}, expected variant identifier`);
  switch (a.type) {
    case 'unix':
      checkFields(a, ['type', 'uid', 'gid', 'pid', 'exe'], bad);
      num(a, 'uid', bad, asU32, 'u32');
      num(a, 'gid', bad, asU32, 'u32');
      num(a, 'pid', bad, asI32, 'i32');
      if (a.exe !== undefined && a.exe !== null && typeof a.exe !== 'string') throw bad('invalid type for `exe`, expected a string');
      return a;
    case 'token':
    case 'system':
      checkFields(a, ['type', 'name'], bad);
      str(a, 'name', bad);
      return a;
    default:
      throw bad(`unknown variant \`${a.type}\`, expected one of \`unix\`, \`token\`, \`system\``);
  }
}

/** Parses an entry: a signed note whose text is a record (entry.rs). */
export function parseEntry(bytes) {
  const note = parseNote(bytes);
  const record = parseRecord(note.text, note.textStr);
  return { note, record };
}

/** `prev` as 32 bytes (record.rs `prev_hash`), or null if it is not 64 hex digits. */
export function prevHash(prev) {
  if (prev.length !== 64 || !/^[0-9a-fA-F]{64}$/.test(prev)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(prev.slice(2 * i, 2 * i + 2), 16);
  return out;
}

// ---------------------------------------------------------- genesis, keys

/** The key certificate text (keyring.rs `certificate_text`). */
export function certificateText(keys) {
  return utf8Bytes(`cairn key certificate v1\nlog ${keys.identity.name}\nrole operational\nkey ${keys.operational.vkey}\n`);
}

/**
 * Reads the genesis record's keys (verify.rs `genesis_keys`, keyring.rs
 * `KeySet::from_genesis`): kind log.genesis, body {keys: {identity,
 * operational, cosigner}, certificate} and nothing else, algorithms,
 * cosigner named after the origin, and the identity key's certificate over
 * the operational key. Returns {identity, operational, cosigner, origin}.
 */
export function genesisKeys(bytes) {
  const e = parseEntry(bytes);
  if (e.record.kind !== KIND_GENESIS)
    throw new Error(`the first record must be ${KIND_GENESIS}, found ${quote(e.record.kind)}`);
  const bad = field('genesis record');
  const body = e.record.body;
  if (!isObject(body)) throw bad(`invalid type: ${typeName(body)}, expected struct GenesisBody`);
  // The body is read as a JSON value first (duplicates: last wins), then
  // as the struct: unknown fields are errors, duplicates are not.
  for (const k of Object.keys(body)) if (k !== 'keys' && k !== 'certificate') throw bad(`unknown field \`${k}\`, expected \`keys\` or \`certificate\``);
  if (body.keys === undefined) throw bad('missing field `keys`');
  const cert = body.certificate;
  if (cert === undefined) throw bad('missing field `certificate`');
  if (typeof cert !== 'string') throw bad(`invalid type: ${typeName(cert)}, expected a string`);
  const k = body.keys;
  if (!isObject(k)) throw bad(`invalid type: ${typeName(k)}, expected struct GenesisKeys`);
  for (const n of Object.keys(k))
    if (!['identity', 'operational', 'cosigner'].includes(n)) throw bad(`unknown field \`${n}\`, expected one of \`identity\`, \`operational\`, \`cosigner\``);
  for (const n of ['identity', 'operational', 'cosigner']) {
    if (k[n] === undefined) throw bad(`missing field \`${n}\``);
    if (typeof k[n] !== 'string') throw bad(`invalid type: ${typeName(k[n])}, expected a string`);
  }
  const keys = {
    identity: parseVkey(k.identity),
    operational: parseVkey(k.operational),
    cosigner: parseVkey(k.cosigner),
  };
  if (keys.identity.alg !== MLDSA65 || keys.operational.alg !== MLDSA65) throw bad('identity and operational keys must be ML-DSA-65');
  if (keys.cosigner.alg !== ED25519) throw bad('cosigner key must be Ed25519');
  if (keys.cosigner.name !== keys.identity.name) throw bad('cosigner key name must be the log origin');
  const sig = fromBase64(cert);
  if (sig === null) throw bad('certificate is not base64');
  if (!verifyWith(keys.identity, certificateText(keys), sig, CTX_KEY_CERTIFICATE))
    throw bad("the identity key's certificate over the operational key does not verify");
  keys.origin = keys.identity.name;
  return keys;
}

// ------------------------------------------------------------- checkpoints

/** checkpoint.rs `check_origin`: a key name of printable ASCII. */
export function checkOrigin(origin) {
  checkKeyName(origin);
  if (!/^[\x21-\x7e]+$/.test(origin)) throw malformed('origin', `${quote(origin)} must be printable ASCII`);
}

/** Parses a checkpoint note's text (checkpoint.rs `parse_text`): {origin, size (BigInt), root, extensions}. */
export function parseCheckpointText(textStr) {
  const lines = textStr.split('\n');
  if (lines.length < 3) throw malformed('checkpoint', 'needs origin, size and root lines');
  const [origin, size, root] = lines;
  checkOrigin(origin);
  if (size.length === 0 || size.length > 20 || !/^[0-9]+$/.test(size) || (size.length > 1 && size[0] === '0'))
    throw malformed('checkpoint', `size ${quote(size)} is not a decimal number`);
  const n = BigInt(size);
  if (n > 18446744073709551615n) throw malformed('checkpoint', 'size out of range');
  const r = fromBase64(root);
  if (r === null || r.length !== 32) throw malformed('checkpoint', 'root is not 32 base64 bytes');
  // Extension lines (FORMAT.md §4), signed with the rest: non-empty
  // printable ASCII; the text ends in a newline.
  const extensions = lines.slice(3);
  if (extensions.length > 0 && extensions[extensions.length - 1] === '') extensions.pop();
  if (extensions.some((e) => !/^[\x20-\x7e]+$/.test(e)))
    throw malformed('checkpoint', 'an extension line is empty or not printable ASCII');
  return { origin, size: n, root: r, extensions };
}

/**
 * Opens a signed checkpoint (checkpoint.rs `Checkpoint::open`): parses,
 * checks the origin and both signatures.
 */
export function openCheckpoint(bytes, keys) {
  const note = parseNote(bytes);
  const cp = parseCheckpointText(note.textStr);
  if (cp.origin !== keys.origin) throw new Error(`checkpoint is for log ${quote(cp.origin)}, not ${quote(keys.origin)}`);
  let f = verifyNoteBy(note, keys.identity, CTX_CHECKPOINT);
  if (f) throw new Error(`checkpoint identity (ML-DSA-65) signature: ${FAULT_TEXT[f]}`);
  f = verifyNoteBy(note, keys.cosigner, new Uint8Array(0));
  if (f) throw new Error(`checkpoint Ed25519 co-signature: ${FAULT_TEXT[f]}`);
  return cp;
}

/** A checkpoint's parsed text without checking signatures, or null. */
export function peekCheckpoint(bytes) {
  try {
    return parseCheckpointText(parseNote(bytes).textStr);
  } catch {
    return null;
  }
}
