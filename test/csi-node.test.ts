/**
 * `clip node` end to end, called as kubelet calls it: gRPC over its unix socket, real FUSE mounts,
 * a real registry (with and without basic auth). Files are read at the target paths by this test
 * process and compared with the image's content.
 */
import assert from 'node:assert/strict';
import { access, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import grpc from '@grpc/grpc-js';
import { readMountTable } from '../src/node/mount-utils.js';
import { connectCsi, ephemeralContext, expectGrpcError, MOUNT_CAPABILITY, type CsiClient, type PublishRequest } from './helpers/csi-client.js';
import {
  cleanupPluginDir,
  fuseMountsUnder,
  httpGet,
  makePluginDir,
  metricValue,
  mountsUnder,
  podVolume,
  startPlugin,
  type PluginProcess,
  type PodVolume,
} from './helpers/csi-plugin.js';
import { pushImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { buildTarLayer, patternContent, type GeneratedContent } from './harness/tar-layer.js';

async function generated(content: GeneratedContent): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of content.chunks()) parts.push(chunk);
  return Buffer.concat(parts);
}

const BIG = patternContent(3 * 1024 * 1024 + 17, 7);

/** The files of image v1 as a reader should see them. */
const V1_FILES: Record<string, string | GeneratedContent> = {
  'hello.txt': 'hello from v1\n',
  'etc/app.conf': 'mode = test\n',
  'dir/nested/deep.txt': 'deep\n',
  'dir/second.txt': 'from the second layer\n',
  'big.bin': BIG,
};

