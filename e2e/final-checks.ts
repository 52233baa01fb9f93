/** What must hold once the run is over: the registry saw only expected requests; nothing is left behind. */
import { readdir, readFile } from 'node:fs/promises';
import { readMountTable } from '../src/node/mount-utils.js';
import type { RequestInfo } from '../test/harness/counting-proxy.js';
import type { WorkloadImages } from './test-images.js';

/**
 * The registry requests that are not reads of the run's images: the API check (`/v2/`), manifests
 * and blobs of the workload images, by GET or HEAD. The system never writes to a registry, and
 * never asks for anything else.
 */
export function unexpectedRegistryRequests(log: readonly RequestInfo[], images: WorkloadImages): string[] {
  const repos = [images.debian, images.shell, images.zoneinfo].map((image) => image.repo.replace('/', '\\/'));
  const expected = new RegExp(`^/v2/((${repos.join('|')})/(manifests/[\\w.:-]+|blobs/sha256:[0-9a-f]{64}))?$`);
  return log.filter((request) => !['GET', 'HEAD'].includes(request.method) || !expected.test(request.path.split('?')[0] ?? '')).map((request) => `${request.method} ${request.path}`);
}

/** Status codes of the registry's answers other than 200, 206 (ranges) and 401 (auth challenges, the wrong secret). */
export function unexpectedStatuses(statuses: ReadonlyMap<number, number>): string[] {
  return [...statuses].filter(([status]) => ![200, 206, 401].includes(status)).map(([status, count]) => `${status} ×${count}`);
}

/** Which of `secrets` appear in `logs` (by name): credentials must never be logged. */
export function secretsIn(logs: Readonly<Record<string, string>>, secrets: Readonly<Record<string, string>>): string[] {
  return Object.entries(logs).flatMap(([source, text]) =>
    Object.entries(secrets)
      .filter(([, value]) => value.length > 0 && text.includes(value))
      .map(([name]) => `${name} in ${source}'s log`),
  );
}

export async function mountsUnder(prefix: string): Promise<string[]> {
  return (await readMountTable()).map((entry) => entry.mountPoint).filter((point) => point === prefix || point.startsWith(`${prefix}/`));
}

/**
 * Processes whose command line names one of `dirs` (the run's directory: clip in its containers;
 * containerd's: containerd and its shims), or children of this process (the services).
 */
export async function processesLeft(dirs: readonly string[]): Promise<string[]> {
  const left: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ').trim();
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const zombie = fields[0] === 'Z';
    const child = Number(fields[1]) === process.pid;
    if (!zombie && (dirs.some((dir) => cmdline.includes(dir)) || child)) left.push(`${pid}: ${cmdline.slice(0, 200)}`);
  }
  return left;
}
