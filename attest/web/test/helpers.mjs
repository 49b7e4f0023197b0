// Helpers shared by the node and browser tests (FORMAT.md §6, §9): journal
// frames, SHA256SUMS as a forger recomputes it, a reference RFC 6962/9162
// Merkle tree (MTH and PATH written from the RFC, independent of
// src/merkle.js), and an incremental bundle made by hand from a full
// bundle's files, to compare with what `cairn export --from-size` writes.

import { createHash } from 'node:crypto';
import { crc32 } from '../src/crc32.js';

export const MAGIC = Buffer.from('CAIRNJ1\n');

/** The frames of a journal (stops at the first cut-off frame). */
export function frames(j) {
  const out = [];
  for (let p = 8; p + 8 <= j.length; ) {
    const len = j.readUInt32LE(p);
    if (p + 8 + len > j.length) break;
    out.push(Buffer.from(j.subarray(p + 8, p + 8 + len)));
    p += 8 + len;
  }
  return out;
}

/** A journal of these entries. */
export function journal(entries) {
  const parts = [MAGIC];
  for (const e of entries) {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(e.length, 0);
    h.writeUInt32LE(crc32(e), 4);
    parts.push(h, e);
  }
  return Buffer.concat(parts);
}

const sha = (...parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** Recomputes SHA256SUMS over the files it lists (as a forger would); `add` lists more. */
export function resum(files, add = []) {
  const listed = files.get('SHA256SUMS').toString('utf8').split('\n').filter(Boolean).map((l) => l.slice(l.indexOf('  ') + 2));
  for (const a of add) if (!listed.includes(a)) listed.push(a);
  let s = '';
  for (const n of listed) if (files.has(n)) s += `${sha(files.get(n)).toString('hex')}  ${n}\n`;
  files.set('SHA256SUMS', Buffer.from(s));
  return files;
}

/** A checkpoint note's size. */
export const cpSize = (note) => Number(note.toString('utf8').split('\n')[1]);

// ------------------------------------------------ reference Merkle tree

export const leafHash = (entry) => sha(Buffer.of(0), entry);
const node = (l, r) => sha(Buffer.of(1), l, r);
const split = (n) => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};

/** RFC 9162 §2.1.1 MTH over leaf hashes. */
export function mth(leaves) {
  if (leaves.length === 0) return sha();
  if (leaves.length === 1) return leaves[0];
  const k = split(leaves.length);
  return node(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

/** RFC 9162 §2.1.3.1 PATH(m, D[n]), leaf to root. */
export function path(m, leaves) {
  if (leaves.length <= 1) return [];
  const k = split(leaves.length);
  return m < k ? [...path(m, leaves.slice(0, k)), mth(leaves.slice(k))] : [...path(m - k, leaves.slice(k)), mth(leaves.slice(0, k))];
}

/** RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b). */
function subproof(m, leaves, b) {
  const n = leaves.length;
  if (m === n) return b ? [] : [mth(leaves)];
  const k = split(n);
  return m <= k ? [...subproof(m, leaves.slice(0, k), b), mth(leaves.slice(k))] : [...subproof(m - k, leaves.slice(k), false), mth(leaves.slice(0, k))];
}

/** RFC 9162 §2.1.4.1 PROOF(m, D[n]). */
export const consistency = (m, leaves) => (m === 0 || m === leaves.length ? [] : subproof(m, leaves, true));

/** The compact range of leaves 0 … n-1: for each set bit from the highest, the root of the next 2^bit leaves. */
export function compact(leaves) {
  const out = [];
  let at = 0;
  for (let bit = 40; bit >= 0; bit--) {
    const w = 2 ** bit;
    if (leaves.length & w) {
      out.push(mth(leaves.slice(at, at + w)));
      at += w;
    }
  }
  return out;
}

const lines = (hashes) => Buffer.from(hashes.map((h) => h.toString('base64') + '\n').join(''));

/**
 * An incremental bundle continuing the export of size `f`, made by hand
 * from a full bundle's files (`full`: Map name → Buffer) as FORMAT.md §9
 * describes it: records F-1 … N-1, the checkpoints after F, genesis,
 * previous-checkpoint, frontier, predecessor.proof, `"from": F` in the
 * manifest, SHA256SUMS over all of it.
 */
export function makeIncremental(full, f) {
  const entries = frames(full.get('records.journal'));
  const cps = frames(full.get('checkpoints.journal'));
  const previous = cps.find((c) => cpSize(c) === f);
  if (!previous) throw new Error(`test: no checkpoint of size ${f}`);
  const all = entries.map(leafHash);
  const leaves = all.slice(0, f);
  const out = new Map(full);
  out.set('records.journal', journal(entries.slice(f - 1)));
  out.set('checkpoints.journal', journal(cps.filter((c) => cpSize(c) > f)));
  out.set('genesis', entries[0]);
  out.set('previous-checkpoint', previous);
  out.set('frontier', lines(compact(leaves)));
  out.set('predecessor.proof', lines(path(f - 1, leaves)));
  // not in FORMAT.md §9 yet: cairn writes it, bundle.rs checks it
  out.set('consistency.proof', lines(consistency(f, all)));
  const m = JSON.parse(full.get('bundle.json'));
  const withFrom = {};
  for (const [k, v] of Object.entries(m)) {
    if (k === 'from') continue;
    withFrom[k] = v;
    if (k === 'records') withFrom.from = f;
  }
  out.set('bundle.json', Buffer.from(JSON.stringify(withFrom, null, 2) + '\n'));
  return resum(out, ['genesis', 'previous-checkpoint', 'frontier', 'predecessor.proof', 'consistency.proof']);
}
