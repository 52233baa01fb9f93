/**
 * Volumes survive a restart, a crash and a replacement of `clip node` (issue: "Volumes survive a
 * node plugin restart, crash or upgrade"): a reader process keeps reading a read-only and a
 * writable volume, cold and cached data, while the plugin is (a) restarted (SIGTERM, then started
 * again: the holder keeps the connections), (b) killed with kill -9 and started again, (c) replaced
 * by a new process started beside it (a rolling update with maxSurge: handover over the state
 * directory's socket). The mounts at the targets never change.
 *
 * What the reader may see: in (a) and (c), no error and no wrong byte; in (b) too, because this
 * kernel (6.18) has FUSE_NOTIFY_RESEND: a request the killed process had taken is queued again,
 * so the reader sees only a delay (the longest read is printed).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { mountsAt } from '../src/node/mount-utils.js';
import { connectCsi, ephemeralContext, MOUNT_CAPABILITY, type CsiClient, type PublishRequest } from './helpers/csi-client.js';
import { cleanupPluginDir, httpGet, makePluginDir, metricValue, mountsUnder, podVolume, startPlugin, type PluginProcess, type PodVolume } from './helpers/csi-plugin.js';
import { CLIP_BIN } from './helpers/processes.js';
import { startLoggedProcess, type LoggedProcess } from './helpers/logged-process.js';
import { startVolumeReader, type ReaderStatus } from './helpers/volume-reader-client.js';
import { pushImage } from './harness/image-builder.js';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { buildTarLayer, patternContent } from './harness/tar-layer.js';

const COLD_FILES = 240;
const COLD_BYTES = 96 * 1024;

function digestOf(content: ReturnType<typeof patternContent>): string {
  const hash = createHash('sha256');
  for (const chunk of content.chunks() as Iterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}

describe('clip node: volumes survive restarts, crashes and replacement', () => {
  let dir: string;
  let registry: RegistryHandle;
  let proxy: CountingProxy;
  let image: string;
  const processes: Array<PluginProcess | LoggedProcess> = [];
  const clients: CsiClient[] = [];
  const readers: ChildProcess[] = [];

  before(async () => {
    dir = await makePluginDir('csi-takeover-');
    registry = await startRegistry();
    const entries = [{ type: 'file' as const, path: 'hello.txt', content: 'hello across restarts\n' }];
    for (let i = 0; i < COLD_FILES; i++) entries.push({ type: 'file', path: `cold/f${String(i).padStart(3, '0')}.bin`, content: patternContent(COLD_BYTES, 100 + i) as never });
    await pushImage(registry, 'apps/takeover', 'v1', [buildTarLayer(entries)]);
    // Through a proxy that can hold blob requests: a cold read is then in flight when the plugin goes.
    proxy = await startCountingProxy(registry.host);
    image = `${proxy.host}/apps/takeover:v1`;
  });

  afterEach(async () => {
    proxy.clearFaults();
    for (const reader of readers.splice(0)) reader.kill('SIGKILL');
    for (const client of clients.splice(0)) client.close();
    for (const child of processes.splice(0)) await child.stop().catch(() => undefined);
    await cleanupPluginDir(dir);
    assert.deepEqual(await mountsUnder(dir), []);
  });

  after(async () => {
    await proxy?.close();
    await registry?.stop();
    if (dir) await cleanupPluginDir(dir);
  });

  async function startHolder(stateDir: string): Promise<LoggedProcess> {
    const holder = await startLoggedProcess(CLIP_BIN, ['holder', '--socket', join(stateDir, 'holder.sock')], { startedMessage: 'holder started', name: 'clip holder' });
    processes.push(holder);
    return holder;
  }

  async function start(): Promise<{ plugin: PluginProcess; csi: CsiClient }> {
    const plugin = await startPlugin(dir, ['--image-grace-seconds', '0', '--cache-max-bytes', '64Mi']);
    processes.push(plugin);
    const csi = await connectCsi(plugin.socketPath);
    clients.push(csi);
    return { plugin, csi };
  }

  const request = (volume: PodVolume, readonly: boolean): PublishRequest => ({
    volume_id: volume.volumeId,
    target_path: volume.targetPath,
    volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_WRITER'),
    readonly,
    volume_context: ephemeralContext(image, { name: volume.podName, uid: volume.podUid }),
  });

  /** Publishes a read-only and a writable volume and starts a reader of both. */
  async function workload(csi: CsiClient): Promise<{ targets: string[]; status: () => ReaderStatus; reader: ChildProcess }> {
    const readOnly = await podVolume(dir);
    const writable = await podVolume(dir);
    await csi.NodePublishVolume(request(readOnly, true));
    await csi.NodePublishVolume(request(writable, false));
    const written = 'written by the pod before the restart\n';
    await writeFile(join(writable.targetPath, 'state.txt'), written);
    const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
    const files = [
      { path: join(readOnly.targetPath, 'hello.txt'), sha256: sha('hello across restarts\n') },
      { path: join(writable.targetPath, 'state.txt'), sha256: sha(written) },
      { path: join(writable.targetPath, 'hello.txt'), sha256: sha('hello across restarts\n') },
    ];
    // Cold files: each read once per pass, alternately through each volume; most are first read during or after the restart.
    for (let i = 0; i < COLD_FILES; i++) {
      const name = `cold/f${String(i).padStart(3, '0')}.bin`;
      files.push({ path: join((i % 2 ? writable : readOnly).targetPath, name), sha256: digestOf(patternContent(COLD_BYTES, 100 + i)) });
    }
    const reader = startVolumeReader(files);
    readers.push(reader.child);
    return { targets: [readOnly.targetPath, writable.targetPath], status: reader.status, reader: reader.child };
  }

  async function readsGrowBy(status: () => ReaderStatus, count: number, timeoutMs = 60_000): Promise<void> {
    const goal = status().reads + count;
    const deadline = Date.now() + timeoutMs;
    while (status().reads < goal) {
      if (Date.now() > deadline) assert.fail(`the reader is stuck at ${status().reads} reads (wanted ${goal}): ${JSON.stringify(status())}`);
      await delay(20);
    }
  }

  /**
   * Holds the registry's blob answers until the returned function is called, once a cold read
   * waits on one: the plugin then has a request it took from the kernel and has not answered.
   */
  async function holdColdRead(): Promise<() => void> {
    proxy.resetStats();
    proxy.addFault({ kind: 'delay', ms: 2_000 }, { match: /^GET .*\/blobs\//, times: 1_000 });
    const deadline = Date.now() + 20_000;
    while (proxy.stats.inFlight === 0) {
      if (Date.now() > deadline) assert.fail('no cold read reached the registry');
      await delay(5);
    }
    // The reader's own read now waits on a fetch too (it reads the cold files in order).
    await delay(300);
    return () => proxy.clearFaults();
  }

  async function mountIds(targets: readonly string[]): Promise<number[][]> {
    return Promise.all(targets.map(async (target) => (await mountsAt(target)).map((entry) => entry.id)));
  }

  /** A plugin, its holder, and a reader of two volumes under way. */
  async function runningWithHolder(): Promise<{ first: Awaited<ReturnType<typeof start>>; load: Awaited<ReturnType<typeof workload>>; before: number[][] }> {
    const first = await start();
    await startHolder(first.plugin.stateDir);
    // The holder was started after the plugin: the plugin puts its connections there once it answers.
    const load = await workload(first.csi);
    await first.plugin.waitForLog((line) => line.msg === 'the FUSE connection holder answers again; putting every connection there', 15_000);
    await readsGrowBy(load.status, 30);
    return { first, load, before: await mountIds(load.targets) };
  }

  function assertClean(status: ReaderStatus, what: string): void {
    assert.equal(status.errorCount, 0, `${what}: the reader saw errors: ${status.errors.join(', ')}`);
    assert.deepEqual(status.mismatches, [], `${what}: the reader saw wrong bytes`);
  }

  it('(a) SIGTERM and start again with a holder: the next process takes the connections back; the reader sees no error', async () => {
    const { first, load, before } = await runningWithHolder();

    const release = await holdColdRead();
    assert.equal(await first.plugin.stop(), 0);
    release();
    const second = await start();
    await readsGrowBy(load.status, COLD_FILES + 10);
    assertClean(load.status(), 'restart');
    assert.deepEqual(await mountIds(load.targets), before, 'the mounts at the targets are the same ones');
    assert.ok(second.plugin.logs().some((line) => line.msg === 'took over a FUSE connection of the previous process'));
    const metrics = (await httpGet(second.plugin.metricsAddress, '/metrics')).body;
    assert.equal(metricValue(metrics, 'clip_csi_fuse_connections_taken_over_total', { source: 'holder' }), 1);
    assert.equal(metricValue(metrics, 'clip_csi_volumes_published'), 2);
    assert.equal(metricValue(metrics, 'clip_csi_fuse_holder_up'), 1);
    process.stdout.write(`# restart: longest read ${load.status().longestMs.toFixed(0)} ms\n`);
  });

  it('(b) kill -9 and start again with a holder: requests the dead process took are resent; the reader sees only a delay', async () => {
    const { first, load, before } = await runningWithHolder();

    const release = await holdColdRead();
    await first.plugin.kill9();
    release();
    const second = await start();
    await second.plugin.waitForLog((line) => line.msg === 'asked the kernel to resend the requests the previous process left unanswered');
    await readsGrowBy(load.status, COLD_FILES + 10);
    assertClean(load.status(), 'kill -9');
    assert.deepEqual(await mountIds(load.targets), before);
    process.stdout.write(`# kill -9: longest read ${load.status().longestMs.toFixed(0)} ms\n`);
  });

  it('(c) a new process started beside the old one (maxSurge): handover over the socket; the reader sees no error', async () => {
    const first = await start();
    const load = await workload(first.csi);
    await readsGrowBy(load.status, 30);
    const before = await mountIds(load.targets);

    // No holder: the connections go from process to process directly.
    const release = await holdColdRead();
    const second = await start();
    await first.plugin.waitForLog((line) => line.msg === 'handed over every FUSE connection; this process serves nothing more');
    release();
    await readsGrowBy(load.status, 50);
    // The old pod goes away; the new process serves on.
    assert.equal(await first.plugin.stop(), 0);
    await second.plugin.waitForLog((line) => line.msg === 'asked the kernel to resend the requests the previous process left unanswered' && line.when === 'the previous process exited');
    await readsGrowBy(load.status, COLD_FILES + 10);
    assertClean(load.status(), 'handover');
    assert.deepEqual(await mountIds(load.targets), before);
    const metrics = (await httpGet(second.plugin.metricsAddress, '/metrics')).body;
    assert.equal(metricValue(metrics, 'clip_csi_fuse_connections_taken_over_total', { source: 'handover' }), 1);
    // The new process serves CSI calls: a publish of a third volume works.
    const third = await podVolume(dir);
    await second.csi.NodePublishVolume(request(third, true));
    assert.equal(await readFile(join(third.targetPath, 'hello.txt'), 'utf8'), 'hello across restarts\n');
    process.stdout.write(`# handover: longest read ${load.status().longestMs.toFixed(0)} ms\n`);
  });

  it('the holder killed: the next plugin start mounts again, saying why', async () => {
    const first = await start();
    const holder = await startHolder(first.plugin.stateDir);
    const volume = await podVolume(dir);
    await first.csi.NodePublishVolume(request(volume, true));
    await first.plugin.waitForLog((line) => line.msg === 'the FUSE connection holder answers again; putting every connection there', 15_000);
    await holder.kill9();
    await first.plugin.kill9();
    await assert.rejects(readFile(join(volume.targetPath, 'hello.txt')), { code: 'ENOTCONN' });
    const second = await start();
    await second.plugin.waitForLog((line) => line.msg.startsWith('no FUSE connection holder answers'));
    await second.plugin.waitForLog((line) => line.msg === 'volume restored');
    assert.equal(await readFile(join(volume.targetPath, 'hello.txt'), 'utf8'), 'hello across restarts\n');
  });
});
