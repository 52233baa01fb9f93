/** The machine a run measured: the figures mean little without it. */
import { availableParallelism, cpus, freemem, loadavg, release, totalmem } from 'node:os';
import { inflateBackend } from '../src/clipcore/compression/raw-inflate.js';
import { exec } from './proc.js';

export interface MachineInfo {
  readonly nproc: number;
  readonly memoryGiB: number;
  readonly freeMemoryGiB: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly kernel: string;
  /** 1-minute load average at the start and at the end of the run (other engineers' work shows here). */
  readonly loadStart: number;
  loadEnd?: number;
  readonly tools: Record<string, string>;
  /** Which raw inflate clip used: the zlib addon, or pako and why. */
  readonly inflate: string;
}

async function version(command: string, args: string[]): Promise<string> {
  const result = await exec(command, args).catch(() => undefined);
  if (!result || result.code !== 0) return 'not installed';
  return (result.stdout || result.stderr).trim().split('\n')[0] ?? '';
}

export async function machineInfo(): Promise<MachineInfo> {
  const { backend, detail } = inflateBackend();
  return {
    nproc: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeMemoryGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
    cpuModel: `${cpus()[0]?.model ?? 'unknown'} (${cpus().length} logical CPUs)`,
    node: process.version,
    kernel: release(),
    loadStart: loadavg()[0] ?? 0,
    tools: {
      'docker-registry': await version('docker-registry', ['--version']),
      skopeo: await version('skopeo', ['--version']),
      umoci: await version('umoci', ['--version']),
      gzip: await version('gzip', ['--version']),
      tar: await version('tar', ['--version']),
    },
    inflate: `${backend} (${detail})`,
  };
}

export function formatMachine(m: MachineInfo): string {
  return [
    `nproc ${m.nproc}, memory ${m.memoryGiB} GiB (${m.freeMemoryGiB} GiB free at start), CPU ${m.cpuModel}`,
    `Node ${m.node}, kernel ${m.kernel}, load average (1 min) ${m.loadStart.toFixed(2)} at start${m.loadEnd === undefined ? '' : `, ${m.loadEnd.toFixed(2)} at end`}`,
    `tools: ${Object.entries(m.tools).map(([k, v]) => `${k}: ${v}`).join('; ')}`,
    `clip's inflate: ${m.inflate}`,
  ].join('\n');
}
