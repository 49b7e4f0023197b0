// Builds dist/verify.html: one self-contained page (opened from file://, no
// network). The worker (src/worker.js and what it imports) is bundled
// first into a script string; the page script (src/main.js) is bundled
// with that string defined as __WORKER_SOURCE__ (pool.js starts the
// workers from a blob: URL of it); the result is inlined into
// src/page.html. Not minified, so that the page can be read; the
// dependencies' licence comments are kept.
//
//   node build.mjs            (or: npm run build)

import { build } from 'esbuild';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
const common = {
  bundle: true,
  write: false,
  format: 'iife',
  platform: 'browser',
  target: ['es2020', 'chrome90', 'firefox90', 'safari15'],
  legalComments: 'inline',
  charset: 'utf8',
  logLevel: 'warning',
};

const worker = await build({ ...common, entryPoints: [join(here, 'src/worker.js')] });
const workerSource = worker.outputFiles[0].text;

const page = await build({
  ...common,
  entryPoints: [join(here, 'src/main.js')],
  define: { __WORKER_SOURCE__: JSON.stringify(workerSource) },
});
let script = page.outputFiles[0].text;

// Inside <script>, "</script" would end the element and "<!--" can change
// how the HTML parser reads what follows; in JavaScript source they can
// only be inside strings, regular expressions or comments, where "<\/" and
// "<\!--" mean the same.
script = script.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
if (/<\/script/i.test(script) || script.includes('<!--')) throw new Error('cannot inline the script safely');

const template = readFileSync(join(here, 'src/page.html'), 'utf8');
if (!template.includes('<!--SCRIPT-->')) throw new Error('src/page.html lacks the <!--SCRIPT--> marker');
const stamp = `<!-- cairn-verify: built from attest/web (see attest/web/README.md); script SHA-256 ${createHash('sha256').update(script).digest('hex')} -->`;
const html = template.replace('<!--SCRIPT-->', () => `${stamp}\n<script>\n${script}</script>`);

mkdirSync(join(here, 'dist'), { recursive: true });
const out = join(here, 'dist/verify.html');
writeFileSync(out, html);
console.log(`wrote ${out} (${html.length} bytes; worker ${workerSource.length} bytes)`);
