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
//      same subjects, in the same order, as `cairn verify --json`;
//   4. incremental bundles (FORMAT.md §9): compact ranges and inclusion
//      proofs against a reference tree written from RFC 9162; an
//      incremental bundle of `cairn export --from-size F` is the one
//      test/helpers.mjs makes by hand from the full bundle, verifies,
//      and agrees with `cairn verify --json`; tampered ones fail naming
//      the same subjects; and the differential fuzz on it, with its
//      prefix files (genesis, previous-checkpoint, frontier,
//      predecessor.proof, the manifest's `from`) mutated too.
// FUZZ (default 150) sets the number of mutations (INC_FUZZ, default
// FUZZ/2, those of the incremental bundle); SEED the random seed.

import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { prepareKey, verifyPrepared } from '../src/mldsa65.js';
import { fromBase64, toBase64 } from '../src/util.js';
import { parseJson } from '../src/json.js';
import { parseNote, parseVkey, parseCheckpointText, parseRecord } from '../src/formats.js';
import { verifyLog, describe } from '../src/verify.js';
import { checkBundle, readPrefix } from '../src/bundle.js';
import { checkTpmQuote } from '../src/tpmquote.js';
import { Frontier, verifyInclusion, verifyConsistency } from '../src/merkle.js';
import * as inc from './helpers.mjs';
import { frames, journal, resum } from './helpers.mjs';
import { makeRunner } from '../src/pool.js';
import { crc32 } from '../src/crc32.js';
import { spotCheck } from '../src/entrycheck.js';
import { CTX_RECORD } from '../src/formats.js';

const CAIRN = process.env.CAIRN || '/work/main/target/debug/cairn';
const FUZZ = Number(process.env.FUZZ || 150);
const INC_FUZZ = Number(process.env.INC_FUZZ || Math.ceil(FUZZ / 2));
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
console.log('ML-DSA-65: the spot check stops on any disagreement with noble');
{
  const { publicKey, secretKey } = ml_dsa65.keygen(new Uint8Array(32).fill(9));
  const msg = new TextEncoder().encode('{"v":1,"spot":"check"}\n');
  const sig = ml_dsa65.sign(msg, secretKey, { context: CTX_RECORD, extraEntropy: false });
  const bad = sig.slice();
  bad[100] ^= 1;
  const throws = (f) => {
    try {
      f();
      return false;
    } catch {
      return true;
    }
  };
  ok(!throws(() => spotCheck(true, sig, msg, publicKey)), 'agreeing on a good signature passes');
  ok(!throws(() => spotCheck(false, bad, msg, publicKey)), 'agreeing on a bad signature passes');
  ok(throws(() => spotCheck(false, sig, msg, publicKey)), 'a good signature the fast path rejects stops verification');
  ok(throws(() => spotCheck(true, bad, msg, publicKey)), 'a bad signature the fast path accepts stops verification');
}

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
  const root43 = `${'A'.repeat(43)}=`;
  ok(parseCheckpointText(`o\n3\n${root43}\ncairn-tpm-counter 41\n`).extensions[0] === 'cairn-tpm-counter 41', 'checkpoint extension line kept');
  ok(/extension/.test(throwsMsg(() => parseCheckpointText(`o\n3\n${root43}\n\nx\n`))), 'checkpoint empty extension line');
  ok(/extension/.test(throwsMsg(() => parseCheckpointText(`o\n3\n${root43}\nx\u007f\n`))), 'checkpoint unprintable extension line');
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

