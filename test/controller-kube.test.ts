/**
 * The controller's Kubernetes side, piece by piece: what a pod asks for (images, platforms, secret
 * order), the ClipImage status an outcome leads to, and against the test API server: pull secrets
 * read in order for the image's registry, Events counted up as kube's recorder does, Lease election
 * between two candidates, and PVC annotations.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoordinationV1Api, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { silentLogger } from '../src/csi/log.js';
import type { IndexedPlatform, IndexOutcome, IndexService, Requester } from '../src/controller/contracts.js';
import { nextStatus } from '../src/controller/kube/clip-image-status.js';
import { CredentialReader } from '../src/controller/kube/credentials.js';
import { EventRecorder } from '../src/controller/kube/events.js';
import { Health } from '../src/controller/kube/health.js';
import { KubeSide } from '../src/controller/kube/index.js';
import { LeaderElector, LEASE_NAME } from '../src/controller/kube/leader.js';
import { indexedMessage } from '../src/controller/kube/outcomes.js';
import { imageNeeds, projectPod } from '../src/controller/kube/pod-view.js';
import { KubeApiServer } from './harness/kube-apiserver/server.js';
import type { JsonObject } from './harness/kube-apiserver/json.js';

const DRIVER = 'clip.csi.dev';

function pod(spec: Partial<NonNullable<V1Pod['spec']>>, phase?: string): V1Pod {
  return {
    metadata: { uid: 'u-1', name: 'p', namespace: 'ns', resourceVersion: '7' },
    spec: { containers: [{ name: 'c', image: 'busybox' }], ...spec },
    ...(phase && { status: { phase } }),
  };
}

const clipVolume = (name: string, image: string, extra: { platform?: string; secret?: string; driver?: string } = {}) => ({
  name,
  csi: {
    driver: extra.driver ?? DRIVER,
    volumeAttributes: { image, ...(extra.platform && { platform: extra.platform }) },
    ...(extra.secret && { nodePublishSecretRef: { name: extra.secret } }),
  },
});

describe('what a pod asks for', () => {
  it('one need per distinct image: the volume platform, else the node selector, else the defaults; secrets in order', () => {
    const view = projectPod(
      pod({
        imagePullSecrets: [{ name: 'pull-a' }, { name: 'vol-b' }],
        nodeSelector: { 'kubernetes.io/arch': 'arm64' },
        volumes: [
          clipVolume('a', 'r/app:1', { secret: 'vol-b' }),
          clipVolume('b', 'r/app:1', { platform: 'linux/amd64', secret: 'vol-a' }),
          clipVolume('c', 'r/tools:2'),
          clipVolume('d', 'r/other:3', { driver: 'other.csi.dev' }),
          { name: 'e', emptyDir: {} },
        ],
      }),
      DRIVER,
    );
    assert.ok(view);
    assert.equal(view.serviceAccount, 'default');
    assert.deepEqual(imageNeeds(view, ['linux/amd64', 'linux/arm64', 'windows/amd64']), [
      { image: 'r/app:1', platforms: ['linux/arm64', 'linux/amd64'], secrets: ['vol-b', 'vol-a', 'pull-a'] },
      { image: 'r/tools:2', platforms: ['linux/arm64'], secrets: ['pull-a', 'vol-b'] },
    ]);
  });

  it('os and arch from the node selector make one platform; nothing said means every default', () => {
    const both = projectPod(pod({ nodeSelector: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 's390x' }, volumes: [clipVolume('a', 'r/a:1')] }), DRIVER);
    assert.deepEqual(both && imageNeeds(both, ['linux/amd64']).map((need) => need.platforms), [['linux/s390x']]);
    const none = projectPod(pod({ volumes: [clipVolume('a', 'r/a:1')] }), DRIVER);
    assert.deepEqual(none && imageNeeds(none, ['linux/amd64', 'linux/arm64']).map((need) => need.platforms), [['linux/amd64', 'linux/arm64']]);
  });

  it('keeps nothing of a pod that needs no index: no volume of ours, running, finished or being deleted', () => {
    assert.equal(projectPod(pod({ volumes: [clipVolume('a', 'r/a:1', { driver: 'x' })] }), DRIVER), undefined);
    for (const phase of ['Running', 'Succeeded', 'Failed']) assert.equal(projectPod(pod({ volumes: [clipVolume('a', 'r/a:1')] }, phase), DRIVER), undefined);
    const deleting = pod({ volumes: [clipVolume('a', 'r/a:1')] });
    deleting.metadata = { ...deleting.metadata, deletionTimestamp: new Date() };
    assert.equal(projectPod(deleting, DRIVER), undefined);
    assert.ok(projectPod(pod({ volumes: [clipVolume('a', 'r/a:1')] }, 'Pending'), DRIVER));
  });
});

describe('ClipImage status from outcomes', () => {
  const amd64: IndexedPlatform = { platform: 'linux/amd64', location: 's3://b/k.clip', files: 20678, indexBytes: 2_300_000, indexedAt: '2026-01-01T00:00:00Z', durationSeconds: 3.14 };
  const indexed: IndexOutcome = { image: 'r.example/app:1', state: 'Indexed', digest: 'sha256:abc', indexes: [amd64] };

  it('Indexing → Indexed → Failed; the transition time moves only when Ready changes', () => {
    const indexing = nextStatus(undefined, { image: 'r.example/app:1', state: 'Indexing', digest: 'sha256:abc', progress: 'indexing: 45 %' }, 2);
    const ready = indexing.conditions?.[0];
    assert.deepEqual({ ...ready, lastTransitionTime: '' }, { type: 'Ready', status: 'False', reason: 'Indexing', message: 'indexing: 45 %', observedGeneration: 2, lastTransitionTime: '' });
    assert.equal(indexing.digest, 'sha256:abc');
    const done = nextStatus(indexing, indexed, 2);
    assert.equal(done.conditions?.[0]?.status, 'True');
    assert.equal(done.conditions?.[0]?.reason, 'Indexed');
    assert.deepEqual(done.indexes, indexed.state === 'Indexed' ? indexed.indexes : undefined);
    const failedBefore = nextStatus(undefined, { image: 'r.example/app:1', state: 'Failed', reason: 'NotFound', message: 'no such tag' }, 3);
    const failedAgain = nextStatus({ ...failedBefore }, { image: 'r.example/app:1', state: 'Failed', reason: 'Unavailable', message: 'registry down' }, 3);
    assert.equal(failedAgain.conditions?.[0]?.lastTransitionTime, failedBefore.conditions?.[0]?.lastTransitionTime);
    assert.equal(failedAgain.conditions?.[0]?.reason, 'Unavailable');
    assert.deepEqual(failedAgain.indexes, []);
  });

  it('the Indexed message says image, digest, platform, files, index size and time', () => {
    assert.equal(
      indexedMessage('r.example/app:1', 'sha256:abc', amd64),
      'indexed r.example/app:1@sha256:abc linux/amd64: 20,678 files, 2.2 MiB index, 3.1 s',
    );
  });
});

describe('against the test API server', () => {
  let api: KubeApiServer;
  let dir: string;
  let kubeconfig: string;
  let core: CoreV1Api;
  let coordination: CoordinationV1Api;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ctl-kube-unit-'));
    api = await KubeApiServer.start({ dir, crdFiles: ['charts/clip-csi/crds/clipimages.clip.csi.dev.yaml'], bookmarkIntervalMs: 0 });
    kubeconfig = await api.writeKubeconfig();
    const config = new KubeConfig();
    config.loadFromFile(kubeconfig);
    core = config.makeApiClient(CoreV1Api);
    coordination = config.makeApiClient(CoordinationV1Api);
  });

  after(async () => {
    await api?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const dockerSecret = (name: string, registry: string, user: string): object => ({
    metadata: { name, namespace: 'team' },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { [registry]: { username: user, password: `${user}-pw` } } })).toString('base64') },
  });

  it("reads the volume's secret, the pod's pull secrets, then its service account's, for the image's registry only", async () => {
    api.create('namespaces', { metadata: { name: 'team' } });
    api.create('secrets', dockerSecret('volume', 'reg.example:5000', 'from-volume'));
    api.create('secrets', dockerSecret('pull', 'reg.example:5000', 'from-pod'));
    api.create('secrets', dockerSecret('elsewhere', 'other.example', 'not-this'));
    api.create('secrets', dockerSecret('account', 'https://reg.example:5000/v1/', 'from-account'));
    api.create('serviceaccounts', { metadata: { name: 'builder', namespace: 'team' }, imagePullSecrets: [{ name: 'account' }, { name: 'pull' }] });
    const lines: string[] = [];
    const reader = new CredentialReader(core, (level, message, fields) => lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`), new Health(silentLogger));
    const found = await reader.read({ namespace: 'team', image: 'reg.example:5000/app:1', secrets: ['volume', 'elsewhere', 'missing', 'pull'], serviceAccount: 'builder' });
    assert.deepEqual(found, [
      { username: 'from-volume', password: 'from-volume-pw' },
      { username: 'from-pod', password: 'from-pod-pw' },
      { username: 'from-account', password: 'from-account-pw' },
    ]);
    assert.ok(lines.some((line) => /secrets team\/missing not found/.test(line)));
    assert.ok(!lines.some((line) => /-pw/.test(line)), 'no credential in the log');
  });

  it('a repeated event counts up one Event, as kube\'s recorder does; a cluster-scoped object\'s goes to default', async () => {
    const recorder = new EventRecorder(core, 'replica-1', new Health(silentLogger));
    const requester: Requester = { kind: 'Pod', namespace: 'team', name: 'web', uid: 'uid-web', revision: '1' };
    await recorder.record(requester, 'Warning', 'IndexFailed', 'NotFound: cannot index r/x:1');
    await recorder.record(requester, 'Warning', 'IndexFailed', 'NotFound: cannot index r/x:1');
    await recorder.record(requester, 'Normal', 'Indexed', 'indexed r/x:1@sha256:abc linux/amd64');
    await recorder.record({ kind: 'ClipImage', name: 'warm', uid: 'uid-warm', revision: '1' }, 'Normal', 'Indexed', 'indexed');
    const events = api.list('events', 'team').map((event) => [event['reason'], event['count'], (event['involvedObject'] as JsonObject)['uid'], event['reportingComponent'], event['reportingInstance']]);
    assert.deepEqual(events.sort(), [
      ['IndexFailed', 2, 'uid-web', 'clip.csi.dev/controller', 'replica-1'],
      ['Indexed', 1, 'uid-web', 'clip.csi.dev/controller', 'replica-1'],
    ]);
    const clusterScoped = api.list('events', 'default').find((event) => (event['involvedObject'] as JsonObject)['name'] === 'warm');
    assert.equal((clusterScoped?.['involvedObject'] as JsonObject)['apiVersion'], 'clip.csi.dev/v1alpha1');
  });

  it('two candidates: one leads; when it stops, the Lease is released and the other takes it at once', async () => {
    const changes: string[] = [];
    const elector = (identity: string): LeaderElector =>
      new LeaderElector({ coordination, namespace: 'kube-system', identity, log: silentLogger, health: new Health(silentLogger), onChange: (leader) => changes.push(`${identity}:${leader}`) });
    const first = elector('one');
    first.start();
    await until(() => first.leader);
    const second = elector('two');
    second.start();
    await until(() => second.apiAnswered);
    assert.equal(second.leader, false);
    const lease = api.get('leases.coordination.k8s.io', LEASE_NAME, 'kube-system')?.['spec'] as JsonObject;
    assert.equal(lease['holderIdentity'], 'one');
    assert.equal(lease['leaseDurationSeconds'], 15);
    await first.stop();
    await until(() => second.leader);
    const taken = api.get('leases.coordination.k8s.io', LEASE_NAME, 'kube-system')?.['spec'] as JsonObject;
    assert.equal(taken['holderIdentity'], 'two');
    assert.equal(taken['leaseTransitions'], 1);
    await second.stop();
    assert.deepEqual(changes, ['one:true', 'one:false', 'two:true', 'two:false']);
  });

  it('a quiet watch lives past 30 s: no reconnect, no relist (client-node 2.0.0 aborted every watch at 30 s)', async () => {
    const index: IndexService = { submit: () => undefined, withdraw: () => undefined, onOutcome: () => undefined };
    const side = new KubeSide({ kubeconfig, driverName: DRIVER, readPullSecrets: false, platforms: ['linux/amd64'], leaderElection: false, identity: 'quiet', log: silentLogger, index, onLeaderChange: () => undefined });
    const podWatches = (): number => api.requests.filter((request) => request.path === '/api/v1/pods' && request.query['watch'] === 'true').length;
    const before = podWatches();
    await side.start();
    try {
      await until(() => api.watchCount('pods') === 1 && side.readiness().ready);
      // The duration is what is tested here: a watch with no event for longer than 30 s.
      await new Promise((resolve) => setTimeout(resolve, 35_000));
      assert.equal(api.watchCount('pods'), 1);
      assert.equal(podWatches() - before, 1);
      assert.deepEqual(side.readiness(), { ready: true, reasons: [] });
    } finally {
      await side.stop();
    }
  });

  it('reads a PVC annotation through the API; a missing PVC or annotation is undefined', async () => {
    const index: IndexService = { submit: () => undefined, withdraw: () => undefined, onOutcome: () => undefined };
    const side = new KubeSide({ kubeconfig, driverName: DRIVER, readPullSecrets: false, platforms: ['linux/amd64'], leaderElection: true, leaderElectionNamespace: 'team', identity: 'x', log: silentLogger, index, onLeaderChange: () => undefined });
    await side.start();
    try {
      api.create('persistentvolumeclaims', { metadata: { name: 'data', namespace: 'team', annotations: { 'clip.csi.dev/image': 'r/app:1' } }, spec: { accessModes: ['ReadOnlyMany'], resources: { requests: { storage: '1Gi' } } } });
      assert.equal(await side.pvcAnnotation('team', 'data', 'clip.csi.dev/image'), 'r/app:1');
      assert.equal(await side.pvcAnnotation('team', 'data', 'other'), undefined);
      assert.equal(await side.pvcAnnotation('team', 'none', 'clip.csi.dev/image'), undefined);
    } finally {
      await side.stop();
    }
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.fail('timed out');
}
