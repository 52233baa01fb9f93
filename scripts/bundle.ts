/**
 * Bundles the compiled `clip` command and the index worker into dist/bundle/ with esbuild.
 *
 * Why: Node 20 loads ES modules one file at a time (resolve, read, compile, link), about 1.5 ms
 * each here. `clip index` needs some 70 of our modules on the main thread and as many again in its
 * worker, so a fresh `clip index` spent more time loading code than fetching the manifest. One
 * file per entry loads in well under half the time (docs/performance.md has the figures).
 *
 * The bundle is made from tsc's output, so it runs exactly the code the tests import. Modules the
 * command loads only when it needs them (FUSE, gRPC, the S3 SDK) stay separate chunks, loaded on
 * demand as before. The worker must be an entry of its own, named `layer-worker.js` next to the
 * code that starts it (`new URL('./layer-worker.js', import.meta.url)`). bin/clip runs the bundle.
 */
import { readFile, rm } from 'node:fs/promises';
import { build } from 'esbuild';

const OUT_DIR = 'dist/bundle';

/** npm packages stay outside the bundle, except commander: every command loads it, and its 7 files cost ~20 ms. */
const packageJson = JSON.parse(await readFile('package.json', 'utf8')) as { dependencies: Record<string, string> };
const EXTERNAL = Object.keys(packageJson.dependencies).filter((name) => name !== 'commander');

await rm(OUT_DIR, { recursive: true, force: true });
await build({
  entryPoints: {
    clip: 'dist/src/cli/main.js',
    'layer-worker': 'dist/src/clipcore/image/layer-worker.js',
  },
  outdir: OUT_DIR,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  // Bundled CommonJS (commander) calls require() for Node's own modules: give it a real one.
  banner: { js: "import { createRequire as __clipCreateRequire } from 'node:module'; const require = __clipCreateRequire(import.meta.url);" },
  sourcemap: true,
  logLevel: 'warning',
});
