// A strict JSON parser for untrusted record text (RFC 8259 grammar, as
// serde_json reads it): no trailing garbage, no lone surrogate escapes, a
// nesting limit of 128, numbers kept as their literal so that integer
// fields can be checked exactly (JSON.parse would turn 1.0 into 1 and
// round 2^64-1), objects with a null prototype, and duplicate keys
// remembered (the last value wins, as in serde_json's Value; the record's
// own fields reject duplicates, as serde's derived structs do).

/** A JSON number literal. */
export class JNum {
  constructor(raw, isInt) {
    this.raw = raw;
    this.isInt = isInt;
  }
  get value() {
    return Number(this.raw);
  }
}

/** Objects in which a key occurred twice. */
export const HAS_DUPLICATES = new WeakSet();

const MAX_DEPTH = 128;

class ParseError extends Error {}

/** Parses `s` as one JSON value; throws an Error with a short reason. */
export function parseJson(s) {
  let i = 0;
  const n = s.length;
  const fail = (why) => {
    throw new ParseError(`${why} at column ${i + 1}`);
  };
  const ws = () => {
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 32 || c === 10 || c === 13 || c === 9) i++;
      else break;
    }
  };
  const value = (depth) => {
    ws();
    if (i >= n) fail('EOF while parsing a value');
    const c = s.charCodeAt(i);
    if (c === 123) return object(depth + 1);
    if (c === 91) return array(depth + 1);
    if (c === 34) return string();
    if (c === 45 || (c >= 48 && c <= 57)) return number();
    if (s.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (s.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (s.startsWith('null', i)) {
      i += 4;
      return null;
    }
    fail('expected value');
  };
  const object = (depth) => {
    if (depth > MAX_DEPTH) fail('recursion limit exceeded');
    i++;
    const o = Object.create(null);
    ws();
    if (s.charCodeAt(i) === 125) {
      i++;
      return o;
    }
    for (;;) {
      ws();
      if (s.charCodeAt(i) !== 34) fail('key must be a string');
      const k = string();
      ws();
      if (s.charCodeAt(i) !== 58) fail("expected ':'");
      i++;
      const v = value(depth);
      if (Object.prototype.hasOwnProperty.call(o, k)) HAS_DUPLICATES.add(o);
      o[k] = v;
      ws();
      const d = s.charCodeAt(i);
      if (d === 44) {
        i++;
        continue;
      }
      if (d === 125) {
        i++;
        return o;
      }
      fail("expected ',' or '}'");
    }
  };
  const array = (depth) => {
    if (depth > MAX_DEPTH) fail('recursion limit exceeded');
    i++;
    const a = [];
    ws();
    if (s.charCodeAt(i) === 93) {
      i++;
      return a;
    }
    for (;;) {
      a.push(value(depth));
      ws();
      const d = s.charCodeAt(i);
      if (d === 44) {
        i++;
        continue;
      }
      if (d === 93) {
        i++;
        return a;
      }
      fail("expected ',' or ']'");
    }
  };
  const hex4 = () => {
    if (i + 4 > n) fail('EOF while parsing a string');
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = s.charCodeAt(i + k);
      let d;
      if (c >= 48 && c <= 57) d = c - 48;
      else if (c >= 97 && c <= 102) d = c - 87;
      else if (c >= 65 && c <= 70) d = c - 55;
      else fail('invalid escape');
      v = (v << 4) | d;
    }
    i += 4;
    return v;
  };
  const string = () => {
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) fail('EOF while parsing a string');
      const c = s.charCodeAt(i);
      if (c === 34) {
        out += s.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in string');
      if (c >= 0xd800 && c <= 0xdfff) {
        // Only reachable for text that is not well-formed UTF-16, which a
        // strict UTF-8 decode never yields; kept for safety.
        const d = s.charCodeAt(i + 1);
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          i += 2;
          continue;
        }
        fail('lone surrogate');
      }
      if (c !== 92) {
        i++;
        continue;
      }
      out += s.slice(start, i);
      i++;
      const e = s.charCodeAt(i);
      i++;
      switch (e) {
        case 34: out += '"'; break;
        case 92: out += '\\'; break;
        case 47: out += '/'; break;
        case 98: out += '\b'; break;
        case 102: out += '\f'; break;
        case 110: out += '\n'; break;
        case 114: out += '\r'; break;
        case 116: out += '\t'; break;
        case 117: {
          const u = hex4();
          if (u >= 0xdc00 && u <= 0xdfff) fail('lone trailing surrogate in hex escape');
          if (u >= 0xd800 && u <= 0xdbff) {
            if (s.charCodeAt(i) !== 92 || s.charCodeAt(i + 1) !== 117)
              fail('lone leading surrogate in hex escape');
            i += 2;
            const l = hex4();
            if (l < 0xdc00 || l > 0xdfff) fail('lone leading surrogate in hex escape');
            out += String.fromCharCode(u, l);
          } else out += String.fromCharCode(u);
          break;
        }
        default:
          i--;
          fail('invalid escape');
      }
      start = i;
    }
  };
  const number = () => {
    const start = i;
    let isInt = true;
    if (s.charCodeAt(i) === 45) i++;
    const digits = () => {
      const b = i;
      while (i < n && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
      return i - b;
    };
    if (s.charCodeAt(i) === 48) {
      i++;
      const c = s.charCodeAt(i);
      if (c >= 48 && c <= 57) fail('invalid number');
    } else if (digits() === 0) fail('invalid number');
    if (s.charCodeAt(i) === 46) {
      i++;
      isInt = false;
      if (digits() === 0) fail('invalid number');
    }
    const e = s.charCodeAt(i);
    if (e === 101 || e === 69) {
      i++;
      isInt = false;
      const sgn = s.charCodeAt(i);
      if (sgn === 43 || sgn === 45) i++;
      if (digits() === 0) fail('invalid number');
    }
    const raw = s.slice(start, i);
    // serde_json reads "-0" as a float, and refuses numbers that overflow f64
    if (raw === '-0') isInt = false;
    if (!Number.isFinite(Number(raw))) {
      i = start;
      fail('number out of range');
    }
    return new JNum(raw, isInt);
  };
  try {
    const v = value(0);
    ws();
    if (i !== n) fail('trailing characters');
    return v;
  } catch (e) {
    if (e instanceof ParseError) throw new Error(e.message);
    if (e instanceof RangeError) throw new Error('nesting too deep');
    throw e;
  }
}

