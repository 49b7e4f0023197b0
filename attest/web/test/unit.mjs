// Node tests of the verifier's code without a browser:
//   1. the fast ML-DSA-65 verifier (src/mldsa65.js) against
//      @noble/post-quantum's ml_dsa65.verify: valid signatures, contexts,
//      and many mutated signatures and messages must get the same answer;
//   2. strict decoders (base64, JSON, verifier keys, notes, checkpoints);
//   3. a differential fuzz against the reference: a small bundle made with
//      the cairn binary ($CAIRN) is mutated at random (entry bytes with the
//      frame CRC and SHA256SUMS recomputed, raw journal bytes, cuts,
//      manifest and sums bytes); the page's verifier (verify.js +
//      bundle.js, run in this thread) must never throw and must name the
//      same subjects, in the same order, as `cairn verify --json`.
// FUZZ (default 150) sets the number of mutations; SEED the random seed.

import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareKey, verifyPrepared } from '../src/mldsa65.js';
import { fromBase64, toBase64 } from '../src/util.js';
import { parseJson } from '../src/json.js';
import { parseNote, parseVkey, parseCheckpointText, parseRecord } from '../src/formats.js';
import { verifyLog, describe } from '../src/verify.js';
import { checkBundle } from '../src/bundle.js';
import { makeRunner } from '../src/pool.js';
import { crc32 } from '../src/crc32.js';

