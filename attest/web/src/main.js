// The page: takes a bundle's files (file inputs or a drop), verifies them
// (verify.js, bundle.js, with the signature checks in web workers, see
// pool.js) and shows the verdict. Every string from the bundle reaches the
// page through textContent, never as HTML.

import { sha256 } from '@noble/hashes/sha2.js';
import { toHex, toBase64 } from './util.js';
import { verifyLog, describe, sortFindings, identityMatches } from './verify.js';
import { checkBundle, readPrefix, SUMS } from './bundle.js';
import { checkTpmQuote } from './tpmquote.js';
import { makeRunner } from './pool.js';
import { RECORDS_JOURNAL } from './formats.js';

/* global __WORKER_SOURCE__ */
const WORKER_SOURCE = typeof __WORKER_SOURCE__ === 'string' ? __WORKER_SOURCE__ : null;

// No single file of a bundle this page can hold in memory is larger.
const MAX_FILE_BYTES = 1536 * 1024 * 1024;

const $ = (id) => document.getElementById(id);
// Text from a bundle can be arbitrarily long: shown shortened.
const clip = (s, max = 400) => (s.length > max ? s.slice(0, max) + `… (${s.length - max} more characters)` : s);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
};

let state = null; // the last result, re-rendered when the expected fingerprint changes
let running = false;
let pending = null; // a selection made while a run was going on
let lastList = null; // the last selection, verified again when the earlier checkpoint changes
let earlier = null; // {name, bytes} of an earlier checkpoint the log must extend

// ------------------------------------------------------------- file intake

/** Reads the files of a dropped directory tree (webkitGetAsEntry). */
async function entriesFromDrop(items) {
  const out = [];
  const readAll = (reader) =>
    new Promise((resolve, reject) => {
      const all = [];
      const more = () =>
        reader.readEntries((batch) => {
          if (!batch.length) resolve(all);
          else {
            all.push(...batch);
            more();
          }
        }, reject);
      more();
    });
  const walk = async (entry, prefix, depth) => {
    if (depth > 8 || out.length > 10000) return;
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ path: prefix + entry.name, file });
    } else if (entry.isDirectory) {
      for (const e of await readAll(entry.createReader())) await walk(e, prefix + entry.name + '/', depth + 1);
    }
  };
  const roots = [];
  for (const it of items) {
    const e = it.webkitGetAsEntry ? it.webkitGetAsEntry() : null;
    if (e) roots.push(e);
  }
  for (const e of roots) await walk(e, '', 0);
  return out;
}

/**
 * Chooses the bundle among the given files: the folder holding
 * SHA256SUMS (or records.journal). Returns {dir, files: Map name → File,
 * names (everything in that folder: files and sub-folders), ignored} or
 * {error}.
 */
function chooseBundle(list) {
  const split = (p) => {
    const i = p.lastIndexOf('/');
    return i < 0 ? ['', p] : [p.slice(0, i), p.slice(i + 1)];
  };
  const dirsWith = (name) => [...new Set(list.filter((x) => split(x.path)[1] === name).map((x) => split(x.path)[0]))];
  let dirs = dirsWith(SUMS);
  if (dirs.length === 0) dirs = dirsWith(RECORDS_JOURNAL);
  if (dirs.length > 1)
    return { error: `The files given hold ${dirs.length} bundles (${dirs.map((d) => d || '(top)').join(', ')}). Choose one bundle's folder.` };
  const dir = dirs.length ? dirs[0] : '';
  const files = new Map();
  const names = new Set();
  let ignored = 0;
  for (const x of list) {
    const [d, base] = split(x.path);
    if (d === dir) {
      if (files.has(base)) return { error: `Two files named ${JSON.stringify(base)} were given. Choose one bundle's files.` };
      files.set(base, x.file);
      names.add(base);
    } else if (dir === '' || d.startsWith(dir + '/')) {
      // inside the bundle folder, in a sub-folder: a name the bundle does not list
      names.add((dir === '' ? d : d.slice(dir.length + 1)).split('/')[0]);
    } else ignored++;
  }
  return { dir, files, names: [...names].sort(), ignored };
}

// ------------------------------------------------------------ verification

async function sha256hex(bytes) {
  try {
    if (globalThis.crypto && crypto.subtle) return toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
  } catch {
    /* fall back to the script implementation */
  }
  return toHex(sha256(bytes));
}

function setProgress(text, fraction) {
  $('progress').hidden = false;
  $('ptext').textContent = text;
  if (fraction === null) $('bar').removeAttribute('value');
  else $('bar').value = fraction;
}

