import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

/**
 * Reading /proc/self/mountinfo and unmounting through fusermount/umount. Every helper here is
 * asynchronous: a blocking child process in a process that serves a FUSE mount deadlocks.
 */

/** Unescapes the octal escapes (\040 for space, ...) that mountinfo uses in paths. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export interface MountInfo {
  readonly mountPoint: string;
  readonly fsType: string;
  readonly source: string;
}

export async function listMounts(): Promise<MountInfo[]> {
  const text = await readFile('/proc/self/mountinfo', 'latin1');
  const mounts: MountInfo[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const separator = fields.indexOf('-');
    if (separator < 0 || fields.length < separator + 3) continue;
    const mountPoint = Buffer.from(unescapeMountPath(fields[4] as string), 'latin1').toString('utf8');
    mounts.push({ mountPoint, fsType: fields[separator + 1] as string, source: fields[separator + 2] as string });
  }
  return mounts;
}

export async function isMountPoint(path: string): Promise<boolean> {
  const target = resolve(path);
  return (await listMounts()).some((mount) => mount.mountPoint === target);
}

/**
 * Unmounts whatever is mounted at `path`, including a FUSE mount whose server died (which
 * answers ENOTCONN to everything). Lazy (-z / -l) so that busy mounts detach too.
 */
export async function forceUnmount(path: string): Promise<void> {
  const target = resolve(path);
  for (let attempt = 0; attempt < 5 && (await isMountPoint(target)); attempt++) {
    const fusermount = await run('fusermount', ['-uz', target]);
    if (fusermount === 0 || !(await isMountPoint(target))) continue;
    await run('umount', ['-l', target]);
  }
}

export function run(command: string, args: string[]): Promise<number> {
  return new Promise((resolvePromise) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.on('error', () => resolvePromise(-1));
    child.on('close', (code) => resolvePromise(code ?? -1));
  });
}
