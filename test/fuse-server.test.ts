import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync } from 'node:fs';
import { link, mkdir, mkdtemp, open, rm, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createArchive, mountArchive, openFuseMount, type MountHandle } from '../src/clipcore/index.js';
import { readMountTable } from '../src/clipcore/fuse/mount-table.js';
import { setupReadPathImage, type ReadPathImage } from './helpers/read-path-fixtures.js';
import { fuseMountsUnder, unmountAllUnder } from './helpers/mounts.js';
import { run } from './helpers/processes.js';

/**
 * The native FUSE server (native/clip_fuse.c): what it answers without JavaScript, and how the
 * kernel caches it. Requests are counted by the addon (MountHandle.counters). The mount is
 * touched only from child processes, except where the test shows that metadata needs no
 * JavaScript at all.
 */
describe('native FUSE front end', () => {
  let work: string;
  let archive: string;
  let plainArchive: string;
  let wideArchive: string;
  const WIDE = 100_000;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-fuse-native-'));
    const source = join(work, 'source');
    await mkdir(join(source, 'dir/sub'), { recursive: true });
    for (let i = 0; i < 50; i++) await writeFile(join(source, `dir/file-${i}`), `content ${i}\n`);
    await writeFile(join(source, 'tagged'), 'has xattrs\n');
    await writeFile(join(source, 'timed'), 'nanoseconds\n');
    await link(join(source, 'tagged'), join(source, 'dir/sub/tagged-link'));
    await symlink('dir/file-1', join(source, 'to-file'));
    for (const [command, args] of [
      ['setfattr', ['-n', 'user.colour', '-v', 'blue', join(source, 'tagged')]],
      ['setfattr', ['-n', 'user.empty', join(source, 'tagged')]],
      ['touch', ['-h', '-d', '2021-03-04 05:06:07.123456789 +0000', join(source, 'timed')]],
    ] as const) {
      const result = await run(command, [...args]);
      assert.equal(result.code, 0, result.stderr);
    }
    archive = join(work, 'tree.clip');
    await createArchive({ inputPath: source, outputPath: archive });

    const plain = join(work, 'plain');
    await mkdir(join(plain, 'd'), { recursive: true });
    await writeFile(join(plain, 'd/f'), 'f\n');
    plainArchive = join(work, 'plain.clip');
    await createArchive({ inputPath: plain, outputPath: plainArchive });

    const wide = join(work, 'wide');
    await mkdir(join(wide, 'many'), { recursive: true });
    const made = await run('sh', ['-c', `cd '${join(wide, 'many')}' && seq -f 'entry-%06g' 0 ${WIDE - 1} | xargs touch`]);
    assert.equal(made.code, 0, made.stderr);
    wideArchive = join(work, 'wide.clip');
    await createArchive({ inputPath: wide, outputPath: wideArchive });
  });

  after(async () => {
    await unmountAllUnder(work);
    await rm(work, { recursive: true, force: true });
  });

  async function mounted<T>(file: string, name: string, body: (mountPoint: string, handle: MountHandle) => Promise<T>): Promise<T> {
    const mountPoint = join(work, name);
    const handle = await mountArchive({ archive: file, mountPoint });
    await handle.start();
    try {
      return await body(mountPoint, handle);
    } finally {
      await handle.unmount();
      assert.deepEqual(await fuseMountsUnder(mountPoint), []);
    }
  }

  test('ls -l is served by readdirplus: no lookup per entry, and the listing is cached', async () => {
    await mounted(archive, 'mnt-plus', async (mountPoint, handle) => {
      const first = await run('ls', ['-l', join(mountPoint, 'dir')]);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout.trim().split('\n').length, 52); // "total" line, 50 files, sub
      const afterFirst = handle.counters();
      assert.ok(afterFirst);
      assert.ok(afterFirst.readdirplus >= 1, 'the kernel asked for readdirplus');
      assert.equal(afterFirst.readdir, 0);
      // One lookup for "dir" itself; the entries came with the listing.
      assert.ok(afterFirst.lookup <= 2, `${afterFirst.lookup} lookups for one listing of 51 entries`);
      const second = await run('ls', ['-l', join(mountPoint, 'dir')]);
      assert.equal(second.stdout, first.stdout);
      const afterSecond = handle.counters();
      assert.equal(afterSecond?.readdirplus, afterFirst.readdirplus, 'the second listing came from the kernel cache');
      assert.equal(afterSecond?.lookup, afterFirst.lookup);
      assert.equal(afterSecond?.getattr, afterFirst.getattr);
      assert.equal(afterSecond?.readToJs, 0);
    });
  });

  test('directories are opened without a request after the first (zero-message opendir)', async () => {
    await mounted(archive, 'mnt-open', async (mountPoint, handle) => {
      for (const dir of ['', 'dir', 'dir/sub', 'dir', '']) assert.equal((await run('ls', [join(mountPoint, dir)])).code, 0);
      // One OPENDIR answered ENOSYS; the kernel then opens directories (listings cached) by itself.
      assert.equal(handle.counters()?.opendir, 1);
    });
  });

  test('a client that pauses between requests is not polled for after each answer', async () => {
    await mounted(archive, 'mnt-spin', async (mountPoint, handle) => {
      const before = handle.counters();
      assert.ok(before);
      // Each open is an OPEN and a RELEASE; 5 ms later the next: a poll of 50 µs after an answer finds nothing.
      const opens = 160;
      const client = `import os, sys, time\nfor _ in range(${opens}):\n    os.close(os.open(sys.argv[1], os.O_RDONLY))\n    time.sleep(0.005)`;
      const result = await run('python3', ['-c', client, join(mountPoint, 'dir/file-3')]);
      assert.equal(result.code, 0, result.stderr);
      const after = handle.counters();
      assert.ok(after);
      assert.equal(after.open - before.open, opens);
      const spins = after.spins - before.spins;
      const answers = 2 * opens;
      // The loop stops polling once its polls come up empty, but still polls after one answer in eight.
      assert.ok(spins <= answers / 4, `${spins} polls after ${answers} answers`);
      assert.ok(spins >= answers / 8 - 2, `${spins} polls after ${answers} answers: the loop no longer probes`);
    });
  });

  test('extended attributes are listed and read; missing ones are ENODATA', async () => {
    await mounted(archive, 'mnt-xattr', async (mountPoint) => {
      const dump = await run('getfattr', ['-d', '-m', '-', join(mountPoint, 'tagged')]);
      assert.equal(dump.code, 0, dump.stderr);
      assert.match(dump.stdout, /user\.colour="blue"/);
      assert.match(dump.stdout, /user\.empty/);
      const one = await run('getfattr', ['--only-values', '-n', 'user.colour', join(mountPoint, 'dir/sub/tagged-link')]);
      assert.equal(one.stdout, 'blue');
      const missing = await run('getfattr', ['-n', 'user.nothing', join(mountPoint, 'timed')]);
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /No such attribute/);
      const none = await run('getfattr', ['-d', '-m', '-', join(mountPoint, 'timed')]);
      assert.equal(none.code, 0, none.stderr);
      assert.equal(none.stdout, '');
    });
  });

  test('an archive without xattrs answers ENOSYS once, and the kernel stops asking', async () => {
    await mounted(plainArchive, 'mnt-plain', async (mountPoint, handle) => {
      const first = await run('getfattr', ['-n', 'user.x', join(mountPoint, 'd/f')]);
      assert.match(first.stderr, /Operation not supported/);
      const asked = handle.counters()?.getxattr ?? 0;
      assert.ok(asked >= 1);
      for (const path of ['d', 'd/f', '']) {
        const again = await run('getfattr', ['-n', 'security.capability', join(mountPoint, path)]);
        assert.match(again.stderr, /Operation not supported/);
      }
      assert.equal(handle.counters()?.getxattr, asked, 'the kernel remembered that there are no xattrs');
    });
  });

  test('times have nanoseconds, hard links share st_ino, symlinks and statfs are answered', async () => {
    await mounted(archive, 'mnt-attrs', async (mountPoint) => {
      const timed = await run('stat', ['-c', '%y', join(mountPoint, 'timed')]);
      assert.match(timed.stdout, /^2021-03-04 05:06:07\.123456789 /);
      const inodes = await run('stat', ['-c', '%i %h', join(mountPoint, 'tagged'), join(mountPoint, 'dir/sub/tagged-link')]);
      const [first, second] = inodes.stdout.trim().split('\n');
      assert.equal(first, second);
      assert.match(first ?? '', / 2$/);
      assert.equal((await run('readlink', [join(mountPoint, 'to-file')])).stdout, 'dir/file-1\n');
      assert.equal((await run('cat', [join(mountPoint, 'to-file')])).stdout, 'content 1\n');
      const statfs = await run('stat', ['-f', '-c', '%T %c', mountPoint]);
      assert.equal(statfs.code, 0, statfs.stderr);
      const entry = (await readMountTable()).find((mount) => mount.mountPoint === mountPoint);
      assert.equal(entry?.fsType, 'fuse.clip');
      assert.match(entry?.superOptions ?? '', /(^|,)ro(,|$)/);
    });
  });

  test('100,000 entries in one directory are listed, looked up and stat-ed', async () => {
    await mounted(wideArchive, 'mnt-wide', async (mountPoint) => {
      const dir = join(mountPoint, 'many');
      const count = await run('sh', ['-c', `ls -f '${dir}' | wc -l`]);
      assert.equal(count.stdout.trim(), String(WIDE + 2));
      const listed = await run('sh', ['-c', `ls -l '${dir}' | tail -n 1`]);
      assert.match(listed.stdout, /entry-099999\n$/);
      const some = await run('stat', ['-c', '%n %s', join(dir, 'entry-000000'), join(dir, 'entry-054321'), join(dir, 'entry-099999')]);
      assert.equal(some.code, 0, some.stderr);
      assert.equal(some.stdout.trim().split('\n').length, 3);
      assert.match((await run('stat', [join(dir, 'entry-100000')])).stderr, /No such file or directory/);
    });
  });

  test('reads of spans in the disk cache are served natively, every block checked', async () => {
    const source = join(work, 'disk-source');
    await mkdir(source, { recursive: true });
    const data = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    await writeFile(join(source, 'data.bin'), data);
    const file = join(work, 'disk.clip');
    await createArchive({ inputPath: source, outputPath: file });
    const cacheDir = join(work, 'disk-cache');
    const mountPoint = join(work, 'mnt-disk');
    // No memory tier to speak of: every read the kernel sends goes to the disk cache or further.
    const handle = await mountArchive({ archive: file, mountPoint, cacheDir, memoryCacheBytes: 1, readAheadSpans: 0 });
    await handle.start();
    const mounted = join(mountPoint, 'data.bin');
    const expected = createHash('sha256').update(data).digest('hex');
    const readAll = async (): Promise<string> => {
      // Drop the file's pages first, so the kernel asks the server again.
      assert.equal((await run('dd', [`if=${mounted}`, 'of=/dev/null', 'iflag=nocache', 'count=0', 'status=none'])).code, 0);
      return (await run('sha256sum', [mounted])).stdout.split(' ')[0] ?? '';
    };
    const entries = async (): Promise<string[]> => (await run('find', [cacheDir, '-path', '*/entries/*', '-type', 'f'])).stdout.split('\n').filter((line) => line !== '');
    try {
      assert.equal(await readAll(), expected); // from the archive; the spans are written to the disk cache
      for (let i = 0; i < 200 && (await entries()).length < 12; i++) await delay(50);
      assert.equal((await entries()).length, 12, 'every 256 KiB span is in the disk cache');
      assert.equal(await readAll(), expected); // JavaScript reads the entries, checks their headers, publishes them
      const before = handle.counters();
      assert.equal(await readAll(), expected);
      const after = handle.counters();
      assert.ok(before && after);
      assert.equal(after.readToJs, before.readToJs, 'no read went to JavaScript');
      assert.ok(after.readFromDisk > before.readFromDisk);

      // A damaged block: the native check fails, JavaScript finds the damage, drops the entry and
      // reads the span from the archive again.
      // Damaged in place: the server reads the very file it opened.
      const victim = await open((await entries())[0] as string, 'r+');
      try {
        const { size } = await victim.stat();
        const byte = Buffer.alloc(1);
        await victim.read(byte, 0, 1, size - 100);
        byte[0] = (byte[0] as number) ^ 0xff;
        await victim.write(byte, 0, 1, size - 100);
      } finally {
        await victim.close();
      }
      assert.equal(await readAll(), expected);
      assert.ok((handle.counters()?.readToJs ?? 0) > after.readToJs, 'the damaged span went back to JavaScript');
    } finally {
      await handle.unmount();
    }
  });

  test('a mount adopted from an open /dev/fuse descriptor (fuseFd) is served', async () => {
    const mountPoint = join(work, 'mnt-fd');
    const fd = await openFuseMount(mountPoint);
    let handle: MountHandle | undefined;
    try {
      handle = await mountArchive({ archive, mountPoint, fuseFd: fd });
      await handle.start();
      assert.equal((await run('cat', [join(mountPoint, 'dir/file-7')])).stdout, 'content 7\n');
      assert.equal((await run('stat', ['-c', '%i', join(mountPoint, 'tagged')])).code, 0);
    } finally {
      await handle?.unmount();
      await unmountAllUnder(mountPoint);
      closeSync(fd);
    }
    assert.deepEqual(await fuseMountsUnder(mountPoint), []);
  });
});

