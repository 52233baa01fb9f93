/**
 * `clip controller` serving the CSI Identity and Controller services over its unix socket, as the
 * external-provisioner calls them: CreateVolume answers ABORTED while the image is indexed, then the
 * volume (a deterministic id, the uncompressed size, the image pinned by digest); DeleteVolume is
 * idempotent; access modes and bad input are refused with specific errors; a missing image is
 * NOT_FOUND and refused credentials UNAUTHENTICATED. A real `clip node` then publishes the volume
 * by downloading the controller's index from S3, without indexing. Real registry (basic auth),
 * moto S3, real processes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import grpc from '@grpc/grpc-js';
import { imageKeyOf } from '../src/clipcore/index.js';
import type { CreateVolumeRequest, CreateVolumeResponse, StringMap } from '../src/csi/types.js';
import { connectController, createVolumeUntilDone, connectCsi, expectGrpcError, MOUNT_CAPABILITY, type ControllerClient } from './helpers/csi-client.js';
import { cleanupPluginDir, httpGet, makePluginDir, metricValue, mountsUnder, podVolume, startPlugin } from './helpers/csi-plugin.js';
import { startControllerProcess, type ControllerProcess } from './helpers/controller-process.js';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy.js';
import { pushImage, pushImageDetailed, pushIndex } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { startS3, type S3Handle } from './harness/s3.js';
import { buildTarLayer } from './harness/tar-layer.js';
import { freePort } from './harness/free-port.js';

const BUCKET = 'clip-controller-csi';

describe('clip controller: the CSI Controller service', () => {
  let registry: RegistryHandle;
  let proxy: CountingProxy;
  let s3: S3Handle;
  let dir: string;
  let controller: ControllerProcess;
  let csi: ControllerClient;
  let secrets: StringMap;
  let app: { image: string; digest: string; layerDigest: string; fileBytes: number };

  before(async () => {
    [registry, s3] = await Promise.all([startRegistry({ auth: 'basic' }), startS3()]);
    await s3.createBucket(BUCKET);
    proxy = await startCountingProxy(registry.host);
    const content = 'served from the index the controller made\n';
    const pushed = await pushImageDetailed(registry, 'apps/provisioned', 'v1', [
      buildTarLayer([
        { type: 'file', path: 'hello.txt', content },
        { type: 'file', path: 'data/more.txt', content: 'x'.repeat(1000) },
      ]),
    ]);
    app = { image: `${proxy.host}/apps/provisioned:v1`, digest: pushed.digest, layerDigest: pushed.layers[0]?.digest ?? '', fileBytes: content.length + 1000 };
    const auth = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
    secrets = { '.dockerconfigjson': JSON.stringify({ auths: { [proxy.host]: { auth } } }) };
    dir = await mkdtemp(join(tmpdir(), 'ctl-csi-'));
    controller = await startControllerProcess(dir, ['--no-kubernetes', '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint, '--platforms', 'linux/amd64', '--create-volume-wait-seconds', '0'], s3.env);
    csi = await connectController(controller.socketPath);
  });

  after(async () => {
    csi?.close();
    await controller?.stop();
    await proxy?.close();
    await Promise.all([registry?.stop(), s3?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const request = (name: string, parameters: StringMap, extra: Partial<CreateVolumeRequest> = {}): Partial<CreateVolumeRequest> => ({
    name,
    volume_capabilities: [MOUNT_CAPABILITY('MULTI_NODE_READER_ONLY')],
    parameters,
    secrets,
    ...extra,
  });

  const createUntilDone = (req: Partial<CreateVolumeRequest>, aborts: string[] = []): Promise<CreateVolumeResponse> => createVolumeUntilDone(csi, req, aborts);

  async function objectExists(key: string): Promise<boolean> {
    try {
      await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
      return true;
    } catch {
      return false;
    }
  }

  it('advertises CONTROLLER_SERVICE and CREATE_DELETE_VOLUME; the RPCs it does not serve answer UNIMPLEMENTED', async () => {
    const plugin = await csi.GetPluginCapabilities();
    assert.deepEqual(
      plugin.capabilities.map((capability) => capability.service?.type),
      ['CONTROLLER_SERVICE'],
    );
    const controllerCaps = await csi.ControllerGetCapabilities();
    assert.deepEqual(
      controllerCaps.capabilities.map((capability) => capability.rpc?.type),
      ['CREATE_DELETE_VOLUME'],
    );
    assert.equal((await csi.GetPluginInfo()).name, 'clip.csi.dev');
    await expectGrpcError(csi.raw('ControllerPublishVolume', {}), grpc.status.UNIMPLEMENTED);
    await expectGrpcError(csi.raw('ListVolumes', {}), grpc.status.UNIMPLEMENTED);
  });

  it('CreateVolume answers ABORTED while indexing (two volumes of one image share one job), then the volume; it is idempotent', async () => {
    // The layer is slow to come: CreateVolume must see the job running.
    proxy.addFault({ kind: 'delay', ms: 3000 }, { match: (req) => req.method === 'GET' && req.path.includes(app.layerDigest) });
    const aborts: string[] = [];
    await expectGrpcError(csi.CreateVolume(request('pvc-11111111-aaaa', { image: app.image })), grpc.status.ABORTED, /resolving|indexing|S3|queued/);
    const [one, two] = await Promise.all([
      createUntilDone(request('pvc-11111111-aaaa', { image: app.image }), aborts),
      createUntilDone(request('pvc-22222222-bbbb', { image: app.image }), aborts),
    ]);
    assert.ok(aborts.some((message) => /^indexing: \d+ % of/.test(message)), `progress in ABORTED messages: ${aborts.slice(0, 5).join(' | ')}`);
    assert.equal(controller.logs().filter((line) => line.msg === 'indexing image').length, 1, 'one job for both volumes');

    const expectedId = `clip-${createHash('sha256').update(`${app.digest}\nlinux/amd64`).digest('hex')}`;
    assert.equal(one.volume.volume_id, expectedId);
    assert.equal(two.volume.volume_id, expectedId, 'the id depends on the image and platforms only');
    assert.equal(one.volume.capacity_bytes, app.fileBytes);
    assert.deepEqual(one.volume.volume_context, {
      image: `${proxy.host}/apps/provisioned@${app.digest}`,
      'clip.csi.dev/requested-image': app.image,
    });
    assert.ok(await objectExists(`indexes/${imageKeyOf(app.digest, 'linux/amd64')}.clip`));
    assert.equal(await objectExists(`indexes/${imageKeyOf(app.digest, 'linux/amd64')}.clip.indexing`), false, 'the marker is gone');

    // Again (the provisioner retrying after a lost answer): the same volume, at once.
    const again = await csi.CreateVolume(request('pvc-11111111-aaaa', { image: app.image }));
    assert.deepEqual(again.volume, one.volume);
    assert.equal(controller.logs().filter((line) => line.msg === 'indexing image').length, 1, 'not indexed again');

    await csi.DeleteVolume({ volume_id: one.volume.volume_id });
    await csi.DeleteVolume({ volume_id: one.volume.volume_id });
    await csi.DeleteVolume({ volume_id: 'clip-never-made' });
    assert.ok(await objectExists(`indexes/${imageKeyOf(app.digest, 'linux/amd64')}.clip`), 'DeleteVolume leaves the shared index');
    const metrics = (await httpGet(controller.metricsAddress, '/metrics')).body;
    assert.equal(metricValue(metrics, 'clip_controller_index_jobs_total', { result: 'indexed' }), 1);
    assert.ok((metricValue(metrics, 'clip_controller_registry_bytes_total') ?? 0) > 0);
    assert.equal(metricValue(metrics, 'clip_controller_indexes_in_flight'), 0);
  });

  it('a multi-arch image: the index digest in the volume, an index per platform; one pinned platform is passed on', async () => {
    const amd = await pushImage(registry, 'apps/multi', undefined, [buildTarLayer([{ type: 'file', path: 'arch', content: 'amd64\n' }])]);
    const arm = await pushImage(registry, 'apps/multi', undefined, [buildTarLayer([{ type: 'file', path: 'arch', content: 'arm64!\n' }])], {
      platform: { os: 'linux', architecture: 'arm64' },
    });
    const index = await pushIndex(registry, 'apps/multi', 'v2', [
      { platform: { os: 'linux', architecture: 'amd64' }, manifestDigest: amd },
      { platform: { os: 'linux', architecture: 'arm64' }, manifestDigest: arm },
    ]);
    const image = `${proxy.host}/apps/multi:v2`;
    const both = await createUntilDone(request('pvc-33333333-cccc', { image, platforms: 'linux/arm64,linux/amd64' }));
    assert.deepEqual(both.volume.volume_context, { image: `${proxy.host}/apps/multi@${index}`, 'clip.csi.dev/requested-image': image });
    assert.equal(both.volume.volume_id, `clip-${createHash('sha256').update(`${index}\nlinux/amd64,linux/arm64`).digest('hex')}`);
    assert.equal(both.volume.capacity_bytes, 'arm64!\n'.length, 'the largest platform');
    assert.ok(await objectExists(`indexes/${imageKeyOf(amd, 'linux/amd64')}.clip`));
    assert.ok(await objectExists(`indexes/${imageKeyOf(arm, 'linux/arm64')}.clip`));

    const pinned = await createUntilDone(request('pvc-44444444-dddd', { image, platforms: 'linux/arm64' }));
    assert.equal(pinned.volume.volume_context['platform'], 'linux/arm64');
    assert.notEqual(pinned.volume.volume_id, both.volume.volume_id);
  });

  it('access modes: readers and SINGLE_NODE_WRITER are fine; writers on many nodes and block access are INVALID_ARGUMENT', async () => {
    for (const mode of ['MULTI_NODE_SINGLE_WRITER', 'MULTI_NODE_MULTI_WRITER'] as const) {
      await expectGrpcError(
        csi.CreateVolume(request('pvc-55555555-eeee', { image: app.image }, { volume_capabilities: [MOUNT_CAPABILITY(mode)] })),
        grpc.status.INVALID_ARGUMENT,
        new RegExp(`${mode} is not supported`),
      );
    }
    await expectGrpcError(
      csi.CreateVolume(request('pvc-55555555-eeee', { image: app.image }, { volume_capabilities: [{ block: {}, access_mode: { mode: 'SINGLE_NODE_READER_ONLY' } }] })),
      grpc.status.INVALID_ARGUMENT,
      /block access is not supported/,
    );
    for (const mode of ['SINGLE_NODE_READER_ONLY', 'MULTI_NODE_READER_ONLY', 'SINGLE_NODE_WRITER'] as const) {
      const created = await createUntilDone(request('pvc-66666666-ffff', { image: app.image }, { volume_capabilities: [MOUNT_CAPABILITY(mode)] }));
      assert.match(created.volume.volume_id, /^clip-[0-9a-f]{64}$/);
      const validated = await csi.ValidateVolumeCapabilities({ volume_id: created.volume.volume_id, volume_capabilities: [MOUNT_CAPABILITY(mode)] });
      assert.deepEqual(validated.confirmed?.volume_capabilities.map((c) => c.access_mode?.mode), [mode]);
    }
    const id = `clip-${'0'.repeat(64)}`;
    const refused = await csi.ValidateVolumeCapabilities({ volume_id: id, volume_capabilities: [MOUNT_CAPABILITY('MULTI_NODE_MULTI_WRITER')] });
    assert.equal(refused.confirmed, null);
    assert.match(refused.message, /MULTI_NODE_MULTI_WRITER/);
    await expectGrpcError(csi.ValidateVolumeCapabilities({ volume_id: 'pv-of-another-driver', volume_capabilities: [MOUNT_CAPABILITY()] }), grpc.status.NOT_FOUND);
  });

  it('a missing image is NOT_FOUND, missing or wrong credentials UNAUTHENTICATED', async () => {
    await expectGrpcError(createUntilDone(request('pvc-77777777-0001', { image: `${proxy.host}/apps/provisioned:nope` })), grpc.status.NOT_FOUND);
    await expectGrpcError(createUntilDone(request('pvc-77777777-0002', { image: `${proxy.host}/apps/absent:v1` })), grpc.status.NOT_FOUND);
    await expectGrpcError(createUntilDone({ ...request('pvc-77777777-0003', { image: `${proxy.host}/apps/other:v1` }), secrets: {} }), grpc.status.UNAUTHENTICATED);
    const wrong = { '.dockerconfigjson': JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from('tester:wrong').toString('base64') } } }) };
    await expectGrpcError(createUntilDone({ ...request('pvc-77777777-0004', { image: `${proxy.host}/apps/other:v1` }), secrets: wrong }), grpc.status.UNAUTHENTICATED);
    const logs = controller.rawLogs();
    assert.ok(registry.password && !logs.includes(registry.password), 'no credential in the logs');
  });

  it('bad input: a clear INVALID_ARGUMENT, bounded', async () => {
    const cases: Array<[Partial<CreateVolumeRequest>, RegExp]> = [
      [request('', { image: app.image }), /name is required/],
      [request('pvc-x', {}), /no image: set the StorageClass parameter image/],
      [request('pvc-x', { image: app.image, colour: 'blue' }), /parameters.colour is not a known parameter/],
      [request('pvc-x', { image: 'Not A Reference' }), /parameters.image: invalid image reference/],
      [request('pvc-x', { image: `${proxy.host}/${'a'.repeat(5000)}` }), /longer than/],
      [request('pvc-x', { image: app.image, platforms: 'linux' }), /parameters.platforms: platform "linux" must look like os\/arch/],
      [request('pvc-x', { image: app.image }, { volume_capabilities: [] }), /volume_capabilities is required/],
      [request('pvc-x', { image: app.image }, { volume_content_source: { snapshot: { snapshot_id: 's' } } }), /volume_content_source is not supported/],
      [request('x'.repeat(300), { image: app.image }), /name is longer than/],
    ];
    for (const [req, message] of cases) await expectGrpcError(csi.CreateVolume(req), grpc.status.INVALID_ARGUMENT, message);
    await expectGrpcError(csi.DeleteVolume({ volume_id: '' }), grpc.status.INVALID_ARGUMENT, /volume_id is required/);
  });

  it('clip node publishes the provisioned volume by downloading the controller\'s index from S3, without indexing', async () => {
    const created = await createUntilDone(request('pvc-88888888-9999', { image: app.image }));
    const nodeDir = await makePluginDir('ctl-node-');
    const plugin = await startPlugin(nodeDir, ['--image-grace-seconds', '0', '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint], { env: s3.env });
    const node = await connectCsi(plugin.socketPath);
    try {
      const volume = await podVolume(nodeDir);
      await node.NodePublishVolume({
        volume_id: created.volume.volume_id,
        target_path: volume.targetPath,
        volume_capability: MOUNT_CAPABILITY('MULTI_NODE_READER_ONLY'),
        readonly: true,
        volume_context: created.volume.volume_context,
        secrets,
      });
      assert.equal(await readFile(join(volume.targetPath, 'hello.txt'), 'utf8'), 'served from the index the controller made\n');
      const metrics = (await httpGet(plugin.metricsAddress, '/metrics')).body;
      assert.equal(metricValue(metrics, 'clip_csi_index_source_total', { source: 's3' }), 1);
      assert.equal(metricValue(metrics, 'clip_csi_index_source_total', { source: 'indexed' }), 0);
      await node.NodeUnpublishVolume({ volume_id: created.volume.volume_id, target_path: volume.targetPath });
    } finally {
      node.close();
      await plugin.stop();
      const left = await mountsUnder(nodeDir);
      await cleanupPluginDir(nodeDir);
      assert.deepEqual(left, []);
    }
  });

  it('not ready while S3 does not answer (/readyz and Probe say why); SIGTERM stops it cleanly', async () => {
    const downDir = await mkdtemp(join(tmpdir(), 'ctl-down-'));
    const down = await startControllerProcess(downDir, ['--no-kubernetes', '--s3-bucket', BUCKET, '--s3-endpoint', `http://127.0.0.1:${await freePort()}`], s3.env);
    const client = await connectController(down.socketPath);
    try {
      const ready = await httpGet(down.metricsAddress, '/readyz');
      assert.equal(ready.status, 503);
      assert.match(ready.body, new RegExp(`S3 bucket s3://${BUCKET} does not answer`));
      assert.equal((await client.Probe()).ready?.value, false);
      assert.equal((await httpGet(down.metricsAddress, '/healthz')).status, 200);
      assert.equal((await httpGet(controller.metricsAddress, '/readyz')).status, 200, 'the other one, with S3, is ready');
      client.close();
      assert.equal(await down.stop(), 0, 'exit code after SIGTERM');
      assert.ok(down.logs().some((line) => line.msg === 'stopped'));
      await assert.rejects(access(down.socketPath), 'the socket is removed');
    } finally {
      client.close();
      await down.stop();
      await rm(downDir, { recursive: true, force: true });
    }
  });
});
