/**
 * A real runtime's pull: containerd (Debian's, when installed) started for the run with its root,
 * state and socket under the run's work directory. A pull is `ctr images pull` (fetch and unpack
 * into the overlayfs snapshotter, as kubelet's pull does through CRI), then `ctr images mount` and
 * the first read of a file; the image is then removed with everything it holds (`--sync`), so
 * that every pull starts cold.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { check, commandExists, exec, waitExit } from './proc.js';
import { msSince } from './stats.js';

export const CONTAINERD_PULL_LABEL = 'containerd: ctr images pull (fetch + unpack) + mount + read';

export interface Containerd {
  readonly version: string;
  /** Pull, mount and read the first `bytes` of `path`; milliseconds from the pull's start to the data. */
  pullAndRead(ref: string, path: string, bytes: number): Promise<number>;
  close(): Promise<void>;
}

export async function startContainerd(dir: string): Promise<Containerd | { unavailable: string }> {
  if (!(await commandExists('containerd')) || !(await commandExists('ctr'))) return { unavailable: 'containerd and ctr are not installed (Debian packages containerd, runc)' };
  await mkdir(dir, { recursive: true });
  const socket = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  // The CRI plugin is off: ctr talks to containerd directly; no kubelet here.
  await writeFile(config, `version = 2\nroot = "${join(dir, 'root')}"\nstate = "${join(dir, 'state')}"\n[grpc]\n  address = "${socket}"\n[plugins."io.containerd.grpc.v1.cri"]\n  disable = true\n`);
  const daemon: ChildProcess = spawn('containerd', ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (await access(socket).then(() => true, () => false)) break;
    if (daemon.exitCode !== null || Date.now() > deadline) {
      daemon.kill('SIGKILL');
      return { unavailable: `containerd did not start: ${log.split('\n').slice(-3).join(' ')}` };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const ctr = (...args: string[]) => check('ctr', ['-a', socket, ...args]);
  const version = (await exec('containerd', ['--version'])).stdout.trim();
  let pulls = 0;
  return {
    version,
    async pullAndRead(ref, path, bytes) {
      const target = join(dir, `mnt-${pulls++}`);
      await mkdir(target);
      const started = process.hrtime.bigint();
      await ctr('images', 'pull', '--plain-http', ref);
      await ctr('images', 'mount', '--plain-http', ref, target);
      try {
        const handle = await open(join(target, path), 'r');
        await handle.read(Buffer.alloc(bytes), 0, bytes, 0);
        await handle.close();
        return msSince(started);
      } finally {
        await ctr('images', 'unmount', '--rm', target);
        await ctr('images', 'rm', '--sync', ref);
      }
    },
    async close() {
      daemon.kill('SIGTERM');
      await waitExit(daemon, 10_000);
    },
  };
}
