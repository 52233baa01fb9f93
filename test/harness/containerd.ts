/**
 * A private containerd for tests: Debian's containerd and runc, with root, state, sockets and the
 * "opt" directory under one temporary directory, and a namespace of its own (runc's state
 * directory is shared by every containerd on the machine, so container ids must not collide).
 * Images come in as OCI archives (`ctr images import`); containers run through `ctr run`, in the
 * foreground (`run`) or in the background as a service such as `clip node` would (`start`).
 * stop() removes whatever is left: tasks, containers, images, shims, mounts, the directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { mountsUnder } from '../helpers/csi-plugin.js';
import { run, type RunResult } from '../helpers/processes.js';
import { captureLog, stopProcess } from './run.js';

const START_TIMEOUT_MS = 20_000;

export interface BindMount {
  source: string;
  /** Default: the same path as the source. */
  destination?: string;
  /** runc's mount options (default `rbind`), e.g. `['rbind', 'ro']` or `['rbind', 'rshared']`. */
  options?: readonly string[];
}

export interface ContainerSpec {
  image: string;
  /** The process (the image's entrypoint is not applied by `ctr run`: name the command). */
  args: readonly string[];
  /** Default: a fresh unique id. */
  id?: string;
  privileged?: boolean;
  /** The host's network namespace (to reach services on the host's loopback). */
  netHost?: boolean;
  readOnlyRootfs?: boolean;
  /**
   * Run as this uid/gid. `ctr run` 1.6 has no --user flag, so the process starts as root and
   * util-linux's setpriv (in the image) drops to the user before exec, groups cleared.
   */
  user?: { uid: number; gid: number };
  mounts?: readonly BindMount[];
  /** The container rootfs' propagation, `rshared` for Bidirectional mounts. */
  rootfsPropagation?: 'rshared' | 'rslave' | 'rprivate';
  env?: Readonly<Record<string, string>>;
  timeoutMs?: number;
}

export interface ContainerTask {
  readonly id: string;
  /** What the container printed so far (stdout and stderr, interleaved as they arrived). */
  output(): string;
  /** Resolves when the task has ended and `ctr run --rm` has removed it, with its exit code. */
  readonly exited: Promise<RunResult>;
  /** Sends `signal` to the task and waits for it to end (SIGKILL after `timeoutMs`). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<RunResult>;
}

export interface ContainerdHandle {
  /** The gRPC socket, for `ctr -a`. */
  readonly address: string;
  readonly namespace: string;
  /** `ctr -a ADDRESS -n NAMESPACE ...args`. */
  ctr(args: readonly string[], options?: { timeoutMs?: number }): Promise<RunResult>;
  /** Imports an OCI archive; returns the manifest digest containerd recorded for `ref`. */
  importImage(archive: string, ref: string): Promise<string>;
  /** Runs a container to its end (`ctr run --rm`) and returns what it printed and its exit code. */
  run(spec: ContainerSpec): Promise<RunResult>;
  /** Starts a long-running container; `stop()` on the task ends it. */
  start(spec: ContainerSpec): Promise<ContainerTask>;
  logs(): string;
  stop(): Promise<void>;
}

