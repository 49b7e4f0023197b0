// Running the per-entry checks in parallel.
//
// Approach: the worker's code is bundled at build time into a string in
// this page (build.mjs); at run time it becomes a Blob, and one dedicated
// Worker per core (navigator.hardwareConcurrency, at most 8) is started
// from its blob: URL: a page opened from file:// may not load a sibling
// script file, but it may start a worker from a blob: URL of its own
// making. If the browser refuses that, a data: URL is tried, and failing
// both, the checks run on the page's own thread in slices (slower, same
// results). Each worker expands the operational key once (mldsa65.js), then
// takes batches of consecutive entries (a copy of their bytes, transferred,
// not cloned), two batches in flight per worker so none idles.

import { makeChecker } from './entrycheck.js';

const BATCH_BYTES = 512 * 1024;
const BATCH_MAX = 128;

function startWorkers(source, count) {
  const tries = [
    () => URL.createObjectURL(new Blob([source], { type: 'text/javascript' })),
    () => 'data:text/javascript;base64,' + btoa(unescape(encodeURIComponent(source))),
  ];
  for (const url of tries) {
    try {
      const u = url();
      const ws = [];
      for (let i = 0; i < count; i++) ws.push(new Worker(u));
      return ws;
    } catch {
      /* try the next way */
    }
  }
  return null;
}

/** How many workers to start. */
export function workerCount() {
  const c = (typeof navigator !== 'undefined' && navigator.hardwareConcurrency) || 2;
  return Math.max(1, Math.min(8, c));
}

/**
 * Returns runEntries(journal, frames, operational, onProgress) for
 * verify.js, using workers made from `workerSource`. `info.mode` tells
 * afterwards how it ran ('workers', or 'page thread').
 */
export function makeRunner(workerSource, info = {}) {
  return async function runEntries(journal, frames, operational, onProgress) {
    const results = new Array(frames.length);
    const batches = [];
    for (let i = 0; i < frames.length; ) {
      let j = i;
      let bytes = 0;
      while (j < frames.length && j - i < BATCH_MAX && (j === i || bytes + frames[j].len + 8 <= BATCH_BYTES)) {
        bytes += frames[j].len + 8;
        j++;
      }
      batches.push([i, j]);
      i = j;
    }
    const count = Math.min(workerCount(), Math.max(1, batches.length));
    let workers = workerSource ? startWorkers(workerSource, count) : null;
    if (workers) {
      try {
        await runOnWorkers(workers, journal, frames, batches, results, operational, onProgress);
        info.mode = `${workers.length} web workers`;
        return results;
      } catch (e) {
        info.workerError = String(e && e.message ? e.message : e);
      } finally {
        for (const w of workers) w.terminate();
      }
    }
    info.mode = 'page thread (web workers unavailable' + (info.workerError ? `: ${info.workerError}` : '') + ')';
    const check = makeChecker(operational);
    let last = performance.now();
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i];
      results[i] = check(journal.subarray(f.start, f.start + f.len), f.crc);
      if (performance.now() - last > 50) {
        onProgress(i + 1, frames.length);
        await new Promise((r) => setTimeout(r, 0));
        last = performance.now();
      }
    }
    onProgress(frames.length, frames.length);
    return results;
  };
}

function runOnWorkers(workers, journal, frames, batches, results, operational, onProgress) {
  return new Promise((resolve, reject) => {
    let next = 0;
    let done = 0;
    let entriesDone = 0;
    let failed = false;
    const fail = (why) => {
      if (!failed) {
        failed = true;
        reject(new Error(why));
      }
    };
    const send = (w) => {
      if (failed || next >= batches.length) return;
      const id = next++;
      const [a, b] = batches[id];
      const base = frames[a].start;
      const end = frames[b - 1].start + frames[b - 1].len;
      const buf = journal.slice(base, end).buffer;
      const items = [];
      for (let k = a; k < b; k++) items.push([frames[k].start - base, frames[k].len, frames[k].crc]);
      w.postMessage({ type: 'batch', id, buf, items }, [buf]);
    };
    // A worker that never answers its init (blocked by the browser) would
    // hang the page: give up on workers after a while.
    const timer = setTimeout(() => fail('the workers did not start'), 15000);
    let ready = 0;
    for (const w of workers) {
      w.onerror = (ev) => {
        ev.preventDefault && ev.preventDefault();
        fail(ev.message || 'worker failed to load');
      };
      w.onmessageerror = () => fail('worker message could not be read');
      w.onmessage = (ev) => {
        const m = ev.data;
        if (m.type === 'ready') {
          if (++ready === workers.length) clearTimeout(timer);
          send(w);
          send(w);
        } else if (m.type === 'done') {
          const [a] = batches[m.id];
          for (let k = 0; k < m.results.length; k++) results[a + k] = m.results[k];
          entriesDone += m.results.length;
          done++;
          onProgress(entriesDone, frames.length);
          if (done === batches.length) resolve();
          else send(w);
        } else if (m.type === 'error') fail(m.why);
      };
      w.postMessage({ type: 'init', operational });
    }
    if (batches.length === 0) {
      clearTimeout(timer);
      resolve();
    }
  });
}
