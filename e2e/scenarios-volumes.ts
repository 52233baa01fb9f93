/**
 * Scenarios 1–5: volumes as pods use them. Pods stay up for the later scenarios where noted
 * (`state.pods`); every scenario deletes the pods it does not hand on.
 */
import assert from 'node:assert/strict';
import { access, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import grpc from '@grpc/grpc-js';
import { StateDir } from '../src/node/state.js';
import { createVolumeUntilDone, MOUNT_CAPABILITY } from '../test/helpers/csi-client.js';
import { metricValue } from '../test/helpers/csi-plugin.js';
import { pollUntil } from '../test/helpers/poll.js';
import type { Cluster } from './cluster.js';
import { FAILED_PUBLISH_ATTEMPTS, type Kubelet, type Pod } from './kubelet.js';
import { eventsAbout, firstReadMs, hostTreeListing, indexInS3, indexSource, inPod, TREE_LISTING } from './probes.js';

/** What a scenario reports on its line. */
export interface ScenarioResult {
  publishMs?: number;
  firstReadMs?: number;
  details: string;
}

/** Pods handed from one scenario to a later one. */
export interface RunState {
  /** Scenario 1's read-only pod on node A (scenarios 3 and 7 use it). */
  readerA?: Pod;
  /** Scenario 2's read-only pod on node B (scenario 6 uses it). */
  readerB?: Pod;
  /** The reference listing of the debian image (umoci). */
  reference?: string;
}

const PYTHON = 'usr/bin/python3.11';

/** Runs the image's own programs, chrooted into the volume: its shell and its Python. */
async function runImagePrograms(kubelet: Kubelet, pod: Pod): Promise<void> {
  assert.equal((await inPod(kubelet, pod, `chroot /data /bin/sh -c 'echo $((6 * 7))'`)).trim(), '42', "the image's own shell runs");
  const python = await inPod(kubelet, pod, `chroot /data /${PYTHON} -c 'import sys, zlib; print(sys.version_info[:2], zlib.crc32(b"clip"))'`);
  assert.equal(python.trim(), '(3, 11) 2904560743', "the image's own Python runs (with zlib from another layer)");
}

export async function scenario1(cluster: Cluster, state: RunState): Promise<ScenarioResult> {
  const kubelet = cluster.kubelets[0]!;
  const image = cluster.images.debian;
  const object = kubelet.createPodObject('s1-reader', { kind: 'inline', image: image.ref, readOnly: true, secretName: cluster.secrets.good });
  // The controller saw the pod and indexed the image before any node asked.
  await pollUntil('the controller put the index in S3', () => indexInS3(cluster, image.digest), Boolean, 120_000);
  assert.equal(await indexSource(kubelet.plugin, 'indexed'), 0);
  const pod = await kubelet.runPod('s1-reader', { kind: 'inline', image: image.ref, readOnly: true, secretName: cluster.secrets.good }, object);
  state.readerA = pod;
  assert.equal(await indexSource(kubelet.plugin, 's3'), 1, 'node A downloaded the index from S3');
  assert.equal(await indexSource(kubelet.plugin, 'indexed'), 0, 'node A did not index the image');
  const firstRead = await firstReadMs(kubelet, pod, PYTHON);
  await runImagePrograms(kubelet, pod);
  state.reference = await hostTreeListing(cluster.images.debianRootfs);
  const seen = (await kubelet.exec(pod, `${TREE_LISTING.replaceAll('"$1"', '/data')}`, 300_000)).stdout;
  assert.ok(state.reference.length > 0 && seen === state.reference, `the volume differs from umoci's unpack:\n${firstDifference(state.reference, seen)}`);
  const files = state.reference.split('\n').filter((line) => line.startsWith('f ')).length;
  assert.ok(eventsAbout(cluster, 's1-reader').some((event) => event.type === 'Normal'), 'the controller recorded an event on the pod');
  return { publishMs: pod.publishMs, firstReadMs: firstRead, details: `${image.layers.length} layers, ${files} files equal to umoci's unpack; sh and python3.11 ran from the image` };
}

function firstDifference(expected: string, actual: string): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  const i = a.findIndex((line, n) => line !== b[n]);
  return `line ${i}: expected ${JSON.stringify(a[i])}, got ${JSON.stringify(b[i])} (${a.length} vs ${b.length} lines)`;
}