// ------------------------------------- 4a. compact ranges, inclusion proofs
console.log('Merkle: compact ranges and RFC 9162 inclusion proofs against a reference tree');
{
  const enc2 = (i) => enc.encode(`entry ${i}`);
  const leaves = [];
  let checkedProofs = 0;
  for (let n = 1; n <= 70; n++) {
    leaves.push(inc.leafHash(enc2(n - 1)));
    const root = inc.mth(leaves);
    const f = new Frontier();
    for (const l of leaves) f.push(new Uint8Array(l));
    const c = inc.compact(leaves);
    ok(Buffer.from(f.root()).equals(root), `frontier root of ${n} leaves`);
    ok(f.stack.length === c.length && f.stack.every(([, h], i) => Buffer.from(h).equals(c[i])), `compact range of ${n} leaves`);
    const g = Frontier.fromCompact(BigInt(n), c.map((h) => new Uint8Array(h)));
    ok(Buffer.from(g.root()).equals(root) && g.size === BigInt(n), `fromCompact(${n}) root`);
    // appending to a frontier made from a compact range: the same roots
    g.push(new Uint8Array(inc.leafHash(enc2(1000))));
    ok(Buffer.from(g.root()).equals(inc.mth([...leaves, inc.leafHash(enc2(1000))])), `fromCompact(${n}) then push`);
    let threw = false;
    try {
      Frontier.fromCompact(BigInt(n), c.slice(1));
    } catch {
      threw = true;
    }
    ok(threw, `fromCompact(${n}) with a hash missing`);
    for (let m = 0; m < n; m++) {
      const p = inc.path(m, leaves);
      const good = verifyInclusion(BigInt(m), BigInt(n), leaves[m], p, root);
      const wrongIndex = n > 1 && verifyInclusion(BigInt((m + 1) % n), BigInt(n), leaves[m], p, root);
      const wrongSize = verifyInclusion(BigInt(m), BigInt(n + 1), leaves[m], p, root);
      let flipped = false;
      if (p.length) {
        const q = p.map((h) => Buffer.from(h));
        q[m % q.length][m % 32] ^= 1;
        flipped = verifyInclusion(BigInt(m), BigInt(n), leaves[m], q, root);
      }
      const longer = verifyInclusion(BigInt(m), BigInt(n), leaves[m], [...p, root], root);
      const shorter = p.length > 0 && verifyInclusion(BigInt(m), BigInt(n), leaves[m], p.slice(0, -1), root);
      if (!ok(good && !wrongIndex && !flipped && !longer && !shorter, `inclusion of ${m} in ${n}`)) break;
      checkedProofs++;
    }
  }
  ok(!verifyInclusion(5n, 5n, leaves[0], [], leaves[0]), 'inclusion: index = size fails');
  ok(verifyInclusion(0n, 1n, leaves[0], [], leaves[0]), 'inclusion: a tree of one leaf, empty proof');
  ok(!verifyInclusion(0n, 1n, leaves[0], [leaves[1]], leaves[0]), 'inclusion: a tree of one leaf, a proof too long');
  let threw = false;
  try {
    Frontier.fromCompact(1n << 64n, []);
  } catch {
    threw = true;
  }
  ok(threw, 'fromCompact: a size over u64');
  let checkedConsistency = 0;
  for (let n = 1; n <= 40; n++) {
    const all = leaves.slice(0, n);
    const root = inc.mth(all);
    for (let m = 0; m <= n; m++) {
      const old = inc.mth(all.slice(0, m));
      const p = inc.consistency(m, all);
      const good = verifyConsistency(BigInt(m), BigInt(n), old, root, p);
      const badOld = m > 0 && m < n && verifyConsistency(BigInt(m), BigInt(n), leaves[50], root, p);
      const badNew = m > 0 && m < n && verifyConsistency(BigInt(m), BigInt(n), old, leaves[50], p);
      const shorter = p.length > 0 && verifyConsistency(BigInt(m), BigInt(n), old, root, p.slice(0, -1));
      if (!ok(good && !badOld && !badNew && !shorter, `consistency from ${m} to ${n}`)) break;
      checkedConsistency++;
    }
  }
  console.log(`  ${checkedProofs} inclusion proofs, ${checkedConsistency} consistency proofs checked`);
}

