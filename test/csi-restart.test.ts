/**
 * `clip node` across restarts and slow indexing: kill -9 with volumes published, SIGTERM, and a
 * publish that gives up waiting while the image is still being indexed.
 */
import assert from 'node:assert/strict';
import { access, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import grpc from '@grpc/grpc-js';
import { runCommand } from '../src/node/mount-utils.js';
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
import { buildTarLayer, patternContent } from './harness/tar-layer.js';

describe('clip node: restarts and slow indexing', () => {
  let dir: string;
  let registry: RegistryHandle;
  let image: string;
  const plugins: PluginProcess[] = [];
  const clients: CsiClient[] = [];

  before(async () => {
    dir = await makePluginDir('csi-restart-');
    registry = await startRegistry();
    await pushImage(registry, 'apps/restart', 'v1', [
      buildTarLayer([
        { type: 'file', path: 'hello.txt', content: 'hello across restarts\n' },
        { type: 'file', path: 'data/blob.bin', content: patternContent(1024 * 1024, 11) },
      ]),
    ]);
    image = `${registry.host}/apps/restart:v1`;
  });

  // A test that fails midway must not leave its plugin serving the socket the next test needs.
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const plugin of plugins.splice(0)) await plugin.stop();
  });

  after(async () => {
    await registry?.stop();
    if (dir) {
      await cleanupPluginDir(dir);
      assert.deepEqual(await mountsUnder(dir), []);
    }
  });

  async function start(extra: string[] = []): Promise<{ plugin: PluginProcess; csi: CsiClient }> {
    const plugin = await startPlugin(dir, ['--image-grace-seconds', '0', ...extra]);
    plugins.push(plugin);
    const csi = await connectCsi(plugin.socketPath);
    clients.push(csi);
    return { plugin, csi };
  }

  const request = (volume: PodVolume, readonly: boolean, ref = image): PublishRequest => ({
    volume_id: volume.volumeId,
    target_path: volume.targetPath,
    volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_WRITER'),
    readonly,
    volume_context: ephemeralContext(ref, { name: volume.podName, uid: volume.podUid }),
  });

  async function waitUntilReadable(path: string, expected: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => `<${err.code}>`);
      if (text === expected) return;
      if (Date.now() > deadline) assert.fail(`${path} still reads ${text}`);
      await delay(50);
    }
  }

  /** Every FUSE mount under the test directory answers (none is a dead leftover). */
  async function assertNoDeadFuseMounts(): Promise<void> {
    for (const point of await fuseMountsUnder(dir)) {
      await readdir(point).catch((err: NodeJS.ErrnoException) => assert.fail(`${point} is a dead FUSE mount (${err.code})`));
    }
  }

  it('kill -9 with volumes published: the next process serves them again, cleans removed ones, and publishes new ones', async () => {
    const first = await start();
    const readOnly = await podVolume(dir);
    const writable = await podVolume(dir);
    const orphan = await podVolume(dir);
    const podGone = await podVolume(dir);
    for (const [volume, ro] of [[readOnly, true], [writable, false], [orphan, true], [podGone, false]] as const) {
      await first.csi.NodePublishVolume(request(volume, ro));
    }
    await writeFile(join(writable.targetPath, 'state.txt'), 'written before the crash\n');
    assert.equal(await readFile(join(readOnly.targetPath, 'hello.txt'), 'utf8'), 'hello across restarts\n');

    await first.plugin.kill9();
    // The FUSE server is gone: the old mounts answer ENOTCONN until they are re-bound, for all the
    // kernel has not cached (hello.txt, read above, is in the page cache: docs/fuse.md).
    await assert.rejects(access(join(readOnly.targetPath, 'never-looked-up')), { code: 'ENOTCONN' });

    // While no plugin runs: one volume's record disappears (its unpublish had got that far), and
    // kubelet removes another pod's directory.
    const records = join(first.plugin.stateDir, 'records');
    const recordFiles = await readdir(records);
    assert.equal(recordFiles.length, 4);
    let orphanRecord: string | undefined;
    for (const file of recordFiles) {
      const record = JSON.parse(await readFile(join(records, file), 'utf8')) as { volumeId: string };
      if (record.volumeId === orphan.volumeId) orphanRecord = file;
    }
    await rm(join(records, orphanRecord as string));
    assert.equal((await runCommand('umount', ['-l', podGone.targetPath])).code, 0);
    await rm(join(dir, 'pods', podGone.podUid), { recursive: true });

    const second = await start();
    await waitUntilReadable(join(readOnly.targetPath, 'hello.txt'), 'hello across restarts\n');
    await waitUntilReadable(join(writable.targetPath, 'hello.txt'), 'hello across restarts\n');
    assert.equal(await readFile(join(writable.targetPath, 'state.txt'), 'utf8'), 'written before the crash\n', "the writable layer survives");
    await assert.rejects(writeFile(join(readOnly.targetPath, 'x'), 'x'), { code: 'EROFS' });
    await assert.rejects(access(orphan.targetPath), { code: 'ENOENT' }, 'the target of the unrecorded volume is unmounted and removed');
    assert.deepEqual(await mountsUnder(orphan.targetPath), []);
    assert.equal((await readdir(records)).length, 2, 'the record of the volume whose pod is gone is dropped');
    await assertNoDeadFuseMounts();
    assert.equal((await fuseMountsUnder(join(second.plugin.stateDir, 'images'))).length, 1, 'one image mount again');
    const metrics = await httpGet(second.plugin.metricsAddress, '/metrics');
    assert.equal(metricValue(metrics.body, 'clip_csi_index_source_total', { source: 'local-cache' }), 1, 'mounted again from the node-local index');
    assert.equal(metricValue(metrics.body, 'clip_csi_volumes_published'), 2);

    // Publishing the same volume again is idempotent; new volumes work.
    await second.csi.NodePublishVolume(request(readOnly, true));
    const fresh = await podVolume(dir);
    await second.csi.NodePublishVolume(request(fresh, false));
    assert.equal(await readFile(join(fresh.targetPath, 'hello.txt'), 'utf8'), 'hello across restarts\n');

    for (const volume of [readOnly, writable, fresh]) {
      await second.csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
      await assert.rejects(access(volume.targetPath), { code: 'ENOENT' });
    }
    assert.equal(await second.plugin.stop(), 0);
    assert.deepEqual(await mountsUnder(dir), [], 'nothing left mounted once every volume is unpublished');
    assert.deepEqual(await readdir(join(second.plugin.stateDir, 'volumes')), [], 'writable layers deleted');
  });

  it('SIGTERM leaves the mounts pods use in place; the next process takes them over', async () => {
    const first = await start();
    const volume = await podVolume(dir);
    await first.csi.NodePublishVolume(request(volume, true));
    assert.equal(await first.plugin.stop(), 0);
    assert.deepEqual(await mountsUnder(volume.targetPath), [volume.targetPath], 'the target stays mounted');
    assert.equal((await fuseMountsUnder(join(first.plugin.stateDir, 'images'))).length, 1, 'the image mount stays');

    const second = await start();
    await waitUntilReadable(join(volume.targetPath, 'hello.txt'), 'hello across restarts\n');
    await assertNoDeadFuseMounts();
    await second.csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
    await second.plugin.stop();
    assert.deepEqual(await mountsUnder(dir), []);
  });

  it('a slow index: publish answers ABORTED, the indexing goes on, and the retry picks it up', async () => {
    await pushImage(registry, 'apps/restart', 'slow', [buildTarLayer([{ type: 'file', path: 'slow.txt', content: 'indexed in the background\n' }])]);
    const slowImage = `${registry.host}/apps/restart:slow`;
    // With no time to wait, every publish that finds the image not yet mounted answers ABORTED.
    const { plugin, csi } = await start(['--index-wait-seconds', '0']);
    const volume = await podVolume(dir);
    await expectGrpcError(csi.NodePublishVolume(request(volume, true, slowImage)), grpc.status.ABORTED, /not ready yet.*retry/);
    assert.deepEqual(await mountsUnder(volume.targetPath), [], 'nothing mounted meanwhile');
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await csi.NodePublishVolume(request(volume, true, slowImage));
        break;
      } catch (err) {
        assert.equal((err as grpc.ServiceError).code, grpc.status.ABORTED, (err as grpc.ServiceError).details);
        if (Date.now() > deadline) throw err;
        await delay(100);
      }
    }
    assert.equal(await readFile(join(volume.targetPath, 'slow.txt'), 'utf8'), 'indexed in the background\n');
    assert.equal(plugin.logs().filter((line) => line.msg === 'indexing image').length, 1, 'indexed once, never restarted');
    await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
    await plugin.stop();
  });
});
