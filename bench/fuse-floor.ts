/**
 * The FUSE floor (bench/fuse-floor.c): a minimal libfuse3 server answering from memory (one file,
 * or a local tree's metadata), built on first use into bench/.cache, run in a child process like
 * `clip mount`.
 */
import { spawn } from 'node:child_process';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { forceUnmount } from '../src/clipcore/fuse/mount-table.js';
import { CACHE_DIR, REPO_ROOT } from './paths.js';
import { check, waitExit } from './proc.js';

const SOURCE = join(REPO_ROOT, 'bench', 'fuse-floor.c');
const BINARY = join(CACHE_DIR, 'fuse-floor');
/** The one file the floor serves, under its mount point. */
export const FLOOR_FILE = 'file';

async function build(): Promise<string> {
  const [source, binary] = await Promise.all([stat(SOURCE), stat(BINARY).catch(() => undefined)]);
  if (binary && binary.mtimeMs >= source.mtimeMs) return BINARY;
  const flags = (await check('pkg-config', ['--cflags', '--libs', 'fuse3'])).stdout.trim().split(/\s+/);
  await check('cc', ['-O2', '-Wall', '-Werror', '-o', BINARY, SOURCE, ...flags]);
  return BINARY;
}

/** Serves a file (as `mountPoint`/file) or a directory's tree at `mountPoint` until stop(). */
export async function startFuseFloor(source: string, mountPoint: string): Promise<{ stop(): Promise<void> }> {
  await mkdir(mountPoint, { recursive: true });
  const child = spawn(await build(), [source, mountPoint], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stop = async (): Promise<void> => {
    child.kill('SIGTERM');
    await waitExit(child, 10_000);
    await forceUnmount(mountPoint);
  };
  await new Promise<void>((resolve, reject) => {
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (stderr.includes('ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`fuse-floor exited (${code}): ${stderr}`)));
  });
  return { stop };
}
