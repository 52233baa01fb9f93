/**
 * Everything below kubelet, on loopback and under one temporary directory: the registry (basic
 * auth) behind a counting proxy (the system's only way to it: its request log is the registry log
 * the run checks), moto S3, the test Kubernetes API server, containerd, the project's image
 * (scripts/build-image.sh) imported into it, the controller as a container of that image (non-root,
 * read-only root filesystem, host network, the chart's RBAC), two node plugins as privileged
 * containers, and Prometheus scraping all three. `stop()` undoes whatever was started, in reverse.
 */
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHART_DIR } from '../scripts/helm.js';
import { buildClipImage } from '../test/harness/clip-image.js';
import { makeSharedMount, startContainerd, type ContainerdHandle, type ContainerTask } from '../test/harness/containerd.js';
import { startCountingProxy, type CountingProxy } from '../test/harness/counting-proxy.js';
import { freePort } from '../test/harness/free-port.js';
import { KubeApiServer } from '../test/harness/kube-apiserver/server.js';
import { startRegistry, type RegistryHandle } from '../test/harness/registry.js';
import { startS3, type S3Handle } from '../test/harness/s3.js';
import { controllerRules, render, valuesFile } from '../test/helpers/chart.js';
import { connectController, type ControllerClient } from '../test/helpers/csi-client.js';
import { httpGet } from '../test/helpers/csi-plugin.js';
import { startPrometheus, type PrometheusServer } from '../test/helpers/monitoring.js';
import { pollUntil } from '../test/helpers/poll.js';
import { Kubelet } from './kubelet.js';
import { NodePlugin } from './node-plugin.js';
import { buildWorkloadImages, type WorkloadImages } from './test-images.js';

export const BUCKET = 'clip-e2e';
const CONTROLLER_SA = { name: 'clip-csi-controller', namespace: 'kube-system' };
const NONROOT = { uid: 65532, gid: 65532 };
export const NODE_NAMES = ['node-a', 'node-b'] as const;
/** The password of the `wrongcred` secret. */
export const WRONG_PASSWORD = 'not-the-password-7c1e';

/** Undo steps, run last-in first-out; every one runs even when an earlier one fails. */
export class Teardown {
  private steps: Array<{ what: string; undo: () => Promise<unknown> }> = [];
  add(what: string, undo: () => Promise<unknown>): void {
    this.steps.push({ what, undo });
  }
  async run(): Promise<string[]> {
    const errors: string[] = [];
    for (const step of this.steps.reverse()) {
      try {
        await step.undo();
      } catch (err) {
        errors.push(`${step.what}: ${(err as Error).message}`);
      }
    }
    this.steps = [];
    return errors;
  }
}

export interface Cluster {
  root: string;
  registry: RegistryHandle;
  /** The registry as the system reaches it. */
  proxy: CountingProxy;
  s3: S3Handle;
  api: KubeApiServer;
  containerd: ContainerdHandle;
  prometheus: PrometheusServer;
  clipImage: string;
  images: WorkloadImages;
  controller: { task: ContainerTask; csi: ControllerClient; metricsAddress: string };
  nodes: NodePlugin[];
  kubelets: Kubelet[];
  /** Secrets in `default`: `regcred` (right credentials) and `wrongcred` (a wrong password). */
  secrets: { good: string; wrong: string };
  /** Setup steps and their seconds. */
  timings: Array<[string, number]>;
  stop(): Promise<string[]>;
}

function dockerConfigSecret(name: string, host: string, user: string, password: string): object {
  const auth = Buffer.from(`${user}:${password}`).toString('base64');
  const config = JSON.stringify({ auths: { [host]: { auth } } });
  return { metadata: { name, namespace: 'default' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(config).toString('base64') } };
}

