/**
 * The test Kubernetes API server, exercised only through @kubernetes/client-node: what the controller's tests
 * rely on must look to that client exactly as kube-apiserver does.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubeConfig,
  PatchStrategy,
  Watch,
  makeInformer,
  setHeaderOptions,
  type KubernetesObject,
  type V1Pod,
} from '@kubernetes/client-node';
import { stopProcess } from './harness/run.js';
import { KubeApiServer, type KubeApiServerOptions } from './harness/kube-apiserver/server.js';

const CRD = 'charts/clip-csi/crds/clipimages.clip.csi.dev.yaml';
const CLIP = { group: 'clip.csi.dev', version: 'v1alpha1', plural: 'clipimages' };

async function withServer(fn: (server: KubeApiServer, kc: KubeConfig, dir: string) => Promise<void>, options: Partial<KubeApiServerOptions> = {}): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kube-apiserver-test-'));
  const server = await KubeApiServer.start({ dir, crdFiles: [CRD], bookmarkIntervalMs: 0, ...options });
  try {
    await fn(server, await kubeconfigFor(server), dir);
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function kubeconfigFor(server: KubeApiServer, user?: string): Promise<KubeConfig> {
  const kc = new KubeConfig();
  kc.loadFromFile(await server.writeKubeconfig(user));
  return kc;
}

function pod(name: string, labels: Record<string, string> = {}, namespace?: string): V1Pod {
  return { metadata: { name, namespace, labels }, spec: { containers: [{ name: 'c', image: 'busybox' }] } };
}

/** Awaits `promise`'s rejection as an ApiException carrying kube's Status object. */
async function expectStatus(promise: Promise<unknown>, code: number, reason: string, message?: string): Promise<void> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ApiException, `expected an ApiException, got ${String(err)}`);
    assert.equal(err.code, code, String(err.body));
    const status = JSON.parse(String(err.body)) as { kind: string; apiVersion: string; status: string; reason: string; code: number; message: string };
    assert.deepEqual([status.kind, status.apiVersion, status.status, status.reason, status.code], ['Status', 'v1', 'Failure', reason, code]);
    if (message !== undefined) assert.equal(status.message, message);
    return;
  }
  assert.fail(`expected HTTP ${code}`);
}

/** Polls `condition` every 10 ms for up to 10 s (waiting for events, not for time). */
async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

interface Seen {
  type: string;
  name: string;
  rv: string;
  code?: number;
  reason?: string;
}

/** A raw client-node Watch recording every event; `done` resolves with the error it ended with (or null). */
async function recordWatch(kc: KubeConfig, path: string, query: Record<string, string | boolean>) {
  const events: Seen[] = [];
  let ended: unknown = undefined;
  let finished = false;
  const request = await new Watch(kc).watch(
    path,
    query,
    (type: string, obj: KubernetesObject & { code?: number; reason?: string }) => {
      events.push({ type, name: obj.metadata?.name ?? '', rv: obj.metadata?.resourceVersion ?? '', code: obj.code, reason: obj.reason });
    },
    (err: unknown) => {
      ended = err;
      finished = true;
    },
  );
  return { events, request, ended: () => ended, finished: () => finished };
}

