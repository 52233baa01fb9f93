/**
 * A kubelet stand-in for one node: what kubelet does for a pod's CSI volume, and no more.
 * - The pod is created in the API server first (bound to this node), so the controller sees it as
 *   it would a scheduled pod.
 * - Publish: the target directory's parent is created as kubelet lays it out
 *   (`pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount`), then `NodePublishVolume` with the
 *   volume attributes plus the pod info (`csi.storage.k8s.io/*`, podInfoOnMount) and the
 *   `nodePublishSecretRef` secret's data, decoded, as kubelet sends them. ABORTED is retried, as
 *   kubelet retries a pending operation; other errors with kubelet's backoff (0.5 s, 1 s, 2 s),
 *   then the stand-in gives up where kubelet would go on until the pod is deleted.
 * - The pod's container is started with containerd, the target bind-mounted at /data with
 *   `rslave` propagation (HostToContainer), read-only when the volume is.
 * - Deletion: the container is killed, then `NodeUnpublishVolume`, and the pod object deleted.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import grpc from '@grpc/grpc-js';
import type { StringMap, VolumeCapability } from '../src/csi/types.js';
import type { ContainerdHandle, ContainerTask } from '../test/harness/containerd.js';
import type { JsonObject } from '../test/harness/kube-apiserver/json.js';
import type { KubeApiServer } from '../test/harness/kube-apiserver/server.js';
import { MOUNT_CAPABILITY } from '../test/helpers/csi-client.js';
import type { RunResult } from '../test/helpers/processes.js';
import type { NodePlugin } from './node-plugin.js';

export const DRIVER = 'clip.csi.dev';
const NAMESPACE = 'default';
const PUBLISH_RETRY_MS = 60_000;
/** Kubelet retries a failed mount with exponential backoff from 500 ms; the stand-in gives up after these. */
export const FAILED_PUBLISH_ATTEMPTS = 4;

/** The pod's one CSI volume: inline (an image), or a PersistentVolume the controller made. */
export type PodVolumeSpec =
  | { kind: 'inline'; image: string; readOnly: boolean; secretName?: string }
  | { kind: 'pv'; volumeId: string; volumeContext: StringMap; mode: NonNullable<VolumeCapability['access_mode']>['mode']; readOnly: boolean; secretName?: string };

export interface Pod {
  readonly name: string;
  readonly uid: string;
  readonly node: string;
  readonly volumeId: string;
  readonly targetPath: string;
  readonly readOnly: boolean;
  /** NodePublishVolume's latency, ABORTED retries included. */
  readonly publishMs: number;
  readonly container: ContainerTask;
}

export class Kubelet {
  private execs = 0;

  constructor(
    readonly plugin: NodePlugin,
    private readonly api: KubeApiServer,
    private readonly containerd: ContainerdHandle,
    /** The image of the pods' own containers (it has a shell and coreutils). */
    private readonly podImage: string,
  ) {}

  /** Creates the pod object only (as the scheduler binds it): what the controller watches. */
  createPodObject(name: string, volume: PodVolumeSpec): JsonObject {
    const csi =
      volume.kind === 'inline'
        ? { csi: { driver: DRIVER, readOnly: volume.readOnly, volumeAttributes: { image: volume.image }, ...(volume.secretName && { nodePublishSecretRef: { name: volume.secretName } }) } }
        : { persistentVolumeClaim: { claimName: `${name}-claim`, readOnly: volume.readOnly } };
    return this.api.create('pods', {
      metadata: { name, namespace: NAMESPACE },
      spec: {
        nodeName: this.plugin.name,
        serviceAccountName: 'default',
        containers: [{ name: 'app', image: this.podImage, volumeMounts: [{ name: 'vol', mountPath: '/data', mountPropagation: 'HostToContainer' }] }],
        volumes: [{ name: 'vol', ...csi }],
      },
    });
  }

