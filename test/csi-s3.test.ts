/**
 * `clip node --s3-bucket`: image indexes shared between nodes through S3 (moto_server). The first
 * node indexes the image and uploads the index; a second node (its own state directory) fetches
 * it instead of indexing; an unreachable S3 endpoint fails the publish with UNAVAILABLE.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import grpc from '@grpc/grpc-js';
import { connectCsi, ephemeralContext, expectGrpcError, MOUNT_CAPABILITY, type CsiClient, type PublishRequest } from './helpers/csi-client.js';
import { cleanupPluginDir, httpGet, makePluginDir, metricValue, mountsUnder, podVolume, startPlugin, type PluginProcess, type PodVolume } from './helpers/csi-plugin.js';
import { freePort } from './harness/free-port.js';
import { pushImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { startS3, type S3Handle } from './harness/s3.js';
import { buildTarLayer } from './harness/tar-layer.js';

describe('clip node: image indexes shared through S3', () => {
  const dirs: string[] = [];
  const plugins: PluginProcess[] = [];
  const clients: CsiClient[] = [];
  let registry: RegistryHandle;
  let s3: S3Handle;
  let image: string;

  before(async () => {
    [registry, s3] = await Promise.all([startRegistry(), startS3()]);
    await s3.createBucket('clip-indexes');
    await pushImage(registry, 'apps/shared', 'v1', [buildTarLayer([{ type: 'file', path: 'shared.txt', content: 'indexed once for every node\n' }])]);
    image = `${registry.host}/apps/shared:v1`;
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const plugin of plugins) await plugin.stop();
    await Promise.all([registry?.stop(), s3?.stop()]);
    for (const dir of dirs) {
      const left = await mountsUnder(dir);
      await cleanupPluginDir(dir);
      assert.deepEqual(left, []);
    }
  });

  async function node(endpoint: string): Promise<{ plugin: PluginProcess; csi: CsiClient; dir: string }> {
    const dir = await makePluginDir('csi-s3-');
    dirs.push(dir);
    const plugin = await startPlugin(dir, ['--image-grace-seconds', '0', '--s3-bucket', 'clip-indexes', '--s3-endpoint', endpoint], { env: s3.env });
    plugins.push(plugin);
    const csi = await connectCsi(plugin.socketPath);
    clients.push(csi);
    return { plugin, csi, dir };
  }

  const request = (volume: PodVolume): PublishRequest => ({
    volume_id: volume.volumeId,
    target_path: volume.targetPath,
    volume_capability: MOUNT_CAPABILITY(),
    readonly: true,
    volume_context: ephemeralContext(image, { name: volume.podName, uid: volume.podUid }),
  });

  it('the first node indexes and uploads; the second fetches the index instead of indexing', async () => {
    const first = await node(s3.endpoint);
    const one = await podVolume(first.dir);
    await first.csi.NodePublishVolume(request(one));
    assert.equal(await readFile(join(one.targetPath, 'shared.txt'), 'utf8'), 'indexed once for every node\n');
    const uploaded = await first.plugin.waitForLog((line) => line.msg === 'index uploaded to S3' || line.msg.startsWith('cannot upload'));
    assert.equal(uploaded.msg, 'index uploaded to S3');
    const key = String(uploaded['url']).replace('s3://clip-indexes/', '');
    assert.match(key, /^indexes\/sha256-[0-9a-f]{64}-linux-[a-z0-9]+\.clip$/);
    const object = await s3.client.send(new GetObjectCommand({ Bucket: 'clip-indexes', Key: key }));
    const uploadedBytes = Buffer.from(await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    const local = await readFile(join(first.plugin.stateDir, 'indexes', key.slice('indexes/'.length)));
    assert.ok(uploadedBytes.equals(local), 'the object is the node-local index');

    const second = await node(s3.endpoint);
    const two = await podVolume(second.dir);
    await second.csi.NodePublishVolume(request(two));
    assert.equal(await readFile(join(two.targetPath, 'shared.txt'), 'utf8'), 'indexed once for every node\n');
    assert.equal(second.plugin.logs().filter((line) => line.msg === 'indexing image').length, 0, 'the second node did not index');
    const metrics = (await httpGet(second.plugin.metricsAddress, '/metrics')).body;
    assert.equal(metricValue(metrics, 'clip_csi_index_source_total', { source: 's3' }), 1);
    assert.equal(metricValue(metrics, 'clip_csi_index_source_total', { source: 'indexed' }), 0);

    await first.csi.NodeUnpublishVolume({ volume_id: one.volumeId, target_path: one.targetPath });
    await second.csi.NodeUnpublishVolume({ volume_id: two.volumeId, target_path: two.targetPath });
  });

  it('an unreachable S3 endpoint fails the publish with UNAVAILABLE', async () => {
    const down = await node(`http://127.0.0.1:${await freePort()}`);
    const volume = await podVolume(down.dir);
    await expectGrpcError(down.csi.NodePublishVolume(request(volume)), grpc.status.UNAVAILABLE, /S3|unreachable/i);
    assert.deepEqual(await mountsUnder(down.dir), []);
  });
});