export async function scenario2(cluster: Cluster, state: RunState): Promise<ScenarioResult> {
  const kubelet = cluster.kubelets[1]!;
  const image = cluster.images.debian;
  // The proxy's counts go on for the whole run (its log is checked at the end): node B's share is the difference.
  const logFrom = cluster.proxy.stats.log.length;
  const bytesFrom = cluster.proxy.stats.bytesOut;
  const pod = await kubelet.runPod('s2-reader', { kind: 'inline', image: image.ref, readOnly: true, secretName: cluster.secrets.good });
  state.readerB = pod;
  assert.equal(await indexSource(kubelet.plugin, 's3'), 1, 'node B downloaded the index from S3');
  assert.equal(await indexSource(kubelet.plugin, 'indexed'), 0, 'node B did not index the image');
  const firstRead = await firstReadMs(kubelet, pod, PYTHON);
  const out = await inPod(kubelet, pod, `chroot /data /${PYTHON} -c 'print(open("/usr/share/zoneinfo/UTC", "rb").read(4))'`);
  assert.equal(out.trim(), "b'TZif'");
  const blobs = cluster.proxy.stats.log.slice(logFrom).filter((request) => request.method === 'GET' && request.path.includes('/blobs/'));
  assert.ok(blobs.length > 0, 'node B read from the registry');
  for (const request of blobs) assert.match(String(request.headers['range']), /^bytes=\d+-\d+$/, `every blob read is a range read: ${request.path}`);
  const dash = image.layers.find((layer) => layer.package === 'dash');
  assert.ok(dash);
  assert.ok(!blobs.some((request) => request.path.includes(dash.digest)), 'a layer none of whose files were read is not fetched');
  const served = cluster.proxy.stats.bytesOut - bytesFrom;
  const total = image.layers.reduce((sum, layer) => sum + layer.size, 0);
  assert.ok(served < total, `served ${served} bytes of ${total}`);
  return { publishMs: pod.publishMs, firstReadMs: firstRead, details: `index from S3; registry served ${blobs.length} range reads, ${(served / 1e6).toFixed(2)} of ${(total / 1e6).toFixed(2)} MB` };
}

export async function scenario3(cluster: Cluster, state: RunState): Promise<ScenarioResult> {
  const kubelet = cluster.kubelets[0]!;
  const image = cluster.images.debian;
  const spec = { kind: 'inline' as const, image: image.ref, readOnly: false, secretName: cluster.secrets.good };
  const writer = await kubelet.runPod('s3-writer', spec);
  const other = await kubelet.runPod('s3-other', spec);
  const reader = state.readerA;
  assert.ok(reader, 'scenario 1 left its pod running');
  const zone = 'usr/share/zoneinfo/UTC';
  const original = await inPod(kubelet, reader, `sha256sum /data/${zone}`);
  const firstRead = await firstReadMs(kubelet, writer, zone);
  await inPod(kubelet, writer, `echo written > /data/etc/e2e-note && echo appended >> /data/${zone} && rm /data/bin/dash`);
  assert.equal((await inPod(kubelet, writer, 'cat /data/etc/e2e-note')).trim(), 'written');
  assert.notEqual(await inPod(kubelet, writer, `sha256sum /data/${zone}`), original, 'the writer sees its change');
  for (const pod of [reader, other]) {
    assert.equal(await inPod(kubelet, pod, `sha256sum /data/${zone}`), original, `${pod.name} does not see the write`);
    assert.equal((await inPod(kubelet, pod, 'test -e /data/etc/e2e-note && echo there || echo absent')).trim(), 'absent');
    assert.equal((await inPod(kubelet, pod, 'test -e /data/bin/dash && echo there || echo absent')).trim(), 'there');
  }
  const upper = kubelet.plugin.stateDir + '/volumes/' + StateDir.recordId(writer.volumeId, writer.targetPath);
  await access(upper);
  await kubelet.deletePod(writer);
  await kubelet.deletePod(other);
  await assert.rejects(access(upper), 'unpublish removed the upper layer');
  assert.deepEqual(await readdir(join(kubelet.plugin.stateDir, 'volumes')), [], 'no writable layer is left');
  return { publishMs: writer.publishMs, firstReadMs: firstRead, details: 'writes (new file, append, delete) seen only by the writer; upper layer removed at unpublish' };
}

