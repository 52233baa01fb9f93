/** What the scenarios look at: inside a pod's container, in S3, in a plugin's metrics, in the API server. */
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { imageKeyOf } from '../src/clipcore/index-store/image-key.js';
import type { JsonObject } from '../test/harness/kube-apiserver/json.js';
import { metricValue } from '../test/helpers/csi-plugin.js';
import { run } from '../test/helpers/processes.js';
import { BUCKET, type Cluster } from './cluster.js';
import type { Kubelet, Pod } from './kubelet.js';
import type { NodePlugin } from './node-plugin.js';

export const PLATFORM = 'linux/amd64';

/**
 * Every entry of a tree as `find` prints it (type, mode, owner, path, link target) and the
 * sha256 of every regular file: run in a pod's container on /data, and on the host on umoci's
 * unpacked root filesystem, the two must be equal.
 */
export const TREE_LISTING = `cd "$1" && find . -mindepth 1 -printf '%y %m %U:%G %p -> %l\\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum`;

export async function hostTreeListing(dir: string): Promise<string> {
  const result = await run('sh', ['-c', TREE_LISTING, 'sh', dir], { timeoutMs: 300_000 });
  if (result.code !== 0) throw new Error(`listing ${dir} failed: ${result.stderr}`);
  return result.stdout;
}

/** Runs `script` in the pod and returns its stdout, failing with its stderr when it fails. */
export async function inPod(kubelet: Kubelet, pod: Pod, script: string): Promise<string> {
  const result = await kubelet.exec(pod, script);
  if (result.code !== 0) throw new Error(`in pod ${pod.name}: \`${script}\` exited ${result.code}: ${result.stderr}${result.stdout.slice(-2000)}`);
  return result.stdout;
}

/** The latency of the first 4 KiB read of `path` in the pod's container, measured inside it. */
export async function firstReadMs(kubelet: Kubelet, pod: Pod, path: string): Promise<number> {
  const out = await inPod(kubelet, pod, `t0=$(date +%s%N); head -c 4096 "/data/${path}" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 ))`);
  return Number(out.trim()) / 1000;
}

export function indexKey(digest: string): string {
  return `indexes/${imageKeyOf(digest, PLATFORM)}.clip`;
}

export async function indexInS3(cluster: Cluster, digest: string): Promise<boolean> {
  return cluster.s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: indexKey(digest) })).then(
    () => true,
    () => false,
  );
}

/** `clip_csi_index_source_total{source}` of a node plugin (0 when absent). */
export async function indexSource(node: NodePlugin, source: string): Promise<number> {
  return metricValue(await node.metrics(), 'clip_csi_index_source_total', { source }) ?? 0;
}

/** Core/v1 events about an object, as `kubectl describe` lists them. */
export function eventsAbout(cluster: Cluster, name: string): Array<{ type: string; reason: string; message: string; component: string }> {
  return cluster.api.list('events', 'default').flatMap((event: JsonObject) => {
    const involved = event['involvedObject'] as JsonObject | undefined;
    if (involved?.['name'] !== name) return [];
    return [{ type: String(event['type']), reason: String(event['reason']), message: String(event['message']), component: String(event['reportingComponent'] ?? '') }];
  });
}
