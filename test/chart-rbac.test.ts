/**
 * The chart's RBAC is enough, and only what is needed: the real `clip controller` runs against the
 * test Kubernetes API server (which authorizes every request as kube's RBAC does) with exactly the
 * rules the chart binds to its ServiceAccount (the controller's ClusterRole and its Lease Role; not
 * csi-provisioner's). It elects itself leader, indexes a private image for a Pod (reading the pod's
 * pull secret and service account) and for a ClipImage (status written), records events, and is
 * ready, without a single 403. With a rule taken away, the 403 shows in /readyz.
 * Real registry (basic auth), moto S3, the real process.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CHART_DIR } from '../scripts/helm.js';
import { controllerRules, render, valuesFile } from './helpers/chart.js';
import { startControllerProcess, type ControllerProcess } from './helpers/controller-process.js';
import { httpGet } from './helpers/csi-plugin.js';
import { pollUntil } from './helpers/poll.js';
import { KubeApiServer, type PolicyRule } from './harness/kube-apiserver/server.js';
import { pushImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { startS3, type S3Handle } from './harness/s3.js';
import { buildTarLayer } from './harness/tar-layer.js';

const NAMESPACE = 'kube-system';
const SERVICE_ACCOUNT = 'clip-csi-controller';
const USER = `system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`;
const BUCKET = 'clip-rbac';

describe("the chart's RBAC against a live clip controller and an RBAC-enforcing API server", () => {
  let dir: string;
  let registry: RegistryHandle | undefined;
  let s3: S3Handle | undefined;
  let api: KubeApiServer | undefined;
  let controller: ControllerProcess | undefined;
  let rules: PolicyRule[];
  let image: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chart-rbac-'));
    [registry, s3] = await Promise.all([startRegistry({ auth: 'basic' }), startS3()]);
    await s3.createBucket(BUCKET);
    await pushImage(registry, 'private/app', 'v1', [buildTarLayer([{ type: 'file', path: 'app.txt', content: 'private\n' }])]);
    image = `${registry.host}/private/app:v1`;
    api = await KubeApiServer.start({ dir, crdFiles: [join(CHART_DIR, 'crds/clipimages.clip.csi.dev.yaml')] });
    rules = controllerRules(await render([valuesFile('s3-secret')]), SERVICE_ACCOUNT, NAMESPACE);
    assert.ok(rules.length >= 8, `rules found: ${JSON.stringify(rules)}`);
    api.addUser(USER, rules);

    const auth = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
    api.create('secrets', {
      metadata: { name: 'regcred', namespace: 'default' },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { [registry.host]: { auth } } })).toString('base64') },
    });
    api.create('serviceaccounts', { metadata: { name: 'default', namespace: 'default' } });
    api.create('nodes', { metadata: { name: 'node-1', labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' } } });

    const kubeconfig = await api.writeKubeconfig(USER);
    controller = await startControllerProcess(
      dir,
      ['--kubeconfig', kubeconfig, '--leader-election', '--leader-election-namespace', NAMESPACE, '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint],
      s3.env,
    );
  });

  after(async () => {
    await controller?.stop();
    await api?.stop();
    await Promise.all([registry?.stop(), s3?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('with only the chart rules the controller leads, indexes a private image for a Pod and a ClipImage, and never meets a 403', async () => {
    assert.ok(api && controller);
    api.create('pods', {
      metadata: { name: 'app', namespace: 'default' },
      spec: {
        serviceAccountName: 'default',
        imagePullSecrets: [{ name: 'regcred' }],
        containers: [{ name: 'c', image: 'busybox' }],
        volumes: [{ name: 'img', csi: { driver: 'clip.csi.dev', readOnly: true, volumeAttributes: { image } } }],
      },
    });
    api.create('clipimages.clip.csi.dev', {
      apiVersion: 'clip.csi.dev/v1alpha1',
      kind: 'ClipImage',
      metadata: { name: 'app' },
      spec: { image, platforms: ['linux/amd64'], pullSecretRef: { name: 'regcred', namespace: 'default' } },
    });

    const lease = await pollUntil('a Lease in the release namespace', () => api!.list('leases.coordination.k8s.io', NAMESPACE)[0]);
    assert.ok(lease);
    await pollUntil('the ClipImage is Ready', () => {
      const conditions = ((api!.get('clipimages.clip.csi.dev', 'app')?.['status'] as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions) ?? [];
      return conditions.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
    });
    await pollUntil('a Normal Indexed event on the Pod', () =>
      api!.list('events', 'default').find((e) => e['reason'] === 'Indexed' && (e['involvedObject'] as { kind: string }).kind === 'Pod'),
    );
    await pollUntil('/readyz is 200', async () => ((await httpGet(controller!.metricsAddress, '/readyz')).status === 200 ? true : undefined));

    const forbidden = api.requests.filter((r) => r.user === USER && r.code === 403);
    assert.deepEqual(forbidden, [], 'requests RBAC denied');
    assert.ok(api.requests.some((r) => r.user === USER && r.path.includes('/secrets/regcred') && r.code === 200), 'the pull secret was read');
  });

  it('without the chart rule on Secrets, the 403 shows in /readyz and the log (the check can fail)', async () => {
    assert.ok(api && controller);
    api.setRules(USER, rules.filter((rule) => !rule.resources.includes('secrets')));
    // Another secret: the controller shares one read of a secret among requests for a few seconds.
    api.create('secrets', { metadata: { name: 'regcred-2', namespace: 'default' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': 'e30=' } });
    api.create('pods', {
      metadata: { name: 'app-2', namespace: 'default' },
      spec: {
        imagePullSecrets: [{ name: 'regcred-2' }],
        containers: [{ name: 'c', image: 'busybox' }],
        volumes: [{ name: 'img', csi: { driver: 'clip.csi.dev', readOnly: true, volumeAttributes: { image: `${image}-other` } } }],
      },
    });
    const readyz = await pollUntil('/readyz reports the forbidden verb', async () => {
      const answer = await httpGet(controller!.metricsAddress, '/readyz');
      return answer.status === 503 && /may not get secrets/.test(answer.body) ? answer.body : undefined;
    });
    assert.match(readyz ?? '', /grant it in its RBAC rules/);
    api.setRules(USER, rules);
  });
});
