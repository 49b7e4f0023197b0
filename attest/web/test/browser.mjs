// Browser test of dist/verify.html in headless Chromium (playwright-core,
// the system's Chromium; no browser download).
//
// Makes its own ledgers with the cairn binary ($CAIRN, default
// /work/main/target/debug/cairn): `cairn bench ledger` and `cairn export`,
// in a temporary directory. Then, opening the page from file://:
//   - an honest bundle passes (chosen as a folder): verdict green, the
//     record count and fingerprint right, and the same root, fingerprint
//     and origin as `cairn verify --json` reports;
//   - tampered bundles fail, naming the right record, checkpoint or file,
//     and the same first subject as `cairn verify --json` on that bundle:
//     (a) a byte of a record's text changed (frame CRC and SHA256SUMS
//     recomputed), (b) a record deleted, (c) two records swapped, (d) the
//     records cut below the checkpoint's size, (e) the checkpoint replaced
//     by another log's (alone, and with the checkpoints journal), (f) a
//     wrong expected fingerprint; and a few more (a stale SHA256SUMS, a
//     missing file, garbage instead of a journal, an unlisted file);
//   - an incremental bundle (`cairn export --from-size F`, FORMAT.md §9)
//     passes, shows that it holds records F … N-1 continuing an export of
//     F records, and agrees with `cairn verify --json`; tampered ones fail
//     naming what cairn names: a byte of a new record, a frontier hash, the
//     predecessor replaced, previous-checkpoint of another size or log, a
//     new record deleted; one without its frontier is refused, as cairn
//     refuses it;
//   - the verification rate on a bundle of RATE_RECORDS (default 5,000)
//     records is printed (and enforced when MIN_RATE is set).
// Screenshots of the honest verdict and of a failure go to $ARTIFACTS
// (default attest/web/test-artifacts/). Exits non-zero on any failure.

import { chromium } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { frames, journal, resum, makeIncremental } from './helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const web = resolve(here, '..');
const CAIRN = process.env.CAIRN || '/work/main/target/debug/cairn';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = resolve(process.env.ARTIFACTS || join(web, 'test-artifacts'));
const RATE_RECORDS = Number(process.env.RATE_RECORDS || 5000);
const SMALL_RECORDS = Number(process.env.SMALL_RECORDS || 1200);
const MIN_RATE = Number(process.env.MIN_RATE || 0);
const PAGE = join(web, 'dist', 'verify.html');

let failures = 0;
let passes = 0;
const ok = (cond, what) => {
  if (cond) {
    passes++;
    console.log(`  ok    ${what}`);
  } else {
    failures++;
    console.log(`  FAIL  ${what}`);
  }
  return cond;
};

function sh(cmd, args, { allowFail = false } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r;
}

// ------------------------------------------------------------ bundles

