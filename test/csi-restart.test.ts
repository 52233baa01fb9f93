/**
 * `clip node` across restarts and slow indexing: kill -9 with volumes published, SIGTERM, and a
 * publish that gives up waiting while the image is still being indexed.
 */
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { access, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import grpc from '@grpc/grpc-js';
import { mountsAt, runCommand, unmountAll } from '../src/node/mount-utils.js';
import { MAX_DEAD_MOUNTS } from '../src/node/node-volumes.js';
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
    // The FUSE server is gone: the old mounts answer ENOTCONN until they are re-bound.
    await assert.rejects(readFile(join(readOnly.targetPath, 'hello.txt')), { code: 'ENOTCONN' });

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

  /**
   * A container with `mountPropagation: HostToContainer`, as runc makes it: its own mount namespace
   * (a slave of the host's) where each volume's target is bound (`rbind`, `rslave`) at a path of
   * its own: the container holds copies of the targets' mounts, not of their parent directories.
   * `read` and `write` take a volume's index and a path in it.
   */
  async function startContainer(volumes: readonly PodVolume[]): Promise<{ read: (volume: number, path: string) => Promise<string>; write: (volume: number, path: string, text: string) => Promise<void>; stop: () => Promise<void> }> {
    const root = await mkdtemp(join(dir, 'container-'));
    const views = volumes.map((_, index) => join(root, `volume-${index}`));
    const binds = volumes.map((volume, index) => `mkdir -p '${views[index]}' && mount --rbind '${volume.targetPath}' '${views[index]}' && mount --make-rslave '${views[index]}'`);
    const child = spawn('unshare', ['--mount', '--propagation', 'slave', 'sh', '-c', `${binds.join(' && ')} && echo ready && exec sleep 600`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const ready = await new Promise<boolean>((resolve) => {
      child.once('exit', () => resolve(false));
      child.stdout.once('data', () => resolve(true));
    });
    assert.ok(ready, 'the container starts');
    const inside = async (script: string, ...args: string[]): Promise<string> => {
      try {
        return (await promisify(execFile)('nsenter', ['-t', String(child.pid), '-m', 'sh', '-c', script, 'sh', ...args], { timeout: 10_000 })).stdout;
      } catch (err) {
        return `<${(err as { stderr?: string }).stderr?.trim() ?? String(err)}>`;
      }
    };
    return {
      read: (volume, path) => inside('cat "$1"', join(views[volume] as string, path)),
      write: async (volume, path, text) => assert.equal(await inside('printf %s "$2" > "$1"', join(views[volume] as string, path), text), ''),
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGKILL');
          await exited;
        }
      },
    };
  }

  async function waitUntilContainerReads(read: () => Promise<string>, expected: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await read();
      if (text === expected) return;
      if (Date.now() > deadline) assert.fail(`the container still reads ${text}`);
      await delay(50);
    }
  }

  it('HostToContainer: a running container reads its volumes again after each restart (the new mounts stack on the dead ones); unpublish removes every layer', async () => {
    const readOnly = await podVolume(dir);
    const writable = await podVolume(dir);
    // kubelet's directory is a shared mount on a node: the targets' mounts then propagate to containers.
    const shared: string[] = [];
    const containers: Array<{ stop: () => Promise<void> }> = [];
    try {
      for (const volume of [readOnly, writable]) {
        const parent = dirname(volume.targetPath);
        assert.equal((await runCommand('mount', ['--bind', parent, parent])).code, 0);
        shared.push(parent);
        assert.equal((await runCommand('mount', ['--make-shared', parent])).code, 0);
      }
      const first = await start();
      await first.csi.NodePublishVolume(request(readOnly, true));
      await first.csi.NodePublishVolume(request(writable, false));
      const hello = 'hello.txt';
      const early = await startContainer([readOnly, writable]);
      containers.push(early);
      assert.equal(await early.read(0, hello), 'hello across restarts\n');
      await early.write(1, 'state.txt', 'written by the container\n');

      await first.plugin.kill9();
      assert.match(await early.read(0, hello), /Transport endpoint is not connected/);
      assert.match(await early.read(1, hello), /Transport endpoint is not connected/);

      const second = await start();
      await waitUntilContainerReads(() => early.read(0, hello), 'hello across restarts\n');
      await waitUntilContainerReads(() => early.read(1, hello), 'hello across restarts\n');
      assert.equal(await early.read(1, 'state.txt'), 'written by the container\n', 'the writable layer survives');
      await early.write(1, 'state.txt', 'written after the first restart\n');
      // A container started now (a restarted one) holds copies of the new top mounts only.
      const late = await startContainer([readOnly, writable]);
      containers.push(late);
      assert.equal(await late.read(0, hello), 'hello across restarts\n');

      await second.plugin.kill9();
      const third = await start();
      for (const container of [early, late]) {
        await waitUntilContainerReads(() => container.read(0, hello), 'hello across restarts\n');
        await waitUntilContainerReads(() => container.read(1, 'state.txt'), 'written after the first restart\n');
      }
      await assert.rejects(writeFile(join(readOnly.targetPath, 'x'), 'x'), { code: 'EROFS' });
      await assertNoDeadFuseMounts();
      for (const volume of [readOnly, writable]) {
        assert.equal((await mountsAt(volume.targetPath)).length, 3, 'two dead layers and the live one');
        await third.csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
        assert.deepEqual(await mountsAt(volume.targetPath), [], 'no layer left at the target');
        await assert.rejects(access(volume.targetPath), { code: 'ENOENT' });
      }
    } finally {
      for (const container of containers) await container.stop();
      for (const parent of shared.reverse()) await unmountAll(parent);
    }
  });

  it(`a target keeps at most ${MAX_DEAD_MOUNTS} dead mounts under the live one: one restart more mounts it afresh`, async () => {
    const volume = await podVolume(dir);
    let current = await start();
    await current.csi.NodePublishVolume(request(volume, false));
    await writeFile(join(volume.targetPath, 'state.txt'), 'kept\n');
    const depths: number[] = [];
    for (let restart = 0; restart <= MAX_DEAD_MOUNTS; restart++) {
      await current.plugin.kill9();
      current = await start();
      // hello.txt is in the image (the dead overlays answer ENOTCONN for it): readable once restored.
      await waitUntilReadable(join(volume.targetPath, 'hello.txt'), 'hello across restarts\n');
      depths.push((await mountsAt(volume.targetPath)).length);
    }
    const stacked = Array.from({ length: MAX_DEAD_MOUNTS }, (_, index) => index + 2);
    assert.deepEqual(depths, [...stacked, 1], 'one more dead mount per restart, then a fresh start');
    assert.equal(await readFile(join(volume.targetPath, 'state.txt'), 'utf8'), 'kept\n');
    assert.ok(current.plugin.logs().some((line) => line.msg.startsWith('the target holds too many mounts of earlier processes')));
    await current.csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
    assert.deepEqual(await mountsAt(volume.targetPath), []);
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
