/**
 * One "node": `clip node` in a privileged container of the project's image, as the chart's
 * DaemonSet runs it. The node's directory (kubelet's directory, the plugin's state and cache) is a
 * shared mount bound into the container with `rshared` (Bidirectional) propagation, so the mounts
 * the plugin makes show on the host, where the kubelet stand-in and the pods' containers see them.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { ContainerdHandle, ContainerTask } from '../test/harness/containerd.js';
import { connectCsi, type CsiClient } from '../test/helpers/csi-client.js';
import { httpGet } from '../test/helpers/csi-plugin.js';

const READY_TIMEOUT_MS = 60_000;

export interface NodePluginOptions {
  name: string;
  /** The node's directory on the host; must be a shared mount already. */
  root: string;
  image: string;
  metricsAddress: string;
  /** Flags added to `clip node` (S3, registry). */
  flags: readonly string[];
  env: Readonly<Record<string, string>>;
}

export class NodePlugin {
  readonly kubeletDir: string;
  readonly stateDir: string;
  readonly cacheDir: string;
  readonly socket: string;
  private task: ContainerTask | undefined;
  /** `clip holder` beside the plugin, as the chart's clip-holder container: it outlives the plugin's restarts. */
  private holder: ContainerTask | undefined;
  private client: CsiClient | undefined;
  /** What every container of this plugin printed, in order (the plugin's JSON log lines). */
  private earlierOutput = '';

  constructor(
    private readonly containerd: ContainerdHandle,
    readonly options: NodePluginOptions,
  ) {
    this.kubeletDir = join(options.root, 'kubelet');
    this.stateDir = join(options.root, 'state');
    this.cacheDir = join(options.root, 'cache');
    this.socket = join(this.kubeletDir, 'plugins', 'clip.csi.dev', 'csi.sock');
  }

  get name(): string {
    return this.options.name;
  }

  get csi(): CsiClient {
    if (!this.client) throw new Error(`node plugin ${this.name} is not running`);
    return this.client;
  }

  output(): string {
    return this.earlierOutput + (this.task?.output() ?? '');
  }

  /** Starts the container (and the holder's, once) and waits until the plugin answers Probe ready over its socket. */
  async start(): Promise<void> {
    await mkdir(join(this.kubeletDir, 'plugins', 'clip.csi.dev'), { recursive: true });
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    this.holder ??= await this.containerd.start({
      image: this.options.image,
      id: `holder-${this.name}-${Date.now().toString(36)}`,
      privileged: false,
      netHost: true,
      mounts: [{ source: this.options.root, options: ['rbind'] }],
      env: {},
      args: ['clip', 'holder', '--socket', join(this.stateDir, 'holder.sock')],
    });
    this.task = await this.containerd.start({
      image: this.options.image,
      id: `node-${this.name}-${Date.now().toString(36)}`,
      privileged: true,
      netHost: true,
      rootfsPropagation: 'rshared',
      mounts: [{ source: this.options.root, options: ['rbind', 'rshared'] }],
      env: { ...this.options.env, NODE_NAME: this.name },
      args: [
        'clip', 'node',
        '--endpoint', `unix://${this.socket}`,
        '--node-id', this.name,
        '--kubelet-dir', this.kubeletDir,
        '--state-dir', this.stateDir,
        '--cache-dir', this.cacheDir,
        '--metrics-addr', this.options.metricsAddress,
        '--holder-socket', join(this.stateDir, 'holder.sock'),
        ...this.options.flags,
      ],
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const client = await connectCsi(this.socket);
      const ready = await client.Probe().then((answer) => answer.ready?.value === true, () => false);
      if (ready) {
        this.client = client;
        return;
      }
      client.close();
      let ended = false;
      await Promise.race([this.task.exited.then(() => (ended = true)), delay(200)]);
      if (ended) throw new Error(`node plugin ${this.name} ended before it was ready:\n${this.output()}`);
      if (Date.now() > deadline) throw new Error(`node plugin ${this.name} not ready within ${READY_TIMEOUT_MS} ms:\n${this.output()}`);
    }
  }

  /** Ends the container with `signal` (SIGKILL: a crash; SIGTERM: a rolling update); returns its exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const task = this.task;
    if (!task) return null;
    this.client?.close();
    this.client = undefined;
    const result = await task.stop(signal);
    this.earlierOutput += task.output();
    this.task = undefined;
    return result.code;
  }

  /**
   * A rolling update with maxSurge: a new container starts beside the running one, which hands
   * its FUSE connections over and serves nothing more; then the old one is stopped.
   */
  async replace(): Promise<void> {
    const old = this.task;
    if (!old) throw new Error(`node plugin ${this.name} is not running`);
    this.client?.close();
    this.client = undefined;
    this.task = undefined;
    const handedOver = (): boolean => old.output().includes('"msg":"handed over every FUSE connection; this process serves nothing more"');
    const starting = this.start();
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!handedOver()) {
      if (Date.now() > deadline) throw new Error(`node plugin ${this.name} did not hand over:\n${old.output()}`);
      await delay(50);
    }
    await starting;
    await old.stop('SIGTERM');
    this.earlierOutput += old.output();
  }

  /** Stops the holder container (after the plugin: teardown). */
  async stopHolder(): Promise<void> {
    await this.holder?.stop('SIGTERM');
    this.holder = undefined;
  }

  async metrics(): Promise<string> {
    return (await httpGet(this.options.metricsAddress, '/metrics')).body;
  }
}
