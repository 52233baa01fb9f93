/**
 * OCI images end to end (issue #3): images pushed to a real registry (Debian's docker-registry),
 * indexed into oci-mode .clip archives, read through ArchiveReader and through real FUSE mounts
 * served by `clip mount` child processes, and compared with the same image unpacked by skopeo +
 * umoci. Also: multi-platform indexes, random access into a 200+ MiB gzip layer (bytes fetched
 * per read, measured through a counting proxy), auth and TLS, bad input, and the CLI's output.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { SectionKind } from '../src/clipcore/archive/format.js';
import { decodeLayerIndexes } from '../src/clipcore/image/layer-index-codec.js';
import {
  ArchiveReader,
  createFromOCIImage,
  hostPlatform,
  type ClipErrorCode,
  type ImageMeta,
  type IndexProgress,
  type RegistryClientOptions,
} from '../src/clipcore/index.js';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy.js';
import { expectClipError } from './harness/expect-error.js';
import { freePort } from './harness/free-port.js';
import { pushImage, pushImageDetailed, pushIndex, tarBytes, type LayerInput, type PushedImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { buildTarLayer, contentBytes, patternContent } from './harness/tar-layer.js';
import { fuseMountsUnder, unmountAllUnder } from './helpers/mounts.js';
import { runClip } from './helpers/processes.js';
import { textContent, type TextContent } from './helpers/oci-image-text.js';
import {
  BIG_FILE_BYTES,
  BIG_FILE_SEED,
  buildGnuLayer,
  edgeLayers,
  GNU_LONG_DIR,
  GNU_LONG_NAME,
  GNU_LONG_TARGET,
  IMPLIED_DIRS,
  LONG_NAME,
  LONG_PATH_DIR,
  UNICODE_NAME,
} from './helpers/oci-image-edge.js';
import { assertEmptyDir, comparable, linkGroups, snapshotOf, unpackWithUmoci, withClipMount } from './helpers/oci-image-tools.js';
import type { TreeSnapshot } from './helpers/snapshot-tree.js';

const sha256hex = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

let work: string;
let registry: RegistryHandle;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-oci-image-'));
  registry = await startRegistry();
});

after(async () => {
  let leftover: string[] = [];
  try {
    if (work) {
      leftover = await fuseMountsUnder(work);
      await unmountAllUnder(work);
    }
  } finally {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }
  assert.deepEqual(leftover, [], 'FUSE mounts were left behind');
});

describe('an image with every edge case across layers', () => {
  let ociImage: PushedImage;
  let dockerImage: PushedImage;
  let ociArchive: string;
  let dockerArchive: string;
  let umociRoot: string;
  let umociSnapshot: TreeSnapshot;

  before(async () => {
    const scratch = join(work, 'edge');
    await mkdir(scratch);
    const gnuTar = await buildGnuLayer(scratch);
    // The OCI variant: layers gzip, uncompressed (GNU tar), zstd, gzip; the manifest carries no
    // mediaType field (only the Content-Type header says what it is).
    ociImage = await pushImageDetailed(registry, 'edge/img', 'oci', edgeLayers(gnuTar, 'zstd', 'oci'), {
      omitMediaType: true,
      config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
    });
    // The Docker schema 2 variant: the same layers, the middle one gzip (umoci cannot unpack zstd).
    dockerImage = await pushImageDetailed(registry, 'edge/img', 'docker', edgeLayers(gnuTar, 'gzip', 'docker'), { mediaTypes: 'docker' });
    ociArchive = join(scratch, 'oci.clip');
    dockerArchive = join(scratch, 'docker.clip');
    await createFromOCIImage({ imageRef: `${registry.host}/edge/img:oci`, outputPath: ociArchive, checkpointMiB: 1 });
    await createFromOCIImage({ imageRef: `${registry.host}/edge/img:docker`, outputPath: dockerArchive, checkpointMiB: 1 });
    umociRoot = await unpackWithUmoci(registry.host, 'edge/img', 'docker', scratch, 'docker');
    umociSnapshot = await snapshotOf(umociRoot);
  });

  test('records both manifests, their media types and each layer\'s compression', async () => {
    for (const [archive, image, manifestType, compressions] of [
      [ociArchive, ociImage, 'application/vnd.oci.image.manifest.v1+json', ['gzip', 'none', 'zstd', 'gzip']],
      [dockerArchive, dockerImage, 'application/vnd.docker.distribution.manifest.v2+json', ['gzip', 'none', 'gzip', 'gzip']],
    ] as const) {
      const reader = await ArchiveReader.open(archive);
      try {
        assert.equal(reader.index.meta.storage.mode, 'oci');
        const meta = reader.index.meta.image as ImageMeta;
        assert.equal(meta.registry, registry.host);
        assert.equal(meta.repository, 'edge/img');
        assert.equal(meta.manifestDigest, image.digest);
        assert.equal(meta.manifestMediaType, manifestType);
        assert.deepEqual(meta.layers.map((layer) => layer.compression), compressions);
        assert.deepEqual(meta.layers.map((layer) => layer.digest), image.layers.map((layer) => layer.digest));
      } finally {
        await reader.close();
      }
    }
    assert.ok(!JSON.parse(ociImage.manifest.toString()).mediaType, 'the OCI manifest was pushed without mediaType');
  });

  test('the merged tree is what the layers say (checked without any other tool)', async () => {
    const reader = await ArchiveReader.open(ociArchive);
    try {
      const exists = (path: string): boolean => {
        try {
          reader.stat(path);
          return true;
        } catch {
          return false;
        }
      };
      const text = async (path: string): Promise<string> => (await reader.readFile(path)).toString();
      for (const gone of ['dir-to-whiteout', 'hl/orig', 'opq/lower-a', 'opq/lower-sub', 'never-existed', GNU_LONG_DIR]) {
        assert.ok(!exists(gone), `${gone} should be gone`);
      }
      // Opaque directory: the lower entries are hidden, both of its own layer's entries stay.
      assert.deepEqual(reader.list('opq').map((entry) => entry.name), ['new-after', 'new-before']);
      // Replacements across types; a whited-out file recreated above as a directory.
      assert.equal(await text('becomes-file'), 'now a file\n');
      assert.equal(reader.stat('becomes-dir').type, 'directory');
      assert.equal(reader.stat('becomes-dir').mode, 0o750);
      assert.equal(await text('becomes-dir/inner'), 'inner\n');
      assert.equal(reader.stat('file-to-whiteout').type, 'directory');
      assert.equal(await text('file-to-whiteout/now-a-dir'), 'recreated as a directory\n');
      // Hard links: the link whose original name was whited out keeps its content, alone.
      assert.equal(await text('hl/link-to-orig'), 'original of a link whose name goes away\n');
      assert.equal(reader.stat('hl/link-to-orig').nlink, 1);
      const three = reader.stat('hl/three-a');
      assert.equal(three.nlink, 3);
      assert.deepEqual([reader.stat('hl/three-b').ino, reader.stat('etc/three-c').ino], [three.ino, three.ino]);
      assert.deepEqual([three.mode, three.uid, three.gid], [0o640, 7, 8]);
      // A link in an upper layer to a lower layer's file.
      assert.equal(reader.stat('etc/passwd').nlink, 2);
      assert.equal(reader.stat('etc/passwd-link').ino, reader.stat('etc/passwd').ino);
      // Directory over directory: upper attributes, lower contents.
      assert.equal(reader.stat('etc').mode, 0o751);
      assert.equal(reader.stat('etc').mtimeNs, BigInt(Date.parse('2023-06-07T08:09:10Z')) * 1_000_000n);
      assert.equal(await text('etc/ssl/cert.pem'), 'upper cert\n');
      assert.equal(reader.stat('etc/ssl').mode, 0o700);
      // Symlinks, special files.
      assert.equal(reader.readlink('links/relative'), '../etc/passwd');
      assert.equal(reader.readlink('links/absolute'), '/etc/passwd');
      assert.equal(reader.readlink('links/dangling'), 'does/not/exist');
      // Hard links to a symlink and to a fifo: one inode, two names.
      assert.equal(reader.stat('links/hard-to-symlink').ino, reader.stat('links/relative').ino);
      assert.equal(reader.stat('links/relative').nlink, 2);
      assert.equal(reader.stat('dev/fifo-link').ino, reader.stat('dev/fifo').ino);
      assert.equal(reader.stat('dev/fifo').type, 'fifo');
      assert.deepEqual(pickDevice(reader.stat('dev/null')), ['char', 1, 3, 0o666]);
      assert.deepEqual(pickDevice(reader.stat('dev/loop7')), ['block', 7, 7, 0o660]);
      // Names: PAX long names and paths, GNU long names and link targets, non-ASCII.
      assert.equal(await text(LONG_NAME), 'long name\n');
      assert.equal(await text(`${LONG_PATH_DIR}/file-at-the-end-of-a-long-path.txt`), 'long path\n');
      assert.equal(await text(UNICODE_NAME), 'unicode\n');
      assert.equal(await text(GNU_LONG_NAME), 'gnu long name\n');
      assert.equal(reader.stat('gnu/hard-to-long-name').ino, reader.stat(GNU_LONG_NAME).ino);
      assert.equal(reader.stat(GNU_LONG_NAME).nlink, 2);
      assert.deepEqual([reader.stat(GNU_LONG_NAME).uid, reader.stat(GNU_LONG_NAME).gid, reader.stat(GNU_LONG_NAME).mode], [4242, 4343, 0o640]);
      assert.equal(reader.readlink('gnu/long-symlink'), GNU_LONG_TARGET);
      assert.equal(await text('gnu/ünïcödé-gnu.txt'), 'gnu unicode\n');
      // Attributes.
      assert.deepEqual(reader.stat('xattr-file').xattrs.map((x) => [x.name, x.value.toString()]), [
        ['user.comment', 'a comment'],
        ['user.mime_type', 'text/plain'],
      ]);
      assert.deepEqual(reader.stat('xattr-dir').xattrs.map((x) => [x.name, x.value.toString()]), [['user.dir', 'on a dir']]);
      assert.equal(reader.stat('bin/setuid-tool').mode, 0o4755);
      assert.equal(reader.stat('shared-group').mode, 0o2775);
      assert.equal(reader.stat('sticky-tmp').mode, 0o1777);
      assert.equal(reader.stat('empty').size, 0);
      assert.equal((await reader.readFile('etc/empty-too')).length, 0);
      assert.deepEqual([reader.stat('owned').uid, reader.stat('owned').gid], [1000, 1000]);
      assert.deepEqual([reader.stat('odd-owner').uid, reader.stat('odd-owner').gid], [123, 456]);
      assert.equal(reader.stat('precise-mtime').mtimeNs, 1_700_000_000_123_456_789n);
      assert.deepEqual(pickDirectory(reader.stat('implicit/deeper')), [0o755, 0, 0, 0n]);
      // The big file, read whole and in a slice across checkpoints (1 MiB apart).
      const big = await contentBytes(patternContent(BIG_FILE_BYTES, BIG_FILE_SEED));
      assert.equal(sha256hex(await reader.readFile('big/big.bin')), sha256hex(big));
      assert.deepEqual(await reader.read('big/big.bin', 3_000_000, 2_500_000), big.subarray(3_000_000, 5_500_000));
    } finally {
      await reader.close();
    }
  });

  test('indexing on the calling thread too (as clip index does) writes the same archive, byte for byte', async () => {
    // Alone (concurrency 1), then beside a worker that takes the layers the calling thread has not.
    for (const concurrency of [1, 2]) {
      const outputPath = join(work, 'edge', `calling-thread-${concurrency}.clip`);
      await createFromOCIImage({ imageRef: `${registry.host}/edge/img:oci`, outputPath, checkpointMiB: 1, concurrency, useCallingThread: true });
      assert.ok((await readFile(outputPath)).equals(await readFile(ociArchive)), `concurrency ${concurrency}`);
    }
  });

  test('a FUSE mount matches the image unpacked by skopeo + umoci', async () => {
    const mountPoint = join(work, 'edge-docker-mnt');
    const devices = ['dev/null', 'dev/loop7'];
    const [mounted, rdevs] = await withClipMount(dockerArchive, mountPoint, [], '', () =>
      Promise.all([snapshotOf(mountPoint), Promise.all(devices.map(async (path) => (await lstat(join(mountPoint, path))).rdev))]),
    );
    assert.deepEqual(rdevs, await Promise.all(devices.map(async (path) => (await lstat(join(umociRoot, path))).rdev)));
    assert.deepEqual(Object.keys(mounted).sort(), Object.keys(umociSnapshot).sort());
    assert.deepEqual(comparable(mounted, umociOmissions), comparable(umociSnapshot, umociOmissions));
    assert.deepEqual(linkGroups(mounted), linkGroups(umociSnapshot));
  });

  test('the zstd variant mounts exactly as the gzip variant (umoci has no zstd)', async () => {
    // umoci 0.4 only unpacks gzip and plain tar layers, so the OCI variant (zstd middle layer, no
    // manifest mediaType) is compared with the Docker variant, whose mount matched umoci above.
    const ociMount = join(work, 'edge-oci-mnt');
    const dockerMount = join(work, 'edge-docker-mnt2');
    const [oci, docker] = await withClipMount(ociArchive, ociMount, [], '', () =>
      withClipMount(dockerArchive, dockerMount, [], '', () => Promise.all([snapshotOf(ociMount), snapshotOf(dockerMount)])),
    );
    assert.deepEqual(oci, docker);
  });

  test('ArchiveReader (no FUSE) returns every path and byte as umoci unpacked them', async () => {
    for (const archive of [dockerArchive, ociArchive]) {
      const reader = await ArchiveReader.open(archive);
      try {
        const paths = [...reader.index.walk()].map(({ path }) => `/${path}`);
        assert.deepEqual(paths.sort(), Object.keys(umociSnapshot).sort());
            for (const path of paths) {
          const expected = umociSnapshot[path] as TreeSnapshot[string];
          const inode = reader.stat(path.slice(1));
          const actual: TreeSnapshot[string] = {
            type: inode.type,
            mode: inode.mode,
            uid: inode.uid,
            gid: inode.gid,
            size: inode.type === 'directory' ? 0 : inode.size,
            mtimeMs: Number(inode.mtimeNs / 1_000_000n),
            nlink: inode.nlink,
            ino: expected.ino,
            xattrs: Object.fromEntries(inode.xattrs.map((x) => [x.name, x.value.toString('hex')])),
          };
          if (inode.type === 'symlink') actual.linkTarget = reader.readlink(path.slice(1));
          if (inode.type === 'file') actual.sha256 = sha256hex(await reader.readFile(path.slice(1)));
          assert.deepEqual(comparable({ [path]: actual }, umociOmissions), comparable({ [path]: expected }, umociOmissions), path);
        }
      } finally {
        await reader.close();
      }
    }
  });

  test(
    'an entry under a lower layer\'s symlink to a directory lands in the directory, as umoci (and containerd) unpack it',
    async () => {
      const scratch = join(work, 'parent-symlink');
      await mkdir(scratch);
      await pushImage(registry, 'edge/parent-symlink', 'v1', [
        buildTarLayer([
          { type: 'dir', path: 'usr' },
          { type: 'dir', path: 'usr/lib' },
          { type: 'file', path: 'usr/lib/a', content: 'a\n' },
          { type: 'symlink', path: 'lib', target: 'usr/lib' },
        ]),
        buildTarLayer([{ type: 'file', path: 'lib/b', content: 'b\n' }]),
      ]);
      const root = await unpackWithUmoci(registry.host, 'edge/parent-symlink', 'v1', scratch, 'parent-symlink');
      assert.equal(await readlink(join(root, 'lib')), 'usr/lib');
      assert.equal(await readFile(join(root, 'usr/lib/b'), 'utf8'), 'b\n');
      const archive = join(scratch, 'parent-symlink.clip');
      await createFromOCIImage({ imageRef: `${registry.host}/edge/parent-symlink:v1`, outputPath: archive });
      const reader = await ArchiveReader.open(archive);
      try {
        assert.equal(reader.stat('lib').type, 'symlink');
        assert.equal((await reader.readFile('usr/lib/b')).toString(), 'b\n');
      } finally {
        await reader.close();
      }
    },
  );

  test('umoci itself saw the edge cases (the comparison is not vacuous)', async () => {
    assert.equal(await readlink(join(umociRoot, 'gnu/long-symlink')), GNU_LONG_TARGET);
    assert.equal(await readFile(join(umociRoot, 'opq/new-before'), 'utf8'), 'new before the marker\n');
    assert.equal(umociSnapshot['/hl/three-a']?.nlink, 3);
    assert.equal(umociSnapshot['/dev/null']?.type, 'char');
  });
});

function pickDirectory(inode: { mode: number; uid: number; gid: number; mtimeNs: bigint }): unknown[] {
  return [inode.mode, inode.uid, inode.gid, inode.mtimeNs];
}

function pickDevice(inode: { type: string; rdevMajor?: number; rdevMinor?: number; mode: number }): unknown[] {
  return [inode.type, inode.rdevMajor, inode.rdevMinor, inode.mode];
}

/**
 * Everything the snapshot records is compared with umoci's rootfs: type, mode (with setuid,
 * setgid, sticky), uid, gid, size, content sha256, symlink target, xattrs, nlink, hard-link groups
 * (inode numbers themselves differ) and mtime to the millisecond (FUSE shows milliseconds; umoci
 * sets every mtime from the tar, directories' included, after it has changed their contents).
 * Device numbers are not in the snapshot: they are compared separately.
 *
 * Not comparable: the mtime of directories no tar entry describes (the root, implied parents).
 * umoci creates them at unpack time (sometimes restoring the root to 0); clip gives them mtime 0
 * so that the archive is deterministic. Their other attributes are compared.
 */
