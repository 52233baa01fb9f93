/**
 * `clip node` against hostile requests and images (issue 18), over its socket, with targets under a
 * temporary kubelet directory given with --kubelet-dir: nodev,nosuid on every target, targets
 * confined to the kubelet directory, unpublish touching only what the plugin made, no credential
 * on disk, bounded fields, and NodeGetVolumeStats NOT_FOUND for any path without a volume.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, lstat, mkdir, open, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import grpc from '@grpc/grpc-js';
import { readMountTable, runCommand } from '../src/node/mount-utils.js';
import { StateDir } from '../src/node/state.js';
import { connectCsi, ephemeralContext, expectGrpcError, MOUNT_CAPABILITY, type CsiClient, type PublishRequest } from './helpers/csi-client.js';
import { cleanupPluginDir, httpGet, makePluginDir, metricValue, mountsUnder, podVolume, startPlugin, type PluginProcess, type PodVolume } from './helpers/csi-plugin.js';
import { pollUntil } from './helpers/poll.js';
import { pushImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { buildTarLayer, contentBytes, patternContent } from './harness/tar-layer.js';

/** Per-mount options (field 6 of /proc/self/mountinfo) of the mount on top at `path`. */
async function mountOptions(path: string): Promise<string[]> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((line) => line.split(' ')[4] === path);
  assert.ok(lines.length > 0, `${path} is not a mount point`);
  return (lines.at(-1) as string).split(' ')[5]?.split(',') ?? [];
}

