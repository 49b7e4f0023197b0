// The per-entry checks of FORMAT.md §8 step 2 that need no other entry
// (verify.rs `check_entry`), run in the workers: frame checksum, note and
// record syntax, the ML-DSA-65 signature by the operational key (context
// cairn/record/v1); plus the two hashes the sequential pass needs: the
// chain hash BLAKE3(text) and the Merkle leaf hash SHA-256(0x00 ‖ entry).

import { sha256 } from '@noble/hashes/sha2.js';
import { blake3 } from '@noble/hashes/blake3.js';
import { crc32 } from './crc32.js';
import { parseEntry, isBy, prevHash, CTX_RECORD } from './formats.js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { prepareKey, verifyPrepared, selfTest } from './mldsa65.js';

const ZERO = Uint8Array.of(0);

/**
 * Every SPOT_CHECK-th signature the fast verifier accepts, and the first
 * SPOT_CHECK it rejects, are verified again with noble's reference
 * `ml_dsa65.verify`; a disagreement stops the verification (see
 * `spotCheck`). This keeps a regression in the fast path from passing or
 * failing records unnoticed, at a small fraction of the time noble alone
 * would take (and a bundle of bad signatures cannot make it slow).
 */
const SPOT_CHECK = 64;

/**
 * A checker for entries signed by `operational` ({name, keyId, bytes}, or
 * null when the genesis record is unusable). Returns check(bytes, crc).
 */
export function makeChecker(operational) {
  selfTest();
  const prepared = operational ? prepareKey(operational.bytes) : null;
  const key = operational;
  let accepted = 0;
  let rejected = 0;
  const verify = (sig, text) => {
    const fast = verifyPrepared(prepared, sig, text, CTX_RECORD);
    const n = fast ? accepted++ : rejected++;
    if (fast ? n % SPOT_CHECK === 0 : n < SPOT_CHECK) spotCheck(fast, sig, text, key.bytes);
    return fast;
  };
  return function check(entry, crc) {
    const leaf = sha256.create().update(ZERO).update(entry).digest();
    const intact = crc32(entry) === crc;
    let e = null;
    let parseError = null;
    try {
      e = parseEntry(entry);
    } catch (err) {
      parseError = String(err && err.message ? err.message : err);
    }
    // the chain hash of what is stored, even if damaged (verify.rs)
    const hash = e ? blake3(e.note.text) : null;
    const out = { leaf, hash, ok: false, why: null, seq: null, prev: null, log: null, kind: null };
    if (!intact) {
      out.why = 'stored checksum does not match: the bytes were altered or damaged';
      return out;
    }
    if (!e) {
      out.why = parseError;
      return out;
    }
    if (!key) {
      out.why = 'no trusted keys (the genesis record is unusable)';
      return out;
    }
    let found = false;
    let good = false;
    for (const s of e.note.signatures) {
      if (!isBy(s, key)) continue;
      found = true;
      if (verify(s.signature, e.note.text)) {
        good = true;
        break;
      }
    }
    if (!good) {
      out.why = found ? 'the ML-DSA-65 signature does not verify' : "not signed by the log's operational key";
      return out;
    }
    out.ok = true;
    out.seq = e.record.seq.toString();
    out.prev = prevHash(e.record.prev);
    out.log = e.record.log;
    out.kind = e.record.kind;
    return out;
  };
}

/**
 * Throws unless noble's reference verifier agrees with `fast` on this
 * signature: a wrong verdict must stop the verification, never stand.
 */
export function spotCheck(fast, sig, text, publicKey) {
  let ref;
  try {
    ref = ml_dsa65.verify(sig, text, publicKey, { context: CTX_RECORD });
  } catch {
    ref = false;
  }
  if (ref !== fast)
    throw new Error(
      `ML-DSA-65: the fast verifier says ${fast} where noble says ${ref}; verification stopped (use \`cairn verify\`)`,
    );
}
