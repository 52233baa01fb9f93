/**
 * Mounts through the system's mount(8)/umount(8), always as asynchronous child processes: this
 * process serves the FUSE mounts, and a blocking call that touches one of them would deadlock it.
 * The mount table is read from /proc/self/mountinfo (never with stat, which fails with ENOTCONN on
 * a mount whose FUSE server died).
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { ClipError, readMountTable, type MountEntry } from '../clipcore/index.js';

export { readMountTable, type MountEntry };

export async function mountsAt(path: string): Promise<MountEntry[]> {
  const target = resolve(path);
  return (await readMountTable()).filter((entry) => entry.mountPoint === target);
}

export async function isMountPoint(path: string): Promise<boolean> {
  return (await mountsAt(path)).length > 0;
}

export interface CommandResult {
  code: number;
  stderr: string;
}

/** Runs a command without blocking the event loop; never throws for a non-zero exit. */
export function runCommand(command: string, args: readonly string[], timeoutMs = 60_000): Promise<CommandResult> {
  return new Promise((resolvePromise) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4096);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolvePromise({ code: -1, stderr: err.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stderr: signal ? `${stderr} (killed by ${signal})`.trim() : stderr.trim() });
    });
  });
}

async function mustRun(what: string, command: string, args: readonly string[]): Promise<void> {
  const result = await runCommand(command, args);
  if (result.code !== 0) {
    throw new ClipError('MOUNT_FAILED', `${what} failed: ${command} exited with ${result.code}${result.stderr ? `: ${result.stderr}` : ''}`);
  }
}

/**
 * Options of every mount at a target: an image may ship device nodes and setuid-root files, and
 * neither may work in a pod (a usable block device, a root shell).
 */
export const TARGET_MOUNT_OPTIONS = ['nodev', 'nosuid'] as const;

/**
 * Bind-mounts `source` at `target`, then remounts it `nodev,nosuid` (and `ro`): a bind takes
 * per-mount flags only from a second, remounting call. `target` may be a dead FUSE mount (the new
 * mount is stacked on it): `--no-canonicalize` keeps mount(8) from stat-ing it.
 */
export async function bindMount(source: string, target: string, readOnly: boolean): Promise<void> {
  await mustRun(`bind mount of ${source} at ${target}`, 'mount', ['--no-canonicalize', '--bind', source, target]);
  const options = ['remount', 'bind', ...TARGET_MOUNT_OPTIONS, ...(readOnly ? ['ro'] : [])].join(',');
  try {
    await mustRun(`remount of ${target} (${options})`, 'mount', ['--no-canonicalize', '-o', options, target]);
  } catch (err) {
    await unmountTop(target);
    throw err;
  }
}

/**
 * Kernel overlayfs: the image as the read-only lower layer, writes going to `upper`. overlayfs
 * splits its options on ',' and lowerdir on ':', so neither may appear in the paths. After a
 * restart the new overlay is stacked on the dead one at `target`, which still holds `upper` and
 * `work`: `index=off` (most kernels' default) makes overlayfs accept that instead of EBUSY.
 */
export async function overlayMount(lower: string, upper: string, work: string, target: string): Promise<void> {
  for (const path of [lower, upper, work]) {
    if (/[,:]/.test(path)) throw new ClipError('INVALID_ARGUMENT', `overlay path ${path} may not contain ',' or ':'`);
  }
  const options = [...TARGET_MOUNT_OPTIONS, `lowerdir=${lower}`, `upperdir=${upper}`, `workdir=${work}`, 'index=off'].join(',');
  await mustRun(`overlay mount at ${target}`, 'mount', ['--no-canonicalize', '-t', 'overlay', 'clip-overlay', '-o', options, target]);
}

/** The mount on top at `path` (the one a process there sees), if any. */
export async function topMountAt(path: string): Promise<MountEntry | undefined> {
  const stack = await mountsAt(path);
  // Mounts stacked at one point each have the one below as their parent.
  return stack.find((entry) => !stack.some((other) => other.parentId === entry.id));
}

/** Unmounts the one mount on top at `path` (lazily if it stays busy). */
export async function unmountTop(path: string): Promise<void> {
  const target = resolve(path);
  const top = await topMountAt(target);
  if (!top) return;
  const plain = await runCommand('umount', ['--no-canonicalize', target]);
  if (plain.code === 0) return;
  const lazy = await runCommand('umount', ['--no-canonicalize', '-l', target]);
  if (lazy.code !== 0 && (await topMountAt(target))?.id === top.id) {
    throw new ClipError('MOUNT_FAILED', `cannot unmount ${target}: ${lazy.stderr || plain.stderr}`);
  }
}

/**
 * Unmounts everything stacked at `path`. `--no-canonicalize` keeps umount from stat-ing a dead
 * FUSE mount; a mount that stays busy is detached lazily.
 */
export async function unmountAll(path: string): Promise<void> {
  const target = resolve(path);
  let lastError = '';
  for (let attempt = 0; attempt < 20 && (await isMountPoint(target)); attempt++) {
    const plain = await runCommand('umount', ['--no-canonicalize', target]);
    if (plain.code === 0) continue;
    lastError = plain.stderr;
    const lazy = await runCommand('umount', ['--no-canonicalize', '-l', target]);
    if (lazy.code !== 0) lastError = lazy.stderr;
  }
  if (await isMountPoint(target)) throw new ClipError('MOUNT_FAILED', `cannot unmount ${target}: ${lastError || 'still mounted'}`);
}

/** Lazily detaches a FUSE mount (also one whose server died). */
export async function detachFuse(path: string): Promise<void> {
  const target = resolve(path);
  for (let attempt = 0; attempt < 10 && (await isMountPoint(target)); attempt++) {
    const result = await runCommand('fusermount', ['-uz', target]);
    if (result.code !== 0) await runCommand('umount', ['--no-canonicalize', '-l', target]);
  }
}
