/**
 * A test image for the read-path tests: pushed to a real registry, indexed through a counting,
 * fault-injecting proxy (so the archive records the proxy as its registry and every byte a mount
 * fetches is counted there). About 21 MiB uncompressed in two gzip layers, 1 MiB spans.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { createFromOCIImage } from '../../src/clipcore/image/create-from-oci.js';
import { startCountingProxy, type CountingProxy } from '../harness/counting-proxy.js';
import { pushImageDetailed } from '../harness/image-builder.js';
import { startRegistry, type RegistryHandle } from '../harness/registry.js';
import { buildTarLayer, contentBytes, patternContent, type FileContent, type LayerEntry, type TarLayer } from '../harness/tar-layer.js';
import { fuseMountsUnder, unmountAllUnder } from './mounts.js';
import { run } from './processes.js';

export interface ReadPathImage {
  registry: RegistryHandle;
  proxy: CountingProxy;
  archive: string;
  /** File path in the image → sha256 hex of its content. */
  files: Map<string, string>;
  /** File path in the image → its content (generated again on each call). */
  content(path: string): Promise<Buffer>;
  layerDigests: string[];
  stop(): Promise<void>;
}

/** Compressible text, so that spans inflate with real back-references into their windows. */
function text(size: number, seed: number): Buffer {
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const line = `line ${i} of text file ${seed}: the quick brown fox jumps over the lazy dog ${(i * 7919 + seed) % 1000}\n`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

export async function setupReadPathImage(work: string): Promise<ReadPathImage> {
  const registry = await startRegistry();
  let proxy: CountingProxy | undefined;
  try {
    const contents: Array<[string, FileContent]> = [
      ['big.bin', patternContent(8 * 1024 * 1024 + 4321, 1)],
      ...['a', 'b', 'c', 'd', 'e'].map((name, i): [string, FileContent] => [`small/${name}.txt`, text(100_000 + i, i)]),
    ];
    const second: Array<[string, FileContent]> = [
      ['data/one.bin', patternContent(5 * 1024 * 1024, 2)],
      ['data/two.bin', patternContent(5 * 1024 * 1024 - 17, 3)],
      ['data/three.txt', text(3 * 1024 * 1024, 9)],
    ];
    const layer = (entries: Array<[string, FileContent]>): TarLayer => {
      const dirs = [...new Set(entries.map(([path]) => path.split('/').slice(0, -1).join('/')).filter((dir) => dir !== ''))];
      const items: LayerEntry[] = dirs.map((dir): LayerEntry => ({ type: 'dir', path: dir }));
      for (const [path, content] of entries) items.push({ type: 'file', path, content });
      return buildTarLayer(items);
    };
    const pushed = await pushImageDetailed(registry, 'readpath/app', 'v1', [layer(contents), layer(second)]);
    proxy = await startCountingProxy(registry.host);
    const archive = join(work, 'image.clip');
    await createFromOCIImage({ imageRef: `${proxy.host}/readpath/app:v1`, outputPath: archive, checkpointMiB: 1 });
    const files = new Map<string, string>();
    for (const [path, content] of [...contents, ...second]) {
      files.set(path, createHash('sha256').update(await contentBytes(content)).digest('hex'));
    }
    proxy.resetStats();
    const proxyHandle = proxy;
    return {
      registry,
      proxy,
      archive,
      files,
      content: async (path) => {
        const found = [...contents, ...second].find(([name]) => name === path);
        if (found === undefined) throw new Error(`no file ${path} in the read-path image`);
        return contentBytes(found[1]);
      },
      layerDigests: pushed.layers.map((l) => l.digest),
      stop: async () => {
        await proxyHandle.close();
        await registry.stop();
      },
    };
  } catch (err) {
    await proxy?.close();
    await registry.stop();
    throw err;
  }
}

/** sha256sum of a path, from a child process (never block on a mount this process serves). */
export async function hashOf(path: string): Promise<{ hash?: string; eio: boolean; stderr: string }> {
  const result = await run('sha256sum', [path]);
  if (result.code === 0) return { hash: result.stdout.split(' ')[0] as string, eio: false, stderr: result.stderr };
  return { eio: /Input\/output error/.test(result.stderr), stderr: result.stderr };
}

/**
 * Registers a suite's before and after hooks: the image in a fresh temporary directory (handed to
 * `use`), and afterwards every mount under it gone, the registry stopped, the directory removed.
 */
export function withReadPathImage(prefix: string, use: (work: string, image: ReadPathImage) => void): void {
  let work: string | undefined;
  let image: ReadPathImage | undefined;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), prefix));
    image = await setupReadPathImage(work);
    use(work, image);
  });
  after(async () => {
    if (work === undefined) return;
    await unmountAllUnder(work);
    await image?.stop();
    assert.deepEqual(await fuseMountsUnder(work), []);
    await rm(work, { recursive: true, force: true });
  });
}