function makeBundle(tmp, name, records, exportArgs = []) {
  const ledger = join(tmp, `ledger-${name}`);
  const out = join(tmp, `export-${name}`);
  const t = Date.now();
  sh(CAIRN, ['bench', 'ledger', '--records', String(records), '--out', ledger]);
  mkdirSync(out);
  sh(CAIRN, ['export', '--ledger', ledger, '--to', out, ...exportArgs]);
  const dirs = readdirSync(out).filter((d) => d.startsWith('cairn-export-'));
  if (dirs.length !== 1) throw new Error(`cairn export left ${dirs.length} bundles in ${out}`);
  const dir = join(out, dirs[0]);
  console.log(`made ${dir} (${records} records asked) in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return dir;
}

function readBundle(dir) {
  const files = new Map();
  for (const n of readdirSync(dir)) files.set(n, readFileSync(join(dir, n)));
  return files;
}





function writeCase(tmp, name, files) {
  const dir = join(tmp, 'cases', name);
  mkdirSync(dir, { recursive: true });
  for (const [n, b] of files) writeFileSync(join(dir, n), b);
  return dir;
}

/** `cairn verify DIR --json`: the reference verdict. */
function reference(dir, key, since) {
  const r = sh(CAIRN, ['verify', dir, '--json', ...(key ? ['--key', key] : []), ...(since ? ['--since', since] : [])], { allowFail: true });
  try {
    return JSON.parse(r.stdout);
  } catch {
    return { error: r.stdout + r.stderr };
  }
}

const sameSubject = (a, b) => !!a && !!b && JSON.stringify(a, Object.keys(a).sort()) === JSON.stringify(b, Object.keys(b).sort());

// --------------------------------------------------------------- page

/** Sets (or with null, forgets) the earlier checkpoint; waits for the re-verification it starts. */
async function setEarlier(page, path) {
  await page.evaluate(() => {
    document.body.dataset.verdict = 'waiting';
  });
  if (path) await page.setInputFiles('#earlier', path);
  else await page.click('#earlier-clear');
  await page.waitForFunction(() => ['ok', 'fail', 'error'].includes(document.body.dataset.verdict), null, { timeout: 10 * 60 * 1000, polling: 100 });
}

async function verifyInPage(page, input, paths, expected = '') {
  await page.fill('#expected', expected);
  await page.evaluate(() => {
    document.body.dataset.verdict = 'waiting';
    window.cairnResult = null;
  });
  const t = Date.now();
  await page.setInputFiles(input, paths);
  await page.waitForFunction(() => ['ok', 'fail', 'error'].includes(document.body.dataset.verdict), null, {
    timeout: 10 * 60 * 1000,
    polling: 100,
  });
  const result = await page.evaluate(() => window.cairnResult);
  result.wallMs = Date.now() - t;
  return result;
}

const filesOf = (dir) => readdirSync(dir).map((n) => join(dir, n));

async function main() {
  if (!existsSync(PAGE)) throw new Error(`${PAGE} is missing: run \`node build.mjs\` first`);
  if (!existsSync(CAIRN)) throw new Error(`${CAIRN} is missing: build it (cargo build -p cairn-daemon --bin cairn) or set CAIRN`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'cairn-web-test-'));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const small = makeBundle(tmp, 'small', SMALL_RECORDS);
    const other = makeBundle(tmp, 'other', 20);
    const base = readBundle(small);
    const manifest = JSON.parse(base.get('bundle.json'));
    const otherFiles = readBundle(other);
    const otherFp = JSON.parse(otherFiles.get('bundle.json')).identity_fingerprint;
    const entries = frames(base.get('records.journal'));
    const total = entries.length;
    const cpSizes = frames(base.get('checkpoints.journal')).map((c) => Number(c.toString('utf8').split('\n')[1]));
    console.log(`small bundle: ${total} records, checkpoints at ${cpSizes.join(', ')}`);

    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    const requests = [];
    page.on('request', (r) => {
      const u = r.url();
      if (!/^(file|blob|data):/.test(u)) requests.push(u);
    });
    await page.goto(pathToFileURL(PAGE).href);
    ok((await page.evaluate(() => document.body.dataset.workers)) === 'inline', 'the page carries its worker inline');

    // ---- honest, chosen as a folder
    console.log('honest bundle (folder input)');
    const ref = reference(small);
    let r = await verifyInPage(page, '#folder', small);
    ok(r.verdict === 'ok', `verdict ok (got ${r.verdict}${r.first ? ': ' + r.first.text + ': ' + r.first.why : ''})`);
    ok(r.records === manifest.records && r.records === total, `records ${r.records} == manifest ${manifest.records}`);
    ok(r.fingerprint === manifest.identity_fingerprint, `fingerprint ${r.fingerprint} shown`);
    ok((await page.textContent('#fingerprint')) === manifest.identity_fingerprint, 'fingerprint on the page');
    ok(r.root === ref.root && r.origin === ref.origin && r.fingerprint === ref.identity[1], 'root, origin, fingerprint as cairn verify --json');
    ok(r.rootBase64 === manifest.root, 'root as the manifest');
    ok(/web workers/.test(r.mode), `checked in web workers (${r.mode})`);
    await page.screenshot({ path: join(ARTIFACTS, 'honest.png'), fullPage: true });

    // ---- an incremental bundle: records F-1 … N-1 and the prefix
    const F = cpSizes[0];
    const incOut = join(tmp, 'export-incremental');
    mkdirSync(incOut);
    sh(CAIRN, ['export', '--ledger', join(tmp, 'ledger-small'), '--to', incOut, '--from-size', String(F)]);
    const incDir = join(incOut, readdirSync(incOut)[0]);
    const incBase = readBundle(incDir);
    const incEntries = frames(incBase.get('records.journal'));
    {
      console.log(`honest incremental bundle (from ${F}, folder input)`);
      const incRef = reference(incDir);
      r = await verifyInPage(page, '#folder', incDir);
      ok(r.verdict === 'ok', `verdict ok (got ${r.verdict}${r.first ? ': ' + r.first.text + ': ' + r.first.why : ''})`);
      ok(r.records === total && r.from === F && r.stored === total - F + 1, `records ${r.records} == ${total}, from ${r.from} == ${F}, ${r.stored} stored`);
      ok(incRef.findings && incRef.findings.length === 0 && r.root === incRef.root && r.records === incRef.records && r.from === incRef.from && r.fingerprint === incRef.identity[1] && r.checkpointedSize === incRef.checkpointed_size,
        'root, records, from, fingerprint, checkpointed size as cairn verify --json');
      const shown = await page.textContent('#incremental');
      ok(shown.includes(`records ${F.toLocaleString('en')} … ${(total - 1).toLocaleString('en')}`) && shown.includes(`previous export of ${F.toLocaleString('en')} records`), `the page says what it covers: ${shown}`);
      await page.screenshot({ path: join(ARTIFACTS, 'incremental.png'), fullPage: true });
      const byHand = makeIncremental(base, F);
      ok(['records.journal', 'frontier', 'predecessor.proof', 'previous-checkpoint', 'genesis'].every((n) => byHand.get(n).equals(incBase.get(n))), 'cairn wrote the files FORMAT.md §9 describes (made by hand from the full bundle)');
    }

    console.log('honest bundle, right expected fingerprint (files input)');
    r = await verifyInPage(page, '#files', filesOf(small), manifest.identity_fingerprint.toUpperCase());
    ok(r.verdict === 'ok' && r.pin === 'match', `verdict ok, pin match (got ${r.verdict}, ${r.pin})`);

    // ---- tamper cases
    const cases = [];
    {
      // (a) one byte of a record's text changed; CRC and sums recomputed
      const k = Math.min(700, total - 2);
      const e = Buffer.from(entries[k]);
      const text = e.toString('latin1');
      const at = text.indexOf('Z","kind"') - 1; // last digit of the time's microseconds
      e[at] = e[at] === 0x39 ? 0x38 : e[at] + 1;
      const f = new Map(base);
      f.set('records.journal', journal(entries.map((x, i) => (i === k ? e : x))));
      cases.push({ name: 'a-byte-changed', files: resum(f), expect: { type: 'record', seq: k }, why: /signature does not verify/ });
    }
    {
      // (b) a record deleted
      const k = 500;
      const f = new Map(base);
      f.set('records.journal', journal(entries.filter((_, i) => i !== k)));
      cases.push({ name: 'b-record-deleted', files: resum(f), expect: { type: 'record', seq: k }, why: new RegExp(`sequence number ${k + 1} where ${k} was expected`) });
    }
    {
      // (c) two records swapped
      const i = 300, j = 301;
      const sw = entries.slice();
      [sw[i], sw[j]] = [sw[j], sw[i]];
      const f = new Map(base);
      f.set('records.journal', journal(sw));
      cases.push({ name: 'c-records-swapped', files: resum(f), expect: { type: 'record', seq: i }, why: new RegExp(`sequence number ${j} where ${i} was expected`) });
    }
    {
      // (d) records cut below the last checkpoint's size
      const keep = cpSizes[cpSizes.length - 1] - 100;
      const f = new Map(base);
      f.set('records.journal', journal(entries.slice(0, keep)));
      cases.push({
        name: 'd-truncated',
        files: resum(f),
        expect: { type: 'checkpoint', index: cpSizes.length - 1 },
        why: new RegExp(`covers ${cpSizes[cpSizes.length - 1]} records but only ${keep} are present`),
      });
    }
    {
      // (e1) the checkpoint file replaced by another log's
      const f = new Map(base);
      f.set('checkpoint', otherFiles.get('checkpoint'));
      cases.push({ name: 'e1-checkpoint-file-of-another-log', files: resum(f), expect: { type: 'file', file: 'checkpoint' }, why: /is not the last checkpoint/ });
      // (e2) ... and the checkpoints journal with it
      const g = new Map(base);
      g.set('checkpoint', otherFiles.get('checkpoint'));
      g.set('checkpoints.journal', otherFiles.get('checkpoints.journal'));
      cases.push({ name: 'e2-checkpoints-of-another-log', files: resum(g), expect: { type: 'checkpoint', index: 0 }, why: /checkpoint is for log/ });
    }
    // (f) a wrong expected fingerprint
    cases.push({ name: 'f-wrong-fingerprint', files: new Map(base), key: otherFp, expect: { type: 'log' }, why: /not the expected key/, pin: 'mismatch' });
    {
      // more: a file changed without recomputing SHA256SUMS
      const f = new Map(base);
      f.set('README.txt', Buffer.concat([base.get('README.txt'), Buffer.from('\nP.S. trust me.\n')]));
      cases.push({ name: 'g-stale-sums', files: f, expect: { type: 'file', file: 'README.txt' }, why: /does not match its SHA-256/ });
      // a signature byte flipped
      const k = 42;
      const e = Buffer.from(entries[k]);
      e[e.length - 100] ^= 0x04; // inside the base64 signature: a different, still valid base64 character
      const h = new Map(base);
      h.set('records.journal', journal(entries.map((x, i) => (i === k ? e : x))));
      cases.push({ name: 'h-signature-flipped', files: resum(h), expect: { type: 'record', seq: k }, why: /signature|base64/ });
      // garbage instead of the records journal
      const g = new Map(base);
      const junk = Buffer.alloc(100000);
      for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + 13) & 255;
      g.set('records.journal', junk);
      cases.push({ name: 'i-garbage-journal', files: resum(g), expect: { type: 'log' }, why: /no records/, also: /not a cairn journal/ });
      // a hostile frame length: records 10 … are unreadable
      const j = new Map(base);
      const rj = Buffer.from(base.get('records.journal'));
      let p = 8;
      for (let i = 0; i < 10; i++) p += 8 + rj.readUInt32LE(p);
      rj.writeUInt32LE(0x7fffffff, p);
      j.set('records.journal', rj);
      cases.push({ name: 'j-impossible-frame-length', files: resum(j), expect: { type: 'storage', file: 'records.journal', offset: p }, why: /frame length 2147483647 is impossible/ });
      // a frame cut off at the end of the journal
      const t = new Map(base);
      const rt = Buffer.from(base.get('records.journal'));
      t.set('records.journal', rt.subarray(0, rt.length - 1000));
      cases.push({ name: 'j2-frame-cut-off', files: resum(t), expect: { type: 'storage', file: 'records.journal' }, why: /is cut off after/ });
      // an unlisted file
      const u = new Map(base);
      u.set('notes.txt', Buffer.from('hello\n'));
      cases.push({ name: 'k-unlisted-file', files: u, expect: { type: 'file', file: 'notes.txt' }, why: /not listed in SHA256SUMS/ });
    }
    {
      // incremental bundles, tampered
      const inc = (name, change) => {
        const f = new Map(incBase);
        change(f);
        return resum(f);
      };
      const k = 3; // a new record: F-1+3
      const e = Buffer.from(incEntries[k]);
      const at = e.toString('latin1').indexOf('Z","kind"') - 1;
      e[at] = e[at] === 0x39 ? 0x38 : e[at] + 1;
      cases.push({
        name: 'inc-a-new-record-byte-changed',
        files: inc('', (f) => f.set('records.journal', journal(incEntries.map((x, i) => (i === k ? e : x))))),
        expect: { type: 'record', seq: F - 1 + k },
        why: /signature does not verify/,
      });
      cases.push({
        name: 'inc-b-frontier-hash-changed',
        files: inc('', (f) => {
          const ls = incBase.get('frontier').toString().split('\n');
          const h = Buffer.from(ls[0], 'base64');
          h[0] ^= 1;
          ls[0] = h.toString('base64');
          f.set('frontier', Buffer.from(ls.join('\n')));
        }),
        expect: { type: 'log' },
        why: /the frontier is not the previous checkpoint's tree/,
      });
      cases.push({
        name: 'inc-c-predecessor-replaced',
        files: inc('', (f) => f.set('records.journal', journal([entries[F - 2], ...incEntries.slice(1)]))),
        expect: { type: 'log' },
        why: new RegExp(`the first stored record is not record ${F - 1} of the previous checkpoint`),
      });
      cases.push({
        name: 'inc-d1-previous-checkpoint-of-another-size',
        files: inc('', (f) => f.set('previous-checkpoint', incBase.get('checkpoint'))),
        expect: { type: 'log' },
        why: /the frontier does not fit the previous checkpoint/,
      });
      cases.push({
        name: 'inc-d2-previous-checkpoint-of-another-log',
        files: inc('', (f) => f.set('previous-checkpoint', otherFiles.get('checkpoint'))),
        expect: { type: 'log' },
        why: /the previous checkpoint does not verify: checkpoint is for log/,
      });
      cases.push({
        name: 'inc-e-new-record-deleted',
        files: inc('', (f) => f.set('records.journal', journal(incEntries.filter((_, i) => i !== 5)))),
        expect: { type: 'record', seq: F - 1 + 5 },
        why: new RegExp(`sequence number ${F + 5} where ${F + 4} was expected`),
      });
    }
    let shotFailure = false;
    for (const c of cases) {
      console.log(`tampered: ${c.name}`);
      const dir = writeCase(tmp, c.name, c.files);
      const res = await verifyInPage(page, '#files', filesOf(dir), c.key || '');
      const first = res.first || {};
      ok(res.verdict === 'fail', `verdict fail (got ${res.verdict})`);
      const subjectMatches = (s) => s && Object.entries(c.expect).every(([k, v]) => s[k] === v);
      if (c.notFirst) {
        ok(res.problems && res.problems.some((p) => subjectMatches(p.subject) && c.why.test(p.why)), `a problem names ${JSON.stringify(c.expect)} ${c.why}`);
      } else {
        ok(subjectMatches(first.subject), `first problem names ${JSON.stringify(c.expect)}: got ${first.text}: ${first.why}`);
        ok(c.why.test(first.why || ''), `why matches ${c.why}`);
      }
      if (c.also) ok(res.problems.some((p) => c.also.test(p.why)), `a problem says ${c.also}`);
      if (c.pin) ok(res.pin === c.pin, `pin ${res.pin}`);
      const cli = reference(dir, c.key);
      const cliFirst = cli.findings && cli.findings[0];
      ok(sameSubject(cliFirst && cliFirst.subject, first.subject), `same first subject as cairn verify (${cliFirst ? JSON.stringify(cliFirst.subject) + ': ' + cliFirst.why : JSON.stringify(cli).slice(0, 200)})`);
      if (!shotFailure && c.name.startsWith('a-')) {
        await page.screenshot({ path: join(ARTIFACTS, 'failure-record.png'), fullPage: true });
        shotFailure = true;
      }
    }

    // ---- an incremental bundle without its frontier: refused, as cairn refuses it
    {
      console.log('incremental bundle without its frontier');
      const f = new Map(incBase);
      f.delete('frontier');
      const dir = writeCase(tmp, 'inc-f-frontier-missing', f);
      r = await verifyInPage(page, '#files', filesOf(dir));
      ok(r.verdict === 'error' && r.first && r.first.subject === 'frontier' && /frontier/.test(r.error), `an error naming frontier (got ${r.verdict}: ${r.error})`);
      const cli = sh(CAIRN, ['verify', dir, '--json'], { allowFail: true });
      ok(cli.status !== 0 && /cannot read the incremental bundle/.test(cli.stderr), `cairn verify refuses it too (${cli.stderr.trim().slice(0, 160)})`);
    }

    // ---- an earlier checkpoint the bundle must extend (cairn verify --since)
    {
      console.log('extends an earlier checkpoint (its first)');
      const cp0 = frames(base.get('checkpoints.journal'))[0];
      const earlierFile = join(tmp, 'cases', 'earlier-checkpoint');
      writeFileSync(earlierFile, cp0);
      await setEarlier(page, earlierFile);
      r = await verifyInPage(page, '#files', filesOf(small));
      ok(r.verdict === 'ok' && r.extends && r.extends.size === cpSizes[0], `verdict ok, extends ${cpSizes[0]} (got ${r.verdict}, ${JSON.stringify(r.extends)})`);
      const cli = reference(small, null, earlierFile);
      ok(cli.findings && cli.findings.length === 0 && cli.extends && cli.extends.size === cpSizes[0], 'cairn verify --since agrees');
      console.log("does not extend another log's checkpoint");
      const otherCp = join(tmp, 'cases', 'other-checkpoint');
      writeFileSync(otherCp, otherFiles.get('checkpoint'));
      await setEarlier(page, otherCp);
      r = await verifyInPage(page, '#files', filesOf(small));
      ok(r.verdict === 'fail' && r.first.subject.type === 'log' && /does not extend/.test(r.first.why), `verdict fail, log: does not extend (got ${r.verdict}: ${r.first && r.first.text + ': ' + r.first.why})`);
      const cli2 = reference(small, null, otherCp);
      const f2 = cli2.findings && cli2.findings[0];
      ok(f2 && f2.subject.type === 'log' && /does not extend/.test(f2.why), `cairn verify --since agrees (${f2 && f2.why})`);
      await setEarlier(page, null);
    }

    // ---- dropped on the page (a synthetic drop of the small other log's files)
    {
      console.log('bundle dropped on the page');
      const dropped = [...otherFiles].map(([name, b]) => ({ name, b64: b.toString('base64') }));
      await page.fill('#expected', '');
      await page.evaluate((files) => {
        const dt = new DataTransfer();
        for (const f of files) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name));
        document.body.dataset.verdict = 'waiting';
        document.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
      }, dropped);
      await page.waitForFunction(() => ['ok', 'fail', 'error'].includes(document.body.dataset.verdict), null, { timeout: 120000, polling: 100 });
      r = await page.evaluate(() => window.cairnResult);
      ok(r.verdict === 'ok' && r.fingerprint === otherFp, `dropped bundle verifies (got ${r.verdict}${r.first ? ': ' + r.first.text + ': ' + r.first.why : ''})`);
    }

    // ---- without Web Workers: the page's own thread, same verdicts
    {
      console.log('without Web Workers');
      const p2 = await browser.newPage();
      p2.on('pageerror', (e) => pageErrors.push(String(e)));
      await p2.addInitScript(() => {
        Object.defineProperty(window, 'Worker', { value: undefined });
      });
      await p2.goto(pathToFileURL(PAGE).href);
      r = await verifyInPage(p2, '#files', filesOf(small));
      ok(r.verdict === 'ok' && /page thread/.test(r.mode), `honest bundle verifies on the page thread (got ${r.verdict}, ${r.mode})`);
      console.log(`  (${Math.round(r.rate)} records/s on the page thread)`);
      r = await verifyInPage(p2, '#files', filesOf(join(tmp, 'cases', 'a-byte-changed')));
      ok(r.verdict === 'fail' && r.first.subject.type === 'record' && r.first.subject.seq === Math.min(700, total - 2), `tampered record named on the page thread (got ${r.first && r.first.text})`);
      await p2.close();
    }

    // ---- the stranger's way: the bundle's own verify.html (cairn export
    // --verifier), opened from the bundle's folder, given that folder
    {
      console.log("the bundle's own verify.html");
      const own = makeBundle(tmp, 'own-page', 40, ['--verifier', PAGE]);
      ok(existsSync(join(own, 'verify.html')), 'cairn export --verifier put verify.html into the bundle');
      const p3 = await browser.newPage();
      p3.on('pageerror', (e) => pageErrors.push(String(e)));
      await p3.goto(pathToFileURL(join(own, 'verify.html')).href);
      r = await verifyInPage(p3, '#folder', own);
      ok(r.verdict === 'ok', `the bundle's own page passes its folder (got ${r.verdict}${r.first ? ': ' + r.first.text + ': ' + r.first.why : ''})`);
      await p3.close();
    }

    // ---- not a bundle at all: a single unrelated file
    console.log('not a bundle');
    const lone = join(tmp, 'cases', 'lone.txt');
    writeFileSync(lone, 'hello\n');
    r = await verifyInPage(page, '#files', [lone]);
    ok(r.verdict === 'error' && /records\.journal/.test(r.error), `an error naming records.journal (got ${r.verdict}: ${r.error})`);

    // ---- the rate, on a bigger bundle
    console.log(`rate: bundle of ${RATE_RECORDS} records`);
    const big = makeBundle(tmp, 'big', RATE_RECORDS);
    r = await verifyInPage(page, '#folder', big);
    ok(r.verdict === 'ok', `big bundle verifies (got ${r.verdict}${r.first ? ': ' + r.first.text + ': ' + r.first.why : ''})`);
    const rate = r.records / (r.ms / 1000);
    console.log(
      `RATE: ${Math.round(rate)} records/s: ${r.records} records verified in ${(r.ms / 1000).toFixed(2)} s ` +
        `(page-measured, from parsing to verdict; per-record checks alone ${Math.round(r.records / (r.entriesMs / 1000))} records/s; ` +
        `wall time with reading the files ${(r.wallMs / 1000).toFixed(2)} s; ${r.mode})`,
    );
    if (MIN_RATE) ok(rate >= MIN_RATE, `rate >= MIN_RATE ${MIN_RATE}`);

    ok(pageErrors.length === 0, `no page errors${pageErrors.length ? ': ' + pageErrors.join(' | ') : ''}`);
    ok(requests.length === 0, `no network requests${requests.length ? ': ' + requests.join(' ') : ''}`);
    await page.close();
  } finally {
    await browser.close();
    if (!process.env.KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
    else console.log(`kept ${tmp}`);
  }
}

main().then(
  () => {
    console.log(`screenshots in ${ARTIFACTS}`);
    console.log(`${passes} passed, ${failures} failed`);
    process.exit(failures ? 1 : 0);
  },
  (e) => {
    console.error(e && e.stack ? e.stack : e);
    console.log(`${passes} passed, ${failures + 1} failed`);
    process.exit(1);
  },
);