/** Runs a command asynchronously (the test must never block on a FUSE mount). */
function output(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/**
 * Every regular file under `roots` (mount points skipped: they are images, not what the plugin
 * wrote) whose bytes contain one of `needles`.
 */
async function filesContaining(roots: readonly string[], needles: readonly string[]): Promise<string[]> {
  const mountPoints = new Set((await readMountTable()).map((entry) => entry.mountPoint));
  const hits: string[] = [];
  const walk = async (path: string): Promise<void> => {
    const info = await lstat(path).catch(() => undefined);
    if (!info) return;
    if (info.isDirectory()) {
      if (mountPoints.has(path)) return;
      for (const name of await readdir(path)) await walk(join(path, name));
    } else if (info.isFile()) {
      const bytes = await readFile(path);
      if (needles.some((needle) => bytes.includes(needle))) hits.push(path);
    }
  };
  for (const root of roots) await walk(root);
  return hits;
}

describe('clip node: hostile requests and images', () => {
  let dir: string;
  let registry: RegistryHandle;
  let authRegistry: RegistryHandle;
  let plugin: PluginProcess | undefined;
  let csi: CsiClient;
  let hostileImage: string;
  let privateImage: string;
  const cachedContent = patternContent(1024 * 1024, 21);
  const coldContent = patternContent(1024 * 1024, 22);

  before(async () => {
    dir = await makePluginDir('csi-hard-');
    [registry, authRegistry] = await Promise.all([startRegistry(), startRegistry({ auth: 'basic' })]);
    await pushImage(registry, 'hostile/app', 'v1', [
      buildTarLayer([
        { type: 'file', path: 'hello.txt', content: 'hello\n' },
        { type: 'dir', path: 'dev' },
        { type: 'char-device', path: 'dev/null-copy', major: 1, minor: 3, mode: 0o666 },
        // A copy of id(1), setuid root: with suid honoured, `id -u` run by nobody prints 0.
        { type: 'file', path: 'bin/id-suid', content: await readFile('/usr/bin/id'), mode: 0o4755, uid: 0, gid: 0 },
      ]),
    ]);
    hostileImage = `${registry.host}/hostile/app:v1`;
    // Two layers: reading one file caches spans of its layer only.
    await pushImage(authRegistry, 'private/app', 'v1', [
      buildTarLayer([{ type: 'file', path: 'cached.bin', content: cachedContent }]),
      buildTarLayer([{ type: 'file', path: 'cold.bin', content: coldContent }]),
    ]);
    privateImage = `${authRegistry.host}/private/app:v1`;
    plugin = await startPlugin(dir, ['--image-grace-seconds', '0']);
    csi = await connectCsi(plugin.socketPath);
  });

  after(async () => {
    csi?.close();
    await plugin?.stop();
    await Promise.all([registry?.stop(), authRegistry?.stop()]);
    if (dir) await cleanupPluginDir(dir);
  });

  const request = (volume: PodVolume, image: string, readonly: boolean, secrets: Record<string, string> = {}): PublishRequest => ({
    volume_id: volume.volumeId,
    target_path: volume.targetPath,
    volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_WRITER'),
    readonly,
    volume_context: ephemeralContext(image, { name: volume.podName, uid: volume.podUid }),
    secrets,
  });

  const dockerConfigSecret = (): Record<string, string> => ({
    '.dockerconfigjson': JSON.stringify({
      auths: { [authRegistry.host]: { auth: Buffer.from(`${authRegistry.username}:${authRegistry.password}`).toString('base64') } },
    }),
  });

  it('every target is mounted nodev,nosuid: the image\'s device node and setuid-root file do not work (read-only and writable)', async () => {
    for (const readonly of [true, false]) {
      const volume = await podVolume(dir);
      await csi.NodePublishVolume(request(volume, hostileImage, readonly));
      try {
        const options = await mountOptions(volume.targetPath);
        for (const option of ['nodev', 'nosuid']) assert.ok(options.includes(option), `${readonly ? 'read-only' : 'writable'} target lacks ${option}: ${options.join(',')}`);
        // The image really ships them (else the checks below could not fail).
        const device = await stat(join(volume.targetPath, 'dev/null-copy'));
        assert.ok(device.isCharacterDevice());
        const setuid = await stat(join(volume.targetPath, 'bin/id-suid'));
        assert.equal(setuid.mode & 0o4000, 0o4000);
        assert.equal(setuid.uid, 0);
        await assert.rejects(open(join(volume.targetPath, 'dev/null-copy'), 'r'), { code: 'EACCES' }, 'the device node opens');
        const id = await output('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', join(volume.targetPath, 'bin/id-suid'), '-u']);
        assert.equal(id.code, 0, id.stderr);
        assert.equal(id.stdout.trim(), '65534', 'the setuid-root file ran as root');
      } finally {
        await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
      }
    }
  });

  it('a target must resolve under --kubelet-dir, outside the state and cache directories: else INVALID_ARGUMENT naming the rule', async () => {
    const volume = await podVolume(dir);
    const outside = await makePluginDir('csi-outside-');
    const planted = join(dir, 'pods', volume.podUid, 'volumes', 'kubernetes.io~csi', 'planted');
    try {
      await symlink(outside, planted);
      const before = new Set((await readMountTable()).map((entry) => entry.id));
      const cases: Array<[string, RegExp]> = [
        ['/etc', /not under the kubelet directory/],
        [join(dir, 'pods', '..', '..', '..', 'etc'), /not under the kubelet directory/],
        [planted, /resolves to .*csi-outside-.* is not under the kubelet directory/],
        [join(planted, 'mount'), /not under the kubelet directory/],
        [dir, /not under the kubelet directory/],
        [join(dir, 'state', 'records'), /inside the plugin's state directory/],
        [join(dir, 'state', 'images', 'x'), /inside the plugin's state directory/],
        [join(dir, 'cache', 'x'), /inside the plugin's cache directory/],
      ];
      for (const [target, message] of cases) {
        await expectGrpcError(csi.NodePublishVolume({ ...request(volume, hostileImage, true), target_path: target }), grpc.status.INVALID_ARGUMENT, message);
      }
      assert.deepEqual((await readMountTable()).filter((entry) => !before.has(entry.id)), [], 'nothing was mounted');
      assert.deepEqual(await readdir(outside), [], 'nothing was made through the symlink');
      // A symlink whose target stays inside the kubelet directory is followed.
      const inside = join(dir, 'pods', volume.podUid, 'volumes', 'kubernetes.io~csi', 'real');
      const link = join(dir, 'pods', volume.podUid, 'volumes', 'kubernetes.io~csi', 'link');
      await symlink(inside, link);
      await csi.NodePublishVolume({ ...request(volume, hostileImage, true), target_path: link });
      assert.deepEqual(await mountsUnder(inside), [inside]);
      assert.equal(await readFile(join(inside, 'hello.txt'), 'utf8'), 'hello\n');
      await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: link });
      assert.deepEqual(await mountsUnder(inside), []);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('unpublish leaves alone what the plugin did not make: a foreign tmpfs stays, with an answer that says why', async () => {
    const volume = await podVolume(dir);
    await mkdir(volume.targetPath);
    assert.equal((await runCommand('mount', ['-t', 'tmpfs', 'someone-elses', volume.targetPath])).code, 0);
    try {
      await writeFile(join(volume.targetPath, 'theirs.txt'), 'not clip\'s\n');
      await expectGrpcError(
        csi.NodeUnpublishVolume({ volume_id: 'never-published', target_path: volume.targetPath }),
        grpc.status.NOT_FOUND,
        /"tmpfs" mount .* that clip did not make; it is left in place/,
      );
      assert.deepEqual(await mountsUnder(volume.targetPath), [volume.targetPath], 'the tmpfs is still mounted');
      assert.equal(await readFile(join(volume.targetPath, 'theirs.txt'), 'utf8'), 'not clip\'s\n');
      await plugin?.waitForLog((line) => line.msg.includes('did not make') && line['target_path'] === volume.targetPath);
      // Publishing there does not mount over it either.
      await expectGrpcError(csi.NodePublishVolume(request(volume, hostileImage, true)), grpc.status.FAILED_PRECONDITION, /did not make/);
      assert.equal((await readMountTable()).filter((entry) => entry.mountPoint === volume.targetPath).length, 1);
    } finally {
      await runCommand('umount', [volume.targetPath]);
    }

    // A mount stacked on a published volume: unpublish stops there; once it is gone, unpublish works.
    await csi.NodePublishVolume(request(volume, hostileImage, false));
    assert.equal((await runCommand('mount', ['-t', 'tmpfs', 'stacked', volume.targetPath])).code, 0);
    try {
      await expectGrpcError(csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath }), grpc.status.FAILED_PRECONDITION, /did not make/);
      assert.equal((await readMountTable()).filter((entry) => entry.mountPoint === volume.targetPath).length, 2);
    } finally {
      await runCommand('umount', [volume.targetPath]);
    }
    await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
    await assert.rejects(access(volume.targetPath), { code: 'ENOENT' });
  });

  it('no credential is written to disk or logged: a search of the state, cache and plugin directories and the logs finds no password', async () => {
    const password = authRegistry.password as string;
    const basic = Buffer.from(`${authRegistry.username}:${password}`).toString('base64');
    const needles = [password, basic];
    const volumes = [await podVolume(dir), await podVolume(dir)];
    await csi.NodePublishVolume(request(volumes[0] as PodVolume, privateImage, true, dockerConfigSecret()));
    await csi.NodePublishVolume(request(volumes[1] as PodVolume, privateImage, false, { username: authRegistry.username as string, password }));
    try {
      for (const volume of volumes) assert.ok((await readFile(join(volume.targetPath, 'cached.bin'))).equals(await contentBytes(cachedContent)));
      const records = await readdir(join(dir, 'state', 'records'));
      assert.equal(records.length, 2, 'the records are there to be searched');
      // The search finds the password where it is: a control file.
      const control = join(dir, 'state', 'control.txt');
      await writeFile(control, `x${password}x`);
      assert.deepEqual(await filesContaining([dir], needles), [control]);
      await rm(control);
      assert.deepEqual(await filesContaining([dir], needles), [], 'a credential is on disk');
      const logs = plugin?.rawLogs() ?? '';
      assert.ok(logs.length > 0);
      for (const needle of needles) assert.ok(!logs.includes(needle), 'a credential is in the logs');
    } finally {
      for (const volume of volumes) await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
    }
  });

  it('every field is bounded: huge values get INVALID_ARGUMENT naming the limit, in a short message, and the log stays small', async () => {
    // A client with an 8 KiB metadata limit must still see the real code.
    const small = await connectCsi((plugin as PluginProcess).socketPath, { 'grpc.max_metadata_size': 8192 });
    try {
      const volume = await podVolume(dir);
      const huge = 'a'.repeat(1024 * 1024);
      const base = (): PublishRequest => request(volume, hostileImage, true);
      const context = (extra: Record<string, string>): Record<string, string> => ({ ...base().volume_context, ...extra });
      const manyKeys = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`example.com/k${i}`, 'v']));
      const logBefore = (plugin as PluginProcess).rawLogs().length;
      const cases: Array<[string, PublishRequest, RegExp]> = [
        ['volume_id', { ...base(), volume_id: huge }, /volume_id is 1048576 bytes long, over the limit of 512 bytes/],
        ['target_path', { ...base(), target_path: `/${huge}` }, /target_path is 1048577 bytes long, over the limit of 4096 bytes/],
        ['image', { ...base(), volume_context: context({ image: huge }) }, /volume_context\["image"\] is 1048576 bytes long, over the limit of 512 bytes/],
        ['platform', { ...base(), volume_context: context({ platform: huge }) }, /volume_context\["platform"\] is .* over the limit of 64 bytes/],
        ['a context value', { ...base(), volume_context: context({ 'csi.storage.k8s.io/pod.name': huge }) }, /over the limit of 1024 bytes/],
        ['a context key', { ...base(), volume_context: context({ [huge]: 'x' }) }, /a volume_context key is .* over the limit of 256 bytes/],
        ['context keys', { ...base(), volume_context: context(manyKeys) }, /volume_context has 100\d keys, over the limit of 64/],
        ['secret keys', { ...base(), secrets: manyKeys }, /secrets has 1000 keys, over the limit of 64/],
        ['mount flags', { ...base(), volume_capability: { ...MOUNT_CAPABILITY(), mount: { fs_type: '', mount_flags: [huge], volume_mount_group: '' } } }, /over the limit of 256 bytes/],
      ];
      for (const [field, bad, message] of cases) {
        const error = await expectGrpcError(small.NodePublishVolume(bad), grpc.status.INVALID_ARGUMENT, message);
        assert.ok(error.details.length < 1024, `${field}: a message of ${error.details.length} characters`);
      }
      const unpublish = await expectGrpcError(small.NodeUnpublishVolume({ volume_id: huge, target_path: volume.targetPath }), grpc.status.INVALID_ARGUMENT, /limit of 512/);
      assert.ok(unpublish.details.length < 1024);
      const stats = await expectGrpcError(small.NodeGetVolumeStats({ volume_id: 'v', volume_path: `/${huge}` }), grpc.status.INVALID_ARGUMENT, /limit of 4096/);
      assert.ok(stats.details.length < 1024);
      const grown = (plugin as PluginProcess).rawLogs().length - logBefore;
      assert.ok(grown < 32 * 1024, `the log grew by ${grown} bytes for ${cases.length + 2} refused calls`);
    } finally {
      small.close();
    }
  });

  it('NodeGetVolumeStats answers NOT_FOUND for any path holding no published volume, relative ones included', async () => {
    const volume = await podVolume(dir);
    await expectGrpcError(csi.NodeGetVolumeStats({ volume_id: volume.volumeId, volume_path: 'some/path' }), grpc.status.NOT_FOUND);
    await expectGrpcError(csi.NodeGetVolumeStats({ volume_id: volume.volumeId, volume_path: volume.targetPath }), grpc.status.NOT_FOUND);
    await csi.NodePublishVolume(request(volume, hostileImage, true));
    try {
      await csi.NodeGetVolumeStats({ volume_id: volume.volumeId, volume_path: volume.targetPath });
      await expectGrpcError(csi.NodeGetVolumeStats({ volume_id: 'another-volume', volume_path: volume.targetPath }), grpc.status.NOT_FOUND);
      await expectGrpcError(csi.NodeGetVolumeStats({ volume_id: volume.volumeId, volume_path: join('pods', volume.podUid) }), grpc.status.NOT_FOUND);
    } finally {
      await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
    }
  });
});

