// RFC 6962 / RFC 9162 Merkle tree over SHA-256 (FORMAT.md §4): leaves
// SHA-256(0x00 ‖ entry), nodes SHA-256(0x01 ‖ left ‖ right), the empty
// tree SHA-256(""). A frontier (merkle.rs `Frontier`) gives the root at
// every size as leaves are pushed in order; it can start from a compact
// range (merkle.rs `Frontier::from_compact`), as an incremental bundle's
// `frontier` file gives it (FORMAT.md §9). Sizes are BigInts (u64 in the
// format).

import { sha256 } from '@noble/hashes/sha2.js';

const ONE = Uint8Array.of(1);

export function nodeHash(left, right) {
  return sha256.create().update(ONE).update(left).update(right).digest();
}

export const EMPTY_ROOT = sha256(new Uint8Array(0));

export class Frontier {
  constructor() {
    this.size = 0n;
    this.stack = []; // [level, hash]
  }
  /**
   * A tree of `size` leaves from its compact range: the roots of its
   * complete subtrees, largest first, one per set bit of `size`. Throws
   * when the count does not match.
   */
  static fromCompact(size, hashes) {
    const levels = [];
    for (let l = 63; l >= 0; l--) if ((size >> BigInt(l)) & 1n) levels.push(l);
    if (size >> 64n || levels.length !== hashes.length)
      throw new Error(`a tree of ${size} leaves has ${levels.length} complete subtrees, not ${hashes.length}`);
    const f = new Frontier();
    f.size = size;
    f.stack = levels.map((l, i) => [l, hashes[i]]);
    return f;
  }
  push(leaf) {
    let level = 0;
    let hash = leaf;
    while (this.stack.length && this.stack[this.stack.length - 1][0] === level) {
      const [, left] = this.stack.pop();
      hash = nodeHash(left, hash);
      level++;
    }
    this.stack.push([level, hash]);
    this.size++;
  }
  root() {
    if (!this.stack.length) return EMPTY_ROOT;
    let acc = this.stack[this.stack.length - 1][1];
    for (let i = this.stack.length - 2; i >= 0; i--) acc = nodeHash(this.stack[i][1], acc);
    return acc;
  }
}

/** SHA-256(0x00 ‖ entry): an entry's leaf hash. */
export function leafHash(entry) {
  return sha256.create().update(Uint8Array.of(0)).update(entry).digest();
}

/**
 * RFC 9162 §2.1.3.2: whether `proof` (hashes, leaf to root) proves that
 * `leaf` is leaf `index` of the tree of `size` leaves with root `root`.
 * `index` and `size` are BigInts.
 */
export function verifyInclusion(index, size, leaf, proof, root) {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else r = nodeHash(r, p);
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || r.length !== root.length) return false;
  for (let i = 0; i < r.length; i++) if (r[i] !== root[i]) return false;
  return true;
}

/**
 * RFC 9162 §2.1.4.2 (merkle.rs `verify_consistency`): whether `proof`
 * shows the tree of size `old` with root `oldRoot` is a prefix of the tree
 * of size `size` with root `newRoot`. Sizes are BigInts.
 */
export function verifyConsistency(old, size, oldRoot, newRoot, proof) {
  const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  if (old > size) return false;
  if (old === size) return proof.length === 0 && eq(oldRoot, newRoot);
  if (old === 0n) return proof.length === 0;
  if (proof.length === 0) return false;
  const path = (old & (old - 1n)) === 0n ? [oldRoot, ...proof] : proof.slice();
  let f = old - 1n;
  let s = size - 1n;
  while ((f & 1n) === 1n) {
    f >>= 1n;
    s >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (s === 0n) return false;
    if ((f & 1n) === 1n || f === s) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while ((f & 1n) === 0n && f !== 0n) {
        f >>= 1n;
        s >>= 1n;
      }
    } else sr = nodeHash(sr, c);
    f >>= 1n;
    s >>= 1n;
  }
  return eq(fr, oldRoot) && eq(sr, newRoot) && s === 0n;
}
