// The signature worker. Bundled by build.mjs into a string inside the page
// and started from a blob: URL (file:// pages cannot load sibling
// scripts). Messages:
//   in  {type: 'init', operational: {name, keyId, bytes} | null}
//   in  {type: 'batch', id, buf: ArrayBuffer, items: [[start, len, crc], ...]}
//   out {type: 'ready'} | {type: 'error', why}
//   out {type: 'done', id, results: [...]} (see entrycheck.js)

import { makeChecker } from './entrycheck.js';

let check = null;

self.onmessage = (ev) => {
  const m = ev.data;
  try {
    if (m.type === 'init') {
      check = makeChecker(m.operational);
      self.postMessage({ type: 'ready' });
    } else if (m.type === 'batch') {
      const bytes = new Uint8Array(m.buf);
      const results = m.items.map(([start, len, crc]) => check(bytes.subarray(start, start + len), crc));
      self.postMessage({ type: 'done', id: m.id, results });
    }
  } catch (e) {
    self.postMessage({ type: 'error', id: m && m.id, why: String(e && e.message ? e.message : e) });
  }
};
