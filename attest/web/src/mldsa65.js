// ML-DSA-65 verification (FIPS 204 Algorithm 3 ML-DSA.Verify, pure
// variant, and Algorithm 8 ML-DSA.Verify_internal) with the public key
// expanded once.
//
// Why not call @noble/post-quantum's ml_dsa65.verify for every record?
// It re-derives the key's matrix Â (ExpandA: 30 SHAKE128 streams), hashes
// the public key (tr) and transforms t1 on every call, and reduces modulo q
// with `%` on doubles; here it manages ~150 verifications/s per core.
// Every record of a log is signed by the same operational key, so this
// module does the per-key work once (like cairn's Rust verifier, which
// keeps the expanded key, keys.rs `Expanded`) and then only the
// per-signature part: decode, SampleInBall, 12 NTTs, Â∘ẑ − ĉ∘t̂1·2^d,
// UseHint, and the two SHAKE256 hashes. Hashing (SHAKE128/256) is
// @noble/hashes'. Each thread cross-checks this code against noble's own
// ml_dsa65.verify before use (selfTest), test/unit.mjs compares the two on
// hundreds of mutated signatures, and the key certificate and checkpoint
// signatures are verified with noble's verify directly.

import { shake128, shake256 } from '@noble/hashes/sha3.js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';

const N = 256;
const Q = 8380417;
const QINV = 1 / Q;
const D = 13;
const K = 6;
const L = 5;
const TAU = 49;
const ETA = 4;
const BETA = TAU * ETA; // 196
const GAMMA1 = 1 << 19;
const GAMMA2 = (Q - 1) / 32; // 261888
const OMEGA = 55;
const CTILDE = 48;
const PK_LEN = 32 + K * 320; // 1952
const Z_BYTES = 640; // 20 bits per coefficient
const SIG_LEN = CTILDE + L * Z_BYTES + OMEGA + K; // 3309
const W1_BYTES = 128; // 4 bits per coefficient

export const ML_DSA_65 = Object.freeze({ PK_LEN, SIG_LEN });

// ζ^brv8(k) mod q, FIPS 204 Appendix B.
const ZETAS = (() => {
  const z = new Float64Array(N);
  const brv = (x) => {
    let r = 0;
    for (let b = 0; b < 8; b++) r |= ((x >> b) & 1) << (7 - b);
    return r;
  };
  for (let k = 0; k < N; k++) {
    let e = brv(k);
    let acc = 1n;
    let base = 1753n;
    const q = BigInt(Q);
    while (e) {
      if (e & 1) acc = (acc * base) % q;
      base = (base * base) % q;
      e >>= 1;
    }
    z[k] = Number(acc);
  }
  return z;
})();
const F_INV256 = 8347681; // 256^-1 mod q

// a·b mod q for 0 <= a, b < q. The product is below 2^46, exact in a
// double; floor(p / q) computed through the reciprocal is off by at most
// one (its error is far below 1/q), and the two corrections fix that.
function mulmod(a, b) {
  const p = a * b;
  let r = p - Math.floor(p * QINV) * Q;
  if (r < 0) r += Q;
  else if (r >= Q) r -= Q;
  return r;
}

// x mod± q, centred in [−(q−1)/2, (q−1)/2], for an integer-valued double
// |x| < 2^50. x/q is never within 1/(2q) of a half-integer (q is odd), and
// the rounding error of x·(1/q) + 0.5 stays below 1.5·2^−52·|x|/q, less than
// 1/(2q) for |x| < 2^50, so the floor is exact: no correction needed.
function csub(x) {
  return x - Math.floor(x * QINV + 0.5) * Q;
}

// FIPS 204 Algorithm 41, in place, with lazy reduction: only products are
// reduced (centred), sums are left to grow. For inputs |w| ≤ q/2 (the
// callers' z and c) each of the 8 layers adds at most (q−1)/2, so |w| stays
// below 5q and every product z·w below 5q² < 2^49. The result is centred.
function ntt(w) {
  let m = 0;
  for (let len = 128; len >= 1; len >>= 1) {
    for (let start = 0; start < N; start += 2 * len) {
      const z = ZETAS[++m];
      for (let j = start; j < start + len; j++) {
        const t = csub(z * w[j + len]);
        const a = w[j];
        w[j + len] = a - t;
        w[j] = a + t;
      }
    }
  }
  for (let j = 0; j < N; j++) w[j] = csub(w[j]);
}