async function verifySelection(list) {
  if (running) {
    pending = list; // verified when the current run ends
    return;
  }
  running = true;
  lastList = list;
  document.body.dataset.verdict = 'running';
  $('verdict').hidden = true;
  $('details').hidden = true;
  state = null;
  try {
    if (!list.length) {
      state = { error: 'No files were given. Choose the bundle folder, or all of its files.' };
      return;
    }
    const chosen = chooseBundle(list);
    if (chosen.error) {
      state = { error: chosen.error };
      return;
    }
    if (!chosen.files.has(RECORDS_JOURNAL)) {
      state = {
        error: `${RECORDS_JOURNAL} is not among the files given: this is not a cairn export bundle, or not all of its files were chosen.`,
        subject: RECORDS_JOURNAL,
      };
      return;
    }
    setProgress('Reading the files…', null);
    const bytes = new Map();
    const sizes = [];
    for (const [name, file] of chosen.files) {
      if (file.size > MAX_FILE_BYTES) {
        state = { error: `${name} is ${file.size} bytes, more than this page can hold in memory; use \`cairn verify\`.`, subject: name };
        return;
      }
      bytes.set(name, new Uint8Array(await file.arrayBuffer()));
      sizes.push([name, file.size]);
    }
    // An incremental bundle (FORMAT.md §9) carries the prefix its records
    // continue; one whose prefix cannot be read is refused, as `cairn
    // verify` refuses it.
    let prefix = null;
    try {
      prefix = readPrefix(bytes);
    } catch (e) {
      state = { error: `This incremental bundle cannot be verified: ${e.message}.`, subject: e.file || null };
      return;
    }
    const t0 = performance.now();
    const info = {};
    const runner = makeRunner(WORKER_SOURCE, info);
    let lastUpdate = 0;
    const report = await verifyLog(bytes, { earlier: earlier ? earlier.bytes : null, prefix }, runner, (done, total) => {
      const now = performance.now();
      if (now - lastUpdate < 100 && done < total) return;
      lastUpdate = now;
      const secs = (now - t0) / 1000;
      setProgress(`Verified ${done.toLocaleString('en')} of ${total.toLocaleString('en')} records (${Math.round(done / Math.max(secs, 1e-3)).toLocaleString('en')} records/s)…`, total ? done / total : 1);
    });
    setProgress('Checking the bundle files…', null);
    const quote = checkTpmQuote(bytes);
    const fileFindings = await checkBundle(bytes, chosen.names, report, sha256hex, prefix, quote);
    const ms = performance.now() - t0;
    if (report.extends && report.extends.why)
      fileFindings.push({ subject: { type: 'log' }, why: `does not extend the earlier checkpoint (${earlier.name}): ${report.extends.why}` });
    state = { report, fileFindings, ms, mode: info.mode, sizes, dir: chosen.dir, ignored: chosen.ignored, quote: quote && quote.summary };
  } catch (e) {
    state = { error: `The verifier failed unexpectedly: ${e && e.message ? e.message : e}` };
  } finally {
    running = false;
    $('progress').hidden = true;
    render();
    if (pending) {
      const next = pending;
      pending = null;
      verifySelection(next);
    }
  }
}

// --------------------------------------------------------------- rendering

/** The expected fingerprint as typed: whitespace and colons dropped when what is left is 64 hex digits. */
function expectedInput() {
  const raw = $('expected').value.trim();
  if (!raw) return null;
  const compact = raw.replace(/[\s:]/g, '');
  return /^[0-9a-fA-F]{64}$/.test(compact) ? compact : raw;
}