export async function scenario4(cluster: Cluster): Promise<ScenarioResult> {
  const kubelet = cluster.kubelets[0]!;
  const image = cluster.images.shell;
  const claim = 's4-app-claim';
  cluster.api.create('persistentvolumeclaims', {
    metadata: { name: claim, namespace: 'default', annotations: { 'clip.csi.dev/image': image.ref } },
    spec: { accessModes: ['ReadOnlyMany'], storageClassName: 'clip', resources: { requests: { storage: '1Gi' } } },
  });
  const secret = cluster.api.get('secrets', cluster.secrets.good, 'default');
  const secrets = Object.fromEntries(Object.entries((secret?.['data'] ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
  // As external-provisioner calls it with --extra-create-metadata, the image in the PVC's annotation.
  const created = await createVolumeUntilDone(cluster.controller.csi, {
    name: 'pvc-7d1f0c2e-e2e',
    volume_capabilities: [MOUNT_CAPABILITY('MULTI_NODE_READER_ONLY')],
    parameters: { 'csi.storage.k8s.io/pvc/name': claim, 'csi.storage.k8s.io/pvc/namespace': 'default' },
    secrets,
  });
  assert.match(created.volume.volume_id, /^clip-[0-9a-f]{64}$/);
  assert.equal(created.volume.volume_context['image'], `${image.ref.replace(/:[^:/]+$/, '')}@${image.digest}`);
  assert.ok(await indexInS3(cluster, image.digest), 'CreateVolume answered once the index was in S3');
  const before = await indexSource(kubelet.plugin, 's3');
  const pod = await kubelet.runPod('s4-app', {
    kind: 'pv',
    volumeId: created.volume.volume_id,
    volumeContext: created.volume.volume_context,
    mode: 'MULTI_NODE_READER_ONLY',
    readOnly: true,
    secretName: cluster.secrets.good,
  });
  assert.equal(await indexSource(kubelet.plugin, 's3'), before + 1, "the node downloaded the controller's index");
  const firstRead = await firstReadMs(kubelet, pod, 'bin/dash');
  assert.equal((await inPod(kubelet, pod, `chroot /data /bin/sh -c 'echo pvc-$((1 + 1))'`)).trim(), 'pvc-2');
  await kubelet.deletePod(pod);
  await cluster.controller.csi.DeleteVolume({ volume_id: created.volume.volume_id });
  return { publishMs: pod.publishMs, firstReadMs: firstRead, details: `CreateVolume → ${created.volume.volume_id.slice(0, 17)}…, ${created.volume.capacity_bytes} bytes; published on node-a from the S3 index` };
}

export async function scenario5(cluster: Cluster): Promise<ScenarioResult> {
  const kubelet = cluster.kubelets[0]!;
  const image = cluster.images.zoneinfo;
  // A wrong pull secret: the publish is refused, and the controller says why on the pod.
  const wrongVolume = { kind: 'inline' as const, image: image.ref, readOnly: true, secretName: cluster.secrets.wrong };
  const wrong = kubelet.createPodObject('s5-wrong-secret', wrongVolume);
  const uid = (wrong['metadata'] as { uid: string }).uid;
  const refusedPublish = async (attempts: number): Promise<void> => {
    const error = await kubelet.runPod('s5-wrong-secret', wrongVolume, wrong, attempts).then(
      () => undefined,
      (err: grpc.ServiceError) => err,
    );
    assert.equal(error?.code, grpc.status.UNAUTHENTICATED, `a wrong secret: ${error?.message ?? 'the publish succeeded'}`);
  };
  await refusedPublish(FAILED_PUBLISH_ATTEMPTS);
  // Kubelet goes on retrying while the pod exists: one more attempt once Prometheus has seen the
  // first ones, so that the rate of refusals shows there (a counter's first sample has no rate).
  await pollUntil('Prometheus scraped the refused publishes', () => cluster.prometheus.query(`clip_csi_calls_total{code="UNAUTHENTICATED", instance="${kubelet.plugin.options.metricsAddress}"}`), (result) => (result.data?.result.length ?? 0) > 0);
  await refusedPublish(1);
  const refused = metricValue(await kubelet.plugin.metrics(), 'clip_csi_calls_total', { method: 'NodePublishVolume', code: 'UNAUTHENTICATED' });
  assert.equal(refused, FAILED_PUBLISH_ATTEMPTS + 1, 'every attempt of the kubelet stand-in was refused');
  const warning = await pollUntil(
    'a Warning event on the pod',
    () => eventsAbout(cluster, 's5-wrong-secret').find((event) => event.type === 'Warning'),
    (event) => event !== undefined,
  );
  assert.match(`${warning?.reason} ${warning?.message}`, /^IndexFailed Unauthorized: /, 'the event says the credentials were refused');
  // Kubelet removes the pod's directory once the pod is gone.
  await rm(join(kubelet.plugin.kubeletDir, 'pods', uid), { recursive: true });
  cluster.api.delete('pods', 's5-wrong-secret', 'default');
  // The right one: the private image is read.
  const pod = await kubelet.runPod('s5-right-secret', { kind: 'inline', image: image.ref, readOnly: true, secretName: cluster.secrets.good });
  const firstRead = await firstReadMs(kubelet, pod, 'usr/share/zoneinfo/UTC');
  assert.equal((await inPod(kubelet, pod, 'head -c 4 /data/usr/share/zoneinfo/UTC')), 'TZif');
  await kubelet.deletePod(pod);
  return { publishMs: pod.publishMs, firstReadMs: firstRead, details: `wrong secret: UNAUTHENTICATED ×${refused} (kubelet's retries) and Warning ${warning?.reason} "${warning?.message.split(':')[0]}" from ${warning?.component}; right secret: read` };
}
