/**
 * Runs the built `clip node` as a child process, as a DaemonSet would, and plays the part of
 * kubelet's directories. Everything lives under one temporary directory that `cleanupPluginDir`
 * unmounts (every kind of mount, deepest first) and removes.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readMountTable, unmountAll } from '../../src/node/mount-utils.js';
import { startLoggedProcess, type LoggedProcess } from './logged-process.js';
import { CLIP_BIN } from './processes.js';

export type { LogLine } from './logged-process.js';

export interface PluginProcess extends Omit<LoggedProcess, 'started'> {
  readonly socketPath: string;
  readonly stateDir: string;
  /** `127.0.0.1:PORT` of /metrics, /healthz, /readyz. */
  readonly metricsAddress: string;
}

/** A short temporary directory (unix socket paths are limited to 107 bytes). */
export async function makePluginDir(prefix = 'csi-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function startPlugin(dir: string, extraArgs: readonly string[] = [], options: { env?: Record<string, string>; stateDir?: string } = {}): Promise<PluginProcess> {
  const socketPath = join(dir, 'csi.sock');
  const stateDir = options.stateDir ?? join(dir, 'state');
  const args = [
    'node',
    '--endpoint',
    `unix://${socketPath}`,
    '--node-id',
    'test-node',
    '--state-dir',
    stateDir,
    '--cache-dir',
    join(stateDir, '..', 'cache'),
    '--metrics-addr',
    '127.0.0.1:0',
    // The test directory plays kubelet's: podVolume puts targets under <dir>/pods/.
    '--kubelet-dir',
    dir,
    ...extraArgs,
  ];
  const plugin = await startLoggedProcess(CLIP_BIN, args, { ...(options.env && { env: options.env }), startedMessage: 'node plugin started', name: 'clip node' });
  const { started, ...rest } = plugin;
  return { ...rest, socketPath, stateDir, metricsAddress: String(started['metrics']) };
}

/** A pod's volume as kubelet lays it out: the parent of the target exists, the target does not. */
export interface PodVolume {
  podUid: string;
  podName: string;
  volumeId: string;
  targetPath: string;
}

export async function podVolume(dir: string, name = 'image'): Promise<PodVolume> {
  const podUid = randomUUID();
  const parent = join(dir, 'pods', podUid, 'volumes', 'kubernetes.io~csi', name);
  await mkdir(parent, { recursive: true });
  const volumeId = `csi-${createHash('sha256').update(`${podUid}${name}`).digest('hex')}`;
  return { podUid, podName: `pod-${podUid.slice(0, 8)}`, volumeId, targetPath: join(parent, 'mount') };
}

/** Mount points under `prefix` (any filesystem type), deepest first. */
export async function mountsUnder(prefix: string): Promise<string[]> {
  const points = (await readMountTable()).map((entry) => entry.mountPoint).filter((point) => point === prefix || point.startsWith(`${prefix}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** FUSE mounts under `prefix` as /proc/mounts lists them. */
export async function fuseMountsUnder(prefix: string): Promise<string[]> {
  return (await readMountTable())
    .filter((entry) => entry.fsType.startsWith('fuse') && entry.mountPoint.startsWith(`${prefix}/`))
    .map((entry) => entry.mountPoint);
}

/** Unmounts everything under `dir` and removes it: tests leave nothing behind, passing or failing. */
export async function cleanupPluginDir(dir: string): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const points = await mountsUnder(dir);
    if (points.length === 0) break;
    for (const point of points) await unmountAll(point).catch(() => undefined);
  }
  await rm(dir, { recursive: true, force: true });
}

/** Fetches a path of the plugin's HTTP endpoint. */
export async function httpGet(address: string, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${address}${path}`);
  return { status: res.status, body: await res.text() };
}

/** The value of one sample of a Prometheus text exposition, or undefined. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const present: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) present[pair[1] as string] = pair[2] as string;
    if (Object.entries(labels).every(([key, value]) => present[key] === value)) return Number(match[3]);
  }
  return undefined;
}