function umociOmissions(path: string): (keyof TreeSnapshot[string])[] {
  return path === '/' || IMPLIED_DIRS.includes(path) ? ['mtimeMs'] : [];
}

/** A small image: a directory, a text file naming `tag`, a 300 kB binary file. */
function smallLayers(tag: string, compression: 'gzip' | 'zstd' | 'none' = 'gzip'): LayerInput[] {
  return [
    buildTarLayer(
      [
        { type: 'dir', path: 'app' },
        { type: 'file', path: 'app/hello.txt', content: `hello from ${tag}\n` },
        { type: 'file', path: 'app/data.bin', content: patternContent(300_000, 3) },
      ],
      { compression },
    ),
  ];
}

/** A fresh, empty output directory for one case. */
async function outputDir(name: string): Promise<string> {
  const dir = join(work, 'out', name);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** `clip index` failed as the CLI must: exit 1, one line on stderr naming the code, nothing at the output. */
async function expectCliFailure(args: string[], code: ClipErrorCode, dir: string, pattern?: RegExp, input?: string): Promise<string> {
  const result = await runClip(args, input === undefined ? undefined : { input });
  assert.equal(result.code, 1, `exit code ${result.code}: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0] as string, new RegExp(`^clip: .*\\[${code}\\]$`));
  if (pattern !== undefined) assert.match(lines[0] as string, pattern);
  assert.equal(result.stdout, '');
  await assertEmptyDir(dir);
  return lines[0] as string;
}

describe('a multi-platform index', () => {
  let amd64: string;
  let arm64: string;
  let indexDigest: string;
  const ref = (): string => `${registry.host}/multi/app:latest`;

  before(async () => {
    amd64 = await pushImage(registry, 'multi/app', undefined, smallLayers('amd64'), { platform: { os: 'linux', architecture: 'amd64' } });
    arm64 = await pushImage(registry, 'multi/app', undefined, smallLayers('arm64'), { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    indexDigest = await pushIndex(registry, 'multi/app', 'latest', [
      { platform: { os: 'linux', architecture: 'amd64' }, manifestDigest: amd64 },
      { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, manifestDigest: arm64 },
    ]);
  });

  async function expectPlatform(archive: string, manifestDigest: string, platform: ImageMeta['platform'], hello: string): Promise<void> {
    const reader = await ArchiveReader.open(archive);
    try {
      const meta = reader.index.meta.image as ImageMeta;
      assert.equal(meta.manifestDigest, manifestDigest);
      assert.equal(meta.indexDigest, indexDigest);
      assert.deepEqual({ ...meta.platform }, platform);
      assert.equal((await reader.readFile('app/hello.txt')).toString(), hello);
    } finally {
      await reader.close();
    }
  }

  test('clip index --platform linux/arm64/v8 picks the arm64 image', async () => {
    const archive = join(await outputDir('platform-cli'), 'arm64.clip');
    const result = await runClip(['index', ref(), '-o', archive, '--platform', 'linux/arm64/v8']);
    assert.equal(result.code, 0, result.stderr);
    await expectPlatform(archive, arm64, { os: 'linux', architecture: 'arm64', variant: 'v8' }, 'hello from arm64\n');
  });

  test('the platform option picks linux/amd64; without it, the host\'s platform', async () => {
    const dir = await outputDir('platform-api');
    await createFromOCIImage({ imageRef: ref(), outputPath: join(dir, 'amd64.clip'), platform: 'linux/amd64' });
    await expectPlatform(join(dir, 'amd64.clip'), amd64, { os: 'linux', architecture: 'amd64' }, 'hello from amd64\n');
    const host = hostPlatform();
    const hostImage = host.os === 'linux' && host.architecture === 'amd64' ? 'amd64' : host.os === 'linux' && host.architecture === 'arm64' ? 'arm64' : undefined;
    const byDefault = createFromOCIImage({ imageRef: ref(), outputPath: join(dir, 'default.clip') });
    if (hostImage === undefined) {
      await expectClipError(byDefault, 'IMAGE_NOT_FOUND');
      return;
    }
    const result = await byDefault;
    assert.equal(result.manifestDigest, hostImage === 'amd64' ? amd64 : arm64);
    const reader = await ArchiveReader.open(join(dir, 'default.clip'));
    try {
      assert.equal((await reader.readFile('app/hello.txt')).toString(), `hello from ${hostImage}\n`);
    } finally {
      await reader.close();
    }
  });

  test('a platform the index lacks fails, listing the available ones', async () => {
    const dir = await outputDir('platform-missing');
    const available = /linux\/s390x; available platforms: linux\/amd64, linux\/arm64\/v8/;
    await expectClipError(createFromOCIImage({ imageRef: ref(), outputPath: join(dir, 'x.clip'), platform: 'linux/s390x' }), 'IMAGE_NOT_FOUND', available);
    await assertEmptyDir(dir);
    await expectCliFailure(['index', ref(), '-o', join(dir, 'x.clip'), '--platform', 'linux/s390x'], 'IMAGE_NOT_FOUND', dir, available);
  });
});

describe('odd but valid images, and invalid options', () => {
  test('the same layer blob twice in one manifest, and empty layers (0 bytes; a gzipped empty tar)', async () => {
    const once = buildTarLayer([{ type: 'file', path: 'x', content: 'from the repeated layer\n' }], { compression: 'gzip' });
    const middle = buildTarLayer([{ type: 'whiteout', path: 'x' }, { type: 'file', path: 'y', content: 'y\n' }], { compression: 'zstd' });
    const image = await pushImageDetailed(registry, 'odd/repeat', 'v1', [
      once,
      { kind: 'raw', data: Buffer.alloc(0), mediaType: 'application/vnd.oci.image.layer.v1.tar' },
      middle,
      { kind: 'raw', data: gzipSync(Buffer.alloc(1024)), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
      once,
    ]);
    assert.equal(image.layers[0]?.digest, image.layers[4]?.digest);
    const archive = join(await outputDir('repeat'), 'repeat.clip');
    const progress: IndexProgress[] = [];
    const result = await createFromOCIImage({ imageRef: `${registry.host}/odd/repeat:v1`, outputPath: archive, onProgress: (p) => progress.push(p) });
    assert.equal(result.layers, 5);
    // Progress counts finished layers one by one and ends with every byte of every layer.
    const total = image.layers.reduce((sum, layer) => sum + layer.size, 0);
    assert.deepEqual([...new Set(progress.map((p) => p.layersDone))], [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(progress.at(-1), { layersDone: 5, layers: 5, bytesDone: total, bytes: total });
    assert.ok(progress.every((p, i) => i === 0 || p.bytesDone >= (progress[i - 1] as IndexProgress).bytesDone));
    const reader = await ArchiveReader.open(archive);
    try {
      assert.deepEqual(reader.list('').map((entry) => entry.name), ['x', 'y']);
      assert.equal((await reader.readFile('x')).toString(), 'from the repeated layer\n');
      assert.equal(reader.stat('x').location?.layer, 4);
      assert.equal((await reader.readFile('y')).toString(), 'y\n');
    } finally {
      await reader.close();
    }
  });

  test('invalid options fail with INVALID_ARGUMENT before anything is fetched or written', async () => {
    const dir = await outputDir('bad-options');
    const imageRef = `${registry.host}/odd/repeat:v1`;
    const outputPath = join(dir, 'x.clip');
    await expectClipError(createFromOCIImage({ imageRef, outputPath, concurrency: Number.NaN }), 'INVALID_ARGUMENT', /concurrency/);
    await expectClipError(createFromOCIImage({ imageRef, outputPath, concurrency: 1.5 }), 'INVALID_ARGUMENT', /concurrency/);
    await expectClipError(createFromOCIImage({ imageRef, outputPath, checkpointMiB: 32 }), 'INVALID_ARGUMENT', /checkpoint/i);
    await expectClipError(createFromOCIImage({ imageRef, outputPath, platform: 'linux' }), 'INVALID_ARGUMENT', /os\/arch/);
    await expectClipError(createFromOCIImage({ imageRef, outputPath: join(dir, 'missing-dir', 'x.clip') }), 'INVALID_ARGUMENT', /not a directory/);
    await assertEmptyDir(dir);
    await expectCliFailure(['index', imageRef, '-o', outputPath, '--concurrency', 'many'], 'INVALID_ARGUMENT', dir, /concurrency/);
    await expectCliFailure(['index', imageRef, '-o', outputPath, '--checkpoint-mib', '0'], 'INVALID_ARGUMENT', dir, /checkpoint/i);
  });
});

describe('random access into a 200+ MiB gzip layer', () => {
  const FILE_BYTES = [52, 53, 51, 54].map((mib, i) => mib * 1024 * 1024 + 1_000 * i + 7);
  const READS = 1_000;
  let files: TextContent[];
  let proxy: CountingProxy;
  let archive: string;
  let layerDigest: string;
  let layerSize: number;

  before(async () => {
    files = FILE_BYTES.map((size, i) => textContent(size, i + 1));
    const image = await pushImageDetailed(registry, 'big/text', 'v1', [
      buildTarLayer(
        [{ type: 'dir', path: 'big' }, ...files.map((content, i) => ({ type: 'file' as const, path: `big/file-${i}.txt`, content }))],
        { compression: 'gzip' },
      ),
    ]);
    layerDigest = (image.layers[0] as PushedImage['layers'][number]).digest;
    layerSize = (image.layers[0] as PushedImage['layers'][number]).size;
    proxy = await startCountingProxy(registry.url);
    archive = join(await outputDir('big'), 'big.clip');
  });

  after(async () => {
    await proxy?.close();
  });

  test('indexing streams the layer once, with default checkpoints', async () => {
    const result = await createFromOCIImage({ imageRef: `${proxy.host}/big/text:v1`, outputPath: archive });
    assert.ok(result.uncompressedImageBytes > 200 * 1024 * 1024, `${result.uncompressedImageBytes} bytes uncompressed`);
    assert.equal(proxy.bytesFor(layerDigest), layerSize);
    assert.equal(proxy.requestsFor(layerDigest), 1);
  });

  test('1,000 random small reads each fetch only the spans they touch', async (t) => {
    // No memory cache and no read-ahead: every read goes to the registry for exactly what it needs
    // (read-ahead is for sequential readers; a random read that lands near an earlier one would
    // otherwise load the next spans too).
    const reader = await ArchiveReader.open(archive, { memoryCacheBytes: 0, readAheadSpans: 0 });
    try {
      const meta = reader.index.meta.image as ImageMeta;
      const windows = reader.index.section(SectionKind.Windows)?.length ?? 0;
      const [layer] = decodeLayerIndexes(await reader.index.readSection(SectionKind.LayerIndex), meta.layers.length, windows);
      assert.ok(layer);
      const spans = layer.spans;
      const spanBytes = spans.map((span) => span.compressedEnd - span.compressedStart);
      const largestSpan = Math.max(...spanBytes);
      assert.ok(spans.length >= 100, `${spans.length} spans`);
      const spansOf = (start: number, end: number): number[] =>
        spans.flatMap((span, i) => (span.uncompressedStart < end && span.uncompressedEnd > start ? [i] : []));

      let state = 0x2545f491;
      const random = (n: number): number => {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        return (state >>> 0) % n;
      };
      const perRead: number[] = [];
      let multiSpanReads = 0;
      proxy.resetStats();
      for (let i = 0; i < READS; i++) {
        const file = random(files.length);
        const content = files[file] as TextContent;
        const path = `big/file-${file}.txt`;
        const location = reader.stat(path).location;
        assert.ok(location);
        const length = 1024 + random(63 * 1024 + 1);
        let offset = random(content.size - length + 1);
        if (i % 25 === 0) {
          // Every 25th read straddles a checkpoint on purpose.
          const inside = spans.filter((span) => span.uncompressedStart > location.offset + length && span.uncompressedStart < location.offset + content.size - length);
          const boundary = (inside[random(inside.length)] as (typeof spans)[number]).uncompressedStart - location.offset;
          offset = boundary - 1 - random(length - 1);
        }
        const touched = spansOf(location.offset + offset, location.offset + offset + length);
        const bytesBefore = proxy.bytesFor(layerDigest);
        const requestsBefore = proxy.requestsFor(layerDigest);
        const data = await reader.read(path, offset, length);
        const fetched = proxy.bytesFor(layerDigest) - bytesBefore;
        const requests = proxy.requestsFor(layerDigest) - requestsBefore;
        assert.ok(data.equals(content.slice(offset, offset + length)), `read ${i}: ${path} [${offset}, +${length}) has the wrong bytes`);
        assert.ok(fetched <= touched.length * largestSpan + 1024, `read ${i} fetched ${fetched} bytes for ${touched.length} span(s)`);
        if (touched.length === 1) {
          assert.equal(requests, 1, `read ${i}: one request for one span`);
          assert.ok(fetched <= (spanBytes[touched[0] as number] as number), `read ${i} fetched ${fetched}, more than its one span`);
        } else {
          multiSpanReads++;
        }
        perRead.push(fetched);
      }
      assert.ok(multiSpanReads >= READS / 25, `${multiSpanReads} reads straddled a checkpoint`);
      const sorted = [...perRead].sort((a, b) => a - b);
      const mean = perRead.reduce((sum, n) => sum + n, 0) / perRead.length;
      const report =
        `layer ${layerSize} bytes compressed, ${layer.uncompressedSize} uncompressed, ${spans.length} spans ` +
        `(largest ${largestSpan} compressed bytes); ${READS} reads of 1-64 KiB (${multiSpanReads} across a checkpoint): ` +
        `fetched per read mean ${Math.round(mean)}, median ${sorted[READS >> 1]}, p99 ${sorted[Math.floor(READS * 0.99)]}, max ${sorted[READS - 1]}; ` +
        `total ${proxy.bytesFor(layerDigest)} bytes in ${proxy.requestsFor(layerDigest)} requests`;
      t.diagnostic(report);
      // The same read again fetches again: nothing was served from the (disabled) cache.
      const requestsBefore = proxy.requestsFor(layerDigest);
      await reader.read('big/file-0.txt', 5_000_000, 4096);
      await reader.read('big/file-0.txt', 5_000_000, 4096);
      assert.equal(proxy.requestsFor(layerDigest) - requestsBefore, 2);
    } finally {
      await reader.close();
    }
  });
});

/** The archive's bytes, raw and with every section decompressed, contain none of `secrets`. */
async function assertNoSecrets(archive: string, secrets: string[]): Promise<void> {
  const raw = await readFile(archive);
  const reader = await ArchiveReader.open(archive);
  try {
    const sections = await Promise.all(reader.index.header.sections.map((section) => reader.index.readSection(section.kind)));
    for (const secret of secrets) {
      for (const form of [secret, Buffer.from(secret).toString('base64')]) {
        for (const blob of [raw, ...sections]) assert.ok(!blob.includes(Buffer.from(form)), `${archive} contains a secret`);
      }
    }
  } finally {
    await reader.close();
  }
}

describe('auth and transport', () => {
  let basic: RegistryHandle;
  let tls: RegistryHandle;
  let token: RegistryHandle;
  let caFile: string;
  let noDockerConfig: string;

  before(async () => {
    // One at a time, so that a failure to start one leaves the others referenced (after() stops them).
    basic = await startRegistry({ auth: 'basic' });
    tls = await startRegistry({ tls: true });
    token = await startRegistry({ auth: 'token' });
    await Promise.all([
      pushImage(basic, 'secure/app', 'v1', smallLayers('basic')),
      pushImage(tls, 'tls/app', 'v1', smallLayers('tls')),
      pushImage(token, 'tok/app', 'v1', smallLayers('token', 'zstd')),
    ]);
    caFile = join(work, 'registry-ca.pem');
    await writeFile(caFile, tls.caCert ?? '');
    noDockerConfig = join(work, 'no-docker-config');
    await mkdir(noDockerConfig, { recursive: true });
  });

  after(async () => {
    await Promise.all([basic?.stop(), tls?.stop(), token?.stop()]);
  });

  const secretsOf = (handle: RegistryHandle): string[] => [handle.password ?? '', `${handle.username}:${handle.password}`];

  /** Index with the CLI, mount with the CLI (same flags), read a file through the mount. */
  async function cliRoundTrip(name: string, ref: string, flags: string[], stdin: string, hello: string): Promise<string> {
    const dir = await outputDir(name);
    const archive = join(dir, `${name}.clip`);
    const indexed = await runClip(['index', ref, '-o', archive, '--docker-config', noDockerConfig, ...flags], { input: stdin });
    assert.equal(indexed.code, 0, indexed.stderr);
    const mountPoint = join(work, `${name}-mnt`);
    const [text, data] = await withClipMount(archive, mountPoint, ['--docker-config', noDockerConfig, ...flags], stdin, () =>
      Promise.all([readFile(join(mountPoint, 'app/hello.txt'), 'utf8'), readFile(join(mountPoint, 'app/data.bin'))]),
    );
    assert.equal(text, hello);
    assert.ok(data.equals(await contentBytes(patternContent(300_000, 3))));
    return archive;
  }

  /** Index with the API, read with ArchiveReader. */
  async function apiRoundTrip(name: string, ref: string, registryOptions: RegistryClientOptions, hello: string): Promise<string> {
    const archive = join(await outputDir(name), `${name}.clip`);
    const { auth, ...rest } = registryOptions;
    await createFromOCIImage({ imageRef: ref, outputPath: archive, auth, registry: { ...rest, dockerConfigPath: noDockerConfig } });
    const reader = await ArchiveReader.open(archive, { registry: { ...registryOptions, dockerConfigPath: noDockerConfig } });
    try {
      assert.equal((await reader.readFile('app/hello.txt')).toString(), hello);
    } finally {
      await reader.close();
    }
    return archive;
  }

  test('basic auth: --username with --password-stdin (CLI index and mount), auth (API); no secret in the .clip', async () => {
    const ref = `${basic.host}/secure/app:v1`;
    const cli = await cliRoundTrip('basic-cli', ref, ['--username', basic.username ?? '', '--password-stdin'], `${basic.password}\n`, 'hello from basic\n');
    const api = await apiRoundTrip('basic-api', ref, { auth: { username: basic.username ?? '', password: basic.password ?? '' } }, 'hello from basic\n');
    for (const archive of [cli, api]) await assertNoSecrets(archive, secretsOf(basic));
  });

  test('wrong or missing credentials: UNAUTHORIZED, never echoing a password, nothing written', async () => {
    const ref = `${basic.host}/secure/app:v1`;
    const dir = await outputDir('basic-wrong');
    const wrong = 'Wr0ng-Passw0rd-xyz';
    const err = await expectClipError(
      createFromOCIImage({ imageRef: ref, outputPath: join(dir, 'x.clip'), auth: { username: 'tester', password: wrong }, registry: { dockerConfigPath: noDockerConfig } }),
      'UNAUTHORIZED',
      /credentials rejected/,
    );
    for (const secret of [wrong, basic.password ?? '']) assert.ok(!err.message.includes(secret) && !String(err.stack).includes(secret));
    await assertEmptyDir(dir);
    const line = await expectCliFailure(
      ['index', ref, '-o', join(dir, 'x.clip'), '--docker-config', noDockerConfig, '--username', 'tester', '--password-stdin'],
      'UNAUTHORIZED',
      dir,
      undefined,
      `${wrong}\n`,
    );
    assert.ok(!line.includes(wrong));
    await expectCliFailure(['index', ref, '-o', join(dir, 'x.clip'), '--docker-config', noDockerConfig], 'UNAUTHORIZED', dir, /no credentials/);
    // Token auth, wrong password: the token server refuses.
    const tokenErr = await expectClipError(
      createFromOCIImage({ imageRef: `${token.host}/tok/app:v1`, outputPath: join(dir, 'x.clip'), auth: { username: 'tester', password: wrong }, registry: { dockerConfigPath: noDockerConfig } }),
      'UNAUTHORIZED',
    );
    assert.ok(!tokenErr.message.includes(wrong) && !tokenErr.message.includes(token.password ?? ''));
    await assertEmptyDir(dir);
  });

  test('TLS with --ca-cert (CLI index and mount) and caCertificates (API)', async () => {
    const ref = `${tls.host}/tls/app:v1`;
    await cliRoundTrip('tls-cli', ref, ['--ca-cert', caFile], '', 'hello from tls\n');
    await apiRoundTrip('tls-api', ref, { caCertificates: [tls.caCert ?? ''] }, 'hello from tls\n');
    const dir = await outputDir('tls-untrusted');
    await expectCliFailure(['index', ref, '-o', join(dir, 'x.clip'), '--docker-config', noDockerConfig], 'UNAVAILABLE', dir, /not trusted/);
  });

  test('token auth (CLI index and mount, API), a zstd layer; no secret in the .clip', async () => {
    const ref = `${token.host}/tok/app:v1`;
    const cli = await cliRoundTrip('token-cli', ref, ['--username', token.username ?? '', '--password-stdin'], `${token.password}\n`, 'hello from token\n');
    const api = await apiRoundTrip('token-api', ref, { auth: { username: token.username ?? '', password: token.password ?? '' } }, 'hello from token\n');
    for (const archive of [cli, api]) await assertNoSecrets(archive, [...secretsOf(token), token.identityToken ?? '']);
  });
});

describe('bad input: a clear error, and nothing at the output path', () => {
  let proxy: CountingProxy;
  let good: PushedImage;
  const fastFail: RegistryClientOptions = { retries: 2, retryBaseDelayMs: 5, retryMaxDelayMs: 20 };

  before(async () => {
    proxy = await startCountingProxy(registry.url);
    good = await pushImageDetailed(registry, 'bad/base', 'v1', [
      buildTarLayer([{ type: 'file', path: 'payload.bin', content: patternContent(2_000_000, 9) }], { compression: 'none' }),
      buildTarLayer([{ type: 'file', path: 'payload2.bin', content: patternContent(2_000_000, 10) }], { compression: 'gzip' }),
    ]);
    const notTar = Buffer.from('this is not a tar archive, just text\n'.repeat(40));
    await pushImage(registry, 'bad/not-a-tar', 'v1', [{ kind: 'raw', data: notTar, mediaType: 'application/vnd.oci.image.layer.v1.tar' }]);
    await pushImage(registry, 'bad/unknown-type', 'v1', [{ kind: 'raw', data: notTar, mediaType: 'application/vnd.example.thing.v1+tar' }]);
    const tar = await tarBytes(buildTarLayer([{ type: 'file', path: 'cut.bin', content: patternContent(1_000_000, 11) }], { compression: 'none' }));
    const tarGz = gzipSync(tar);
    await pushImage(registry, 'bad/truncated-tar', 'v1', [{ kind: 'raw', data: tar.subarray(0, 200_000), mediaType: 'application/vnd.oci.image.layer.v1.tar' }]);
    await pushImage(registry, 'bad/truncated-gzip', 'v1', [
      { kind: 'raw', data: tarGz.subarray(0, 400_000), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
    ]);
  });

  after(async () => {
    await proxy?.close();
  });

  /** Every error seen, printed as diagnostics at the end (they are what users read). */
  const messages: string[] = [];

  const digestOf = (layer: number): string => (good.layers[layer] as PushedImage['layers'][number]).digest;
  const blobGet = (layer: number): RegExp => new RegExp(`^GET /v2/bad/base/blobs/${digestOf(layer)}`);

  async function apiFailure(name: string, imageRef: string, code: ClipErrorCode, pattern?: RegExp, registryOptions: RegistryClientOptions = fastFail): Promise<void> {
    const dir = await outputDir(name);
    const err = await expectClipError(createFromOCIImage({ imageRef, outputPath: join(dir, 'out.clip'), registry: registryOptions }), code, pattern);
    messages.push(`${name}: [${err.code}] ${err.message}`);
    await assertEmptyDir(dir);
  }

  async function cliFailure(name: string, imageRef: string, code: ClipErrorCode, pattern?: RegExp): Promise<void> {
    const dir = await outputDir(`${name}-cli`);
    messages.push(`${name} (CLI): ${await expectCliFailure(['index', imageRef, '-o', join(dir, 'out.clip')], code, dir, pattern)}`);
  }

  test('a malformed reference: INVALID_REFERENCE', async () => {
    await apiFailure('bad-ref', `${registry.host}/Bad_Repo:v1`, 'INVALID_REFERENCE', /invalid image reference/);
    await apiFailure('bad-ref-tag', `${registry.host}/bad/base:no tag!`, 'INVALID_REFERENCE');
    await cliFailure('bad-ref', `${registry.host}/Bad_Repo:v1`, 'INVALID_REFERENCE', /Bad_Repo/);
  });

  test('an unknown tag: IMAGE_NOT_FOUND naming repository and tag', async () => {
    await apiFailure('unknown-tag', `${registry.host}/bad/base:nope`, 'IMAGE_NOT_FOUND', /nope.*bad\/base|bad\/base.*nope/);
    await apiFailure('unknown-repo', `${registry.host}/bad/absent:v1`, 'IMAGE_NOT_FOUND', /bad\/absent/);
    await cliFailure('unknown-tag', `${registry.host}/bad/base:nope`, 'IMAGE_NOT_FOUND', /nope.*bad\/base|bad\/base.*nope/);
  });

  test('a registry that is down: UNAVAILABLE', async () => {
    const host = `127.0.0.1:${await freePort()}`;
    await apiFailure('down', `${host}/bad/base:v1`, 'UNAVAILABLE', new RegExp(host.replace(/\./g, '\\.')));
    await cliFailure('down', `${host}/bad/base:v1`, 'UNAVAILABLE');
  });

  test('a registry that goes away mid-index: UNAVAILABLE', async () => {
    // The connection breaks 100 kB into the layer, and every resumed attempt breaks again.
    proxy.addFault({ kind: 'drop-after', bytes: 100_000 }, { match: blobGet(0), times: 1_000 });
    try {
      await apiFailure('mid-drop', `${proxy.host}/bad/base:v1`, 'UNAVAILABLE');
    } finally {
      proxy.clearFaults();
    }
    // A real registry process stopped while a layer is on its way (CLI, default retries).
    const doomed = await startRegistry();
    const doomedProxy = await startCountingProxy(doomed.url);
    try {
      const image = await pushImageDetailed(doomed, 'doomed/app', 'v1', smallLayers('doomed'));
      const layer = (image.layers[0] as PushedImage['layers'][number]).digest;
      doomedProxy.addFault({ kind: 'delay', ms: 2_500 }, { match: new RegExp(`^GET .*/blobs/${layer}`) });
      const dir = await outputDir('mid-stop-cli');
      const failure = expectCliFailure(['index', `${doomedProxy.host}/doomed/app:v1`, '-o', join(dir, 'out.clip')], 'UNAVAILABLE', dir).then((line) => {
        messages.push(`mid-stop (CLI): ${line}`);
      });
      const deadline = Date.now() + 20_000;
      while (!doomedProxy.stats.log.some((r) => r.path.includes(layer)) && Date.now() < deadline) await delay(20);
      await doomed.stop();
      await failure;
    } finally {
      await doomedProxy.close();
      await doomed.stop();
    }
  });

  test('a corrupted blob (flipped bytes in transit): DIGEST_MISMATCH', async () => {
    proxy.addFault({ kind: 'flip', offset: 300_000 }, { match: blobGet(0), times: 1_000 });
    try {
      await apiFailure('flip-tar', `${proxy.host}/bad/base:v1`, 'DIGEST_MISMATCH', new RegExp(digestOf(0)));
    } finally {
      proxy.clearFaults();
    }
    proxy.addFault({ kind: 'flip', offset: 300_000 }, { match: blobGet(1), times: 1_000 });
    try {
      await apiFailure('flip-gzip', `${proxy.host}/bad/base:v1`, 'DIGEST_MISMATCH', new RegExp(digestOf(1)));
      await cliFailure('flip-gzip', `${proxy.host}/bad/base:v1`, 'DIGEST_MISMATCH');
    } finally {
      proxy.clearFaults();
    }
  });

  test('a layer that fails on the calling thread, or in the worker beside it: the same error, nothing written', async () => {
    for (const layer of [0, 1]) {
      proxy.addFault({ kind: 'flip', offset: 300_000 }, { match: blobGet(layer), times: 1_000 });
      try {
        const dir = await outputDir(`calling-thread-flip-${layer}`);
        const indexing = createFromOCIImage({ imageRef: `${proxy.host}/bad/base:v1`, outputPath: join(dir, 'out.clip'), registry: fastFail, concurrency: 2, useCallingThread: true });
        await expectClipError(indexing, 'DIGEST_MISMATCH', new RegExp(digestOf(layer)));
        await assertEmptyDir(dir);
      } finally {
        proxy.clearFaults();
      }
    }
  });

  test('a truncated blob: in transit (every attempt cut short) and as stored (a cut gzip stream)', async () => {
    proxy.addFault({ kind: 'truncate', bytes: 500_000 }, { match: blobGet(1), times: 1_000 });
    try {
      await apiFailure('truncate-transit', `${proxy.host}/bad/base:v1`, 'UNAVAILABLE');
    } finally {
      proxy.clearFaults();
    }
    await apiFailure('truncate-stored-gzip', `${registry.host}/bad/truncated-gzip:v1`, 'CORRUPT', /gzip stream ended/);
    await apiFailure('truncate-stored-tar', `${registry.host}/bad/truncated-tar:v1`, 'CORRUPT', /truncated at offset 200000, inside the content of "cut\.bin"/);
  });

  test('a layer that is not a tar: NOT_A_TAR; a layer of an unknown media type: UNSUPPORTED_MEDIA_TYPE', async () => {
    await apiFailure('not-a-tar', `${registry.host}/bad/not-a-tar:v1`, 'NOT_A_TAR', /not a tar/);
    await cliFailure('not-a-tar', `${registry.host}/bad/not-a-tar:v1`, 'NOT_A_TAR');
    await apiFailure('unknown-type', `${registry.host}/bad/unknown-type:v1`, 'UNSUPPORTED_MEDIA_TYPE', /layer sha256:[0-9a-f]{64}: unsupported layer media type application\/vnd\.example\.thing\.v1\+tar/);
    await cliFailure('unknown-type', `${registry.host}/bad/unknown-type:v1`, 'UNSUPPORTED_MEDIA_TYPE');
  });

  test('the messages (printed as diagnostics)', (t) => {
    for (const message of messages) t.diagnostic(message);
    assert.ok(messages.length >= 10);
  });
});

describe('clip index and clip inspect output', () => {
  let archive: string;
  let indexed: { stdout: string; stderr: string; code: number | null };
  let digest: string;

  before(async () => {
    digest = await pushImage(registry, 'cli/app', 'v2', smallLayers('cli'));
    archive = join(await outputDir('cli'), 'cli.clip');
    indexed = await runClip(['index', `${registry.host}/cli/app:v2`, '-o', archive]);
  });

  test('clip index prints a one-line summary: files, layers, index size and share, time', () => {
    assert.equal(indexed.code, 0, indexed.stderr);
    assert.equal(indexed.stderr, '');
    const lines = indexed.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1, indexed.stdout);
    assert.match(
      lines[0] as string,
      new RegExp(
        `^indexed ${registry.host.replace(/\./g, '\\.')}/cli/app:v2 \\(${digest}, linux/amd64\\): 2 files, 1 layers, ` +
          `index [0-9.]+ (B|KiB|MiB) \\([0-9.]+% of the uncompressed image; [0-9.]+ (B|KiB|MiB) needed to mount, [0-9.]+%\\), [0-9.]+ s$`,
      ),
    );
  });

  test('clip inspect --json shows storage mode oci and the image registry, repository and digest', async () => {
    const result = await runClip(['inspect', archive, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as { storage: { mode: string }; image: ImageMeta };
    assert.equal(summary.storage.mode, 'oci');
    assert.equal(summary.image.registry, registry.host);
    assert.equal(summary.image.repository, 'cli/app');
    assert.equal(summary.image.manifestDigest, digest);
  });

  test('clip inspect (text) shows storage mode oci and the image registry, repository and digest', async () => {
    const result = await runClip(['inspect', archive]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /storage mode\s+oci/);
    assert.ok(result.stdout.includes(registry.host) && result.stdout.includes('cli/app') && result.stdout.includes(digest), result.stdout);
  });
});
