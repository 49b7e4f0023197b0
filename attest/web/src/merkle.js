// RFC 6962 / RFC 9162 Merkle tree over SHA-256 (FORMAT.md §4): leaves
// SHA-256(0x00 ‖ entry), nodes SHA-256(0x01 ‖ left ‖ right), the empty
// tree SHA-256(""). A frontier (merkle.rs `Frontier`) gives the root at
// every size as leaves are pushed in order.

import { sha256 } from '@noble/hashes/sha2.js';

const ONE = Uint8Array.of(1);

export function nodeHash(left, right) {
  return sha256.create().update(ONE).update(left).update(right).digest();
}

export const EMPTY_ROOT = sha256(new Uint8Array(0));

export class Frontier {
  constructor() {
    this.size = 0;
    this.stack = []; // [level, hash]
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
