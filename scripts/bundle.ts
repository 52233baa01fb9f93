/**
 * Bundles the compiled `clip` command and the index worker into dist/bundle/ with esbuild, as
 * CommonJS.
 *
 * Why a bundle: Node 20 loads ES modules one file at a time (resolve, read, compile, link), about
 * 1.5 ms each here. `clip index` needs some 70 of our modules on the main thread and as many again
 * in its worker, so a fresh `clip index` spent more time loading code than fetching the manifest.
 *
 * Why CommonJS: even as one file, an ES module costs a fresh process more than the same code as
 * CommonJS (Node's ES module loader starts up, and each npm package it imports is read through the
 * CommonJS interop). A cold `clip index` of golang-src took about 50 ms less (docs/performance.md).
 * CommonJS output cannot be split into chunks, so the code each command loads on demand (FUSE,
 * gRPC) is in the one file but runs only when needed; npm packages stay outside and are required
 * when first used, as before.
 *
 * The bundle is made from tsc's output, so it runs exactly the code the tests import. Our package
 * is `"type": "module"`, so dist/bundle/ gets a package.json of its own saying CommonJS. Each worker
 * (`layer-worker.js` for indexing, `inflate-worker.js` for cold reads) is an entry of its own, found
 * next to the code that starts it (`new URL('./layer-worker.js', import.meta.url)`). bin/clip runs the bundle.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { build } from 'esbuild';

const OUT_DIR = 'dist/bundle';

/** npm packages stay outside the bundle, except commander: every command loads it. */
const packageJson = JSON.parse(await readFile('package.json', 'utf8')) as { dependencies: Record<string, string> };
const EXTERNAL = Object.keys(packageJson.dependencies).filter((name) => name !== 'commander');

await rm(OUT_DIR, { recursive: true, force: true });
await mkdir(OUT_DIR, { recursive: true });
await writeFile(`${OUT_DIR}/package.json`, `${JSON.stringify({ type: 'commonjs' })}\n`);
await build({
  entryPoints: {
    clip: 'dist/src/cli/main.js',
    'layer-worker': 'dist/src/clipcore/image/layer-worker.js',
    'inflate-worker': 'dist/src/clipcore/compression/inflate-worker.js',
  },
  outdir: OUT_DIR,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  // CommonJS has no import.meta: each output file stands in its own URL.
  define: { 'import.meta.url': '__clipModuleUrl' },
  banner: { js: "const __clipModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  sourcemap: true,
  logLevel: 'warning',
});