// FIPS 204 Algorithm 42 without its final multiplication by 256^-1 (the
// key carries that factor: prepareKey scales Â and t̂1·2^d by it, exact as
// NTT^-1 is linear), lazily reduced: sums double in size per layer, so the
// coefficients are re-centred after four layers; with inputs |w| ≤ q/2 every
// product stays below q·2^4·q/2·2 < 2^50. The result is centred.
function invnttUnscaled(w) {
  let m = N;
  for (let len = 1; len < N; len <<= 1) {
    if (len === 16) for (let j = 0; j < N; j++) w[j] = csub(w[j]);
    for (let start = 0; start < N; start += 2 * len) {
      const z = Q - ZETAS[--m]; // −ζ mod q
      for (let j = start; j < start + len; j++) {
        const t = w[j];
        const b = w[j + len];
        w[j] = t + b;
        w[j + len] = csub(z * (t - b));
      }
    }
  }
  for (let j = 0; j < N; j++) w[j] = csub(w[j]);
}

// FIPS 204 Algorithm 30 RejNTTPoly from a SHAKE128 stream over seed.
function rejNttPoly(seed) {
  const out = new Float64Array(N);
  const xof = shake128.create({});
  xof.update(seed);
  const buf = new Uint8Array(168 * 5); // 5 blocks usually suffice
  let j = 0;
  while (j < N) {
    xof.xofInto(buf);
    for (let i = 0; j < N && i + 3 <= buf.length; i += 3) {
      const t = buf[i] | (buf[i + 1] << 8) | ((buf[i + 2] & 0x7f) << 16);
      if (t < Q) out[j++] = t;
    }
  }
  return out;
}

/**
 * Expands a 1,952-byte ML-DSA-65 public key once for many verifications:
 * Â (k×l polynomials in the NTT domain), t̂1·2^d (both times 256^-1 mod q,
 * see invnttUnscaled), and tr = H(pk, 64).
 */
export function prepareKey(pk) {
  if (!(pk instanceof Uint8Array) || pk.length !== PK_LEN) throw new Error('ML-DSA-65 public key must be 1952 bytes');
  const rho = pk.subarray(0, 32);
  const A = new Float64Array(K * L * N);
  const seed = new Uint8Array(34);
  seed.set(rho);
  for (let r = 0; r < K; r++)
    for (let s = 0; s < L; s++) {
      seed[32] = s;
      seed[33] = r;
      const p = rejNttPoly(seed);
      for (let c = 0; c < N; c++) p[c] = mulmod(p[c], F_INV256);
      A.set(p, (r * L + s) * N);
    }
  // t1: 10-bit coefficients (SimpleBitUnpack), then NTT(t1 · 2^d).
  const T1 = new Float64Array(K * N);
  for (let r = 0; r < K; r++) {
    const off = 32 + r * 320;
    const p = T1.subarray(r * N, (r + 1) * N);
    for (let c = 0; c < N; c += 4) {
      const b = off + (c / 4) * 5;
      const x0 = pk[b], x1 = pk[b + 1], x2 = pk[b + 2], x3 = pk[b + 3], x4 = pk[b + 4];
      p[c] = (x0 | ((x1 & 0x03) << 8)) << D;
      p[c + 1] = ((x1 >> 2) | ((x2 & 0x0f) << 6)) << D;
      p[c + 2] = ((x2 >> 4) | ((x3 & 0x3f) << 4)) << D;
      p[c + 3] = ((x3 >> 6) | (x4 << 2)) << D;
    }
    for (let c = 0; c < N; c++) p[c] = csub(p[c]);
    ntt(p);
    for (let c = 0; c < N; c++) if (p[c] < 0) p[c] += Q;
    for (let c = 0; c < N; c++) p[c] = mulmod(p[c], F_INV256);
  }
  const tr = shake256(pk, { dkLen: 64 });
  return { A, T1, tr };
}