describe('clip node: a private image across a restart, its credentials in memory only', () => {
  it('cached reads continue; uncached reads fail with EIO and a log line naming the volume, and recover after the republish', async () => {
    const dir = await makePluginDir('csi-cred-');
    const registry = await startRegistry({ auth: 'basic' });
    const plugins: PluginProcess[] = [];
    const clients: CsiClient[] = [];
    const start = async (): Promise<{ plugin: PluginProcess; csi: CsiClient }> => {
      const plugin = await startPlugin(dir, ['--image-grace-seconds', '0', '--credentials-wait-seconds', '1']);
      plugins.push(plugin);
      const csi = await connectCsi(plugin.socketPath);
      clients.push(csi);
      return { plugin, csi };
    };
    try {
      const cached = patternContent(1024 * 1024, 31);
      const cold = patternContent(1024 * 1024, 32);
      await pushImage(registry, 'private/restart', 'v1', [
        buildTarLayer([{ type: 'file', path: 'cached.bin', content: cached }]),
        buildTarLayer([{ type: 'file', path: 'cold.bin', content: cold }]),
      ]);
      const image = `${registry.host}/private/restart:v1`;
      const password = registry.password as string;
      const secrets = { username: registry.username as string, password };
      const volume = await podVolume(dir);
      const publish = (csi: CsiClient, target: PodVolume): Promise<unknown> =>
        csi.NodePublishVolume({
          volume_id: target.volumeId,
          target_path: target.targetPath,
          volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_WRITER'),
          readonly: true,
          volume_context: ephemeralContext(image, { name: target.podName, uid: target.podUid }),
          secrets,
        });

      const first = await start();
      await publish(first.csi, volume);
      assert.ok((await readFile(join(volume.targetPath, 'cached.bin'))).equals(await contentBytes(cached)));
      // The disk cache writes in the background: a crash before the write lands loses the span (on
      // a loaded machine it often did). The data is "cached" once its entry is on disk.
      await pollUntil(
        'the span of cached.bin written to the disk cache',
        async () => metricValue((await httpGet(first.plugin.metricsAddress, '/metrics')).body, 'clip_disk_cache_written_bytes_total') ?? 0,
        (written) => written >= 1024 * 1024,
      );
      await first.plugin.kill9();

      // A record as an earlier version wrote it, with the credentials in it: rewritten without them.
      const records = join(first.plugin.stateDir, 'records');
      const [recordFile] = await readdir(records);
      const current = JSON.parse(await readFile(join(records, recordFile as string), 'utf8')) as Record<string, unknown>;
      assert.equal(current['version'], 2);
      assert.equal(current['credentialsFromSecret'], true);
      assert.ok(!('credentials' in current));
      const old = await podVolume(dir);
      const oldId = StateDir.recordId(old.volumeId, old.targetPath);
      const v1: Record<string, unknown> = { ...current, version: 1, id: oldId, volumeId: old.volumeId, targetPath: old.targetPath, credentials: secrets };
      delete v1['credentialsFromSecret'];
      await writeFile(join(records, `${oldId}.json`), JSON.stringify(v1), { mode: 0o600 });
      assert.deepEqual(await filesContaining([records], [password]), [join(records, `${oldId}.json`)], 'the search finds the old record');

      const second = await start();
      for (const restored of [volume, old]) {
        await second.plugin.waitForLog((line) => line.msg === 'volume restored' && line['volume_id'] === restored.volumeId);
      }
      assert.deepEqual(await filesContaining([dir], [password]), [], 'a credential is still on disk');
      // Cached data is served; data that needs the registry waits (1 s here), then EIO.
      assert.ok((await readFile(join(volume.targetPath, 'cached.bin'))).equals(await contentBytes(cached)));
      await assert.rejects(readFile(join(volume.targetPath, 'cold.bin')), { code: 'EIO' });
      const missing = await second.plugin.waitForLog((line) => line.msg.startsWith('registry credentials missing'));
      assert.ok((missing['volume_ids'] as string[]).includes(volume.volumeId), JSON.stringify(missing));
      assert.ok((await readFile(join(volume.targetPath, 'cached.bin'))).equals(await contentBytes(cached)), 'cached data is still served');

      // kubelet's periodic republish (requiresRepublish) brings the secret back: OK, and reads recover.
      await publish(second.csi, volume);
      assert.ok((await readFile(join(volume.targetPath, 'cold.bin'))).equals(await contentBytes(cold)));
      assert.ok((await readFile(join(old.targetPath, 'cold.bin'))).equals(await contentBytes(cold)), 'the other volume of the image reads too');
      assert.deepEqual(await filesContaining([dir], [password]), []);
      assert.ok(!plugins.some((plugin) => plugin.rawLogs().includes(password)), 'a credential is in the logs');
      for (const target of [volume, old]) await second.csi.NodeUnpublishVolume({ volume_id: target.volumeId, target_path: target.targetPath });
    } finally {
      for (const client of clients) client.close();
      for (const plugin of plugins) await plugin.stop();
      await registry.stop();
      await cleanupPluginDir(dir);
    }
  });
});
