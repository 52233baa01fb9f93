/**
 * The main job, end to end on one machine: start a registry on loopback, push an image made
 * from /usr/share/doc, index it with `clip index`, mount it with `clip mount`, and read a file
 * lazily. Run with `npm run demo`.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pushImage } from '../test/harness/image-builder.js';
import { startRegistry } from '../test/harness/registry.js';
import { run, runClip, startClipMount } from '../test/helpers/processes.js';

const SOURCE_PARENT = '/usr/share';
const SOURCE_DIR = 'doc';

const work = await mkdtemp(join(tmpdir(), 'clip-demo-'));
const registry = await startRegistry();
try {
  const tar = await tarOf(SOURCE_PARENT, SOURCE_DIR);
  const layer = gzipSync(tar);
  const reference = `${registry.host}/demo/docs:latest`;
  await pushImage(registry, 'demo/docs', 'latest', [{
    kind: 'raw',
    data: layer,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    diffId: `sha256:${createHash('sha256').update(tar).digest('hex')}`,
  }]);
  console.log(`pushed ${reference}: one layer, ${(layer.length / 1e6).toFixed(1)} MB compressed`);

  const archive = join(work, 'docs.clip');
  const indexed = await runClip(['index', reference, '-o', archive]);
  if (indexed.code !== 0) throw new Error(indexed.stderr);
  process.stdout.write(indexed.stdout);

  const mountPoint = join(work, 'mnt');
  const mount = await startClipMount(archive, mountPoint);
  try {
    const packages = await readdir(join(mountPoint, SOURCE_DIR));
    const first = packages.find((name) => name !== '') ?? '';
    const files = await readdir(join(mountPoint, SOURCE_DIR, first));
    const sample = join(mountPoint, SOURCE_DIR, first, files[0] ?? '');
    const started = process.hrtime.bigint();
    const bytes = await readFile(sample);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(`mounted at ${mountPoint}: ${packages.length} entries in /${SOURCE_DIR}`);
    console.log(`first read of ${sample.slice(mountPoint.length)}: ${bytes.length} bytes in ${ms.toFixed(1)} ms, fetched lazily from the registry`);
  } finally {
    await mount.stop();
  }
  console.log('unmounted; done');
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}

async function tarOf(parent: string, dir: string): Promise<Buffer> {
  const file = join(work, 'layer.tar');
  const result = await run('tar', ['-cf', file, '-C', parent, dir]);
  if (result.code !== 0 && result.code !== 1) throw new Error(`tar failed: ${result.stderr}`);
  return readFile(file);
}
