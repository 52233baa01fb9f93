/**
 * `clip controller` with its Kubernetes side, against the test API server: CreateVolume takes the
 * image from the PVC's `clip.csi.dev/image` annotation (read through the API with the PVC name and
 * namespace the external-provisioner passes with --extra-create-metadata) and the platforms from
 * the cluster's Nodes, and the PVC gets a `Normal Indexed` Event.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import grpc from '@grpc/grpc-js';
import { packageFile } from '../src/clipcore/package-root.js';
import type { CreateVolumeRequest, CreateVolumeResponse, StringMap } from '../src/csi/types.js';
import { connectController, createVolumeUntilDone, expectGrpcError, MOUNT_CAPABILITY, type ControllerClient } from './helpers/csi-client.js';
import { httpGet } from './helpers/csi-plugin.js';
import { startControllerProcess, type ControllerProcess } from './helpers/controller-process.js';
import { pushImage } from './harness/image-builder.js';
import { KubeApiServer } from './harness/kube-apiserver/server.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { startS3, type S3Handle } from './harness/s3.js';
import { buildTarLayer } from './harness/tar-layer.js';

const BUCKET = 'clip-controller-kube';

describe('clip controller: CreateVolume with the image from the PVC annotation', () => {
  let registry: RegistryHandle;
  let s3: S3Handle;
  let api: KubeApiServer;
  let dir: string;
  let controller: ControllerProcess;
  let csi: ControllerClient;
  let image: string;
  let digest: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ctl-kube-'));
    [registry, s3, api] = await Promise.all([
      startRegistry(),
      startS3(),
      KubeApiServer.start({ dir, crdFiles: [packageFile('charts/clip-csi/crds/clipimages.clip.csi.dev.yaml')] }),
    ]);
    await s3.createBucket(BUCKET);
    digest = await pushImage(registry, 'apps/annotated', 'v3', [buildTarLayer([{ type: 'file', path: 'from-annotation.txt', content: 'annotated\n' }])]);
    image = `${registry.host}/apps/annotated:v3`;
    api.create('nodes', { metadata: { name: 'worker-1', labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' } } });
    api.create('persistentvolumeclaims', {
      metadata: { name: 'data', namespace: 'team-a', annotations: { 'clip.csi.dev/image': image } },
      spec: { accessModes: ['ReadOnlyMany'], resources: { requests: { storage: '1Gi' } }, storageClassName: 'clip' },
    });
    api.create('persistentvolumeclaims', { metadata: { name: 'plain', namespace: 'team-a' }, spec: { accessModes: ['ReadOnlyMany'] } });
    const kubeconfig = await api.writeKubeconfig();
    controller = await startControllerProcess(
      dir,
      ['--kubeconfig', kubeconfig, '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint, '--create-volume-wait-seconds', '0', '--identity', 'controller-0'],
      s3.env,
    );
    csi = await connectController(controller.socketPath);
  });

  after(async () => {
    csi?.close();
    await controller?.stop();
    await Promise.all([registry?.stop(), s3?.stop(), api?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const request = (name: string, pvc: string): Partial<CreateVolumeRequest> => ({
    name,
    volume_capabilities: [MOUNT_CAPABILITY('MULTI_NODE_READER_ONLY')],
    parameters: { 'csi.storage.k8s.io/pvc/name': pvc, 'csi.storage.k8s.io/pvc/namespace': 'team-a', 'csi.storage.k8s.io/pv/name': name } as StringMap,
  });

  const createUntilDone = (req: Partial<CreateVolumeRequest>, aborts: string[] = []): Promise<CreateVolumeResponse> => createVolumeUntilDone(csi, req, aborts);

  it('reads the image from the PVC annotation and the platforms from the Nodes; the PVC gets an Indexed event', async () => {
    // Ready once the watches have synced (the Nodes known) and S3 answers.
    for (let attempt = 0; (await httpGet(controller.metricsAddress, '/readyz')).status !== 200; attempt++) {
      assert.ok(attempt < 200, 'the controller became ready');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const created = await createUntilDone(request('pvc-0a0a0a0a-1111', 'data'));
    assert.deepEqual(created.volume.volume_context, {
      image: `${registry.host}/apps/annotated@${digest}`,
      'clip.csi.dev/requested-image': image,
    });
    assert.equal(created.volume.capacity_bytes, 'annotated\n'.length);
    for (let attempt = 0; ; attempt++) {
      const events = api.list('events', 'team-a');
      const indexed = events.find((event) => JSON.stringify(event).includes('"reason":"Indexed"'));
      if (indexed) {
        assert.match(JSON.stringify(indexed), /"kind":"PersistentVolumeClaim"/);
        assert.match(JSON.stringify(indexed), /"name":"data"/);
        assert.match(JSON.stringify(indexed), /linux\/amd64: 1 files/);
        break;
      }
      assert.ok(attempt < 100, 'an Indexed event on the PVC');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  it('a PVC without the annotation, or no PVC at all, is INVALID_ARGUMENT naming it', async () => {
    await expectGrpcError(csi.CreateVolume(request('pvc-0b0b0b0b-2222', 'plain')), grpc.status.INVALID_ARGUMENT, /team-a\/plain no annotation clip.csi.dev\/image/);
    await expectGrpcError(csi.CreateVolume(request('pvc-0c0c0c0c-3333', 'gone')), grpc.status.INVALID_ARGUMENT, /team-a\/gone no annotation/);
  });
});