  /** The publish request kubelet would send for this pod's volume. */
  private async publishRequest(pod: JsonObject, volume: PodVolumeSpec): Promise<{ volumeId: string; targetPath: string; request: Parameters<NodePlugin['csi']['NodePublishVolume']>[0] }> {
    const meta = pod['metadata'] as { name: string; uid: string };
    const podInfo: StringMap = {
      'csi.storage.k8s.io/pod.name': meta.name,
      'csi.storage.k8s.io/pod.namespace': NAMESPACE,
      'csi.storage.k8s.io/pod.uid': meta.uid,
      'csi.storage.k8s.io/serviceAccount.name': 'default',
    };
    const volumeDir = join(this.plugin.kubeletDir, 'pods', meta.uid, 'volumes', 'kubernetes.io~csi', 'vol');
    await mkdir(volumeDir, { recursive: true });
    const targetPath = join(volumeDir, 'mount');
    const secrets = volume.secretName ? this.secretData(volume.secretName) : {};
    if (volume.kind === 'inline') {
      // Kubelet's id for an inline volume: "csi-" + sha256 of pod uid, driver and volume name.
      const volumeId = `csi-${createHash('sha256').update(`${meta.uid}${DRIVER}vol`).digest('hex')}`;
      return {
        volumeId,
        targetPath,
        request: {
          volume_id: volumeId,
          target_path: targetPath,
          volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_WRITER'),
          readonly: volume.readOnly,
          volume_context: { image: volume.image, ...podInfo, 'csi.storage.k8s.io/ephemeral': 'true' },
          secrets,
        },
      };
    }
    return {
      volumeId: volume.volumeId,
      targetPath,
      request: {
        volume_id: volume.volumeId,
        target_path: targetPath,
        volume_capability: MOUNT_CAPABILITY(volume.mode),
        readonly: volume.readOnly,
        volume_context: { ...volume.volumeContext, ...podInfo, 'csi.storage.k8s.io/ephemeral': 'false' },
        secrets,
      },
    };
  }

  private secretData(name: string): StringMap {
    const secret = this.api.get('secrets', name, NAMESPACE);
    if (!secret) throw new Error(`secret ${name} not found`);
    const data = (secret['data'] ?? {}) as Record<string, string>;
    return Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]));
  }

  /**
   * Runs a pod: its object (unless `existing` is given), the publish, then its container (a
   * long-running `sleep`, in which `exec` runs the pod's commands). A publish that failed
   * `failedAttempts` times throws its gRPC error; the target directory kubelet made stays, as
   * kubelet leaves it until the pod goes.
   */
  async runPod(name: string, volume: PodVolumeSpec, existing?: JsonObject, failedAttempts = FAILED_PUBLISH_ATTEMPTS): Promise<Pod> {
    const object = existing ?? this.createPodObject(name, volume);
    const uid = (object['metadata'] as { uid: string }).uid;
    const { volumeId, targetPath, request } = await this.publishRequest(object, volume);
    const started = performance.now();
    const deadline = Date.now() + PUBLISH_RETRY_MS;
    let failures = 0;
    for (;;) {
      try {
        await this.plugin.csi.NodePublishVolume(request);
        break;
      } catch (err) {
        const pending = (err as grpc.ServiceError).code === grpc.status.ABORTED;
        if (!pending) failures++;
        if (Date.now() > deadline || failures >= failedAttempts) throw err;
        await delay(pending ? 200 : 500 * 2 ** (failures - 1));
      }
    }
    const publishMs = performance.now() - started;
    const container = await this.startContainer(name, targetPath, volume.readOnly);
    return { name, uid, node: this.plugin.name, volumeId, targetPath, readOnly: volume.readOnly, publishMs, container };
  }

  private startContainer(name: string, targetPath: string, readOnly: boolean): Promise<ContainerTask> {
    return this.containerd.start({
      image: this.podImage,
      id: `pod-${name}-${Date.now().toString(36)}`,
      mounts: [{ source: targetPath, destination: '/data', options: ['rbind', 'rslave', ...(readOnly ? ['ro'] : [])] }],
      args: ['sleep', 'infinity'],
    });
  }

  /** Restarts the pod's container (as a failed liveness probe makes kubelet do): the volume is bound again. */
  async restartContainer(pod: Pod): Promise<Pod> {
    await pod.container.stop('SIGKILL');
    return { ...pod, container: await this.startContainer(pod.name, pod.targetPath, pod.readOnly) };
  }

  /** Runs `script` with sh inside the pod's container (as `kubectl exec` would). */
  exec(pod: Pod, script: string, timeoutMs = 120_000): Promise<RunResult> {
    this.execs++;
    return this.containerd.ctr(['tasks', 'exec', '--exec-id', `e2e-${this.execs}`, pod.container.id, 'sh', '-c', script], { timeoutMs });
  }

  /** Kills the container, unpublishes the volume, deletes the pod object. */
  async deletePod(pod: Pod): Promise<void> {
    await pod.container.stop('SIGKILL');
    await this.plugin.csi.NodeUnpublishVolume({ volume_id: pod.volumeId, target_path: pod.targetPath });
    this.api.delete('pods', pod.name, NAMESPACE);
  }
}