describe('clip node: image volumes over CSI', () => {
  let dir: string;
  let registry: RegistryHandle;
  let authRegistry: RegistryHandle;
  let plugin: PluginProcess | undefined;
  let csi: CsiClient;
  let imageV1: string;
  let imageV2: string;
  let privateImage: string;
  const published: Array<{ volume_id: string; target_path: string }> = [];
  const nodeDockerConfig = (): string => join(dir, 'node-docker-config.json');

  before(async () => {
    dir = await makePluginDir('csi-node-');
    [registry, authRegistry] = await Promise.all([startRegistry(), startRegistry({ auth: 'basic' })]);
    const layer1 = buildTarLayer([
      { type: 'dir', path: 'etc', mode: 0o755 },
      { type: 'file', path: 'hello.txt', content: V1_FILES['hello.txt'] as string, mode: 0o644 },
      { type: 'file', path: 'etc/app.conf', content: V1_FILES['etc/app.conf'] as string },
      { type: 'file', path: 'dir/nested/deep.txt', content: V1_FILES['dir/nested/deep.txt'] as string },
      { type: 'file', path: 'bin/tool', content: '#!/bin/sh\necho tool\n', mode: 0o755 },
      { type: 'symlink', path: 'link', target: 'hello.txt' },
      { type: 'file', path: 'big.bin', content: BIG },
    ]);
    const layer2 = buildTarLayer([{ type: 'file', path: 'dir/second.txt', content: V1_FILES['dir/second.txt'] as string }], { compression: 'zstd' });
    await pushImage(registry, 'apps/demo', 'v1', [layer1, layer2]);
    await pushImage(registry, 'apps/demo', 'v2', [buildTarLayer([{ type: 'file', path: 'hello.txt', content: 'hello from v2\n' }])]);
    await pushImage(authRegistry, 'private/app', 'v1', [buildTarLayer([{ type: 'file', path: 'secret.txt', content: 'only with credentials\n' }])]);
    imageV1 = `${registry.host}/apps/demo:v1`;
    imageV2 = `${registry.host}/apps/demo:v2`;
    privateImage = `${authRegistry.host}/private/app:v1`;
    plugin = await startPlugin(dir, ['--image-grace-seconds', '1', '--docker-config', nodeDockerConfig()]);
    csi = await connectCsi(plugin.socketPath);
  });

  after(async () => {
    for (const volume of published) await csi?.NodeUnpublishVolume(volume).catch(() => undefined);
    csi?.close();
    const code = await plugin?.stop();
    await Promise.all([registry?.stop(), authRegistry?.stop()]);
    if (dir) {
      const left = await mountsUnder(dir);
      await cleanupPluginDir(dir);
      assert.deepEqual(left, [], 'mounts left behind after every volume was unpublished');
    }
    assert.equal(code, 0, 'clip node exits 0 on SIGTERM');
  });

  async function publish(volume: PodVolume, image: string, options: { readonly?: boolean; extra?: Record<string, string>; secrets?: Record<string, string> } = {}): Promise<void> {
    const request: PublishRequest = {
      volume_id: volume.volumeId,
      target_path: volume.targetPath,
      volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_WRITER'),
      readonly: options.readonly ?? false,
      volume_context: ephemeralContext(image, { name: volume.podName, uid: volume.podUid }, options.extra),
      secrets: options.secrets ?? {},
    };
    await csi.NodePublishVolume(request);
    published.push({ volume_id: volume.volumeId, target_path: volume.targetPath });
  }

  async function unpublish(volume: PodVolume): Promise<void> {
    await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
    await assert.rejects(access(volume.targetPath), { code: 'ENOENT' }, 'unpublish removes the target path');
  }

  async function assertImageV1(root: string): Promise<void> {
    for (const [path, content] of Object.entries(V1_FILES)) {
      const expected = typeof content === 'string' ? Buffer.from(content) : await generated(content);
      const actual = await readFile(join(root, path));
      assert.ok(actual.equals(expected), `${path} differs from the image`);
    }
    assert.equal(await readlink(join(root, 'link')), 'hello.txt');
    assert.equal((await stat(join(root, 'bin/tool'))).mode & 0o777, 0o755);
    assert.deepEqual((await readdir(root)).sort(), ['big.bin', 'bin', 'dir', 'etc', 'hello.txt', 'link']);
  }

  it('inline ephemeral volume, SINGLE_NODE_WRITER and readonly=false: the image, writable through a private overlay', async () => {
    const volume = await podVolume(dir);
    await publish(volume, imageV1);
    await assertImageV1(volume.targetPath);
    const kinds = (await readMountTable()).filter((entry) => entry.mountPoint === volume.targetPath).map((entry) => entry.fsType);
    assert.deepEqual(kinds, ['overlay']);

    await writeFile(join(volume.targetPath, 'new.txt'), 'written by the pod\n');
    await writeFile(join(volume.targetPath, 'hello.txt'), 'changed by the pod\n');
    assert.equal(await readFile(join(volume.targetPath, 'new.txt'), 'utf8'), 'written by the pod\n');
    assert.equal(await readFile(join(volume.targetPath, 'hello.txt'), 'utf8'), 'changed by the pod\n');

    // The image itself is unchanged: another volume of it sees the original.
    const other = await podVolume(dir);
    await publish(other, imageV1, { readonly: true });
    await assertImageV1(other.targetPath);
    await assert.rejects(access(join(other.targetPath, 'new.txt')), { code: 'ENOENT' });

    await unpublish(volume);
    await unpublish(other);
  });

  it('inline ephemeral volume with readOnly: a read-only bind mount, writes fail with EROFS', async () => {
    const volume = await podVolume(dir);
    await publish(volume, imageV1, { readonly: true });
    await assertImageV1(volume.targetPath);
    await assert.rejects(writeFile(join(volume.targetPath, 'new.txt'), 'x'), { code: 'EROFS' });
    await assert.rejects(writeFile(join(volume.targetPath, 'hello.txt'), 'x'), { code: 'EROFS' });
    await unpublish(volume);
  });

  it('static PersistentVolume: the image is the volume handle, read-only many', async () => {
    const volume = await podVolume(dir, 'pv');
    const request: PublishRequest = {
      volume_id: imageV1,
      target_path: volume.targetPath,
      volume_capability: MOUNT_CAPABILITY('MULTI_NODE_READER_ONLY'),
      readonly: true,
      volume_context: {},
    };
    await csi.NodePublishVolume(request);
    published.push({ volume_id: imageV1, target_path: volume.targetPath });
    await assertImageV1(volume.targetPath);
    // The same PV in a second pod on this node: another target of the same volume.
    const second = await podVolume(dir, 'pv');
    await csi.NodePublishVolume({ ...request, target_path: second.targetPath, volume_context: { image: imageV1, pullPolicy: 'Always' } });
    published.push({ volume_id: imageV1, target_path: second.targetPath });
    assert.equal(await readFile(join(second.targetPath, 'hello.txt'), 'utf8'), 'hello from v1\n');
    await csi.NodeUnpublishVolume({ volume_id: imageV1, target_path: volume.targetPath });
    await csi.NodeUnpublishVolume({ volume_id: imageV1, target_path: second.targetPath });
    await assert.rejects(access(second.targetPath), { code: 'ENOENT' });
  });

  it('nodePublishSecretRef: .dockerconfigjson credentials for a registry with basic auth', async () => {
    const volume = await podVolume(dir);
    await expectGrpcError(publish(volume, privateImage), grpc.status.UNAUTHENTICATED, /authentication required/);
    const dockerConfig = (password: string): Record<string, string> => ({
      '.dockerconfigjson': JSON.stringify({
        auths: { [`https://${authRegistry.host}`]: { auth: Buffer.from(`${authRegistry.username}:${password}`).toString('base64') } },
      }),
    });
    const wrong = await expectGrpcError(publish(volume, privateImage, { secrets: dockerConfig('wrong-password-123') }), grpc.status.UNAUTHENTICATED, /credentials rejected/);
    assert.ok(!wrong.details.includes('wrong-password-123'));
    await expectGrpcError(publish(volume, privateImage, { secrets: { '.dockerconfigjson': '{not json' } }), grpc.status.INVALID_ARGUMENT, /\.dockerconfigjson/);

    await publish(volume, privateImage, { secrets: dockerConfig(authRegistry.password as string) });
    assert.equal(await readFile(join(volume.targetPath, 'secret.txt'), 'utf8'), 'only with credentials\n');

    // A pod without the secret does not ride on the resolution made with it.
    const anonymous = await podVolume(dir);
    await expectGrpcError(publish(anonymous, privateImage), grpc.status.UNAUTHENTICATED);
    // The node's own Docker config is the fallback when the volume has no secret.
    await writeFile(nodeDockerConfig(), JSON.stringify({ auths: { [authRegistry.host]: { username: authRegistry.username, password: authRegistry.password } } }));
    await publish(anonymous, privateImage, { extra: { pullPolicy: 'Always' } });
    assert.equal(await readFile(join(anonymous.targetPath, 'secret.txt'), 'utf8'), 'only with credentials\n');
    await unpublish(anonymous);
    await unpublish(volume);

    // The plugin never logs secrets.
    assert.ok(!plugin?.rawLogs().includes(authRegistry.password as string), 'the password appears in the logs');
    assert.ok(!plugin?.rawLogs().includes('wrong-password-123'));
  });

  it('bad requests get their codes', async () => {
    const volume = await podVolume(dir);
    const base = (): PublishRequest => ({
      volume_id: volume.volumeId,
      target_path: volume.targetPath,
      volume_capability: MOUNT_CAPABILITY(),
      readonly: false,
      volume_context: ephemeralContext(imageV1, { name: volume.podName, uid: volume.podUid }),
    });
    const { INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, ALREADY_EXISTS } = grpc.status;
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_id: '' }), INVALID_ARGUMENT, /volume_id/);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), target_path: '' }), INVALID_ARGUMENT, /target_path/);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), target_path: 'relative/path' }), INVALID_ARGUMENT, /absolute/);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_capability: null }), INVALID_ARGUMENT, /volume_capability/);
    await expectGrpcError(
      csi.NodePublishVolume({ ...base(), volume_capability: { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } } }),
      INVALID_ARGUMENT,
      /block/,
    );
    await expectGrpcError(
      csi.NodePublishVolume({ ...base(), volume_capability: { mount: { fs_type: '', mount_flags: [], volume_mount_group: '' } } }),
      INVALID_ARGUMENT,
      /access_mode/,
    );
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_capability: MOUNT_CAPABILITY('MULTI_NODE_MULTI_WRITER') }), INVALID_ARGUMENT, /access_mode/);
    const context = (extra: Record<string, string>): Record<string, string> => ({ ...base().volume_context, ...extra });
    await expectGrpcError(
      csi.NodePublishVolume({ ...base(), volume_context: { 'csi.storage.k8s.io/ephemeral': 'true' } }),
      INVALID_ARGUMENT,
      /volume_context\.image/,
    );
    // A static PV without volume_context.image: its handle must then be an image reference.
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_id: 'PV Handle', volume_context: {} }), INVALID_ARGUMENT, /volume_context\.image/);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_context: context({ image: 'Not A Reference' }) }), INVALID_ARGUMENT, /volume_context\.image/);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_context: context({ pullPolicy: 'Sometimes' }) }), INVALID_ARGUMENT, /pullPolicy/);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_context: context({ platform: 'linux' }) }), INVALID_ARGUMENT, /platform/);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_context: context({ imag: imageV1 }) }), INVALID_ARGUMENT, /volume_context\["imag"\] is not a known key/);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_context: context({ image: `${registry.host}/apps/demo:nope` }) }), NOT_FOUND, /nope/);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_context: context({ image: `${registry.host}/apps/missing:v1` }) }), NOT_FOUND);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_context: context({ image: '127.0.0.1:1/apps/demo:v1' }) }), UNAVAILABLE);
    await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
    assert.deepEqual(await mountsUnder(volume.targetPath), [], 'failed publishes leave nothing mounted');

    // Idempotency and conflicts.
    await csi.NodePublishVolume(base());
    published.push({ volume_id: volume.volumeId, target_path: volume.targetPath });
    await csi.NodePublishVolume(base());
    assert.equal((await mountsUnder(volume.targetPath)).length, 1);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_context: context({ image: imageV2 }) }), ALREADY_EXISTS, /already published/);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), readonly: true }), ALREADY_EXISTS, /writable, not read-only/);
    await expectGrpcError(csi.NodePublishVolume({ ...base(), volume_id: 'another-volume', volume_context: context({ image: imageV2 }) }), ALREADY_EXISTS, /already holds volume/);
    await expectGrpcError(csi.NodeUnpublishVolume({ volume_id: 'another-volume', target_path: volume.targetPath }), NOT_FOUND);
    assert.equal(await readFile(join(volume.targetPath, 'hello.txt'), 'utf8'), 'hello from v1\n');
    await unpublish(volume);
    await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
  });

  it('20 concurrent publishes of a new image: indexed once, one FUSE mount, 20 targets', async () => {
    const tag = 'concurrent';
    await pushImage(registry, 'apps/demo', tag, [buildTarLayer([{ type: 'file', path: 'data.bin', content: patternContent(2 * 1024 * 1024, 3) }])]);
    const image = `${registry.host}/apps/demo:${tag}`;
    const indexedBefore = (plugin as PluginProcess).logs().filter((line) => line.msg === 'indexing image').length;
    const volumes = await Promise.all(Array.from({ length: 20 }, () => podVolume(dir)));
    await Promise.all(volumes.map((volume, i) => publish(volume, image, { readonly: i % 2 === 0 })));

    const indexing = (plugin as PluginProcess).logs().filter((line) => line.msg === 'indexing image');
    assert.equal(indexing.length - indexedBefore, 1, 'the image was indexed once');
    const imageKey = String(indexing.at(-1)?.['digest']).replace(':', '-');
    const imagesDir = join((plugin as PluginProcess).stateDir, 'images');
    const imageMounts = (await fuseMountsUnder(imagesDir)).filter((point) => point.includes(imageKey));
    assert.equal(imageMounts.length, 1, `one FUSE mount for the image, got ${imageMounts.join(', ')}`);
    const procMounts = await readFile('/proc/mounts', 'utf8');
    assert.equal(procMounts.split('\n').filter((line) => line.includes(imageKey) && line.split(' ')[2]?.startsWith('fuse')).length, 1);

    const table = await readMountTable();
    const device = table.find((entry) => entry.mountPoint === imageMounts[0])?.devId;
    const expected = await generated(patternContent(2 * 1024 * 1024, 3));
    for (const [i, volume] of volumes.entries()) {
      const at = table.filter((entry) => entry.mountPoint === volume.targetPath);
      assert.equal(at.length, 1);
      if (i % 2 === 0) assert.equal(at[0]?.devId, device, 'read-only volumes bind the shared FUSE mount');
      else assert.equal(at[0]?.fsType, 'overlay');
      assert.ok((await readFile(join(volume.targetPath, 'data.bin'))).equals(expected));
    }
    await Promise.all(volumes.map((volume) => unpublish(volume)));
    // The last volume gone, the image mount goes after the grace period (1 s here).
    const deadline = Date.now() + 10_000;
    while ((await fuseMountsUnder(imagesDir)).some((point) => point.includes(imageKey)) && Date.now() < deadline) await delay(100);
    assert.deepEqual((await fuseMountsUnder(imagesDir)).filter((point) => point.includes(imageKey)), [], 'image unmounted after the grace period');
  });

  it('a volume published again within the grace period reuses the image mount and its index', async () => {
    const first = await podVolume(dir);
    await publish(first, imageV2, { readonly: true });
    await unpublish(first);
    const again = await podVolume(dir);
    await publish(again, imageV2, { readonly: true });
    assert.equal(await readFile(join(again.targetPath, 'hello.txt'), 'utf8'), 'hello from v2\n');
    const mounted = (plugin as PluginProcess).logs().filter((line) => line.msg === 'image mounted' && line['image'] === imageV2);
    assert.equal(mounted.length, 1, 'mounted once');
    await unpublish(again);
  });

  it('NodeGetVolumeStats reports the image size and the condition', async () => {
    const volume = await podVolume(dir);
    await publish(volume, imageV1, { readonly: true });
    const stats = await csi.NodeGetVolumeStats({ volume_id: volume.volumeId, volume_path: volume.targetPath });
    const bytes = stats.usage.find((usage) => usage.unit === 'BYTES');
    const inodes = stats.usage.find((usage) => usage.unit === 'INODES');
    const expectedBytes = (await Promise.all(Object.values(V1_FILES).map(async (c) => (typeof c === 'string' ? Buffer.byteLength(c) : c.size)))).reduce((a, b) => a + b, 0) + '#!/bin/sh\necho tool\n'.length;
    assert.equal(bytes?.used, expectedBytes);
    assert.ok((inodes?.used ?? 0) >= 10);
    const digest = (plugin as PluginProcess).logs().find((line) => line.msg === 'image mounted' && line['image'] === imageV1)?.['digest'];
    assert.match(String(digest), /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(stats.volume_condition, { abnormal: false, message: `image ${imageV1} (${String(digest)}) is mounted` });
    await unpublish(volume);
  });

  it('serves /metrics, /healthz and /readyz', async () => {
    const address = (plugin as PluginProcess).metricsAddress;
    assert.equal((await httpGet(address, '/healthz')).status, 200);
    assert.equal((await httpGet(address, '/readyz')).status, 200);
    const volume = await podVolume(dir);
    await publish(volume, imageV1, { readonly: true });
    await assertImageV1(volume.targetPath);
    const { status, body } = await httpGet(address, '/metrics');
    assert.equal(status, 200);
    assert.ok((metricValue(body, 'clip_csi_calls_total', { method: 'NodePublishVolume', code: 'OK' }) ?? 0) >= 5);
    assert.ok((metricValue(body, 'clip_csi_calls_total', { method: 'NodePublishVolume', code: 'INVALID_ARGUMENT' }) ?? 0) >= 5);
    assert.ok((metricValue(body, 'clip_csi_publish_duration_seconds_count', { code: 'OK' }) ?? 0) >= 5);
    assert.ok((metricValue(body, 'clip_csi_unpublish_duration_seconds_count', { code: 'OK' }) ?? 0) >= 5);
    assert.equal(metricValue(body, 'clip_csi_volumes_published'), 1);
    assert.ok((metricValue(body, 'clip_csi_image_mounts') ?? 0) >= 1);
    // Each image mount counts its index's source once, as its 'image mounted' log line says.
    const mountedFrom = (source: string): number =>
      (plugin as PluginProcess).logs().filter((line) => line.msg === 'image mounted' && line['index_source'] === source).length;
    for (const source of ['indexed', 'local-cache', 's3', 'controller']) {
      assert.equal(metricValue(body, 'clip_csi_index_source_total', { source }), mountedFrom(source), source);
    }
    assert.ok(mountedFrom('indexed') >= 3);
    assert.equal(mountedFrom('s3'), 0);
    // clipcore's read-path metrics, in the same registry: cache misses and hits, first-read latency.
    const lookups = (result: string): number =>
      ['memory', 'disk'].reduce((sum, tier) => sum + (metricValue(body, 'clip_cache_lookups_total', { tier, result }) ?? 0), 0);
    assert.ok(lookups('miss') > 0, 'cache misses recorded');
    assert.ok(lookups('hit') > 0, 'cache hits recorded');
    assert.ok((metricValue(body, 'clip_first_read_duration_seconds_count') ?? 0) > 0, 'first-read latency samples');
    assert.ok((metricValue(body, 'clip_span_reads_total', { tier: 'origin' }) ?? 0) > 0);
    await unpublish(volume);
    assert.equal((await httpGet(address, '/nothing')).status, 404);
  });
});
