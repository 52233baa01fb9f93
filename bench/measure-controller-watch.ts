/**
 * 6. The controller watching a big cluster: the resident memory of `clip controller` once it has
 *    listed (in pages) and watches 50,000 pending pods, each with a clip volume (the worst case: it
 *    keeps a small projection of every one and tells each one with an Event), against the same
 *    controller watching 0 pods, in the same run; the difference is the per-pod cost (the Kubernetes
 *    side's projections, the index side's requesters, and what the process keeps of the burst). The
 *    API server is the tests' own (in this process), seeded without HTTP.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startControllerProcess, type ControllerProcess } from '../test/helpers/controller-process.js';
import { pushImage } from '../test/harness/image-builder.js';
import { KubeApiServer } from '../test/harness/kube-apiserver/server.js';
import { startS3, type S3Handle } from '../test/harness/s3.js';
import { buildTarLayer } from '../test/harness/tar-layer.js';
import type { BenchContext } from './context.js';
import { peakResidentBytes } from './measure-controller.js';
import { residentBytes } from './mount.js';
import { REPO_ROOT } from './paths.js';
import { value } from './results.js';
import { formatBytes, msSince, num } from './stats.js';

const SECTION = '6. Controller';
const BUCKET = 'clip-bench-watch';
const PODS = 50_000;
const WAIT_MS = 15 * 60_000;

interface Watching {
  rss: number;
  peak: number;
  syncMs: number;
}

/** Starts an API server with `pods` pending pods and a controller on it; its memory once every pod was told. */
async function watching(dir: string, pods: number, image: string, s3: S3Handle): Promise<Watching> {
  await mkdir(dir, { recursive: true });
  const api = await KubeApiServer.start({ dir, crdFiles: [join(REPO_ROOT, 'charts/clip-csi/crds/clipimages.clip.csi.dev.yaml')], bookmarkIntervalMs: 0 });
  let controller: ControllerProcess | undefined;
  try {
    api.create('nodes', { metadata: { name: 'node-a', labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' } } });
    api.seedPods(pods, 'default', 'bench', {
      spec: {
        containers: [{ name: 'app', image: 'registry.example/app:1.0', resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
        serviceAccountName: 'default',
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        volumes: [{ name: 'tools', csi: { driver: 'clip.csi.dev', readOnly: true, volumeAttributes: { image } } }],
      },
    });
    const kubeconfig = await api.writeKubeconfig();
    const started = process.hrtime.bigint();
    controller = await startControllerProcess(join(dir, 'controller'), ['--kubeconfig', kubeconfig, '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint, '--platforms', 'linux/amd64', '--no-read-pull-secrets'], s3.env);
    await controller.waitForLog((line) => line.msg === 'pods: listed', WAIT_MS);
    const events = api.cluster.byName('events');
    const deadline = Date.now() + WAIT_MS;
    while (events.size < pods) {
      if (Date.now() > deadline) throw new Error(`only ${events.size} of ${pods} pods were told within ${WAIT_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const syncMs = msSince(started);
    const pid = controller.child.pid ?? 0;
    return { rss: await settledResidentBytes(pid), peak: await peakResidentBytes(pid), syncMs };
  } finally {
    await controller?.stop();
    await api.stop();
  }
}

/**
 * VmRSS once the process is idle: V8 gives back the heap that the burst of lists and Events grew
 * (its memory reducer) and the controller hands malloc's free pages back every 15 s, so the figure
 * is taken when it has stopped falling (three samples 5 s apart), at most a minute after the burst.
 */
async function settledResidentBytes(pid: number): Promise<number> {
  let lowest = await residentBytes(pid);
  let steady = 0;
  for (let sample = 0; sample < 12 && steady < 3; sample++) {
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const rss = await residentBytes(pid);
    steady = rss < lowest * 0.98 ? 0 : steady + 1;
    lowest = Math.min(lowest, rss);
  }
  return lowest;
}

export async function measureControllerWatch(ctx: BenchContext): Promise<void> {
  const dir = await mkdtemp(join(ctx.workDir, 'watch-'));
  const s3 = await startS3();
  try {
    await s3.createBucket(BUCKET);
    await pushImage(ctx.registry, 'bench/watched', 'v1', [buildTarLayer([{ type: 'file', path: 'hello.txt', content: 'watched\n' }])]);
    const image = `${ctx.registry.host}/bench/watched:v1`;
    const idle = await watching(join(dir, 'idle'), 0, image, s3);
    const busy = await watching(join(dir, 'busy'), PODS, image, s3);
    const perPod = (busy.rss - idle.rss) / PODS;
    ctx.results.add({
      section: SECTION,
      name: `resident memory of clip controller watching ${PODS.toLocaleString('en-US')} pending pods with a clip volume (VmRSS once listed, every pod told with an Event, and idle)`,
      clip: value(busy.rss, 'B', formatBytes(busy.rss)),
      comparison: { label: 'the same controller watching 0 pods', figure: value(idle.rss, 'B', formatBytes(idle.rss)) },
      ratio: { value: busy.rss / idle.rss, text: `${num(busy.rss / idle.rss)}× (one run each)` },
      note: `${formatBytes(perPod)} per pod; peak (VmHWM) ${formatBytes(busy.peak)} vs ${formatBytes(idle.peak)}; list (pages of 500) + watch + one index job + ${PODS.toLocaleString('en-US')} Events took ${num(busy.syncMs / 1000)} s`,
    });
  } finally {
    await s3.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
