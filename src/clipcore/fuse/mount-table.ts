import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

/**
 * Reading /proc/self/mountinfo and unmounting through fusermount3/umount. Every helper here is
 * asynchronous: a blocking child process in a process that serves a FUSE mount deadlocks.
 */

/** mountinfo escapes space, tab, newline and backslash as octal; names are UTF-8 bytes. */
function unescapeField(field: string): string {
  const text = field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  return Buffer.from(text, 'latin1').toString('utf8');
}

/** One line of /proc/self/mountinfo. */
export interface MountEntry {
  readonly id: number;
  readonly parentId: number;
  /** `major:minor` of the filesystem: a bind mount has its source's. */
  readonly devId: string;
  readonly root: string;
  readonly mountPoint: string;
  readonly fsType: string;
  readonly source: string;
  readonly superOptions: string;
}

/**
 * The mount table, read from /proc/self/mountinfo (never with stat, which fails with ENOTCONN on
 * a mount whose FUSE server died).
 */
export async function readMountTable(): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'latin1');
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const separator = fields.indexOf('-');
    if (separator < 6 || fields.length < separator + 4) continue;
    entries.push({
      id: Number(fields[0]),
      parentId: Number(fields[1]),
      devId: fields[2] as string,
      root: unescapeField(fields[3] as string),
      mountPoint: unescapeField(fields[4] as string),
      fsType: fields[separator + 1] as string,
      source: unescapeField(fields[separator + 2] as string),
      superOptions: fields[separator + 3] as string,
    });
  }
  return entries;
}

export async function isMountPoint(path: string): Promise<boolean> {
  return (await mountAt(path)) !== undefined;
}

/** The mount on top at `path`, if `path` is a mount point. */
export async function mountAt(path: string): Promise<MountEntry | undefined> {
  const target = resolve(path);
  return (await readMountTable()).filter((mount) => mount.mountPoint === target).pop();
}

/**
 * Whether a FUSE mount's server answers: `answers` (a statfs got a reply, even an error),
 * `disconnected` (ENOTCONN: its server is gone) or `silent` (no reply within `timeoutMs`: its
 * connection is held by a process that does not serve it). statfs, because the kernel always asks
 * the server for it, where a stat may be answered from attributes it still holds. It runs in a
 * child process, killed at the deadline, so that this process never waits on the mount.
 */
export function probeFuseMount(path: string, timeoutMs = 2000): Promise<'answers' | 'disconnected' | 'silent'> {
  return new Promise((resolvePromise) => {
    const child = spawn('stat', ['-f', '--', resolve(path)], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolvePromise('silent');
    }, timeoutMs);
    const settle = (code: number | null): void => {
      clearTimeout(timer);
      resolvePromise(code !== 0 && /not connected/i.test(stderr) ? 'disconnected' : 'answers');
    };
    child.on('error', () => settle(null));
    child.on('close', settle);
  });
}

/**
 * Calls `onGone` once, when the mount now on top at `path` leaves the mount table: unmounted by
 * someone else (`fusermount3 -u`, `umount`). Polls every `intervalMs`, since Node.js cannot watch
 * the mount table for changes. Returns a function that stops watching.
 */
export async function watchMount(path: string, onGone: () => void, intervalMs = 1000): Promise<() => void> {
  const mine = await mountAt(path);
  let watching = true;
  const stop = (): void => {
    watching = false;
    clearInterval(timer);
  };
  const timer = setInterval(() => {
    readMountTable().then((table) => {
      if (!watching || table.some((mount) => mount.id === mine?.id)) return;
      stop();
      onGone();
    }, () => undefined);
  }, intervalMs);
  return stop;
}

/**
 * Unmounts whatever is mounted at `path`, including a FUSE mount whose server died (which
 * answers ENOTCONN to everything). Lazy (-z / -l) so that busy mounts detach too.
 */
export async function forceUnmount(path: string): Promise<void> {
  const target = resolve(path);
  for (let attempt = 0; attempt < 5 && (await isMountPoint(target)); attempt++) {
    const fusermount = await run('fusermount3', ['-uz', target]);
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