const U32_MAX = 4294967295n;
const U64_MAX = 18446744073709551615n;

/** The value of an unsigned integer literal within `max` (u32 or u64), as a BigInt, or null. */
function unsigned(v, max) {
  if (!(v instanceof JNum) || !v.isInt || v.raw.startsWith('-')) return null;
  const b = BigInt(v.raw);
  return b <= max ? b : null;
}

/** The value of a u32 literal as a Number, or null. */
export function asU32(v) {
  const b = unsigned(v, U32_MAX);
  return b === null ? null : Number(b);
}

/** The value of a u64 literal as a BigInt, or null. */
export function asU64(v) {
  return unsigned(v, U64_MAX);
}

/** The value of an i32 literal as a Number, or null. */
export function asI32(v) {
  if (!(v instanceof JNum) || !v.isInt) return null;
  const b = BigInt(v.raw);
  return b >= -2147483648n && b <= 2147483647n ? Number(b) : null;
}

/** Whether `v` is a JSON object (as parsed here). */
export function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof JNum);
}

/** A short name of a JSON value's type for messages. */
export function typeName(v) {
  if (v === null) return 'null';
  if (v instanceof JNum) return v.isInt ? 'integer' : 'floating point number';
  if (Array.isArray(v)) return 'sequence';
  if (typeof v === 'object') return 'map';
  if (typeof v === 'boolean') return 'boolean';
  return 'string';
}
