/**
 * Whether the node plugin can serve volumes: its state and cache directories are writable and
 * FUSE is usable (/dev/fuse opens for reading and writing, fusermount3 is on the PATH), and the
 * state left by an earlier process has been reconciled.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, unlink, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import type { Readiness } from '../csi/identity.js';

export interface ReadinessOptions {
  stateDir: string;
  cacheDir: string;
  fuseDevice?: string;
  /** Extra condition (state reconciled). */
  started: () => string | undefined;
}

export async function checkReadiness(options: ReadinessOptions): Promise<Readiness> {
  const problems: string[] = [];
  const started = options.started();
  if (started) problems.push(started);
  for (const [what, dir] of [
    ['state directory', options.stateDir],
    ['cache directory', options.cacheDir],
  ] as const) {
    const problem = await writable(dir);
    if (problem) problems.push(`${what} ${dir} is not writable: ${problem}`);
  }
  const device = options.fuseDevice ?? '/dev/fuse';
  try {
    await access(device, constants.R_OK | constants.W_OK);
  } catch (err) {
    problems.push(`FUSE device ${device} is not usable: ${(err as Error).message}`);
  }
  if (!(await onPath('fusermount3'))) problems.push('fusermount3 is not on the PATH');
  return { ready: problems.length === 0, problems };
}

async function writable(dir: string): Promise<string | undefined> {
  const probe = join(dir, `.probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(probe, '');
    await unlink(probe);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

async function onPath(command: string): Promise<boolean> {
  for (const dir of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (!dir) continue;
    try {
      await access(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}
