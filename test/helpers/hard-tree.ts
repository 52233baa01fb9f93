import { chmod, chown, link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './processes.js';

export const LONG_NAME = `${'long-name-'.repeat(20)}end.txt`; // 207 bytes
export const UNICODE_NAME = 'naïve café 文件 🚀 with spaces.txt';
export const BIG_FILE_BYTES = 64 * 1024 * 1024;
export const WIDE_DIR_ENTRIES = 5000;

/**
 * Builds a tree with every entry type and the hard cases an archive must round-trip: hard
 * links, dangling and absolute symlinks, a fifo, devices, a socket, names over 100 bytes,
 * non-ASCII names with spaces, user xattrs, setuid/setgid/sticky bits, empty files, a 64 MiB
 * file, a directory with 5,000 entries, other owners and nanosecond mtimes.
 */
export async function buildHardTree(root: string, options: { bigFile?: boolean } = {}): Promise<void> {
  await mkdir(join(root, 'dir/nested/deeper'), { recursive: true });
  await writeFile(join(root, 'hello.txt'), 'hello, world\n');
  await writeFile(join(root, 'empty'), '');
  await writeFile(join(root, 'dir/nested/deeper/empty-too'), '');
  await writeFile(join(root, LONG_NAME), 'a long name\n');
  await writeFile(join(root, UNICODE_NAME), 'unicode\n');
  await mkdir(join(root, `${'deep-'.repeat(30)}dir`));
  await writeFile(join(root, `${'deep-'.repeat(30)}dir`, LONG_NAME), 'long path\n');

  // Hard links: three names of one inode, across directories.
  await writeFile(join(root, 'original'), 'shared content of three names\n');
  await link(join(root, 'original'), join(root, 'hardlink-1'));
  await link(join(root, 'original'), join(root, 'dir/hardlink-2'));

  await symlink('hello.txt', join(root, 'relative-link'));
  await symlink('/etc/hostname', join(root, 'absolute-link'));
  await symlink('does/not/exist', join(root, 'dangling-link'));
  await symlink('dir/nested', join(root, 'dir-link'));

  await run('mkfifo', [join(root, 'fifo')]);
  await run('mknod', [join(root, 'char-device'), 'c', '1', '3']);
  await run('mknod', [join(root, 'block-device'), 'b', '7', '200']);
  // Node removes a socket file when its server closes, so a short Python bind leaves one behind.
  await run('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', join(root, 'socket')]);

  await writeFile(join(root, 'setuid-tool'), '#!/bin/sh\n');
  await chmod(join(root, 'setuid-tool'), 0o4755);
  await mkdir(join(root, 'setgid-dir'));
  await chmod(join(root, 'setgid-dir'), 0o2775);
  await mkdir(join(root, 'sticky-tmp'));
  await chmod(join(root, 'sticky-tmp'), 0o1777);
  await writeFile(join(root, 'private'), 'secret\n');
  await chmod(join(root, 'private'), 0o600);
  await chown(join(root, 'private'), 1234, 5678);
  await chown(join(root, 'dir'), 4321, 8765);

  await writeFile(join(root, 'with-xattrs'), 'xattrs\n');
  await run('setfattr', ['-n', 'user.comment', '-v', 'a comment', join(root, 'with-xattrs')]);
  await run('setfattr', ['-n', 'user.binary', '-v', '0x00ff10fe', join(root, 'with-xattrs')]);
  await run('setfattr', ['-n', 'user.on-dir', '-v', 'dir attribute', join(root, 'dir')]);

  await mkdir(join(root, 'wide'));
  for (let i = 0; i < WIDE_DIR_ENTRIES; i++) {
    // Every tenth file repeats content, so deduplication is exercised.
    await writeFile(join(root, 'wide', `entry-${String(i).padStart(5, '0')}`), i % 10 === 0 ? 'duplicate\n' : `file ${i}\n`);
  }

  if (options.bigFile !== false) {
    const big = Buffer.alloc(BIG_FILE_BYTES);
    for (let offset = 0; offset < big.length; offset += 4) big.writeUInt32LE((offset * 2654435761) >>> 0, offset);
    await writeFile(join(root, 'big.bin'), big);
  }

  // Nanosecond mtimes, set last (creating entries changes their directories' mtimes).
  await run('touch', ['-h', '-d', '2001-02-03 04:05:06.123456789', join(root, 'hello.txt'), join(root, 'relative-link')]);
  await run('touch', ['-d', '1999-12-31 23:59:59.999999999', join(root, 'dir')]);
}