function render() {
  const v = $('verdict');
  const d = $('details');
  v.replaceChildren();
  d.replaceChildren();
  if (!state) return;
  v.hidden = false;
  const result = { verdict: null };
  if (state.error) {
    v.className = 'error';
    v.append(el('p', { class: 'title' }, 'Cannot verify'), el('p', { class: 'first' }, state.error));
    result.verdict = 'error';
    result.error = state.error;
    result.first = { subject: state.subject || null, text: state.subject || 'selection', why: state.error };
    publish(result);
    return;
  }
  const { report: r, fileFindings } = state;
  const expected = expectedInput();
  const findings = r.findings.slice();
  let pin = 'none';
  if (expected && r.identity) {
    pin = identityMatches(r.identity, expected) ? 'match' : 'mismatch';
    if (pin === 'mismatch')
      findings.push({ subject: { type: 'log' }, why: `the log's identity key (fingerprint ${r.identity.fingerprint}) is not the expected key ${expected.length > 80 ? expected.slice(0, 80) + '…' : expected}` });
  }
  const all = sortFindings(findings).concat(fileFindings);
  const ok = all.length === 0;
  // records checked here: the stored ones (an incremental bundle's predecessor and new records)
  const rate = r.stored / (state.ms / 1000);
  v.className = ok ? 'ok' : 'fail';
  const rootB64 = toBase64(r.rootBytes);
  if (ok) {
    v.append(
      el('p', { class: 'title' }, '✔ Verified'),
      r.from
        ? el('p', { class: 'first' },
            `All ${(r.records - r.from).toLocaleString('en')} new records (${r.from.toLocaleString('en')} … ${(r.records - 1).toLocaleString('en')}) and ${r.checkpoints.toLocaleString('en')} checkpoints verify: ` +
              `signatures, hash chain, sequence, Merkle roots and bundle files; they continue the previous export of ${r.from.toLocaleString('en')} records, whose signed checkpoint verifies.`)
        : el('p', { class: 'first' }, `All ${r.records.toLocaleString('en')} records and ${r.checkpoints.toLocaleString('en')} checkpoints verify: signatures, hash chain, sequence, Merkle roots and bundle files.`),
    );
  } else {
    const f = all[0];
    v.append(
      el('p', { class: 'title' }, '✘ Verification FAILED'),
      el('p', { class: 'first' }, 'First problem: ', el('b', {}, clip(describe(f.subject))), ': ', clip(f.why)),
    );
    if (all.length > 1) {
      const ol = el('ol', { class: 'problems', start: '2' });
      for (const g of all.slice(1, 20)) ol.append(el('li', {}, el('b', {}, clip(describe(g.subject))), ': ', clip(g.why)));
      if (all.length > 20) ol.append(el('li', {}, `… and ${all.length - 20} more`));
      v.append(el('p', {}, `${all.length} problems in all:`), ol);
    }
  }
  const fpCell = r.identity
    ? el('td', {}, el('span', { class: 'fp', id: 'fingerprint' }, r.identity.fingerprint),
        pin === 'match' ? el('span', { class: 'tag ok', id: 'pin' }, 'matches the expected fingerprint')
        : pin === 'mismatch' ? el('span', { class: 'tag bad', id: 'pin' }, 'does NOT match the expected fingerprint')
        : el('span', { class: 'tag none', id: 'pin' }, 'compare with the fingerprint published for this appliance'))
    : el('td', {}, 'unknown (the genesis record cannot be read)');
  const coverage = r.records === r.checkpointedSize ? 'all records' : `${r.checkpointedSize} of ${r.records} records`;
  v.append(
    el('table', { class: 'kv' },
      el('tr', {}, el('th', {}, 'Identity key'), fpCell),
      el('tr', {}, el('th', {}, 'Log'), el('td', { class: 'mono' }, r.origin === null ? 'unknown' : clip(r.origin))),
      el('tr', {}, el('th', {}, 'Records'), el('td', { id: 'records' }, r.records.toLocaleString('en'))),
      r.from
        ? el('tr', {}, el('th', {}, 'Incremental'),
            el('td', { id: 'incremental' },
              r.records > r.from
                ? `this bundle holds records ${r.from.toLocaleString('en')} … ${(r.records - 1).toLocaleString('en')} (${(r.records - r.from).toLocaleString('en')} records), continuing a previous export of ${r.from.toLocaleString('en')} records (0 … ${(r.from - 1).toLocaleString('en')}), whose signed checkpoint (previous-checkpoint) is checked here; keep that export to check those records.`
                : `this bundle continues a previous export of ${r.from.toLocaleString('en')} records and holds no new records`))
        : null,
      el('tr', {}, el('th', {}, 'Checkpoints'), el('td', {}, `${r.checkpoints} (the last valid one covers ${coverage})`)),
      r.extends && r.extends.size !== undefined
        ? el('tr', {}, el('th', {}, 'Extends'), el('td', { id: 'extends' }, `the earlier checkpoint ${earlier ? earlier.name : ''}: its ${r.extends.size} records are this log's first ${r.extends.size}`))
        : null,
      el('tr', {}, el('th', {}, 'Merkle root'), el('td', { class: 'mono' }, `${rootB64} (hex ${r.root})`)),
      state.quote
        ? el('tr', {}, el('th', {}, 'TPM quote'),
            el('td', { id: 'tpm-quote' },
              `the checkpoint was extended into PCR 23 and quoted${state.quote.akKind === 'ed25519-emulated' ? ' (an emulated TPM: not hardware)' : ''}; signed by ` +
                (state.quote.publishedBy !== null
                  ? `the key the log published in record ${state.quote.publishedBy}`
                  : "a key whose publishing record is not in this bundle: compare it with an earlier export's")))
        : null,
      el('tr', {}, el('th', {}, 'Time'), el('td', {}, `${(state.ms / 1000).toFixed(2)} s, ${Math.round(rate).toLocaleString('en')} records/s (${state.mode})`)),
    ),
  );
  d.hidden = false;
  const ft = el('table', { class: 'files' }, el('tr', {}, el('th', {}, 'File'), el('th', {}, 'Bytes')));
  for (const [name, size] of state.sizes.slice().sort((a, b) => (a[0] < b[0] ? -1 : 1))) ft.append(el('tr', {}, el('td', { class: 'mono' }, name), el('td', {}, size.toLocaleString('en'))));
  d.append(el('h2', {}, `Files read${state.dir ? ` from ${state.dir}/` : ''}`), ft);
  if (state.ignored) d.append(el('p', { class: 'hint' }, `${state.ignored} files outside the bundle's folder were ignored.`));

  Object.assign(result, {
    verdict: ok ? 'ok' : 'fail',
    records: r.records,
    from: r.from,
    stored: r.stored,
    checkpoints: r.checkpoints,
    checkpointedSize: r.checkpointedSize,
    origin: r.origin,
    root: r.root,
    rootBase64: rootB64,
    fingerprint: r.identity ? r.identity.fingerprint : null,
    pin,
    first: ok ? null : { subject: all[0].subject, text: describe(all[0].subject), why: all[0].why },
    problems: all.map((f) => ({ subject: f.subject, text: describe(f.subject), why: f.why })),
    ms: state.ms,
    entriesMs: r.entriesMs,
    rate,
    mode: state.mode,
    extends: r.extends,
    tpmQuote: state.quote || null,
  });
  publish(result);
}