// Scratch buffers, reused (one verification at a time per thread).
const zHat = new Float64Array(L * N);
const cHat = new Float64Array(N);
const acc = new Float64Array(N);
const w1 = new Uint8Array(K * W1_BYTES);
const hint = new Uint8Array(K * N);
const sampleBuf = new Uint8Array(136);
const mPrefix = new Uint8Array(2);

const sampleBuf_sign = new Uint8Array(8);

// HintBitUnpack (FIPS 204 Algorithm 21) into `hint`; false if malformed.
function unpackHint(y) {
  hint.fill(0);
  let index = 0;
  for (let i = 0; i < K; i++) {
    const end = y[OMEGA + i];
    if (end < index || end > OMEGA) return false;
    const first = index;
    while (index < end) {
      if (index > first && y[index - 1] >= y[index]) return false;
      hint[i * N + y[index]] = 1;
      index++;
    }
  }
  for (let i = index; i < OMEGA; i++) if (y[i] !== 0) return false;
  return true;
}

// UseHint (FIPS 204 Algorithm 40) for γ2 = (q−1)/32 on a centred r, with
// Decompose (Algorithm 36) computed as in the Dilithium reference code
// (poly decompose for GAMMA2 = (Q-1)/32): r1 ∈ 0..15, where r1 = 16 is
// the r − r0 = q − 1 case (r1 = 0, r0 − 1), which "& 15" and the
// re-centring of r0 produce.
function useHint(h, rc) {
  const a = rc < 0 ? rc + Q : rc; // in [0, q)
  let a1 = (a + 127) >> 7;
  a1 = ((a1 * 1025 + (1 << 21)) >> 22) & 15;
  let a0 = a - a1 * 2 * GAMMA2;
  if (a0 > (Q - 1) / 2) a0 -= Q;
  if (!h) return a1;
  return a0 > 0 ? (a1 + 1) & 15 : (a1 - 1) & 15;
}

/** M′ = 0 ‖ |ctx| ‖ ctx ‖ M (FIPS 204 Algorithm 3); ctx at most 255 bytes. */
function mu(tr, msg, ctx) {
  mPrefix[0] = 0;
  mPrefix[1] = ctx.length;
  return shake256.create({ dkLen: 64 }).update(tr).update(mPrefix).update(ctx).update(msg).digest();
}

/**
 * Verifies an ML-DSA-65 signature over `msg` with context `ctx` against a
 * key from prepareKey. Returns a boolean; never throws on bad input.
 */
