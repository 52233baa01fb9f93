/** `clip mount` in a child process: the bench never serves a FUSE mount itself. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { forceUnmount } from '../src/clipcore/fuse/mount-table.js';
import { CLIP_BIN, exec, waitExit } from './proc.js';

export interface ClipMount {
  readonly child: ChildProcess;
  readonly mountPoint: string;
  /** Resident memory of the serving process, in bytes. */
  rss(): Promise<number>;
  stop(): Promise<void>;
}

export function startMount(archive: string, mountPoint: string, extraArgs: readonly string[] = [], timeoutMs = 60_000): Promise<ClipMount> {
  const child = spawn(CLIP_BIN, ['mount', archive, mountPoint, ...extraArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const mount: ClipMount = {
    child,
    mountPoint,
    rss: async () => residentBytes(child.pid ?? 0),
    stop: async () => {
      child.kill('SIGTERM');
      await waitExit(child, 10_000);
      await forceUnmount(mountPoint);
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void mount.stop().finally(() => reject(new Error(`clip mount did not come up within ${timeoutMs} ms: ${stderr}`)));
    }, timeoutMs);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (stderr.includes('"msg":"mounted"')) {
        clearTimeout(timer);
        resolve(mount);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`clip mount exited with ${code}: ${stderr}`));
    });
  });
}

/** VmRSS of a process, from /proc. */
export async function residentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Whether this build's `clip mount` has a disk cache (`--cache-dir`), as the node plugin uses. */
export async function mountHasDiskCache(): Promise<boolean> {
  const help = await exec(CLIP_BIN, ['mount', '--help']).catch(() => undefined);
  return help?.stdout.includes('--cache-dir') ?? false;
}

/**
 * Fresh --cache-dir paths under `dir` (`<prefix>-0`, `<prefix>-1`, …), and their removal once a
 * section is done: what the mounts wrote is still dirty, and its writeback would take the CPU
 * from the next rows.
 */
export function freshCacheDirs(dir: string, prefix: string): { next(): string; removeAll(): Promise<void> } {
  const made: string[] = [];
  return {
    next: () => {
      made.push(join(dir, `${prefix}-${made.length}`));
      return made[made.length - 1] as string;
    },
    removeAll: async () => {
      for (const path of made.splice(0)) await rm(path, { recursive: true, force: true });
    },
  };
}
