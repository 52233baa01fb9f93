/**
 * The Identity and Node checks of the CSI sanity suite (kubernetes-csi/csi-test's `csi-sanity`),
 * reproduced for a node-only driver: that suite is a Go program, and neither the Go module proxy
 * nor a Debian package is reachable here to build or install it. Each `it` names the csi-sanity
 * check it stands for. The plugin runs as `clip node` on a unix socket; the calls are gRPC.
 */
import assert from 'node:assert/strict';
import { access, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import grpc from '@grpc/grpc-js';
import { connectCsi, ephemeralContext, expectGrpcError, MOUNT_CAPABILITY, type CsiClient, type PublishRequest } from './helpers/csi-client.js';
import { cleanupPluginDir, httpGet, makePluginDir, mountsUnder, podVolume, startPlugin, type PluginProcess } from './helpers/csi-plugin.js';
import { runClip } from './helpers/processes.js';
import { StateDir } from '../src/node/state.js';
import { pushImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { buildTarLayer } from './harness/tar-layer.js';

const KNOWN_PLUGIN_CAPABILITIES = new Set(['CONTROLLER_SERVICE', 'VOLUME_ACCESSIBILITY_CONSTRAINTS', 'GROUP_CONTROLLER_SERVICE']);
const KNOWN_NODE_CAPABILITIES = new Set([
  'STAGE_UNSTAGE_VOLUME',
  'GET_VOLUME_STATS',
  'EXPAND_VOLUME',
  'VOLUME_CONDITION',
  'SINGLE_NODE_MULTI_WRITER',
  'VOLUME_MOUNT_GROUP',
]);

describe('csi-sanity: Identity and Node services of a node-only driver', () => {
  let dir: string;
  let registry: RegistryHandle;
  let plugin: PluginProcess | undefined;
  let csi: CsiClient;
  let image: string;

  before(async () => {
    dir = await makePluginDir('csi-sanity-');
    registry = await startRegistry();
    await pushImage(registry, 'sanity/app', 'v1', [buildTarLayer([{ type: 'file', path: 'hello.txt', content: 'hello sanity\n' }])]);
    image = `${registry.host}/sanity/app:v1`;
    plugin = await startPlugin(dir, ['--image-grace-seconds', '0']);
    csi = await connectCsi(plugin.socketPath);
  });

  after(async () => {
    csi?.close();
    await plugin?.stop();
    await registry?.stop();
    if (dir) {
      const left = await mountsUnder(dir);
      await cleanupPluginDir(dir);
      assert.deepEqual(left, [], 'mounts left behind');
    }
  });

  const publishRequest = async (overrides: PublishRequest = {}): Promise<PublishRequest> => {
    const volume = await podVolume(dir);
    return {
      volume_id: volume.volumeId,
      target_path: volume.targetPath,
      volume_capability: MOUNT_CAPABILITY(),
      readonly: false,
      volume_context: ephemeralContext(image, { name: volume.podName, uid: volume.podUid }),
      ...overrides,
    };
  };

  describe('Identity Service', () => {
    it('GetPluginInfo: should return appropriate information', async () => {
      const info = await csi.GetPluginInfo();
      assert.equal(info.name, 'clip.csi.dev');
      assert.ok(info.name.length <= 63);
      assert.match(info.name, /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/);
      assert.notEqual(info.vendor_version, '');
    });

    it('GetPluginCapabilities: should return appropriate capabilities (no CONTROLLER_SERVICE)', async () => {
      const { capabilities } = await csi.GetPluginCapabilities();
      // A node-only driver without topology advertises nothing here.
      assert.equal(capabilities.length, 0, JSON.stringify(capabilities));
      for (const capability of capabilities) {
        if (capability.service) assert.ok(KNOWN_PLUGIN_CAPABILITIES.has(capability.service.type), capability.service.type);
        if (capability.volume_expansion) assert.ok(['ONLINE', 'OFFLINE'].includes(capability.volume_expansion.type));
      }
      assert.ok(!capabilities.some((capability) => capability.service?.type === 'CONTROLLER_SERVICE'));
    });

    it('Probe: should return appropriate information', async () => {
      const response = await csi.Probe();
      assert.equal(response.ready?.value, true);
    });
  });

  describe('Node Service', () => {
    it('NodeGetCapabilities: should return appropriate capabilities', async () => {
      const { capabilities } = await csi.NodeGetCapabilities();
      for (const capability of capabilities) assert.ok(KNOWN_NODE_CAPABILITIES.has(capability.rpc?.type ?? 'UNKNOWN'), JSON.stringify(capability));
      // What docs/node.md promises, exactly: stats with a volume condition, and no staging.
      const types = capabilities.map((capability) => capability.rpc?.type).sort();
      assert.deepEqual(types, ['GET_VOLUME_STATS', 'VOLUME_CONDITION']);
    });

    it('NodeGetInfo: should return appropriate values', async () => {
      const info = await csi.NodeGetInfo();
      assert.equal(info.node_id, 'test-node');
      // 0: no limit on volumes per node (the CSI spec's "not set"; a limit would make the
      // scheduler count them).
      assert.strictEqual(info.max_volumes_per_node, 0);
      assert.equal(info.accessible_topology, null);
    });

    it('NodePublishVolume: should fail when no volume id is provided', async () => {
      await expectGrpcError(csi.NodePublishVolume(await publishRequest({ volume_id: '' })), grpc.status.INVALID_ARGUMENT, /volume_id/);
    });

    it('NodePublishVolume: should fail when no target path is provided', async () => {
      await expectGrpcError(csi.NodePublishVolume(await publishRequest({ target_path: '' })), grpc.status.INVALID_ARGUMENT, /target_path/);
    });

    it('NodePublishVolume: should fail when no volume capability is provided', async () => {
      await expectGrpcError(csi.NodePublishVolume(await publishRequest({ volume_capability: null })), grpc.status.INVALID_ARGUMENT, /volume_capability/);
    });

    it('NodeUnpublishVolume: should fail when no volume id is provided', async () => {
      await expectGrpcError(csi.NodeUnpublishVolume({ target_path: join(dir, 'nowhere') }), grpc.status.INVALID_ARGUMENT, /volume_id/);
    });

    it('NodeUnpublishVolume: should fail when no target path is provided', async () => {
      await expectGrpcError(csi.NodeUnpublishVolume({ volume_id: 'some-volume' }), grpc.status.INVALID_ARGUMENT, /target_path/);
    });

    it('NodeUnpublishVolume: should succeed for a volume that was never published (idempotent)', async () => {
      const volume = await podVolume(dir);
      const response = await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
      assert.deepEqual(response, {});
      await assert.rejects(access(volume.targetPath), { code: 'ENOENT' }, 'nothing is created at the target');
      assert.deepEqual(await mountsUnder(volume.targetPath), []);
    });

    it('NodeStageVolume: is not implemented (no STAGE_UNSTAGE_VOLUME)', async () => {
      await expectGrpcError(csi.NodeStageVolume({ volume_id: 'v', staging_target_path: join(dir, 'stage') }), grpc.status.UNIMPLEMENTED);
    });

    it('should work: publish, publish again (idempotent), stats, unpublish, unpublish again', async () => {
      const request = await publishRequest();
      const target = request.target_path as string;
      await csi.NodePublishVolume(request);
      assert.ok((await stat(target)).isDirectory());
      assert.deepEqual(await mountsUnder(target), [target]);
      // Same request again: OK, and still one mount at the target.
      await csi.NodePublishVolume(request);
      assert.deepEqual(await mountsUnder(target), [target]);
      const stats = await csi.NodeGetVolumeStats({ volume_id: request.volume_id, volume_path: target });
      const bytes = stats.usage.find((usage) => usage.unit === 'BYTES');
      assert.ok(bytes && bytes.used >= 'hello sanity\n'.length, JSON.stringify(stats));
      assert.equal(stats.volume_condition?.abnormal, false);

      const record = join(plugin?.stateDir ?? '', 'records', `${StateDir.recordId(request.volume_id as string, target)}.json`);
      await access(record); // the publication is recorded

      assert.deepEqual(await csi.NodeUnpublishVolume({ volume_id: request.volume_id, target_path: target }), {});
      await assert.rejects(access(target), { code: 'ENOENT' }, 'NodeUnpublish removes the target path');
      await assert.rejects(access(record), { code: 'ENOENT' }, 'and the record');
      assert.deepEqual(await mountsUnder(target), []);
      // Again, as kubelet retries: OK, and nothing changes.
      assert.deepEqual(await csi.NodeUnpublishVolume({ volume_id: request.volume_id, target_path: target }), {});
      await assert.rejects(access(target), { code: 'ENOENT' });
      assert.deepEqual(await mountsUnder(target), []);
      await expectGrpcError(csi.NodeGetVolumeStats({ volume_id: request.volume_id, volume_path: target }), grpc.status.NOT_FOUND);
    });

    it('NodeUnpublishVolume: removes a leftover target directory even without a publish record', async () => {
      const volume = await podVolume(dir);
      await mkdir(volume.targetPath);
      await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
      await assert.rejects(access(volume.targetPath), { code: 'ENOENT' });
    });

    it('NodeGetVolumeStats: should fail when no volume id or path is provided, NOT_FOUND for an unknown volume', async () => {
      await expectGrpcError(csi.NodeGetVolumeStats({ volume_path: dir }), grpc.status.INVALID_ARGUMENT, /volume_id/);
      await expectGrpcError(csi.NodeGetVolumeStats({ volume_id: 'x' }), grpc.status.INVALID_ARGUMENT, /volume_path/);
      await expectGrpcError(csi.NodeGetVolumeStats({ volume_id: 'x', volume_path: join(dir, 'nothing') }), grpc.status.NOT_FOUND);
    });

    it('NodeGetVolumeStats: should fail when volume does not exist on the specified path (NOT_FOUND, the path relative as csi-sanity sends it)', async () => {
      await expectGrpcError(csi.NodeGetVolumeStats({ volume_id: 'some-volume', volume_path: 'some/path' }), grpc.status.NOT_FOUND);
    });

    it('NodePublishVolume: a target path that is a file is refused', async () => {
      const volume = await podVolume(dir);
      await writeFile(volume.targetPath, 'not a directory');
      await expectGrpcError(
        csi.NodePublishVolume(await publishRequest({ volume_id: volume.volumeId, target_path: volume.targetPath })),
        grpc.status.INVALID_ARGUMENT,
        /not a directory/,
      );
      assert.ok((await stat(volume.targetPath)).isFile(), 'the file is left alone');
    });
  });

  describe('configuration', () => {
    it('--driver-name names the plugin; Probe is not ready while the cache directory is unusable', async () => {
      const other = await makePluginDir('csi-sanity2-');
      let second: PluginProcess | undefined;
      let client: CsiClient | undefined;
      try {
        await writeFile(join(other, 'not-a-dir'), '');
        second = await startPlugin(other, ['--driver-name', 'images.example.com', '--cache-dir', join(other, 'not-a-dir', 'cache')]);
        client = await connectCsi(second.socketPath);
        assert.equal((await client.GetPluginInfo()).name, 'images.example.com');
        assert.equal((await client.Probe()).ready?.value, false);
        const readyz = await httpGet(second.metricsAddress, '/readyz');
        assert.equal(readyz.status, 503);
        assert.match(readyz.body, /cache directory .* is not writable/);
        assert.equal((await httpGet(second.metricsAddress, '/healthz')).status, 200);
      } finally {
        client?.close();
        await second?.stop();
        await cleanupPluginDir(other);
      }
    });

    it('refuses to start without a node id; --help lists every flag', async () => {
      // The child inherits this process's environment: NODE_NAME must not be there.
      const saved = process.env['NODE_NAME'];
      delete process.env['NODE_NAME'];
      const missing = await runClip(['node', '--endpoint', `unix://${join(dir, 'unused.sock')}`, '--state-dir', join(dir, 'unused')]).finally(() => {
        if (saved !== undefined) process.env['NODE_NAME'] = saved;
      });
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /--node-id or set NODE_NAME/);
      const help = await runClip(['node', '--help']);
      assert.equal(help.code, 0);
      for (const flag of [
        '--endpoint',
        '--node-id',
        '--driver-name',
        '--state-dir',
        '--cache-dir',
        '--cache-max-bytes',
        '--s3-bucket',
        '--s3-prefix',
        '--s3-endpoint',
        '--metrics-addr',
        '--image-grace-seconds',
        '--index-wait-seconds',
        '--insecure-registry',
        '--ca-cert',
        '--docker-config',
        '--kubelet-dir',
        '--credentials-wait-seconds',
      ]) {
        assert.ok(help.stdout.includes(flag), `--help lacks ${flag}`);
      }
    });
  });
});