export function verifyPrepared(key, sig, msg, ctx) {
  if (!(sig instanceof Uint8Array) || sig.length !== SIG_LEN || ctx.length > 255) return false;
  const ctilde = sig.subarray(0, CTILDE);
  if (!unpackHint(sig.subarray(CTILDE + L * Z_BYTES))) return false;
  // z: BitUnpack(·, γ1−1, γ1), 20 bits per coefficient: z = γ1 − value.
  const bound = GAMMA1 - BETA;
  for (let s = 0; s < L; s++) {
    const off = CTILDE + s * Z_BYTES;
    const p = zHat.subarray(s * N, (s + 1) * N);
    for (let c = 0; c < N; c += 2) {
      const b = off + (c / 2) * 5;
      const x0 = sig[b], x1 = sig[b + 1], x2 = sig[b + 2], x3 = sig[b + 3], x4 = sig[b + 4];
      const v0 = GAMMA1 - (x0 | (x1 << 8) | ((x2 & 0x0f) << 16));
      const v1 = GAMMA1 - ((x2 >> 4) | (x3 << 4) | (x4 << 12));
      // ‖z‖∞ < γ1 − β
      if (v0 >= bound || v0 <= -bound || v1 >= bound || v1 <= -bound) return false;
      p[c] = v0;
      p[c + 1] = v1;
    }
    ntt(p);
  }
  const m = mu(key.tr, msg, ctx);
  sampleInBall(ctilde);
  ntt(cHat);
  const A = key.A;
  const T1 = key.T1;
  for (let r = 0; r < K; r++) {
    // acc = Σ_s Â[r][s]∘ẑ[s] − ĉ∘t̂1[r]·2^d, reduced once per coefficient:
    // Â and t̂1 are in [0, q), ẑ and ĉ centred, so each product is below
    // q²/2 and the sum of six below 3q² < 2^48, exact in a double.
    const t1 = r * N;
    const a0 = (r * L) * N, a1 = a0 + N, a2 = a1 + N, a3 = a2 + N, a4 = a3 + N;
    for (let c = 0; c < N; c++) {
      acc[c] = csub(
        A[a0 + c] * zHat[c] +
          A[a1 + c] * zHat[N + c] +
          A[a2 + c] * zHat[2 * N + c] +
          A[a3 + c] * zHat[3 * N + c] +
          A[a4 + c] * zHat[4 * N + c] -
          cHat[c] * T1[t1 + c],
      );
    }
    invnttUnscaled(acc);
    // w′1 = UseHint(h, w′approx), w1Encode: 4 bits per coefficient.
    const hb = r * N;
    const ob = r * W1_BYTES;
    for (let c = 0; c < N; c += 2) {
      const a = useHint(hint[hb + c], acc[c]);
      const b = useHint(hint[hb + c + 1], acc[c + 1]);
      w1[ob + (c >> 1)] = a | (b << 4);
    }
  }
  const c2 = shake256.create({ dkLen: CTILDE }).update(m).update(w1).digest();
  let diff = 0;
  for (let i = 0; i < CTILDE; i++) diff |= c2[i] ^ ctilde[i];
  return diff === 0;
}

// FIPS 204 Algorithm 29 SampleInBall into cHat (coefficients mod q): the
// first 8 bytes of the SHAKE256 stream are the sign bits.
function sampleInBall(ctilde) {
  cHat.fill(0);
  const h = shake256.create({});
  h.update(ctilde);
  h.xofInto(sampleBuf);
  for (let i = 0; i < 8; i++) sampleBuf_sign[i] = sampleBuf[i];
  let pos = 8;
  let bit = 0;
  for (let i = N - TAU; i < N; i++) {
    let j;
    for (;;) {
      if (pos >= sampleBuf.length) {
        h.xofInto(sampleBuf);
        pos = 0;
      }
      j = sampleBuf[pos++];
      if (j <= i) break;
    }
    cHat[i] = cHat[j];
    const sign = (sampleBuf_sign[bit >> 3] >> (bit & 7)) & 1;
    bit++;
    cHat[j] = sign ? -1 : 1; // centred, as ntt() expects
  }
}


let selfTested = null;

/**
 * Checks this module against @noble/post-quantum in the running engine
 * (once per thread): a signature made by noble over a fixed message must
 * verify here and under noble, and the same with one bit flipped in the
 * challenge, in z and in the hints must fail in both. Throws on any
 * disagreement, so that a broken fast path stops the verification instead
 * of passing or failing records wrongly.
 */
export function selfTest() {
  if (selfTested) return;
  const seed = new Uint8Array(32).map((_, i) => i * 7 + 1);
  const { publicKey, secretKey } = ml_dsa65.keygen(seed);
  const ctx = new TextEncoder().encode('cairn/record/v1');
  const msg = new TextEncoder().encode('{"v":1,"self-test":"cairn verify.html"}\n');
  const sig = ml_dsa65.sign(msg, secretKey, { context: ctx, extraEntropy: false });
  const key = prepareKey(publicKey);
  const cases = [[sig, true]];
  for (const pos of [5, CTILDE + 1000, SIG_LEN - 3]) {
    const bad = sig.slice();
    bad[pos] ^= 0x10;
    cases.push([bad, false]);
  }
  for (const [s, want] of cases) {
    const fast = verifyPrepared(key, s, msg, ctx);
    const ref = ml_dsa65.verify(s, msg, publicKey, { context: ctx });
    if (fast !== want || ref !== want)
      throw new Error(`ML-DSA-65 self-test failed in this browser (expected ${want}, fast verifier ${fast}, noble ${ref}); use \`cairn verify\``);
  }
  selfTested = true;
}