/** Starts everything; what was started is undone by `teardown` (on a setup failure, before the error is thrown). */
export async function startCluster(log: (line: string) => void, teardown: Teardown): Promise<Cluster> {
  const timings: Array<[string, number]> = [];
  const timed = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await work();
    timings.push([what, (performance.now() - started) / 1000]);
    log(`setup: ${what} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    return result;
  };
  const root = await mkdtemp(join(tmpdir(), 'clip-e2e-'));
  teardown.add('temp directory', () => rm(root, { recursive: true, force: true }));
  try {
    const [registry, s3, containerd] = await timed('registry, S3, containerd', () => Promise.all([startRegistry({ auth: 'basic' }), startS3(), startContainerd()]));
    teardown.add('registry', () => registry.stop());
    teardown.add('S3', () => s3.stop());
    teardown.add('containerd', () => containerd.stop());
    const proxy = await startCountingProxy(registry.host);
    teardown.add('registry proxy', () => proxy.close());
    await s3.createBucket(BUCKET);

    const archive = join(root, 'clip-csi.oci.tar');
    const clipImage = `${registry.host}/clip-csi:e2e`;
    const creds = `${registry.username}:${registry.password}`;
    const [, images] = await Promise.all([
      timed('clip-csi image (scripts/build-image.sh) imported into containerd', async () => {
        const built = await buildClipImage(clipImage, { ociArchive: archive, push: false });
        // Which of its caches the build hit shows why a run's setup was slow.
        for (const line of built.progress) log(`  ${line}`);
        await containerd.importImage(archive, clipImage);
        await rm(archive);
      }),
      timed('workload images (Debian packages) pushed and unpacked by umoci', () => buildWorkloadImages(join(root, 'images'), registry.host, proxy.host, creds)),
    ]);

    await mkdir(join(root, 'api'));
    const api = await KubeApiServer.start({ dir: join(root, 'api'), crdFiles: [join(CHART_DIR, 'crds/clipimages.clip.csi.dev.yaml')], bookmarkIntervalMs: 0 });
    teardown.add('API server', () => api.stop());
    const user = `system:serviceaccount:${CONTROLLER_SA.namespace}:${CONTROLLER_SA.name}`;
    api.addUser(user, controllerRules(await render([valuesFile('s3-secret')]), CONTROLLER_SA.name, CONTROLLER_SA.namespace));
    for (const name of NODE_NAMES) api.create('nodes', { metadata: { name, labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' } } });
    api.create('serviceaccounts', { metadata: { name: 'default', namespace: 'default' } });
    const secrets = { good: 'regcred', wrong: 'wrongcred' };
    api.create('secrets', dockerConfigSecret(secrets.good, proxy.host, registry.username ?? '', registry.password ?? ''));
    api.create('secrets', dockerConfigSecret(secrets.wrong, proxy.host, registry.username ?? '', WRONG_PASSWORD));

    const [controllerPort, ...nodePorts] = await Promise.all([freePort(), ...NODE_NAMES.map(() => freePort())]);
    const s3Flags = ['--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint, '--s3-path-style'];
    const registryFlags = ['--insecure-registry', proxy.host];

    const controllerDir = join(root, 'controller');
    await mkdir(join(controllerDir, 'tmp'), { recursive: true });
    await chown(controllerDir, NONROOT.uid, NONROOT.gid);
    await chown(join(controllerDir, 'tmp'), NONROOT.uid, NONROOT.gid);
    const kubeconfig = await api.writeKubeconfig(user, join(controllerDir, 'kubeconfig'));
    // The container's user reads it, as a mounted ServiceAccount token is readable by the pod.
    await chmod(kubeconfig, 0o644);
    const controllerMetrics = `127.0.0.1:${controllerPort}`;
    const controllerTask = await timed('controller container ready', async () => {
      const task = await containerd.start({
        image: clipImage,
        id: 'clip-controller',
        user: NONROOT,
        readOnlyRootfs: true,
        netHost: true,
        mounts: [{ source: controllerDir }],
        // A CRI runtime sets HOME from the image's passwd entry for the user; ctr keeps root's.
        env: { ...s3.env, HOME: '/nonexistent' },
        args: ['clip', 'controller', '--endpoint', `unix://${join(controllerDir, 'csi.sock')}`, '--kubeconfig', kubeconfig, '--identity', 'clip-controller-e2e',
          '--metrics-addr', controllerMetrics, '--temp-dir', join(controllerDir, 'tmp'), ...s3Flags, ...registryFlags],
      });
      teardown.add('controller', () => task.stop('SIGTERM'));
      await pollUntil('the controller is ready', () => httpGet(controllerMetrics, '/readyz').catch(() => ({ status: 0, body: '' })), (answer) => answer.status === 200, 60_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${task.output()}`);
      });
      return task;
    });
    const controllerCsi = await connectController(join(controllerDir, 'csi.sock'));
    teardown.add('controller client', async () => controllerCsi.close());

    const nodes: NodePlugin[] = [];
    await timed('two node plugin containers ready', async () => {
      for (const [i, name] of NODE_NAMES.entries()) {
        const nodeRoot = join(root, name);
        await mkdir(nodeRoot);
        const unshare = await makeSharedMount(nodeRoot);
        teardown.add(`${name}'s mounts`, unshare);
        const plugin = new NodePlugin(containerd, { name, root: nodeRoot, image: clipImage, metricsAddress: `127.0.0.1:${nodePorts[i]}`, flags: [...s3Flags, ...registryFlags], env: s3.env });
        teardown.add(`node plugin ${name}`, async () => {
          await plugin.stop('SIGTERM');
          await plugin.stopHolder();
        });
        await plugin.start();
        nodes.push(plugin);
      }
    });
    const prometheus = await startPrometheus({ 'clip-csi-node': nodes.map((node) => node.options.metricsAddress), 'clip-csi-controller': [controllerMetrics] });
    teardown.add('Prometheus', () => prometheus.stop());
    const kubelets = nodes.map((node) => new Kubelet(node, api, containerd, clipImage));
    return {
      root,
      registry,
      proxy,
      s3,
      api,
      containerd,
      prometheus,
      clipImage,
      images,
      controller: { task: controllerTask, csi: controllerCsi, metricsAddress: controllerMetrics },
      nodes,
      kubelets,
      secrets,
      timings,
      stop: () => teardown.run(),
    };
  } catch (err) {
    const errors = await teardown.run();
    if (errors.length > 0) log(`teardown after a failed setup: ${errors.join('; ')}`);
    throw err;
  }
}