export async function startContainerd(): Promise<ContainerdHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-containerd-'));
  const address = join(dir, 'containerd.sock');
  const namespace = `clip-test-${randomBytes(4).toString('hex')}`;
  const config = [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    // The CRI plugin wants CNI and a kubelet; ctr needs neither.
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${address}"`,
    '[ttrpc]',
    `  address = "${address}.ttrpc"`,
    '[metrics]',
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${dir}/opt"`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'config.toml'), config);
  const child = spawn('containerd', ['--config', join(dir, 'config.toml'), '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = captureLog(child);
  const tasks = new Set<ContainerTask>();
  const ctr = (args: readonly string[], options: { timeoutMs?: number } = {}): Promise<RunResult> =>
    run('ctr', ['-a', address, '-n', namespace, ...args], { timeoutMs: options.timeoutMs ?? 120_000 });
  const mustCtr = async (args: readonly string[], timeoutMs?: number): Promise<string> => {
    const result = await ctr(args, { timeoutMs });
    if (result.code !== 0) throw new Error(`ctr ${args.join(' ')} failed (${result.code ?? result.signal}): ${result.stderr}`);
    return result.stdout;
  };
  const handle: ContainerdHandle = {
    address,
    namespace,
    ctr,
    async importImage(archive, ref) {
      await mustCtr(['images', 'import', archive], 300_000);
      const listed = await mustCtr(['images', 'ls']);
      const line = listed.split('\n').find((row) => row.split(/\s+/)[0] === ref);
      const digest = line?.split(/\s+/)[2];
      if (!digest) throw new Error(`${ref} is not among the imported images:\n${listed}`);
      return digest;
    },
    run: (spec) => ctr(['run', '--rm', ...runFlags(spec), spec.image, spec.id ?? uniqueId(), ...command(spec)], { timeoutMs: spec.timeoutMs }),
    async start(spec) {
      const id = spec.id ?? uniqueId();
      const task = startTask(address, namespace, id, ['run', '--rm', ...runFlags(spec), spec.image, id, ...command(spec)], ctr);
      tasks.add(task);
      void task.exited.then(() => tasks.delete(task));
      // `ctr run` returns nothing when the task has started: wait until containerd lists it running.
      const deadline = Date.now() + START_TIMEOUT_MS;
      for (;;) {
        const listed = await ctr(['tasks', 'ls']);
        if (listed.stdout.split('\n').some((row) => row.split(/\s+/)[0] === id && row.includes('RUNNING'))) return task;
        const ended = await Promise.race([task.exited.then(() => true), delay(100).then(() => false)]);
        if (ended) throw new Error(`container ${id} ended before it was running:\n${task.output()}`);
        if (Date.now() > deadline) throw new Error(`container ${id} not running within ${START_TIMEOUT_MS} ms:\n${task.output()}`);
      }
    },
    logs,
    async stop() {
      try {
        for (const task of tasks) await task.stop('SIGKILL').catch(() => undefined);
        if (child.exitCode === null) await removeEverything(ctr);
      } finally {
        await stopProcess(child);
        await killShims(address);
        // Snapshot and rootfs mounts a killed containerd leaves.
        await unmountTree(dir);
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    await waitForSocket(address, child, logs);
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}

function uniqueId(): string {
  return `c-${randomBytes(6).toString('hex')}`;
}

function runFlags(spec: ContainerSpec): string[] {
  const flags: string[] = [];
  if (spec.privileged) flags.push('--privileged');
  if (spec.netHost) flags.push('--net-host');
  if (spec.readOnlyRootfs) flags.push('--read-only');
  if (spec.rootfsPropagation) flags.push('--rootfs-propagation', spec.rootfsPropagation);
  for (const mount of spec.mounts ?? []) {
    const options = (mount.options ?? ['rbind']).join(':');
    flags.push('--mount', `type=bind,src=${mount.source},dst=${mount.destination ?? mount.source},options=${options}`);
  }
  for (const [name, value] of Object.entries(spec.env ?? {})) flags.push('--env', `${name}=${value}`);
  return flags;
}

function command(spec: ContainerSpec): string[] {
  if (!spec.user) return [...spec.args];
  return ['setpriv', `--reuid=${spec.user.uid}`, `--regid=${spec.user.gid}`, '--clear-groups', '--', ...spec.args];
}

function startTask(
  address: string,
  namespace: string,
  id: string,
  args: readonly string[],
  ctr: ContainerdHandle['ctr'],
): ContainerTask {
  const child: ChildProcess = spawn('ctr', ['-a', address, '-n', namespace, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => {
    out.push(chunk);
    output += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    err.push(chunk);
    output += chunk.toString('utf8');
  });
  const exited = new Promise<RunResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
  return {
    id,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM', timeoutMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      await ctr(['tasks', 'kill', '--signal', signal, id]);
      const timer = setTimeout(() => void ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]), timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

async function waitForSocket(address: string, child: ChildProcess, logs: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`containerd exited (${child.exitCode}):\n${logs()}`);
    const up = await access(address).then(
      () => true,
      () => false,
    );
    if (up) return;
    if (Date.now() > deadline) throw new Error(`containerd did not listen within ${START_TIMEOUT_MS} ms:\n${logs()}`);
    await delay(50);
  }
}

/** Tasks, containers (with their snapshots) and images of the namespace, whatever a test left. */
async function removeEverything(ctr: ContainerdHandle['ctr']): Promise<void> {
  const ids = async (args: string[]): Promise<string[]> => (await ctr([...args, '--quiet'])).stdout.split('\n').filter(Boolean);
  for (const id of await ids(['tasks', 'ls'])) {
    await ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
    await ctr(['tasks', 'delete', '--force', id]);
  }
  for (const id of await ids(['containers', 'ls'])) await ctr(['containers', 'delete', id]);
  for (const ref of await ids(['images', 'ls'])) await ctr(['images', 'remove', ref]);
}

/** runc shims outlive containerd; ours are the ones started with our socket as their address. */
async function killShims(address: string): Promise<void> {
  for (const pid of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    const argv = cmdline.split('\0');
    if (argv[0]?.endsWith('containerd-shim-runc-v2') && argv.includes(address)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

/** Unmounts `prefix` and every mount under it, deepest first (lazily: a dead FUSE server's too). */
async function unmountTree(prefix: string): Promise<void> {
  for (let round = 0; round < 4; round++) {
    const points = await mountsUnder(prefix);
    if (points.length === 0) return;
    for (const point of points) await run('umount', ['-l', point]);
  }
}

/**
 * Makes `dir` a shared mount (a bind mount of itself), as kubelet's directory is on a node, so
 * that mounts made inside a container with Bidirectional (`rshared`) propagation show on the
 * host. Returns the undo: unmount everything under it, deepest first, then the bind itself.
 */
export async function makeSharedMount(dir: string): Promise<() => Promise<void>> {
  const must = async (args: string[]): Promise<void> => {
    const result = await run('mount', args);
    if (result.code !== 0) throw new Error(`mount ${args.join(' ')} failed: ${result.stderr}`);
  };
  await must(['--bind', dir, dir]);
  await must(['--make-shared', dir]);
  return () => unmountTree(dir);
}