/** Leaves the result where a test (or a curious person's console) can read it. */
function publish(result) {
  window.cairnResult = result;
  document.body.dataset.verdict = result.verdict;
}

// ------------------------------------------------------------------ wiring

function init() {
  const fromInput = (input) => () => {
    const list = [...input.files].map((f) => ({ path: f.webkitRelativePath || f.name, file: f }));
    input.value = '';
    verifySelection(list);
  };
  const files = $('files');
  const folder = $('folder');
  files.addEventListener('change', fromInput(files));
  folder.addEventListener('change', fromInput(folder));
  const drop = $('drop');
  const stop = (e) => {
    e.preventDefault();
    e.stopPropagation();
  };
  for (const t of ['dragenter', 'dragover']) {
    document.addEventListener(t, (e) => {
      stop(e);
      drop.classList.add('over');
    });
  }
  document.addEventListener('dragleave', (e) => {
    stop(e);
    if (!e.relatedTarget) drop.classList.remove('over');
  });
  document.addEventListener('drop', async (e) => {
    stop(e);
    drop.classList.remove('over');
    const dt = e.dataTransfer;
    let list = [];
    try {
      if (dt.items && dt.items.length && dt.items[0].webkitGetAsEntry) list = await entriesFromDrop([...dt.items]);
    } catch {
      list = [];
    }
    if (!list.length && dt.files) list = [...dt.files].map((f) => ({ path: f.name, file: f }));
    verifySelection(list);
  });
  const expected = $('expected');
  // A link may carry the fingerprint: verify.html#fingerprint=HEX
  const m = /(?:^#|&)(?:fingerprint|key)=([^&]+)/.exec(location.hash);
  if (m) expected.value = decodeURIComponent(m[1]);
  expected.addEventListener('input', () => {
    if (state && !running) render();
  });
  const earlierInput = $('earlier');
  const clear = $('earlier-clear');
  earlierInput.addEventListener('change', async () => {
    const f = earlierInput.files[0];
    earlier = null;
    if (f) {
      if (f.size > 1024 * 1024) earlier = { name: f.name, bytes: new Uint8Array(0) };
      else earlier = { name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) };
    }
    clear.hidden = !earlier;
    if (lastList) verifySelection(lastList);
  });
  clear.addEventListener('click', () => {
    earlierInput.value = '';
    earlier = null;
    clear.hidden = true;
    if (lastList) verifySelection(lastList);
  });
  document.body.dataset.verdict = 'idle';
  document.body.dataset.workers = WORKER_SOURCE ? 'inline' : 'none';
}

init();