// ------------------------------------------------------- 3. differential fuzz
function sh(cmd, args, allowFail = false) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stderr}`);
  return r;
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

/**
 * The page's verdict on a bundle: {findings} (the log's, then the
 * files'), or {refused} when it refuses an incremental bundle whose prefix
 * cannot be read (as `cairn verify` does).
 */
async function pageVerdict(files, options = {}) {
  const m = new Map([...files].map(([n, b]) => [n, new Uint8Array(b)]));
  let prefix;
  try {
    prefix = readPrefix(m);
  } catch (e) {
    return { refused: e };
  }
  const report = await verifyLog(m, { ...options, prefix }, makeRunner(null));
  const ff = await checkBundle(m, [...files.keys()].sort(), report, async (b) => createHash('sha256').update(b).digest('hex'), prefix);
  return { report, findings: report.findings.concat(ff) };
}

/** `cairn verify DIR --json`: {ref} (the report), or {refused} (its error), or {none}. */
function cairnVerdict(dir) {
  const out = sh(CAIRN, ['verify', dir, '--json'], true);
  try {
    return { ref: JSON.parse(out.stdout) };
  } catch {
    return /cannot read the incremental bundle/.test(out.stderr) ? { refused: out.stderr.trim() } : { none: out.stderr.slice(0, 300) };
  }
}

/**
 * Mutates `base` (a bundle: Map name → Buffer) `count` times, one kind
 * after the other, and compares the page's findings with `cairn verify`'s.
 * When cairn refuses the bundle (an incremental bundle's prefix files, or
 * since the incremental bundles, any manifest, unreadable), the page must
 * refuse it too, or name the manifest.
 */
async function fuzz(tmp, label, base, kinds, count) {
  const counts = {};
  const entriesJournal = 'records.journal';
  for (let n = 0; n < count; n++) {
    const files = new Map(base);
    const kind = kinds[n % kinds.length];
    const r = Buffer.from(base.get(entriesJournal));
    const byteOf = (name, printable) => {
      const b = Buffer.from(base.get(name));
      if (b.length) b[randInt(b.length)] = printable ? 0x20 + randInt(95) : randInt(256);
      files.set(name, b);
      resum(files);
    };
    if (kind.startsWith('entry byte')) {
      const es = frames(r);
      const i = randInt(es.length);
      const e = Buffer.from(es[i]);
      // mostly inside the text, where parsing is exercised
      const textEnd = e.indexOf('\n\n');
      const pos = rand() < 0.8 && textEnd > 0 ? randInt(textEnd + 2) : randInt(e.length);
      e[pos] = kind.endsWith('(printable)') ? 0x20 + randInt(95) : randInt(256);
      es[i] = e;
      files.set(entriesJournal, journal(es));
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
      files.set(entriesJournal, r);
      resum(files);
    } else if (kind === 'cut') {
      files.set(entriesJournal, r.subarray(0, randInt(r.length)));
      resum(files);
    } else if (kind === 'manifest byte') {
      byteOf('bundle.json', true);
    } else if (kind === 'sums byte') {
      const s = Buffer.from(base.get('SHA256SUMS'));
      s[randInt(s.length)] = 0x20 + randInt(95);
      files.set('SHA256SUMS', s);
    } else if (kind === 'swap tail') {
      const es = frames(r);
      const i = 1 + randInt(es.length - 2);
      [es[i], es[es.length - 1]] = [es[es.length - 1], es[i]];
      files.set(entriesJournal, journal(es));
      resum(files);
    } else if (kind === 'drop entry') {
      const es = frames(r);
      es.splice(randInt(es.length), 1);
      files.set(entriesJournal, journal(es));
      resum(files);
    } else if (kind === 'frontier byte') byteOf('frontier', rand() < 0.7);
    else if (kind === 'proof byte') byteOf(rand() < 0.6 ? 'predecessor.proof' : 'consistency.proof', rand() < 0.7);
    else if (kind === 'previous-checkpoint byte') byteOf('previous-checkpoint', rand() < 0.5);
    else if (kind === 'genesis byte') byteOf('genesis', rand() < 0.5);
    else if (kind === 'hash line') {
      // a whole hash replaced by another valid one, or a line dropped or doubled
      const name = ['frontier', 'predecessor.proof', 'consistency.proof'][randInt(3)];
      const ls = base.get(name).toString('utf8').split('\n').filter(Boolean);
      const i = randInt(Math.max(1, ls.length));
      const how = randInt(3);
      if (how === 0) ls[i] = createHash('sha256').update(String(n)).digest('base64');
      else if (how === 1) ls.splice(i, 1);
      else ls.splice(i, 0, ls[i] || ls[0] || 'AAAA');
      files.set(name, Buffer.from(ls.map((l) => l + '\n').join('')));
      resum(files);
    } else if (kind === 'manifest from') {
      const m = JSON.parse(base.get('bundle.json'));
      m.from = [0, m.from - 1, m.from + 1, m.records, 1, '7', -1, 1.5][randInt(8)];
      files.set('bundle.json', Buffer.from(JSON.stringify(m, null, 2) + '\n'));
      resum(files);
    } else if (kind === 'previous of another size') {
      // the checkpoint of the bundle's end, or the previous one with the
      // frontier of another size
      files.set('previous-checkpoint', base.get('checkpoint'));
      resum(files);
    } else throw new Error(`test: unknown kind ${kind}`);
    let mine;
    try {
      mine = await pageVerdict(files);
    } catch (e) {
      ok(false, `${label} ${kind} #${n}: the verifier threw ${e.stack}`);
      continue;
    }
    const dir = join(tmp, `case-${label}-${n}`);
    mkdirSync(dir);
    for (const [name, b] of files) writeFileSync(join(dir, name), b);
    const cli = cairnVerdict(dir);
    counts[kind] = (counts[kind] || 0) + 1;
    let same;
    let detail = '';
    if (cli.none) {
      same = false;
      detail = `cairn verify gave no report: ${cli.none}`;
    } else if (cli.refused) {
      // cairn refuses; the page refuses too, or (a manifest it cannot read) names the manifest
      same = !!mine.refused || mine.findings.some((f) => f.subject.type === 'file' && f.subject.file === 'bundle.json');
      detail = `cairn refused (${cli.refused.slice(0, 200)}); the page ${mine.refused ? 'refused: ' + mine.refused.message : 'said: ' + mine.findings.slice(0, 3).map((f) => describe(f.subject) + ': ' + f.why).join(' | ')}`;
      counts.refused = (counts.refused || 0) + 1;
    } else if (mine.refused) {
      same = false;
      detail = `the page refused (${mine.refused.message}); cairn said: ${cli.ref.findings.slice(0, 3).map((f) => JSON.stringify(f.subject) + ': ' + f.why).join(' | ')}`;
    } else {
      same = subjects(mine.findings) === subjects(cli.ref.findings);
      if (same && !mine.findings.length) same = mine.report.root === cli.ref.root && mine.report.records === cli.ref.records && mine.report.from === cli.ref.from;
      detail =
        '\n    page : ' + mine.findings.slice(0, 6).map((f) => describe(f.subject) + ': ' + f.why).join(' | ') +
        '\n    cairn: ' + cli.ref.findings.slice(0, 6).map((f) => JSON.stringify(f.subject) + ': ' + f.why).join(' | ');
    }
    if (!ok(same, `${label} ${kind} #${n}: same verdict as cairn verify`)) {
      console.log(`    ${detail}`);
      console.log(`    kept in ${dir}`);
      process.env.KEEP_TMP = '1';
    } else rmSync(dir, { recursive: true, force: true });
  }
  console.log(`  mutations by kind: ${JSON.stringify(counts)}`);
}