describe('native FUSE front end over a stalled origin', () => {
  let work: string;
  let image: ReadPathImage;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-fuse-stall-'));
    image = await setupReadPathImage(work);
  });

  after(async () => {
    await unmountAllUnder(work);
    await image?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('stat and readdir are answered while a cold read waits on the origin and the JavaScript thread is blocked', async () => {
    const mountPoint = join(work, 'mnt');
    const handle = await mountArchive({ archive: image.archive, mountPoint, readAheadSpans: 0 });
    await handle.start();
    // Every blob request waits 30 s: the cold read below is still waiting when the test ends it.
    image.proxy.addFault({ kind: 'delay', ms: 30_000 }, { match: /blobs/, times: 1000 });
    const reader = spawn('cat', [join(mountPoint, 'data/one.bin')], { stdio: 'ignore' });
    const readerExit = new Promise((resolve) => reader.on('close', resolve));
    let readerDone = false;
    void readerExit.then(() => {
      readerDone = true;
    });
    try {
      for (let i = 0; i < 200 && image.proxy.stats.requests === 0; i++) await delay(50);
      assert.ok(image.proxy.stats.requests > 0, 'the cold read reached the origin');
      // Blocking calls from this very process: possible only when no metadata request needs the
      // JavaScript thread (with a JavaScript FUSE server they deadlock until the timeout).
      const listing = spawnSync('ls', ['-lR', mountPoint], { timeout: 10_000, encoding: 'utf8' });
      assert.equal(listing.status, 0, `ls -lR: ${listing.error?.message ?? listing.stderr}`);
      assert.match(listing.stdout, /three\.txt/);
      const stat = spawnSync('stat', ['-c', '%s', join(mountPoint, 'small/c.txt')], { timeout: 10_000, encoding: 'utf8' });
      assert.equal(stat.stdout, '100002\n');
      assert.equal(readerDone, false, 'the cold read was still waiting on the origin');
      assert.ok((handle.counters()?.readToJs ?? 0) >= 1);
    } finally {
      reader.kill('SIGKILL');
      await readerExit;
      image.proxy.clearFaults();
      await handle.unmount();
    }
    assert.deepEqual(await fuseMountsUnder(mountPoint), []);
  });
});