const CAIRN = process.env.CAIRN || '/work/main/target/debug/cairn';
const FUZZ = Number(process.env.FUZZ || 150);
const SEED = Number(process.env.SEED || Date.now() % 1000000);
let seed = SEED;
const rand = () => {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const randInt = (n) => Math.floor(rand() * n);

let passes = 0;
let failures = 0;
const ok = (cond, what) => {
  if (cond) passes++;
  else {
    failures++;
    console.log(`  FAIL  ${what}`);
  }
  return cond;
};
const enc = new TextEncoder();

// ------------------------------------------------------------ 1. ML-DSA-65
console.log('ML-DSA-65: fast verifier against noble');
{
  const ctx = enc.encode('cairn/record/v1');
  const other = enc.encode('cairn/checkpoint/v1');
  let compared = 0;
  for (let k = 0; k < 3; k++) {
    const s = new Uint8Array(32).map(() => randInt(256));
    const { publicKey, secretKey } = ml_dsa65.keygen(s);
    const key = prepareKey(publicKey);
    for (let i = 0; i < 12; i++) {
      const msg = enc.encode(`{"seq":${i}}` + 'x'.repeat(randInt(3000)) + '\n');
      const sig = ml_dsa65.sign(msg, secretKey, { context: ctx });
      ok(verifyPrepared(key, sig, msg, ctx) === true, 'valid signature verifies');
      ok(verifyPrepared(key, sig, msg, other) === false, 'other context fails');
      ok(verifyPrepared(key, sig, msg.subarray(1), ctx) === false, 'other message fails');
      for (let m = 0; m < 25; m++) {
        const bad = sig.slice();
        const pos = m < 5 ? randInt(48) : m < 10 ? 3200 + randInt(109) : randInt(bad.length);
        bad[pos] ^= 1 << randInt(8);
        const want = ml_dsa65.verify(bad, msg, publicKey, { context: ctx });
        ok(verifyPrepared(key, bad, msg, ctx) === want, `mutated signature byte ${pos}: same answer as noble (${want})`);
        compared++;
      }
      // hint section edge cases: all-zero and all-0xff hint bytes
      for (const fill of [0, 0xff, 55]) {
        const bad = sig.slice();
        bad.fill(fill, 3309 - 61);
        ok(verifyPrepared(key, bad, msg, ctx) === ml_dsa65.verify(bad, msg, publicKey, { context: ctx }), `hint filled with ${fill}`);
      }
    }
    ok(verifyPrepared(key, new Uint8Array(3308), enc.encode('x'), ctx) === false, 'short signature fails');
  }
  console.log(`  ${compared} mutated signatures compared`);
}

// -------------------------------------------------------------- 2. decoders
console.log('strict decoders');
{
  ok(fromBase64('') !== null && fromBase64('').length === 0, 'base64 empty');
  ok(toBase64(fromBase64('AAEC')) === 'AAEC', 'base64 round trip');
  ok(fromBase64('AAE=') !== null && fromBase64('AAF=') === null, 'base64 stray bits rejected');
  ok(fromBase64('AA==') !== null && fromBase64('AB==') === null, 'base64 stray bits rejected (==)');
  ok(fromBase64('AAE') === null && fromBase64('A=AA') === null && fromBase64('AA=A') === null, 'base64 bad padding');
  ok(fromBase64('AA\u0100A') === null, 'base64 non-ASCII');
  for (const bad of ['{"a":1,}', '[1 2]', '01', '1.', '-', '"\\ud800"', '"\\udc00"', '"a\u0001"', '{"a":1}x', '{1:2}', 'tru', '"\\x"', '1e400', '[-1e999]', '[' .repeat(200) + ']'.repeat(200)]) {
    let threw = false;
    try {
      parseJson(bad);
    } catch {
      threw = true;
    }
    ok(threw, `JSON rejects ${JSON.stringify(bad).slice(0, 40)}`);
  }
  ok(parseJson('{"a":[1,2.5,"\\ud83d\\ude00",null,true]}').a[2] === '\u{1F600}', 'JSON surrogate pair');
  const throwsMsg = (f) => {
    try {
      f();
      return null;
    } catch (e) {
      return e.message;
    }
  };
  ok(/no blank line/.test(throwsMsg(() => parseNote(enc.encode('no separator\n')))), 'note without blank line');
  ok(/does not start/.test(throwsMsg(() => parseNote(enc.encode('text\n\n- name AAAAAAA=\n')))), 'note bad dash');
  ok(/does not end with a newline/.test(throwsMsg(() => parseNote(enc.encode('text\n\n\u2014 name AAAAAAA=')))), 'note no final newline');
  ok(/control character/.test(throwsMsg(() => parseNote(enc.encode('te\u0001xt\n\n\u2014 name AAAAAAAA\n')))), 'note control char');
  ok(/key name/.test(throwsMsg(() => parseNote(enc.encode('text\n\n\u2014 na+me AAAAAAAA\n')))), 'note bad name');
  ok(/not base64/.test(throwsMsg(() => parseNote(enc.encode('text\n\n\u2014 name !!!!\n')))), 'note bad base64');
  ok(/too short/.test(throwsMsg(() => parseNote(enc.encode('text\n\n\u2014 name AAAA\n')))), 'note short signature');
  ok(/too many/.test(throwsMsg(() => parseNote(enc.encode('t\n\n' + '\u2014 n AAAAAAAA\n'.repeat(101))))), 'note 101 signatures');
  ok(parseNote(enc.encode('t\n\n' + '\u2014 n AAAAAAAA\n'.repeat(100))).signatures.length === 100, 'note 100 signatures');
  // the C2SP signed-note example key (Ed25519)
  const v = parseVkey('example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k');
  ok(v.alg === 'ed25519' && v.name === 'example.com/foo', 'vkey parses');
  ok(/key id/.test(throwsMsg(() => parseVkey('example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k'))), 'vkey wrong id');
  ok(/size/.test(throwsMsg(() => parseCheckpointText('o\n012\nAAAA\n'))), 'checkpoint leading zero');
  ok(/root/.test(throwsMsg(() => parseCheckpointText('o\n12\nAAAA\n'))), 'checkpoint short root');
  ok(/out of range/.test(throwsMsg(() => parseCheckpointText(`o\n99999999999999999999\n${'A'.repeat(43)}=\n`))), 'checkpoint size > u64');
  const rec = (s) => throwsMsg(() => parseRecord(enc.encode(s), s));
  const good = '{"v":1,"log":"l","seq":7,"time":"t","kind":"k","actor":{"type":"system","name":"x"},"model":null,"prev":"00","body":{}}\n';
  ok(rec(good) === null, 'record parses');
  ok(/unknown field/.test(rec(good.replace('"v":1,', '"v":1,"extra":1,'))), 'record unknown field');
  ok(/duplicate/.test(rec(good.replace('"v":1,', '"v":1,"v":1,'))), 'record duplicate field');
  ok(/version/.test(rec(good.replace('"v":1,', '"v":2,'))), 'record version 2');
  ok(rec(good.replace('"seq":7', '"seq":7.0')) !== null, 'record float seq');
  ok(rec(good.replace('"seq":7', '"seq":18446744073709551616')) !== null, 'record seq > u64');
  ok(rec(good.replace('"system","name":"x"', '"unix","uid":1,"gid":2,"pid":-3')) === null, 'record unix actor');
  ok(rec(good.replace('"system","name":"x"', '"robot"')) !== null, 'record unknown actor');
  ok(/one line/.test(rec(good.replace('"body":{}', '"body":{}\n'))), 'record two lines');
  ok(crc32(enc.encode('123456789')) === 0xcbf43926, 'CRC-32 check value');
}

// ------------------------------------------------------- 3. differential fuzz
function sh(cmd, args, allowFail = false) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stderr}`);
  return r;
}

const MAGIC = Buffer.from('CAIRNJ1\n');
function frames(j) {
  const out = [];
  for (let p = 8; p + 8 <= j.length; ) {
    const len = j.readUInt32LE(p);
    if (p + 8 + len > j.length) break;
    out.push(Buffer.from(j.subarray(p + 8, p + 8 + len)));
    p += 8 + len;
  }
  return out;
}
function journal(entries) {
  const parts = [MAGIC];
  for (const e of entries) {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(e.length, 0);
    h.writeUInt32LE(crc32(e), 4);
    parts.push(h, e);
  }
  return Buffer.concat(parts);
}
function resum(files) {
  const listed = files.get('SHA256SUMS').toString('utf8').split('\n').filter(Boolean).map((l) => l.slice(l.indexOf('  ') + 2));
  let s = '';
  for (const n of listed) if (files.has(n)) s += `${createHash('sha256').update(files.get(n)).digest('hex')}  ${n}\n`;
  files.set('SHA256SUMS', Buffer.from(s));
}

const subjKey = (s) => JSON.stringify(Object.keys(s).sort().map((k) => [k, s[k]]));

/**
 * The subjects of findings, in order, except that each run of "is not
 * listed in SHA256SUMS" findings is sorted: cairn lists a directory in the
 * file system's order, which is unspecified.
 */
function subjects(findings) {
  const out = [];
  let run = [];
  const flush = () => {
    out.push(...run.sort());
    run = [];
  };
  for (const f of findings) {
    if (/is not listed in SHA256SUMS/.test(f.why)) run.push(subjKey(f.subject));
    else {
      flush();
      out.push(subjKey(f.subject));
    }
  }
  flush();
  return out.join('\n');
}

async function pageVerdict(files) {
  const m = new Map([...files].map(([n, b]) => [n, new Uint8Array(b)]));
  const report = await verifyLog(m, {}, makeRunner(null));
  const ff = await checkBundle(m, [...files.keys()].sort(), report, async (b) => createHash('sha256').update(b).digest('hex'));
  return report.findings.concat(ff);
}

if (!existsSync(CAIRN)) {
  console.log(`differential fuzz skipped: no cairn binary at ${CAIRN}`);
} else {
  const tmp = mkdtempSync(join(tmpdir(), 'cairn-web-unit-'));
  try {
    sh(CAIRN, ['bench', 'ledger', '--records', '24', '--out', join(tmp, 'ledger')]);
    mkdirSync(join(tmp, 'out'));
    sh(CAIRN, ['export', '--ledger', join(tmp, 'ledger'), '--to', join(tmp, 'out')]);
    const bdir = join(tmp, 'out', readdirSync(join(tmp, 'out'))[0]);
    const base = new Map(readdirSync(bdir).map((n) => [n, readFileSync(join(bdir, n))]));
    console.log(`differential fuzz: ${FUZZ} mutations of a ${frames(base.get('records.journal')).length}-record bundle against cairn verify (SEED=${SEED})`);
    const honest = await pageVerdict(base);
    ok(honest.length === 0, `honest bundle verifies (${honest.map((f) => describe(f.subject) + ': ' + f.why).join('; ')})`);
    const kinds = ['entry byte', 'entry byte (printable)', 'checkpoint byte', 'raw journal byte', 'cut', 'manifest byte', 'sums byte', 'swap tail'];
    const count = {};
    for (let n = 0; n < FUZZ; n++) {
      const files = new Map(base);
      const kind = kinds[n % kinds.length];
      const r = Buffer.from(base.get('records.journal'));
      if (kind.startsWith('entry byte')) {
        const es = frames(r);
        const i = randInt(es.length);
        const e = Buffer.from(es[i]);
        // mostly inside the text, where parsing is exercised
        const textEnd = e.indexOf('\n\n');
        const pos = rand() < 0.8 && textEnd > 0 ? randInt(textEnd + 2) : randInt(e.length);
        e[pos] = kind.endsWith('(printable)') ? 0x20 + randInt(95) : randInt(256);
        es[i] = e;
        files.set('records.journal', journal(es));
        resum(files);
      } else if (kind === 'checkpoint byte') {
        const cs = frames(base.get('checkpoints.journal'));
        const i = randInt(cs.length);
        const e = Buffer.from(cs[i]);
        e[randInt(e.length)] ^= 1 << randInt(8);
        cs[i] = e;
        files.set('checkpoints.journal', journal(cs));
        resum(files);
      } else if (kind === 'raw journal byte') {
        r[randInt(r.length)] ^= 1 << randInt(8);
        files.set('records.journal', r);
        resum(files);
      } else if (kind === 'cut') {
        files.set('records.journal', r.subarray(0, randInt(r.length)));
        resum(files);
      } else if (kind === 'manifest byte') {
        const m = Buffer.from(base.get('bundle.json'));
        m[randInt(m.length)] = 0x20 + randInt(95);
        files.set('bundle.json', m);
        resum(files);
      } else if (kind === 'sums byte') {
        const s = Buffer.from(base.get('SHA256SUMS'));
        s[randInt(s.length)] = 0x20 + randInt(95);
        files.set('SHA256SUMS', s);
      } else {
        const es = frames(r);
        const i = 1 + randInt(es.length - 2);
        [es[i], es[es.length - 1]] = [es[es.length - 1], es[i]];
        files.set('records.journal', journal(es));
        resum(files);
      }
      let mine;
      try {
        mine = await pageVerdict(files);
      } catch (e) {
        ok(false, `${kind} #${n}: the verifier threw ${e.stack}`);
        continue;
      }
      const dir = join(tmp, `case-${n}`);
      mkdirSync(dir);
      for (const [name, b] of files) writeFileSync(join(dir, name), b);
      const out = sh(CAIRN, ['verify', dir, '--json'], true);
      let ref;
      try {
        ref = JSON.parse(out.stdout).findings;
      } catch {
        ok(false, `${kind} #${n}: cairn verify gave no report: ${out.stderr.slice(0, 300)}`);
        continue;
      }
      const a = subjects(mine);
      const b = subjects(ref);
      count[kind] = (count[kind] || 0) + 1;
      if (!ok(a === b, `${kind} #${n}: same subjects as cairn verify`)) {
        console.log('    page :', mine.slice(0, 6).map((f) => describe(f.subject) + ': ' + f.why).join(' | '));
        console.log('    cairn:', ref.slice(0, 6).map((f) => JSON.stringify(f.subject) + ': ' + f.why).join(' | '));
        console.log(`    kept in ${dir}`);
        process.env.KEEP_TMP = '1';
      } else rmSync(dir, { recursive: true, force: true });
    }
    console.log(`  mutations by kind: ${JSON.stringify(count)}`);
  } finally {
    if (!process.env.KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
    else console.log(`  kept ${tmp}`);
  }
}

console.log(`${passes} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