const readDir = (d) => new Map(readdirSync(d).map((n) => [n, readFileSync(join(d, n))]));

/**
 * 4c. A bundle exported through `cairnd --demo` on emulated hardware
 * carries tpm-quote.json: the page checks it as cairn verify does (the
 * same verdict, honest and tampered), and names the record that published
 * the key.
 */
async function tpmQuote(tmp) {
  console.log('the TPM quote (a bundle exported through cairnd --demo on emulated hardware)');
  const cairnd = join(dirname(CAIRN), 'cairnd');
  const state = join(tmp, 'demo');
  const daemon = spawn(cairnd, ['--demo', '--hw', 'emulated', '--state-dir', state], {
    env: { ...process.env, CAIRN_MODEL_CACHE: join(tmp, 'no-models') },
    stdio: 'ignore',
  });
  try {
    const socket = join(state, 'cairnd.sock');
    for (let i = 0; i < 600 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
    ok(existsSync(socket), 'cairnd --demo started');
    const bundle = readDir(exportTo(state, join(tmp, 'quoted'), ['--full']));
    ok(bundle.has('tpm-quote.json'), 'the bundle carries tpm-quote.json');
    const honest = await pageVerdict(bundle);
    ok(honest.findings && honest.findings.length === 0, `a quoted bundle verifies (${(honest.findings || []).map((f) => describe(f.subject) + ': ' + f.why).join('; ')})`);
    const q = checkTpmQuote(new Map([...bundle].map(([n, b]) => [n, new Uint8Array(b)])));
    ok(q && q.summary && q.summary.publishedBy !== null && q.summary.akKind === 'ed25519-emulated', `the quote names the record that published its key (${q && q.summary ? `record ${q.summary.publishedBy}` : q && q.why})`);
    const json = JSON.parse(bundle.get('tpm-quote.json').toString());
    const cases = [
      ['pcr_before changed', { ...json, pcr_before: '11'.repeat(32) }, /PCR 23 is not its value before/],
      ['a signature byte changed', { ...json, signature: toBase64(Uint8Array.from(fromBase64(json.signature), (x, i) => (i === 5 ? x ^ 1 : x))) }, /signature does not verify/],
      ['another checkpoint', { ...json, checkpoint_sha256: '22'.repeat(32) }, /another checkpoint/],
      ['PCR 7 changed', { ...json, pcrs: { ...json.pcrs, 7: '33'.repeat(32) } }, /not the ones quoted/],
    ];
    for (const [what, forged, why] of cases) {
      const f = new Map(bundle);
      f.set('tpm-quote.json', Buffer.from(JSON.stringify(forged)));
      resum(f);
      const v = await pageVerdict(f);
      const first = v.findings && v.findings[0];
      ok(first && first.subject.type === 'file' && first.subject.file === 'tpm-quote.json' && why.test(first.why), `quote ${what}: tpm-quote.json ${why} (got ${first ? describe(first.subject) + ': ' + first.why : v.refused})`);
      const dir = join(tmp, `quote-${what.replace(/\W+/g, '-')}`);
      mkdirSync(dir);
      for (const [n, b] of f) writeFileSync(join(dir, n), b);
      const cli = cairnVerdict(dir);
      ok(cli.ref && subjects(cli.ref.findings) === subjects(v.findings) && why.test(cli.ref.findings[0].why), `quote ${what}: the same verdict as cairn verify`);
    }
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  }
}
const exportTo = (ledger, out, args = []) => {
  mkdirSync(out);
  sh(CAIRN, ['export', '--ledger', ledger, '--to', out, ...args]);
  return join(out, readdirSync(out)[0]);
};

if (!existsSync(CAIRN)) {
  console.log(`differential fuzz skipped: no cairn binary at ${CAIRN}`);
} else {
  const tmp = mkdtempSync(join(tmpdir(), 'cairn-web-unit-'));
  try {
    sh(CAIRN, ['bench', 'ledger', '--records', '24', '--out', join(tmp, 'ledger')]);
    const base = readDir(exportTo(join(tmp, 'ledger'), join(tmp, 'out'), ['--full']));
    console.log(`differential fuzz: ${FUZZ} mutations of a ${frames(base.get('records.journal')).length}-record bundle against cairn verify (SEED=${SEED})`);
    const honest = await pageVerdict(base);
    ok(honest.findings && honest.findings.length === 0, `honest bundle verifies (${(honest.findings || []).map((f) => describe(f.subject) + ': ' + f.why).join('; ')})`);
    await fuzz(tmp, 'full', base, ['entry byte', 'entry byte (printable)', 'checkpoint byte', 'raw journal byte', 'cut', 'manifest byte', 'sums byte', 'swap tail'], FUZZ);

    // ------------------------------------------------ 4b. incremental bundles
    console.log('incremental bundles (cairn export --from-size)');
    sh(CAIRN, ['bench', 'ledger', '--records', '1010', '--out', join(tmp, 'ledger2')]);
    const full = readDir(exportTo(join(tmp, 'ledger2'), join(tmp, 'out2'), ['--full']));
    const sizes = frames(full.get('checkpoints.journal')).map(inc.cpSize);
    const F = sizes[0];
    const N = sizes[sizes.length - 1];
    console.log(`  a ledger of ${N} records, checkpoints at ${sizes.join(', ')}: the bundle continuing ${F}`);
    const incDir = exportTo(join(tmp, 'ledger2'), join(tmp, 'out3'), ['--from-size', String(F)]);
    const made = readDir(incDir);
    const byHand = inc.makeIncremental(full, F);
    for (const name of ['records.journal', 'checkpoints.journal', 'checkpoint', 'genesis', 'previous-checkpoint', 'frontier', 'predecessor.proof', 'consistency.proof'])
      ok(made.has(name) && made.get(name).equals(byHand.get(name)), `${name} as FORMAT.md §9 describes it (made by hand from the full bundle)`);
    ok(JSON.parse(made.get('bundle.json')).from === F, `the manifest says from ${F}`);
    const sumsNames = made.get('SHA256SUMS').toString().split('\n').filter(Boolean).map((l) => l.slice(l.indexOf('  ') + 2)).sort();
    ok(JSON.stringify(sumsNames) === JSON.stringify([...made.keys()].filter((n) => n !== 'SHA256SUMS').sort()), `SHA256SUMS lists every file (${sumsNames.join(', ')})`);
    for (const [label, files] of [['cairn', made], ['by hand', byHand]]) {
      const v = await pageVerdict(files);
      const cli = cairnVerdict(label === 'cairn' ? incDir : (() => {
        const d = join(tmp, 'by-hand');
        mkdirSync(d);
        for (const [n, b] of files) writeFileSync(join(d, n), b);
        return d;
      })());
      ok(v.findings && v.findings.length === 0, `honest incremental bundle (${label}) verifies (${v.refused ? v.refused.message : v.findings.map((f) => describe(f.subject) + ': ' + f.why).join('; ')})`);
      ok(cli.ref && cli.ref.findings.length === 0, `cairn verify agrees (${label})`);
      ok(v.report && cli.ref && v.report.records === N && v.report.from === F && v.report.stored === N - F + 1 && v.report.root === cli.ref.root && v.report.from === cli.ref.from && v.report.records === cli.ref.records && v.report.checkpointedSize === cli.ref.checkpointed_size,
        `records ${N}, from ${F}, root and checkpointed size as cairn verify --json (${label})`);
    }
    // --since with an incremental bundle: the previous checkpoint itself, and an earlier one
    {
      const cpF = made.get('previous-checkpoint');
      const v = await pageVerdict(made, { earlier: new Uint8Array(cpF) });
      ok(v.report.extends && v.report.extends.size === F, `extends the previous checkpoint (${JSON.stringify(v.report.extends)})`);
      const last = made.get('checkpoint');
      const w = await pageVerdict(made, { earlier: new Uint8Array(last) });
      ok(w.report.extends && w.report.extends.size === N, `extends its own last checkpoint (${JSON.stringify(w.report.extends)})`);
      const small = frames(base.get('checkpoints.journal'))[0];
      const x = await pageVerdict(made, { earlier: new Uint8Array(small) });
      ok(x.report.extends && /checkpoint is for log|does not verify|signature/.test(x.report.extends.why || ''), `another log's checkpoint is refused (${JSON.stringify(x.report.extends)})`);
    }
    // tampered incremental bundles: the page names what cairn names
    {
      const es = frames(made.get('records.journal'));
      const cases = [];
      {
        const k = 3; // record F-1+3
        const e = Buffer.from(es[k]);
        const at = e.indexOf('Z","kind"') - 1;
        e[at] = e[at] === 0x39 ? 0x38 : e[at] + 1;
        const f = new Map(made);
        f.set('records.journal', journal(es.map((x, i) => (i === k ? e : x))));
        cases.push(['a byte of a new record', resum(f), { type: 'record', seq: F - 1 + k }, /signature does not verify/]);
      }
      {
        const f = new Map(made);
        const ls = made.get('frontier').toString().split('\n');
        const h = Buffer.from(ls[1], 'base64');
        h[5] ^= 0x10;
        ls[1] = h.toString('base64');
        f.set('frontier', Buffer.from(ls.join('\n')));
        cases.push(['a frontier hash changed', resum(f), { type: 'log' }, /frontier is not the previous checkpoint's tree/]);
      }
      {
        const f = new Map(made);
        const others = frames(full.get('records.journal'));
        f.set('records.journal', journal([others[F - 5], ...es.slice(1)]));
        cases.push(['the predecessor replaced by another entry', resum(f), { type: 'log' }, /is not record/]);
      }
      {
        const f = new Map(made);
        f.set('previous-checkpoint', made.get('checkpoint'));
        // (a frontier of F leaves has one hash per set bit of F: when the
        // other size has as many set bits, the frontier fits and folds to
        // another root)
        cases.push(['previous-checkpoint of another size', resum(f), { type: 'log' }, /frontier does not fit|frontier is not the previous checkpoint's tree/]);
        const g = new Map(made);
        g.set('previous-checkpoint', base.get('checkpoint'));
        cases.push(['previous-checkpoint of another log', resum(g), { type: 'log' }, /previous checkpoint does not verify: checkpoint is for log/]);
      }
      {
        const f = new Map(made);
        f.set('records.journal', journal(es.filter((_, i) => i !== 4)));
        cases.push(['a new record deleted', resum(f), { type: 'record', seq: F - 1 + 4 }, new RegExp(`sequence number ${F + 4} where ${F + 3} was expected`)]);
      }
      {
        const f = new Map(made);
        f.set('genesis', full.get('checkpoint'));
        cases.push(['genesis replaced', resum(f), { type: 'log' }, /record|malformed/]);
      }
      for (const [what, files, expect, why] of cases) {
        const v = await pageVerdict(files);
        const dir = join(tmp, `tampered-${what.replace(/\W+/g, '-')}`);
        mkdirSync(dir);
        for (const [n, b] of files) writeFileSync(join(dir, n), b);
        const cli = cairnVerdict(dir);
        const first = v.findings && v.findings[0];
        ok(first && Object.entries(expect).every(([k, x]) => first.subject[k] === x) && why.test(first.why), `${what}: the first problem is ${JSON.stringify(expect)} ${why} (got ${first ? describe(first.subject) + ': ' + first.why : v.refused})`);
        ok(cli.ref && subjects(cli.ref.findings) === subjects(v.findings), `${what}: the same subjects as cairn verify (${cli.ref ? cli.ref.findings.slice(0, 3).map((f) => JSON.stringify(f.subject) + ': ' + f.why).join(' | ') : JSON.stringify(cli)})`);
      }
    }
    console.log(`differential fuzz of the incremental bundle: ${INC_FUZZ} mutations (SEED=${SEED})`);
    await fuzz(tmp, 'incremental', made, [
      'entry byte', 'frontier byte', 'entry byte (printable)', 'proof byte', 'checkpoint byte', 'previous-checkpoint byte',
      'raw journal byte', 'genesis byte', 'cut', 'hash line', 'swap tail', 'manifest from', 'drop entry', 'manifest byte', 'previous of another size', 'sums byte',
    ], INC_FUZZ);

    // ------------------------------------------------ 4c. the TPM quote
    await tpmQuote(tmp);
  } finally {
    if (!process.env.KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
    else console.log(`  kept ${tmp}`);
  }
}

console.log(`${passes} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
