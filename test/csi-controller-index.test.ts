/**
 * The node side of the controller (issue 13): PersistentVolumes as the controller's CreateVolume
 * makes them are published, and a node that finds the controller's fresh "being indexed" marker in
 * S3 waits for its index instead of indexing the image itself (a stale marker: it indexes).
 * The test plays the controller with S3IndexStore against moto.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import grpc from '@grpc/grpc-js';
import { createFromOCIImage, imageKeyOf, newMarker, refreshedMarker, S3IndexStore } from '../src/clipcore/index.js';
import { connectCsi, ephemeralContext, MOUNT_CAPABILITY, type CsiClient, type PublishRequest } from './helpers/csi-client.js';
import { cleanupPluginDir, httpGet, makePluginDir, metricValue, podVolume, startPlugin, type PluginProcess, type PodVolume } from './helpers/csi-plugin.js';
import { pushImage, pushIndex } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { startS3, type S3Handle } from './harness/s3.js';
import { buildTarLayer } from './harness/tar-layer.js';

const BUCKET = 'clip-indexes';
const PLATFORM = 'linux/amd64';

describe('clip node: volumes and indexes of the controller', () => {
  let registry: RegistryHandle;
  let s3: S3Handle;
  let store: S3IndexStore;
  const dirs: string[] = [];
  const plugins: PluginProcess[] = [];
  const clients: CsiClient[] = [];

  before(async () => {
    [registry, s3] = await Promise.all([startRegistry(), startS3()]);
    await s3.createBucket(BUCKET);
    store = new S3IndexStore({ bucket: BUCKET, prefix: 'indexes/', options: { endpoint: s3.endpoint, region: s3.region, credentials: s3.credentials } });
  });

  after(async () => {
    store?.close();
    for (const client of clients) client.close();
    for (const plugin of plugins) await plugin.stop();
    await Promise.all([registry?.stop(), s3?.stop()]);
    for (const dir of dirs) await cleanupPluginDir(dir);
  });

  async function node(extra: string[] = []): Promise<{ plugin: PluginProcess; csi: CsiClient; dir: string }> {
    const dir = await makePluginDir('csi-ctl-');
    dirs.push(dir);
    const plugin = await startPlugin(dir, ['--image-grace-seconds', '0', '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint, ...extra], { env: s3.env });
    plugins.push(plugin);
    const csi = await connectCsi(plugin.socketPath);
    clients.push(csi);
    return { plugin, csi, dir };
  }

  it("publishes the controller's PersistentVolumes: a digest reference (a multi-arch index's), an optional platform, any reader mode or SINGLE_NODE_WRITER", async () => {
    const amd64 = await pushImage(registry, 'ctl/multi', undefined, [buildTarLayer([{ type: 'file', path: 'arch.txt', content: 'amd64\n' }])]);
    const arm64 = await pushImage(registry, 'ctl/multi', undefined, [buildTarLayer([{ type: 'file', path: 'arch.txt', content: 'arm64\n' }])], {
      platform: { os: 'linux', architecture: 'arm64' },
    });
    const indexDigest = await pushIndex(registry, 'ctl/multi', 'v1', [
      { platform: { os: 'linux', architecture: 'amd64' }, manifestDigest: amd64 },
      { platform: { os: 'linux', architecture: 'arm64' }, manifestDigest: arm64 },
    ]);
    const { csi, dir } = await node();
    const volumeId = `clip-${createHash('sha256').update('ctl/multi').digest('hex').slice(0, 32)}`;
    const context = (platform?: string): Record<string, string> => ({
      image: `${registry.host}/ctl/multi@${indexDigest}`,
      ...(platform !== undefined && { platform }),
      'clip.csi.dev/requested-image': `${registry.host}/ctl/multi:v1`,
    });
    const cases: Array<[string, boolean, string | undefined, string]> = [
      ['MULTI_NODE_READER_ONLY', true, undefined, 'amd64\n'],
      ['SINGLE_NODE_READER_ONLY', true, 'linux/arm64', 'arm64\n'],
      ['SINGLE_NODE_WRITER', false, undefined, 'amd64\n'],
    ];
    for (const [mode, readonly, platform, expected] of cases) {
      const volume = await podVolume(dir, 'pv');
      const request: PublishRequest = {
        volume_id: volumeId,
        target_path: volume.targetPath,
        volume_capability: MOUNT_CAPABILITY(mode as 'SINGLE_NODE_WRITER'),
        readonly,
        volume_context: context(platform),
      };
      await csi.NodePublishVolume(request);
      assert.equal(await readFile(join(volume.targetPath, 'arch.txt'), 'utf8'), expected, `${mode} ${platform ?? 'node platform'}`);
      await csi.NodeUnpublishVolume({ volume_id: volumeId, target_path: volume.targetPath });
    }
  });

  /** A one-layer image, its manifest digest and its index key. */
  async function image(tag: string): Promise<{ ref: string; key: string; digest: string }> {
    const digest = await pushImage(registry, 'ctl/app', tag, [buildTarLayer([{ type: 'file', path: 'tag.txt', content: `${tag}\n` }])]);
    return { ref: `${registry.host}/ctl/app:${tag}`, key: imageKeyOf(digest, PLATFORM), digest };
  }

  const request = (volume: PodVolume, ref: string): PublishRequest => ({
    volume_id: volume.volumeId,
    target_path: volume.targetPath,
    volume_capability: MOUNT_CAPABILITY(),
    readonly: true,
    volume_context: ephemeralContext(ref, { name: volume.podName, uid: volume.podUid }, { platform: PLATFORM }),
  });

  /**
   * Publishes until OK; every other answer must be ABORTED (the node waits), and is handed to
   * `whileWaiting` before the next try. Returns the ABORTED messages.
   */
  async function publishUntilReady(
    csi: CsiClient,
    volume: PodVolume,
    ref: string,
    whileWaiting: (message: string) => Promise<void> = async () => undefined,
  ): Promise<string[]> {
    const messages: string[] = [];
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await csi.NodePublishVolume(request(volume, ref));
        return messages;
      } catch (err) {
        const error = err as grpc.ServiceError;
        assert.equal(grpc.status[error.code], 'ABORTED', error.details);
        messages.push(error.details);
        if (Date.now() > deadline) throw err;
        await whileWaiting(error.details);
      }
    }
  }

  it("waits while the controller's marker is fresh, then fetches its index without indexing (source controller)", async () => {
    const app = await image('fresh');
    const { plugin, csi, dir } = await node(['--index-wait-seconds', '1']);
    let marker = newMarker('controller/test-pod', new Date(), 'indexing: 10% of 1 layers');
    await store.writeMarker(app.key, marker);
    const refresher = setInterval(() => {
      marker = refreshedMarker(marker, new Date());
      void store.writeMarker(app.key, marker);
    }, 1000);
    const volume = await podVolume(dir);
    const holder = /being indexed by controller\/test-pod: indexing: 10% of 1 layers/;
    let uploaded = false;
    try {
      const messages = await publishUntilReady(csi, volume, app.ref, async (message) => {
        // Publish again until an answer names the marker's holder and progress (the node may
        // still be looking in S3 when the first one stops waiting): publishUntilReady's deadline
        // bounds this, so a node that never reports the marker fails the test.
        if (uploaded || !holder.test(message)) return;
        // The node waits on the marker (its log says so too): now the controller finishes its index.
        await plugin.waitForLog((line) => line.msg === 'waiting for the controller to index the image');
        const made = join(dir, 'controller.clip');
        await createFromOCIImage({ imageRef: `${registry.host}/ctl/app@${app.digest}`, outputPath: made, platform: PLATFORM });
        await store.upload(app.key, made);
        uploaded = true;
      });
      // Uploaded only after an answer named the holder: else the node did not wait on the marker.
      assert.ok(uploaded, `no answer named the holder before the publish succeeded: ${JSON.stringify(messages)}`);
    } finally {
      clearInterval(refresher);
      await store.deleteMarker(app.key);
    }
    assert.equal(await readFile(join(volume.targetPath, 'tag.txt'), 'utf8'), 'fresh\n');
    assert.equal(plugin.logs().filter((line) => line.msg === 'indexing image').length, 0, 'the node did not index');
    const metrics = (await httpGet(plugin.metricsAddress, '/metrics')).body;
    assert.equal(metricValue(metrics, 'clip_csi_index_source_total', { source: 'controller' }), 1);
    assert.equal(metricValue(metrics, 'clip_csi_index_source_total', { source: 'indexed' }), 0);
    await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
  });

  it('a stale marker, or one that disappears without an index: the node indexes the image itself', async () => {
    const stale = await image('stale');
    const gone = await image('gone');
    const { plugin, csi, dir } = await node(['--index-wait-seconds', '1']);
    // Not refreshed for two minutes: its holder is dead.
    await store.writeMarker(stale.key, newMarker('controller/dead-pod', new Date(Date.now() - 120_000)));
    await store.writeMarker(gone.key, newMarker('controller/test-pod', new Date()));
    try {
      const first = await podVolume(dir);
      await publishUntilReady(csi, first, stale.ref);
      assert.equal(await readFile(join(first.targetPath, 'tag.txt'), 'utf8'), 'stale\n');
      await plugin.waitForLog((line) => line.msg === 'the indexing marker is stale; indexing the image here');

      const second = await podVolume(dir);
      let deleted = false;
      await publishUntilReady(csi, second, gone.ref, async () => {
        if (deleted) return delay(100);
        await plugin.waitForLog((line) => line.msg === 'waiting for the controller to index the image' && line['digest'] === gone.digest);
        await store.deleteMarker(gone.key);
        deleted = true;
      });
      assert.equal(await readFile(join(second.targetPath, 'tag.txt'), 'utf8'), 'gone\n');
      await plugin.waitForLog((line) => line.msg === 'the indexing marker disappeared without an index; indexing the image here');
      const metrics = (await httpGet(plugin.metricsAddress, '/metrics')).body;
      assert.equal(metricValue(metrics, 'clip_csi_index_source_total', { source: 'indexed' }), 2);
      assert.equal(metricValue(metrics, 'clip_csi_index_source_total', { source: 'controller' }), 0);
      for (const volume of [first, second]) await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
    } finally {
      await store.deleteMarker(stale.key);
    }
  });
});
