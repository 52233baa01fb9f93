import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, mkdir, link } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createArchive, mountArchive, openFuseMount, type MountHandle } from '../src/clipcore/index.js';
import { forceUnmount, isMountPoint, readMountTable } from '../src/clipcore/fuse/mount-table.js';
import { fuseMountsUnder, unmountAllUnder } from './helpers/mounts.js';
import { run, startClipMount } from './helpers/processes.js';

/**
 * mountArchive in this process. Every access to the mount goes through child processes started
 * asynchronously: a blocking call here would deadlock against our own FUSE server.
 */
describe('mountArchive', () => {
  let work: string;
  let archive: string;
  let big: Buffer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-mount-api-'));
    const source = join(work, 'source');
    await mkdir(join(source, 'dir'), { recursive: true });
    big = Buffer.alloc(24 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2246822519) >>> 0, i);
    await writeFile(join(source, 'big.bin'), big);
    await writeFile(join(source, 'dir/small'), 'small file\n');
    await link(join(source, 'dir/small'), join(source, 'small-link'));
    archive = join(work, 'api.clip');
    await createArchive({ inputPath: source, outputPath: archive });
  });

  after(async () => {
    await unmountAllUnder(work);
    await rm(work, { recursive: true, force: true });
  });

  test('serves concurrent readers in other processes, refuses writes, unmounts cleanly', async () => {
    const mountPoint = join(work, 'mnt');
    const handle: MountHandle = await mountArchive({ archive, mountPoint });
    const serverErrors: Error[] = [];
    handle.onError(({ error }) => serverErrors.push(error));
    await handle.start();
    try {
      const expected = createHash('sha256').update(big).digest('hex');
      const readers = await Promise.all(Array.from({ length: 16 }, () => run('sha256sum', [join(mountPoint, 'big.bin')])));
      for (const result of readers) assert.equal(result.stdout.split(' ')[0], expected, result.stderr);

      const stat = await run('stat', ['-c', '%i %h', join(mountPoint, 'dir/small'), join(mountPoint, 'small-link')]);
      const [first, second] = stat.stdout.trim().split('\n');
      assert.equal(first, second, 'hard links share an inode and a link count');
      assert.match(first ?? '', / 2$/);

      for (const command of [
        ['touch', join(mountPoint, 'new-file')],
        ['mkdir', join(mountPoint, 'new-dir')],
        ['rm', join(mountPoint, 'dir/small')],
        ['sh', '-c', `echo x >> ${join(mountPoint, 'dir/small')}`],
        ['setfattr', '-n', 'user.x', '-v', 'y', join(mountPoint, 'dir/small')],
      ]) {
        const result = await run(command[0] as string, command.slice(1));
        assert.notEqual(result.code, 0, `${command.join(' ')} succeeded on a read-only mount`);
        assert.match(result.stderr, /Read-only file system/, command.join(' '));
      }
      const missing = await run('cat', [join(mountPoint, 'no-such-file')]);
      assert.match(missing.stderr, /No such file or directory/);
      assert.deepEqual(serverErrors, []);
    } finally {
      await handle.unmount();
    }
    assert.deepEqual(await fuseMountsUnder(work), []);
    await handle.unmount(); // idempotent
  });

  test('an unmounted archive can be freed', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const mountPoint = join(work, 'freed');
    let handle: MountHandle | undefined = await mountArchive({ archive, mountPoint });
    await handle.start();
    assert.equal((await run('cat', [join(mountPoint, 'dir/small')])).stdout, 'small file\n');
    const reader = new WeakRef(handle.reader);
    await handle.unmount();
    handle = undefined;
    for (let i = 0; i < 20 && reader.deref() !== undefined; i++) {
      await delay(50);
      gc();
    }
    assert.equal(reader.deref(), undefined, 'the archive is still reachable after its unmount');
  });

  test('a mount point holding a mount is refused, untouched, unless it is a FUSE mount whose server is gone', async () => {
    const mountPoint = join(work, 'taken');
    const first = await mountArchive({ archive, mountPoint });
    await first.start();
    try {
      const second = await mountArchive({ archive, mountPoint });
      await assert.rejects(second.start(), { code: 'MOUNT_FAILED', message: /is already a mount \(fuse\.clip\): a FUSE server answers there/ });
      await second.unmount();
      assert.equal((await run('cat', [join(mountPoint, 'dir/small')])).stdout, 'small file\n', 'the live mount still serves');
    } finally {
      await first.unmount();
    }

    // The server gone (its process killed after serving): cleared and mounted over.
    const killed = await startClipMount(archive, mountPoint);
    assert.equal((await run('cat', [join(mountPoint, 'dir/small')])).stdout, 'small file\n');
    killed.child.kill('SIGKILL');
    await killed.exited;
    assert.match((await run('cat', [join(mountPoint, 'dir/small')])).stderr, /not connected/);
    const again = await mountArchive({ archive, mountPoint });
    await again.start();
    assert.equal((await run('cat', [join(mountPoint, 'dir/small')])).stdout, 'small file\n');
    await again.unmount();

    // Not FUSE at all: never unmounted by clip.
    const tmpfs = join(work, 'tmpfs');
    await mkdir(tmpfs);
    assert.equal((await run('mount', ['-t', 'tmpfs', 'none', tmpfs])).code, 0);
    try {
      const over = await mountArchive({ archive, mountPoint: tmpfs });
      await assert.rejects(over.start(), { code: 'MOUNT_FAILED', message: /is already a mount \(tmpfs\): clip mounts only over a FUSE mount whose server is gone/ });
      await over.unmount();
      assert.ok((await readMountTable()).some((mount) => mount.mountPoint === tmpfs && mount.fsType === 'tmpfs'));
    } finally {
      await run('umount', [tmpfs]);
    }
  });

  test('a FUSE mount whose connection a process holds without serving it is refused, without waiting on it', async () => {
    const mountPoint = join(work, 'held');
    const fd = await openFuseMount(mountPoint);
    try {
      const over = await mountArchive({ archive, mountPoint });
      await assert.rejects(over.start(), { code: 'MOUNT_FAILED', message: /its FUSE server does not answer/ });
      await over.unmount();
      assert.ok(await isMountPoint(mountPoint));
    } finally {
      closeSync(fd);
      await forceUnmount(mountPoint);
    }
    assert.deepEqual(await fuseMountsUnder(join(work, 'held')), []);
  });

  test('a damaged archive fails before anything is mounted', async () => {
    const damaged = join(work, 'damaged.clip');
    const bytes = await readFile(archive);
    bytes[40] = (bytes[40] as number) ^ 0xff;
    await writeFile(damaged, bytes);
    await assert.rejects(mountArchive({ archive: damaged, mountPoint: join(work, 'never') }), { code: 'CHECKSUM_MISMATCH' });
    assert.deepEqual(await fuseMountsUnder(work), []);
  });

  test('a read whose data fails verification is EIO, reported to onError', async () => {
    const damaged = join(work, 'bad-data.clip');
    const bytes = await readFile(archive);
    bytes[bytes.length - 1_000_000] = (bytes[bytes.length - 1_000_000] as number) ^ 0xff; // inside big.bin in the data section
    await writeFile(damaged, bytes);
    const mountPoint = join(work, 'mnt-bad');
    const handle = await mountArchive({ archive: damaged, mountPoint });
    const serverErrors: string[] = [];
    handle.onError(({ error }) => serverErrors.push(error.message));
    await handle.start();
    try {
      const result = await run('cat', [join(mountPoint, 'big.bin')]);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /Input\/output error/);
      assert.ok(serverErrors.some((message) => /sha256/.test(message)), serverErrors.join('; '));
    } finally {
      await handle.unmount();
    }
  });
});