describe('test kube-apiserver', () => {
  it('lists with limit and continue, in one namespace and across all, with selectors', async () => {
    await withServer(async (server, kc) => {
      server.seedPods(25, 'alpha', 'a');
      server.seedPods(5, 'beta', 'b');
      const core = kc.makeApiClient(CoreV1Api);
      const names: string[] = [];
      const versions = new Set<string>();
      let token: string | undefined;
      let pages = 0;
      do {
        const page = await core.listPodForAllNamespaces({ limit: 10, _continue: token });
        names.push(...page.items.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`));
        versions.add(page.metadata?.resourceVersion ?? '');
        token = page.metadata?._continue;
        pages++;
      } while (token !== undefined && token !== '');
      assert.equal(pages, 3);
      assert.equal(names.length, 30);
      assert.equal(new Set(names).size, 30);
      assert.equal(versions.size, 1, 'every page carries the first page resourceVersion');

      const beta = await core.listNamespacedPod({ namespace: 'beta', limit: 3 });
      assert.equal(beta.items.length, 3);
      assert.ok(beta.items.every((p) => p.metadata?.namespace === 'beta'));
      const rest = await core.listNamespacedPod({ namespace: 'beta', _continue: beta.metadata?._continue });
      assert.equal(rest.items.length, 2);
      assert.ok(rest.metadata?._continue === undefined || rest.metadata._continue === '');

      await core.createNamespacedPod({ namespace: 'beta', body: { ...pod('tagged', { tier: 'web' }), spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i' }] } } });
      const byLabel = await core.listNamespacedPod({ namespace: 'beta', labelSelector: 'tier in (web,db),!missing' });
      assert.deepEqual(byLabel.items.map((p) => p.metadata?.name), ['tagged']);
      const byField = await core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=n1' });
      assert.deepEqual(byField.items.map((p) => p.metadata?.name), ['tagged']);
      const byName = await core.listNamespacedPod({ namespace: 'alpha', fieldSelector: 'metadata.name=a-7' });
      assert.deepEqual(byName.items.map((p) => p.metadata?.name), ['a-7']);
    });
  });

  it('answers a continue token older than the kept history with 410 Expired', async () => {
    await withServer(async (server, kc) => {
      server.seedPods(4);
      const core = kc.makeApiClient(CoreV1Api);
      const first = await core.listNamespacedPod({ namespace: 'default', limit: 2 });
      server.compact();
      await expectStatus(core.listNamespacedPod({ namespace: 'default', limit: 2, _continue: first.metadata?._continue }), 410, 'Expired');
    });
  });

  it('creates, gets, replaces and deletes with kube Status errors (404, 409, 422)', async () => {
    await withServer(async (_server, kc) => {
      const core = kc.makeApiClient(CoreV1Api);
      const created = await core.createNamespacedPod({ namespace: 'default', body: pod('p') });
      assert.ok(created.metadata?.uid !== undefined && created.metadata.creationTimestamp instanceof Date);
      assert.match(created.metadata?.resourceVersion ?? '', /^\d+$/);
      await expectStatus(core.createNamespacedPod({ namespace: 'default', body: pod('p') }), 409, 'AlreadyExists', 'pods "p" already exists');
      await expectStatus(core.readNamespacedPod({ namespace: 'default', name: 'nope' }), 404, 'NotFound', 'pods "nope" not found');
      await expectStatus(core.createNamespacedPod({ namespace: 'default', body: { metadata: {}, spec: { containers: [] } } }), 422, 'Invalid');
      await expectStatus(core.createNamespacedPod({ namespace: 'default', body: pod('Bad_Name') }), 422, 'Invalid');

      const fresh = await core.readNamespacedPod({ namespace: 'default', name: 'p' });
      const replaced = await core.replaceNamespacedPod({ namespace: 'default', name: 'p', body: { ...fresh, metadata: { ...fresh.metadata, labels: { v: '2' } } } });
      assert.equal(replaced.metadata?.labels?.v, '2');
      assert.ok(Number(replaced.metadata?.resourceVersion) > Number(fresh.metadata?.resourceVersion));
      assert.equal(replaced.metadata?.uid, fresh.metadata?.uid);
      // The stale copy now conflicts, with kube's message.
      await expectStatus(
        core.replaceNamespacedPod({ namespace: 'default', name: 'p', body: fresh }),
        409,
        'Conflict',
        'Operation cannot be fulfilled on pods "p": the object has been modified; please apply your changes to the latest version and try again',
      );
      // A merge patch carrying a stale resourceVersion conflicts too; without one it applies.
      const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
      await expectStatus(core.patchNamespacedPod({ namespace: 'default', name: 'p', body: { metadata: { resourceVersion: fresh.metadata?.resourceVersion, labels: { v: '3' } } } }, merge), 409, 'Conflict');
      const patched = await core.patchNamespacedPod({ namespace: 'default', name: 'p', body: { metadata: { labels: { v: '3', extra: 'x' } } } }, merge);
      assert.deepEqual(patched.metadata?.labels, { v: '3', extra: 'x' });
      const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
      const unlabeled = await core.patchNamespacedPod({ namespace: 'default', name: 'p', body: { metadata: { labels: { extra: null } } } }, strategic);
      assert.deepEqual(unlabeled.metadata?.labels, { v: '3' });
      const jsonPatched = await core.patchNamespacedPod({ namespace: 'default', name: 'p', body: [{ op: 'replace', path: '/metadata/labels/v', value: '4' }] });
      assert.equal(jsonPatched.metadata?.labels?.v, '4');
      await expectStatus(core.patchNamespacedPod({ namespace: 'default', name: 'p', body: [{ op: 'test', path: '/metadata/labels/v', value: '3' }] }), 422, 'Invalid');

      await core.deleteNamespacedPod({ namespace: 'default', name: 'p' });
      await expectStatus(core.deleteNamespacedPod({ namespace: 'default', name: 'p' }), 404, 'NotFound');
    });
  });

  it('keeps an object with finalizers until they are removed, and serves namespaces, secrets, service accounts', async () => {
    await withServer(async (_server, kc) => {
      const core = kc.makeApiClient(CoreV1Api);
      await core.createNamespace({ body: { metadata: { name: 'team' } } });
      assert.equal((await core.readNamespace({ name: 'team' })).metadata?.name, 'team');
      assert.ok((await core.listNamespace()).items.some((n) => n.metadata?.name === 'kube-system'));
      await core.createNamespacedSecret({ namespace: 'team', body: { metadata: { name: 'pull' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': 'e30=' } } });
      await core.createNamespacedServiceAccount({ namespace: 'team', body: { metadata: { name: 'sa' }, imagePullSecrets: [{ name: 'pull' }] } });
      const sa = await core.readNamespacedServiceAccount({ namespace: 'team', name: 'sa' });
      assert.equal(sa.imagePullSecrets?.[0]?.name, 'pull');
      assert.equal((await core.readNamespacedSecret({ namespace: 'team', name: 'pull' })).data?.['.dockerconfigjson'], 'e30=');

      await core.createNamespacedPod({ namespace: 'team', body: { ...pod('f'), metadata: { name: 'f', finalizers: ['clip.csi.dev/test'] } } });
      const w = await recordWatch(kc, '/api/v1/namespaces/team/pods', { resourceVersion: (await core.listNamespacedPod({ namespace: 'team' })).metadata?.resourceVersion ?? '' });
      try {
        const marked = await core.deleteNamespacedPod({ namespace: 'team', name: 'f' });
        assert.ok(marked.metadata?.deletionTimestamp instanceof Date);
        assert.ok((await core.readNamespacedPod({ namespace: 'team', name: 'f' })).metadata?.deletionTimestamp instanceof Date);
        const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
        await core.patchNamespacedPod({ namespace: 'team', name: 'f', body: { metadata: { finalizers: null } } }, merge);
        await expectStatus(core.readNamespacedPod({ namespace: 'team', name: 'f' }), 404, 'NotFound');
        await until('the DELETED event', () => w.events.some((e) => e.type === 'DELETED'));
        assert.deepEqual(w.events.map((e) => e.type), ['MODIFIED', 'DELETED']);
      } finally {
        w.request.abort();
      }
    });
  });

  it('sends bookmarks periodically to watches that allow them, and only to those', async () => {
    await withServer(
      async (server, kc) => {
        const withBookmarks = await recordWatch(kc, '/api/v1/nodes', { allowWatchBookmarks: true });
        const without = await recordWatch(kc, '/api/v1/nodes', {});
        try {
          await until('both watches', () => server.watchCount('nodes') === 2);
          const bookmarks = (): number => withBookmarks.events.filter((e) => e.type === 'BOOKMARK').length;
          const before = bookmarks();
          await until('two more bookmarks', () => bookmarks() >= before + 2);
          // An event after them: once it arrives, any bookmark sent to the other watch would have too.
          server.create('nodes', { metadata: { name: 'n' } });
          await until('the node event', () => without.events.length > 0);
          assert.deepEqual(without.events.map((e) => e.type), ['ADDED']);
        } finally {
          withBookmarks.request.abort();
          without.request.abort();
        }
      },
      { bookmarkIntervalMs: 20 },
    );
  });

  it('ends a watch cleanly after its timeoutSeconds', async () => {
    await withServer(async (_server, kc) => {
      const w = await recordWatch(kc, '/api/v1/namespaces/default/pods', { timeoutSeconds: '1' });
      await until('the end of the stream', w.finished);
      assert.equal(w.ended(), null);
    });
  });

  it('watches ADDED, MODIFIED, DELETED and BOOKMARK events from a resourceVersion', async () => {
    await withServer(async (server, kc) => {
      const core = kc.makeApiClient(CoreV1Api);
      await core.createNamespacedPod({ namespace: 'default', body: pod('before') });
      const list = await core.listNamespacedPod({ namespace: 'default' });
      const w = await recordWatch(kc, '/api/v1/namespaces/default/pods', { resourceVersion: list.metadata?.resourceVersion ?? '', allowWatchBookmarks: true });
      try {
        await core.createNamespacedPod({ namespace: 'default', body: pod('w') });
        await core.createNamespacedPod({ namespace: 'other', body: pod('elsewhere') });
        server.update('pods', pod('w', { changed: 'yes' }, 'default'));
        await core.deleteNamespacedPod({ namespace: 'default', name: 'w' });
        await until('the DELETED event', () => w.events.some((e) => e.type === 'DELETED'));
        server.sendBookmarks();
        await until('the bookmark', () => w.events.some((e) => e.type === 'BOOKMARK'));
        assert.deepEqual(w.events.map((e) => `${e.type} ${e.name}`), ['ADDED w', 'MODIFIED w', 'DELETED w', 'BOOKMARK ']);
        const rvs = w.events.map((e) => Number(e.rv));
        assert.deepEqual([...rvs].sort((a, b) => a - b), rvs, 'resourceVersions increase');
        assert.equal(w.events[3]?.rv, String(server.cluster.clock.current()), 'a bookmark carries the latest resourceVersion');
      } finally {
        w.request.abort();
      }
    });
  });

  it('starts a watch without a resourceVersion with the current objects, and honours label selectors', async () => {
    await withServer(async (server, kc) => {
      server.seedPods(3);
      const w = await recordWatch(kc, '/api/v1/namespaces/default/pods', { labelSelector: 'tier=web' });
      const all = await recordWatch(kc, '/api/v1/pods', {});
      try {
        await until('the initial events', () => all.events.length === 3);
        assert.deepEqual(all.events.map((e) => e.type), ['ADDED', 'ADDED', 'ADDED']);
        server.update('pods', pod('seed-1', { tier: 'web' }, 'default'));
        server.update('pods', pod('seed-1', { tier: 'db' }, 'default'));
        await until('the selector events', () => w.events.length === 2);
        // An object entering the selector is ADDED, leaving it DELETED (as kube's watch cache does).
        assert.deepEqual(w.events.map((e) => `${e.type} ${e.name}`), ['ADDED seed-1', 'DELETED seed-1']);
      } finally {
        w.request.abort();
        all.request.abort();
      }
    });
  });

  it('sends ERROR 410 Expired to a watch from a compacted resourceVersion, then ends the stream', async () => {
    await withServer(async (server, kc) => {
      const core = kc.makeApiClient(CoreV1Api);
      const list = await core.listNamespacedPod({ namespace: 'default' });
      await core.createNamespacedPod({ namespace: 'default', body: pod('x') });
      server.compact();
      const w = await recordWatch(kc, '/api/v1/namespaces/default/pods', { resourceVersion: list.metadata?.resourceVersion ?? '' });
      await until('the end of the stream', w.finished);
      assert.equal(w.ended(), null);
      assert.equal(w.events.length, 1);
      assert.deepEqual([w.events[0]?.type, w.events[0]?.code, w.events[0]?.reason], ['ERROR', 410, 'Expired']);
    });
  });

  it('keeps only the last historySize events per resource type', async () => {
    await withServer(
      async (server, kc) => {
        const core = kc.makeApiClient(CoreV1Api);
        const list = await core.listNamespacedPod({ namespace: 'default' });
        server.seedPods(6);
        const old = await recordWatch(kc, '/api/v1/namespaces/default/pods', { resourceVersion: list.metadata?.resourceVersion ?? '' });
        await until('the end of the stream', old.finished);
        assert.equal(old.events[0]?.code, 410);
        const recent = await recordWatch(kc, '/api/v1/namespaces/default/pods', { resourceVersion: String((server.get('pods', 'seed-2', 'default')?.metadata as { resourceVersion: string }).resourceVersion) });
        try {
          await until('the kept events', () => recent.events.length === 3);
          assert.deepEqual(recent.events.map((e) => e.name), ['seed-3', 'seed-4', 'seed-5']);
        } finally {
          recent.request.abort();
        }
      },
      { historySize: 4 },
    );
  });

  it('an informer relists after a dropped watch and a 410, and misses no pod', async () => {
    await withServer(async (server, kc) => {
      server.seedPods(5);
      const core = kc.makeApiClient(CoreV1Api);
      const informer = makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
      const errors: unknown[] = [];
      const deleted: string[] = [];
      informer.on('error', (err) => errors.push(err));
      informer.on('delete', (p) => deleted.push(p.metadata?.name ?? ''));
      await informer.start();
      try {
        await until('the informer watching', () => server.watchCount('pods') === 1);
        assert.equal(informer.list().length, 5);
        // A clean end of the stream (as a watch timeout): the informer re-watches from its resourceVersion.
        server.dropWatches('end');
        await until('the re-watch', () => server.watchCount('pods') === 1 && server.requests.filter((r) => r.verb === 'watch').length === 2);
        assert.equal(server.requests.filter((r) => r.verb === 'list').length, 1, 'no relist after a clean end');
        // A reset connection: client-node reports an error and stops; the owner restarts it.
        server.dropWatches('reset');
        await until('the error', () => errors.length === 1);
        server.create('pods', pod('late', {}, 'default'));
        server.delete('pods', 'seed-0', 'default');
        server.compact();
        server.clearRequests();
        await informer.start();
        await until('the relist', () => informer.list().length === 5 && informer.get('late', 'default') !== undefined);
        assert.equal(informer.get('seed-0', 'default'), undefined);
        assert.deepEqual(deleted, ['seed-0']);
        // The sequence client-node follows: watch from the old version (ERROR 410), list, watch again.
        await until('the new watch', () => server.requests.length >= 3);
        const seq = server.requests.map((r) => `${r.verb}${r.query.resourceVersion === undefined ? '' : ' rv'}`);
        assert.deepEqual(seq.slice(0, 3), ['watch rv', 'list', 'watch rv']);
      } finally {
        await informer.stop();
      }
    });
  });

  it('status subresource, generation and unconditional updates of a custom resource', async () => {
    await withServer(async (_server, kc) => {
      const custom = kc.makeApiClient(CustomObjectsApi);
      type ClipImage = KubernetesObject & { spec: { image: string }; status?: { digest?: string } };
      const created = (await custom.createClusterCustomObject({
        ...CLIP,
        body: { apiVersion: 'clip.csi.dev/v1alpha1', kind: 'ClipImage', metadata: { name: 'img' }, spec: { image: 'a:1' }, status: { digest: 'ignored' } },
      })) as ClipImage;
      assert.equal(created.status, undefined, 'status is ignored on create');
      assert.equal(created.metadata?.generation, 1);

      const withStatus = (await custom.replaceClusterCustomObjectStatus({ ...CLIP, name: 'img', body: { ...created, spec: { image: 'changed:ignored' }, status: { digest: 'sha256:1' } } })) as ClipImage;
      assert.deepEqual([withStatus.spec.image, withStatus.status?.digest, withStatus.metadata?.generation], ['a:1', 'sha256:1', 1]);

      const respec = (await custom.replaceClusterCustomObject({ ...CLIP, name: 'img', body: { ...withStatus, spec: { image: 'b:2' }, status: { digest: 'dropped' } } })) as ClipImage;
      assert.deepEqual([respec.spec.image, respec.status?.digest, respec.metadata?.generation], ['b:2', 'sha256:1', 2]);

      const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
      const patched = (await custom.patchClusterCustomObjectStatus({ ...CLIP, name: 'img', body: { status: { digest: 'sha256:2' } } }, merge)) as ClipImage;
      assert.deepEqual([patched.status?.digest, patched.metadata?.generation], ['sha256:2', 2]);
      // Custom resources refuse an update without a resourceVersion (kube: must be specified for an update).
      const { resourceVersion: _rv, ...meta } = patched.metadata ?? {};
      await expectStatus(custom.replaceClusterCustomObject({ ...CLIP, name: 'img', body: { ...patched, metadata: meta } }), 422, 'Invalid');
      await expectStatus(
        custom.replaceClusterCustomObjectStatus({ ...CLIP, name: 'img', body: respec }),
        409,
        'Conflict',
        'Operation cannot be fulfilled on clipimages.clip.csi.dev "img": the object has been modified; please apply your changes to the latest version and try again',
      );
      const list = (await custom.listClusterCustomObject({ ...CLIP })) as { kind: string; items: ClipImage[] };
      assert.equal(list.kind, 'ClipImageList');
      assert.equal(list.items.length, 1);
    });
  });

  it('pods/status changes only the status, and a pod PUT keeps it', async () => {
    await withServer(async (_server, kc) => {
      const core = kc.makeApiClient(CoreV1Api);
      const created = await core.createNamespacedPod({ namespace: 'default', body: pod('s') });
      const running = await core.replaceNamespacedPodStatus({ namespace: 'default', name: 's', body: { ...created, metadata: { ...created.metadata, labels: { ignored: 'yes' } }, status: { phase: 'Running' } } });
      assert.equal(running.status?.phase, 'Running');
      assert.deepEqual(running.metadata?.labels, {});
      const put = await core.replaceNamespacedPod({ namespace: 'default', name: 's', body: { ...running, status: { phase: 'Failed' } } });
      assert.equal(put.status?.phase, 'Running');
    });
  });

  it('serves Leases, both Event APIs and Nodes', async () => {
    await withServer(async (_server, kc) => {
      const coordination = kc.makeApiClient(CoordinationV1Api);
      const lease = await coordination.createNamespacedLease({ namespace: 'kube-system', body: { metadata: { name: 'clip' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15 } } });
      const renewed = await coordination.replaceNamespacedLease({ namespace: 'kube-system', name: 'clip', body: { ...lease, spec: { ...lease.spec, holderIdentity: 'b' } } });
      assert.equal(renewed.spec?.holderIdentity, 'b');
      await expectStatus(
        coordination.replaceNamespacedLease({ namespace: 'kube-system', name: 'clip', body: lease }),
        409,
        'Conflict',
        'Operation cannot be fulfilled on leases.coordination.k8s.io "clip": the object has been modified; please apply your changes to the latest version and try again',
      );
      const events = kc.makeApiClient(EventsV1Api);
      await events.createNamespacedEvent({ namespace: 'default', body: { metadata: { generateName: 'p.' }, eventTime: new Date(), reason: 'Indexed', note: 'indexed', type: 'Normal', action: 'Index', reportingController: 'clip', reportingInstance: 'x', regarding: { kind: 'Pod', name: 'p', namespace: 'default' } } });
      const listed = await events.listNamespacedEvent({ namespace: 'default' });
      assert.equal(listed.items.length, 1);
      assert.match(listed.items[0]?.metadata?.name ?? '', /^p\.[0-9a-f]{5}$/);
      const core = kc.makeApiClient(CoreV1Api);
      await core.createNamespacedEvent({ namespace: 'default', body: { metadata: { name: 'e1' }, involvedObject: { kind: 'Pod', name: 'p' }, reason: 'Indexed', type: 'Normal' } });
      assert.equal((await core.listEventForAllNamespaces()).items.length, 1);
      await core.createNode({ body: { metadata: { name: 'n1', labels: { 'kubernetes.io/arch': 'amd64', 'kubernetes.io/os': 'linux' } } } });
      const nodes = await core.listNode();
      assert.deepEqual(nodes.items.map((n) => n.metadata?.labels?.['kubernetes.io/arch']), ['amd64']);
      assert.equal(nodes.kind, 'NodeList');
    });
  });

  it('denies what RBAC rules do not allow with kube 403 messages, and follows rule changes', async () => {
    await withServer(async (server, _kc) => {
      const user = 'system:serviceaccount:kube-system:clip-controller';
      server.addUser(user, [{ verbs: ['get'], apiGroups: [''], resources: ['pods'], namespaces: ['default'] }]);
      server.create('pods', pod('p', {}, 'default'));
      const core = (await kubeconfigFor(server, user)).makeApiClient(CoreV1Api);
      assert.equal((await core.readNamespacedPod({ namespace: 'default', name: 'p' })).metadata?.name, 'p');
      await expectStatus(
        core.listPodForAllNamespaces(),
        403,
        'Forbidden',
        `pods is forbidden: User "${user}" cannot list resource "pods" in API group "" at the cluster scope`,
      );
      await expectStatus(
        core.replaceNamespacedPodStatus({ namespace: 'default', name: 'p', body: pod('p') }),
        403,
        'Forbidden',
        `pods "p" is forbidden: User "${user}" cannot update resource "pods/status" in API group "" in the namespace "default"`,
      );
      const leases = (await kubeconfigFor(server, user)).makeApiClient(CoordinationV1Api);
      await expectStatus(
        leases.readNamespacedLease({ namespace: 'kube-system', name: 'clip' }),
        403,
        'Forbidden',
        `leases.coordination.k8s.io "clip" is forbidden: User "${user}" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "kube-system"`,
      );
      server.setRules(user, [
        { verbs: ['list', 'watch'], apiGroups: [''], resources: ['pods'] },
        { verbs: ['get', 'update'], apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['clip'] },
      ]);
      assert.equal((await core.listPodForAllNamespaces()).items.length, 1);
      await expectStatus(leases.readNamespacedLease({ namespace: 'kube-system', name: 'clip' }), 404, 'NotFound');
      await expectStatus(leases.readNamespacedLease({ namespace: 'kube-system', name: 'other' }), 403, 'Forbidden');
      const denied = server.requests.filter((r) => r.code === 403);
      assert.equal(denied.length, 4);
      assert.ok(denied.every((r) => r.user === user));
    });
  });

  it('answers 401 without a token or with an unknown one', async () => {
    await withServer(async (server) => {
      for (const user of [{}, { token: 'not-a-token' }]) {
        const kc = new KubeConfig();
        kc.loadFromOptions({
          clusters: [{ name: 'c', server: server.url, caData: Buffer.from(server.caPem).toString('base64') }],
          users: [{ name: 'u', ...user }],
          contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
          currentContext: 'x',
        });
        // client-node drops the body of a 401 (its generated code throws ApiException(401, "Unauthorized")).
        await assert.rejects(kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'default' }), (err) => err instanceof ApiException && err.code === 401);
        const watch = await recordWatch(kc, '/api/v1/pods', {});
        await until('the failed watch', watch.finished);
        assert.equal((watch.ended() as { statusCode?: number }).statusCode, 401);
      }
      assert.deepEqual(server.requests.map((r) => [r.user, r.code]), [['', 401], ['', 401], ['', 401], ['', 401]]);
    });
  });

  it('the CLI serves seeded pods and a CRD, prints its kubeconfig, and exits on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kube-apiserver-cli-'));
    const template = join(dir, 'pod.yaml');
    await writeFile(template, 'metadata:\n  labels: {app: bench}\nspec:\n  containers: [{name: c, image: i}]\n  volumes:\n  - name: v\n    csi: {driver: clip.csi.dev, volumeAttributes: {image: "alpine:3"}}\n');
    const args = ['--dir', dir, '--crd', CRD, '--seed-pods', '120', '--seed-namespace', 'bench', '--seed-template', template];
    const child = spawn(process.execPath, ['dist/test/harness/kube-apiserver/main.js', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const first = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`exited ${code} before it was ready`)));
      });
      const ready = JSON.parse(first) as { url: string; kubeconfig: string };
      assert.match(ready.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const kc = new KubeConfig();
      kc.loadFromFile(ready.kubeconfig);
      const pods = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'bench', limit: 100 });
      assert.equal(pods.items.length, 100);
      assert.equal(pods.metadata?.remainingItemCount, 20);
      assert.deepEqual(pods.items[0]?.metadata?.labels, { app: 'bench', seed: 'seed' });
      assert.equal(pods.items[0]?.spec?.volumes?.[0]?.csi?.volumeAttributes?.image, 'alpine:3');
      const images = (await kc.makeApiClient(CustomObjectsApi).listClusterCustomObject({ ...CLIP })) as { items: unknown[] };
      assert.deepEqual(images.items, []);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      await stopProcess(child);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('lists 50,000 pods in pages and an informer syncs them', async () => {
    await withServer(async (server, kc) => {
      server.seedPods(50_000, 'bulk');
      const core = kc.makeApiClient(CoreV1Api);
      let count = 0;
      let token: string | undefined;
      do {
        const page = await core.listNamespacedPod({ namespace: 'bulk', limit: 5000, _continue: token });
        count += page.items.length;
        token = page.metadata?._continue;
      } while (token !== undefined && token !== '');
      assert.equal(count, 50_000);
      const watch = await recordWatch(kc, '/api/v1/pods', { resourceVersion: '0' });
      try {
        await until('50,000 initial events', () => watch.events.length === 50_000);
        server.create('pods', pod('one-more', {}, 'bulk'));
        await until('the live event after them', () => watch.events.length === 50_001);
        assert.equal(watch.events[50_000]?.name, 'one-more');
      } finally {
        watch.request.abort();
      }
    });
  });
});
