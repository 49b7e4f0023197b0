// Byte helpers shared by the page and the workers. Every decoder here is
// strict (it returns null on anything that is not exactly the expected
// form) because every input byte comes from an untrusted bundle.

const HEX = '0123456789abcdef';
const HEX_PAIRS = (() => {
  const t = new Array(256);
  for (let i = 0; i < 256; i++) t[i] = HEX[i >> 4] + HEX[i & 15];
  return t;
})();

/** Lower-case hex of bytes. */
export function toHex(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX_PAIRS[bytes[i]];
  return s;
}

/** Decodes exactly `len` bytes of lower- or upper-case hex, or null. */
export function fromHex(s, len) {
  if (typeof s !== 'string' || s.length !== len * 2) return null;
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    const hi = hexVal(s.charCodeAt(2 * i));
    const lo = hexVal(s.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) return null;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

function hexVal(c) {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VAL = (() => {
  const t = new Int16Array(256).fill(-1);
  for (let i = 0; i < 64; i++) t[B64.charCodeAt(i)] = i;
  return t;
})();

/**
 * RFC 4648 §4 base64 with padding, canonical (as Rust's base64 STANDARD
 * engine decodes): length a multiple of 4, `=` only as the last one or
 * two characters, unused trailing bits zero. `s` is a string or the ASCII
 * bytes of one. Returns the bytes, or null. ("=" is not in B64_VAL, so a
 * "=" anywhere but the end fails the table look-up.)
 */
export function fromBase64(s) {
  if (typeof s === 'string') {
    const n = s.length;
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 255) return null;
      bytes[i] = c;
    }
    return fromBase64Bytes(bytes, 0, n);
  }
  return fromBase64Bytes(s, 0, s.length);
}

/** fromBase64 over the ASCII bytes `b[start, end)`. */
export function fromBase64Bytes(b, start, end) {
  const n = end - start;
  if (n % 4 !== 0) return null;
  if (n === 0) return new Uint8Array(0);
  let pad = 0;
  if (b[end - 1] === 61) pad = b[end - 2] === 61 ? 2 : 1;
  const out = new Uint8Array((n / 4) * 3 - pad);
  let o = 0;
  const full = pad ? end - 4 : end;
  for (let i = start; i < full; i += 4) {
    const va = B64_VAL[b[i]], vb = B64_VAL[b[i + 1]], vc = B64_VAL[b[i + 2]], vd = B64_VAL[b[i + 3]];
    if ((va | vb | vc | vd) < 0) return null;
    const v = (va << 18) | (vb << 12) | (vc << 6) | vd;
    out[o++] = v >> 16;
    out[o++] = (v >> 8) & 255;
    out[o++] = v & 255;
  }
  if (pad) {
    const i = end - 4;
    const va = B64_VAL[b[i]], vb = B64_VAL[b[i + 1]];
    if (va < 0 || vb < 0) return null;
    if (pad === 2) {
      if ((vb & 15) !== 0) return null; // stray bits
      out[o++] = (va << 2) | (vb >> 4);
    } else {
      const vc = B64_VAL[b[i + 2]];
      if (vc < 0 || (vc & 3) !== 0) return null;
      out[o++] = (va << 2) | (vb >> 4);
      out[o++] = ((vb & 15) << 4) | (vc >> 2);
    }
  }
  return out;
}

/** Standard base64 with padding. */
export function toBase64(bytes) {
  let s = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    s += B64[v >> 18] + B64[(v >> 12) & 63] + B64[(v >> 6) & 63] + B64[v & 63];
  }
  if (i + 1 === bytes.length) {
    const v = bytes[i] << 16;
    s += B64[v >> 18] + B64[(v >> 12) & 63] + '==';
  } else if (i + 2 === bytes.length) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    s += B64[v >> 18] + B64[(v >> 12) & 63] + B64[(v >> 6) & 63] + '=';
  }
  return s;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const ENC = new TextEncoder();

/** Decodes UTF-8 strictly; null if the bytes are not valid UTF-8. */
export function utf8(bytes) {
  try {
    return UTF8.decode(bytes);
  } catch {
    return null;
  }
}

/** The UTF-8 bytes of a string. */
export function utf8Bytes(s) {
  return ENC.encode(s);
}

/** Whether two byte arrays are equal. */
export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Concatenates byte arrays. */
export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A quoted, shortened rendering of untrusted text for messages. */
export function quote(s, max = 80) {
  const str = String(s);
  const short = str.length > max ? str.slice(0, max) + '…' : str;
  return JSON.stringify(short);
}
