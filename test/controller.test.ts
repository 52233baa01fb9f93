/**
 * `clip controller` against a cluster: the test Kubernetes API server (the one stand-in), a real
 * registry with basic auth behind a counting proxy, moto S3, and real `clip controller` and
 * `clip node` processes. Pods and ClipImages ask for indexes; the controller writes them to S3
 * before any node asks, tells the objects with Events and status, survives dropped watches and
 * 410 Gone, elects one leader among replicas, and says clearly when RBAC refuses it something.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { imageKeyOf } from '../src/clipcore/index.js';
import { connectCsi, ephemeralContext, MOUNT_CAPABILITY } from './helpers/csi-client.js';
import { cleanupPluginDir, httpGet, makePluginDir, metricValue, mountsUnder, podVolume, startPlugin } from './helpers/csi-plugin.js';
import { startControllerProcess, type ControllerProcess } from './helpers/controller-process.js';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy.js';
import { pushImageDetailed } from './harness/image-builder.js';
import { KubeApiServer, type PolicyRule } from './harness/kube-apiserver/server.js';
import type { JsonObject } from './harness/kube-apiserver/json.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { startS3, type S3Handle } from './harness/s3.js';
import { buildTarLayer } from './harness/tar-layer.js';

const BUCKET = 'clip-ctl-kube';
const CRD = 'charts/clip-csi/crds/clipimages.clip.csi.dev.yaml';
const CLIP_IMAGES = 'clipimages.clip.csi.dev';
const LEASES = 'leases.coordination.k8s.io';
const DRIVER = 'clip.csi.dev';

/** Polls `condition` every 50 ms until it holds (bounded: waiting for events, not for time). */
async function until<T>(what: string, condition: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface EventView {
  name: string;
  type: string;
  reason: string;
  message: string;
  count: number;
  instance: string;
  controller: string;
}

describe('clip controller: the Kubernetes side', () => {
  let registry: RegistryHandle;
  let proxy: CountingProxy;
  let s3: S3Handle;
  let api: KubeApiServer;
  let dir: string;
  let kubeconfig: string;
  let pullSecret: Record<string, string>;
  const images = new Map<string, { image: string; digest: string; layer: string }>();

  const push = async (repo: string, content: string): Promise<void> => {
    const pushed = await pushImageDetailed(registry, repo, 'v1', [
      buildTarLayer([
        { type: 'file', path: 'hello.txt', content },
        { type: 'file', path: 'data/more.txt', content: 'y'.repeat(2000) },
      ]),
    ]);
    images.set(repo, { image: `${proxy.host}/${repo}:v1`, digest: pushed.digest, layer: pushed.layers[0]?.digest ?? '' });
  };
  const image = (repo: string): { image: string; digest: string; layer: string } => {
    const found = images.get(repo);
    assert.ok(found, repo);
    return found;
  };

  before(async () => {
    [registry, s3] = await Promise.all([startRegistry({ auth: 'basic' }), startS3()]);
    await s3.createBucket(BUCKET);
    proxy = await startCountingProxy(registry.host);
    for (const repo of ['apps/first', 'apps/two-a', 'apps/two-b', 'apps/shared', 'apps/private', 'apps/relist', 'apps/prewarm', 'apps/failover']) await push(repo, `content of ${repo}\n`);
    dir = await mkdtemp(join(tmpdir(), 'ctl-kube-'));
    api = await KubeApiServer.start({ dir, crdFiles: [CRD], bookmarkIntervalMs: 0 });
    kubeconfig = await api.writeKubeconfig();
    api.create('nodes', { metadata: { name: 'node-a', labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' } } });
    const auth = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
    pullSecret = { '.dockerconfigjson': JSON.stringify({ auths: { [proxy.host]: { auth } } }) };
    api.create('secrets', {
      metadata: { name: 'regcred', namespace: 'default' },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': Buffer.from(pullSecret['.dockerconfigjson'] ?? '').toString('base64') },
    });
  });

  after(async () => {
    await proxy?.close();
    await Promise.all([registry?.stop(), s3?.stop(), api?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function createPod(name: string, repo: string, options: { pullSecrets?: boolean; image?: string; alsoRepo?: string } = {}): JsonObject {
    const volume = (volumeName: string, ref: string): JsonObject => ({ name: volumeName, csi: { driver: DRIVER, readOnly: true, volumeAttributes: { image: ref } } });
    return api.create('pods', {
      metadata: { name, namespace: 'default' },
      spec: {
        containers: [{ name: 'app', image: 'busybox' }],
        ...(options.pullSecrets !== false && { imagePullSecrets: [{ name: 'regcred' }] }),
        volumes: [volume('tools', options.image ?? image(repo).image), ...(options.alsoRepo ? [volume('more', image(options.alsoRepo).image)] : [])],
      },
    });
  }

  function events(name: string): EventView[] {
    return api.list('events', 'default').flatMap((event) => {
      const involved = event['involvedObject'] as JsonObject | undefined;
      if (involved?.['name'] !== name) return [];
      return [
        {
          name: String(involved['name']),
          type: String(event['type']),
          reason: String(event['reason']),
          message: String(event['message']),
          count: Number(event['count'] ?? 1),
          instance: String(event['reportingInstance'] ?? ''),
          controller: String(event['reportingComponent'] ?? ''),
        },
      ];
    });
  }

  const eventOf = (name: string, reason: string, timeoutMs?: number): Promise<EventView> =>
    until(`a ${reason} event on ${name}`, () => events(name).find((event) => event.reason === reason), timeoutMs);

  async function inS3(key: string): Promise<boolean> {
    try {
      await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `indexes/${key}.clip` }));
      return true;
    } catch {
      return false;
    }
  }

  const controllerArgs = (extra: string[] = []): string[] => ['--kubeconfig', kubeconfig, '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint, ...extra];

  describe('one replica', () => {
    let controller: ControllerProcess;
    let workDir: string;

    before(async () => {
      workDir = await mkdtemp(join(tmpdir(), 'ctl-kube-one-'));
      controller = await startControllerProcess(workDir, controllerArgs(['--identity', 'solo']), s3.env);
      await controller.waitForLog((line) => line.msg === 'pods: listed');
    });

    after(async () => {
      await controller?.stop();
      if (workDir) await rm(workDir, { recursive: true, force: true });
    });

    it("a pod is created → its index is in S3 before any node asks, with the pod's imagePullSecrets; clip node then downloads it without indexing", async () => {
      const app = image('apps/first');
      const pod = createPod('first', 'apps/first');
      const indexed = await eventOf('first', 'Indexed');
      assert.equal(indexed.type, 'Normal');
      assert.match(indexed.message, new RegExp(`^indexed ${app.image.replace(/[.]/g, '\\.')}@${app.digest} linux/amd64: 2 files, [0-9.]+ (B|KiB) index, [0-9.]+ s$`));
      assert.equal(indexed.controller, 'clip.csi.dev/controller');
      assert.equal(indexed.instance, 'solo');
      assert.ok(await inS3(imageKeyOf(app.digest, 'linux/amd64')));

      // A node on which the pod lands: it finds the index in S3 and mounts without indexing.
      const nodeDir = await makePluginDir('ctl-kube-node-');
      const plugin = await startPlugin(nodeDir, ['--image-grace-seconds', '0', '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint], { env: s3.env });
      const node = await connectCsi(plugin.socketPath);
      const volume = await podVolume(nodeDir);
      const publish = {
        volume_id: 'csi-first',
        target_path: volume.targetPath,
        volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_WRITER'),
        readonly: true,
        volume_context: ephemeralContext(app.image, { name: 'first', uid: String((pod['metadata'] as JsonObject)['uid']) }),
        secrets: pullSecret,
      };
      let left: string[] = [];
      try {
        await node.NodePublishVolume(publish);
        assert.equal(await readFile(join(volume.targetPath, 'hello.txt'), 'utf8'), 'content of apps/first\n');
        const mounted = plugin.logs().find((line) => line.msg === 'image mounted');
        assert.equal(mounted?.['index_source'], 's3');
        const scraped = (await httpGet(plugin.metricsAddress, '/metrics')).body;
        const sources = (source: string): number | undefined => metricValue(scraped, 'clip_csi_index_source_total', { source });
        assert.deepEqual([sources('s3'), sources('indexed')], [1, 0]);
      } finally {
        await node.NodeUnpublishVolume({ volume_id: publish.volume_id, target_path: publish.target_path }).catch(() => undefined);
        node.close();
        await plugin.stop();
        left = await mountsUnder(nodeDir);
        await cleanupPluginDir(nodeDir);
      }
      assert.deepEqual(left, [], 'no mount left behind');
    });

    it('a pod with two images → both indexed, an Indexed event naming each image', async () => {
      createPod('two-images', 'apps/two-a', { alsoRepo: 'apps/two-b' });
      const indexed = await until('two Indexed events', () => {
        const found = events('two-images').filter((event) => event.reason === 'Indexed');
        return found.length === 2 ? found : undefined;
      });
      for (const repo of ['apps/two-a', 'apps/two-b']) {
        const { image: ref, digest } = image(repo);
        const message = new RegExp(`^indexed ${ref.replace(/[.]/g, '\\.')}@${digest} linux/amd64: 2 files, [0-9.]+ (B|KiB) index, [0-9.]+ s$`);
        assert.equal(indexed.filter((event) => message.test(event.message)).length, 1, `one event names ${repo}: ${JSON.stringify(indexed)}`);
        assert.ok(await inS3(imageKeyOf(digest, 'linux/amd64')), repo);
      }
    });

    it('two pods with one image → one job; without the pull secret → Unauthorized; a missing image → one Warning event and no retry storm', async () => {
      const shared = image('apps/shared');
      createPod('shared-a', 'apps/shared');
      createPod('shared-b', 'apps/shared');
      createPod('no-secret', 'apps/private', { pullSecrets: false });
      createPod('missing', 'apps/missing', { image: `${proxy.host}/apps/missing:v1` });
      await eventOf('shared-a', 'Indexed');
      await eventOf('shared-b', 'Indexed');
      // The layer was read once: one job for both pods.
      assert.equal(proxy.requestsFor(shared.layer), 1);

      const missing = await eventOf('missing', 'IndexFailed');
      assert.equal(missing.type, 'Warning');
      assert.match(missing.message, /^NotFound: cannot index .*apps\/missing:v1/);
      const unauthorized = await eventOf('no-secret', 'IndexFailed');
      assert.match(unauthorized.message, /^Unauthorized: /);
      const asked = proxy.requestsFor('/apps/missing/');

      // Work done after the failure (a relist that shows the same pods again, and a new pod):
      // nothing asks the registry about the missing image again.
      api.compact();
      api.dropWatches();
      await controller.waitForLog((line) => /410 Gone/.test(line.msg) && line.msg.startsWith('pods'));
      createPod('after-missing', 'apps/shared');
      await eventOf('after-missing', 'Indexed');
      assert.equal(proxy.requestsFor('/apps/missing/'), asked);
      assert.deepEqual(
        events('missing').map((event) => [event.reason, event.count]),
        [['IndexFailed', 1]],
      );
    });

    it('a dropped watch and a 410 Gone → resume, relist, and no pod is missed', async () => {
      createPod('relist-0', 'apps/relist');
      await eventOf('relist-0', 'Indexed');
      // A dropped connection: the watch resumes from the last resourceVersion it saw.
      const dropped = api.dropWatches('reset');
      assert.ok(dropped > 0);
      createPod('relist-1', 'apps/relist');
      await eventOf('relist-1', 'Indexed');
      const relists = controller.logs().filter((line) => line.msg === 'pods: listed').length;
      // Pods created while the watch is down, and history compacted meanwhile: its resourceVersion
      // is gone (410), so it must list again, and find them.
      api.dropWatches('reset');
      createPod('relist-2', 'apps/relist');
      createPod('relist-3', 'apps/relist');
      api.compact();
      for (const name of ['relist-2', 'relist-3']) await eventOf(name, 'Indexed');
      await until('a relist of pods', () => controller.logs().filter((line) => line.msg === 'pods: listed').length > relists);
      // Each pod was told once.
      for (const name of ['relist-0', 'relist-1', 'relist-2', 'relist-3']) {
        assert.deepEqual(events(name).map((event) => [event.reason, event.count]), [['Indexed', 1]], name);
      }
    });

    it('a ClipImage goes Indexing → Ready with its status filled in', async () => {
      const prewarm = image('apps/prewarm');
      // A slow layer, so that the Indexing state is seen.
      proxy.addFault({ kind: 'delay', ms: 2000 }, { match: (req) => req.method === 'GET' && req.path.includes(prewarm.layer) });
      api.create(CLIP_IMAGES, { metadata: { name: 'prewarm' }, spec: { image: prewarm.image, platforms: ['linux/amd64'], pullSecretRef: { name: 'regcred', namespace: 'default' } } });
      type Status = { observedGeneration?: number; digest?: string; conditions?: JsonObject[]; indexes?: JsonObject[] };
      const statusOf = (): Status | undefined => api.get(CLIP_IMAGES, 'prewarm')?.['status'] as Status | undefined;
      const ready = (): JsonObject | undefined => statusOf()?.conditions?.find((condition) => condition['type'] === 'Ready');
      const indexing = await until('Ready=False Indexing', () => (ready()?.['reason'] === 'Indexing' ? ready() : undefined));
      assert.equal(indexing['status'], 'False');
      const done = await until('Ready=True', () => (ready()?.['status'] === 'True' ? statusOf() : undefined));
      assert.equal(done.observedGeneration, 1);
      assert.equal(done.digest, prewarm.digest);
      assert.equal(ready()?.['reason'], 'Indexed');
      assert.equal(done.indexes?.length, 1);
      const index = done.indexes?.[0] ?? {};
      assert.equal(index['platform'], 'linux/amd64');
      assert.equal(index['location'], `s3://${BUCKET}/indexes/${imageKeyOf(prewarm.digest, 'linux/amd64')}.clip`);
      assert.equal(index['files'], 2);
      assert.ok(Number(index['indexBytes']) > 0);
      assert.ok(Number(index['durationSeconds']) >= 0);
      assert.ok(!Number.isNaN(Date.parse(String(index['indexedAt']))));
      assert.ok(await inS3(imageKeyOf(prewarm.digest, 'linux/amd64')));
      const event = await eventOf('prewarm', 'Indexed');
      assert.match(event.message, /^indexed .*apps\/prewarm:v1@sha256:[0-9a-f]{64} linux\/amd64: 2 files/);
    });
  });

  it('two replicas → one leader; after a kill -9 of the leader the other takes over and finishes the work', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'ctl-kube-ha-'));
    const replicas: ControllerProcess[] = [];
    try {
      for (const identity of ['replica-a', 'replica-b']) {
        replicas.push(await startControllerProcess(join(workDir, identity), controllerArgs(['--leader-election', '--leader-election-namespace', 'kube-system', '--identity', identity]), s3.env));
      }
      const lease = (): JsonObject | undefined => api.get(LEASES, 'clip-csi-controller', 'kube-system')?.['spec'] as JsonObject | undefined;
      const holder = await until('a lease holder', () => lease()?.['holderIdentity'] as string | undefined);
      const leader = replicas[holder === 'replica-a' ? 0 : 1];
      const follower = replicas[holder === 'replica-a' ? 1 : 0];
      assert.ok(leader && follower);
      const leaderMetric = async (replica: ControllerProcess): Promise<number | undefined> =>
        metricValue((await httpGet(replica.metricsAddress, '/metrics')).body, 'clip_controller_leader');
      await until('the leader reporting itself', async () => (await leaderMetric(leader)) === 1);
      assert.equal(await leaderMetric(follower), 0);
      // A follower is ready once the API answers it (the Lease read, the Nodes listed).
      await until('the follower ready', async () => (await httpGet(follower.metricsAddress, '/readyz')).status === 200);
      assert.ok(!follower.logs().some((line) => line.msg === 'pods: listed'), 'a follower does not watch pods');

      const failover = image('apps/failover');
      proxy.addFault({ kind: 'delay', ms: 4000 }, { match: (req) => req.method === 'GET' && req.path.includes(failover.layer) });
      createPod('failover', 'apps/failover');
      await leader.waitForLog((line) => line.msg === 'pods: listed');
      // Asked for and held by the proxy (requestsFor counts a request only once it is forwarded,
      // by when the leader may have finished the job).
      await until('the leader fetching the slow layer', () => proxy.stats.log.some((req) => req.path.includes(failover.layer)));
      await leader.kill9();
      // The other replica takes the Lease once it has seen it unrenewed for its duration (15 s),
      // then finishes the work (after the dead leader's S3 marker goes stale).
      const followerName = follower === replicas[0] ? 'replica-a' : 'replica-b';
      await until('the other replica holding the Lease', () => lease()?.['holderIdentity'] === followerName, 40_000);
      await until('the other replica leading', async () => (await leaderMetric(follower)) === 1);
      assert.ok(Number(lease()?.['leaseTransitions']) >= 1);
      const indexed = await eventOf('failover', 'Indexed', 150_000);
      assert.equal(indexed.instance, followerName);
      assert.ok(await inS3(imageKeyOf(failover.digest, 'linux/amd64')));
    } finally {
      for (const replica of replicas) await replica.stop();
      await rm(workDir, { recursive: true, force: true });
    }
  });

  it('a 403 from the API → a log line naming the verb and resource, and /readyz failing until RBAC allows it', async () => {
    const user = 'system:serviceaccount:kube-system:clip-csi-controller';
    const everythingBut = (resource: string): PolicyRule[] => [
      { verbs: ['*'], apiGroups: [''], resources: ['nodes', 'secrets', 'serviceaccounts', 'events', 'persistentvolumeclaims', ...(resource === 'pods' ? [] : ['pods'])] },
      { verbs: ['*'], apiGroups: ['clip.csi.dev'], resources: ['clipimages', 'clipimages/status'] },
      { verbs: ['*'], apiGroups: ['coordination.k8s.io'], resources: ['leases'] },
    ];
    api.addUser(user, everythingBut('pods'));
    const limited = await api.writeKubeconfig(user);
    const workDir = await mkdtemp(join(tmpdir(), 'ctl-kube-rbac-'));
    let controller: ControllerProcess | undefined;
    try {
      controller = await startControllerProcess(workDir, ['--kubeconfig', limited, '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint], s3.env);
      const line = await controller.waitForLog((entry) => entry.level === 'error' && /forbidden/.test(entry.msg));
      assert.match(line.msg, /may not list pods/);
      assert.equal(line['verb'], 'list');
      assert.equal(line['resource'], 'pods');
      const address = controller.metricsAddress;
      const readyz = await httpGet(address, '/readyz');
      assert.equal(readyz.status, 503);
      assert.match(readyz.body, /forbidden: the controller may not list pods/);
      api.setRules(user, everythingBut('none'));
      await until('/readyz to pass once RBAC allows listing pods', async () => (await httpGet(address, '/readyz')).status === 200, 60_000);
    } finally {
      await controller?.stop();
      await rm(workDir, { recursive: true, force: true });
    }
  });
});
