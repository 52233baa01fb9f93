/**
 * The controller is killed (`kill -9`) in the middle of indexing an image: its "being indexed"
 * marker stays in S3, no longer refreshed. A real `clip node` publishing that image first waits
 * for the controller (ABORTED naming it), then, once the marker has gone stale, indexes the image
 * itself. Real processes throughout: the registry behind a counting proxy (which holds the
 * controller's layer download so that it is killed mid-index), moto S3, `clip controller` against
 * the test Kubernetes API server, and `clip node`.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import * as grpc from '@grpc/grpc-js';
import { imageKeyOf } from '../src/clipcore/index.js';
import { connectCsi, ephemeralContext, MOUNT_CAPABILITY } from './helpers/csi-client.js';
import { cleanupPluginDir, httpGet, makePluginDir, metricValue, mountsUnder, podVolume, startPlugin } from './helpers/csi-plugin.js';
import { startControllerProcess, type ControllerProcess } from './helpers/controller-process.js';
import { pollUntil } from './helpers/poll.js';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy.js';
import { pushImageDetailed } from './harness/image-builder.js';
import { KubeApiServer } from './harness/kube-apiserver/server.js';
import type { JsonObject } from './harness/kube-apiserver/json.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { startS3, type S3Handle } from './harness/s3.js';
import { buildTarLayer } from './harness/tar-layer.js';

const BUCKET = 'clip-ctl-killed';
const CRD = 'charts/clip-csi/crds/clipimages.clip.csi.dev.yaml';
const DRIVER = 'clip.csi.dev';
const PLATFORM = 'linux/amd64';
/** The node's staleness threshold: the smallest it accepts, so the test waits 10 s, not a minute. */
const STALE_SECONDS = '10';

describe('clip controller killed mid-index', () => {
  let registry: RegistryHandle;
  let proxy: CountingProxy;
  let s3: S3Handle;
  let api: KubeApiServer;
  let dir: string;

  before(async () => {
    [registry, s3] = await Promise.all([startRegistry(), startS3()]);
    await s3.createBucket(BUCKET);
    proxy = await startCountingProxy(registry.host);
    dir = await mkdtemp(join(tmpdir(), 'ctl-killed-'));
    api = await KubeApiServer.start({ dir, crdFiles: [CRD], bookmarkIntervalMs: 0 });
    api.create('nodes', { metadata: { name: 'node-a', labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' } } });
  });

  after(async () => {
    await proxy?.close();
    await Promise.all([registry?.stop(), s3?.stop(), api?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function inS3(key: string): Promise<boolean> {
    try {
      await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `indexes/${key}` }));
      return true;
    } catch {
      return false;
    }
  }

  it('the marker goes stale and clip node indexes the image itself', async () => {
    const pushed = await pushImageDetailed(registry, 'apps/killed', 'v1', [buildTarLayer([{ type: 'file', path: 'hello.txt', content: 'made by the node\n' }])]);
    const image = `${proxy.host}/apps/killed:v1`;
    const layer = pushed.layers[0]?.digest ?? '';
    const key = imageKeyOf(pushed.digest, PLATFORM);
    // The controller's layer download hangs: it is mid-index, its marker refreshed, when killed.
    proxy.addFault({ kind: 'delay', ms: 20_000 }, { match: (req) => req.method === 'GET' && req.path.includes(layer) });

    const workDir = await mkdtemp(join(tmpdir(), 'ctl-killed-ctl-'));
    const nodeDir = await makePluginDir('ctl-killed-node-');
    let controller: ControllerProcess | undefined;
    let left: string[] = [];
    try {
      const kubeconfig = await api.writeKubeconfig();
      controller = await startControllerProcess(workDir, ['--kubeconfig', kubeconfig, '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint, '--identity', 'doomed'], s3.env);
      const pod = api.create('pods', {
        metadata: { name: 'killed', namespace: 'default' },
        spec: { containers: [{ name: 'app', image: 'busybox' }], volumes: [{ name: 'tools', csi: { driver: DRIVER, readOnly: true, volumeAttributes: { image } } }] },
      });
      await pollUntil('the controller indexing (its marker in S3, the layer asked for and held)', async () => (await inS3(`${key}.clip.indexing`)) && proxy.stats.log.some((req) => req.path.includes(layer)), Boolean);

      const plugin = await startPlugin(
        nodeDir,
        ['--image-grace-seconds', '0', '--index-wait-seconds', '1', '--index-marker-stale-seconds', STALE_SECONDS, '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint],
        { env: s3.env },
      );
      const node = await connectCsi(plugin.socketPath);
      const volume = await podVolume(nodeDir);
      const publish = {
        volume_id: volume.volumeId,
        target_path: volume.targetPath,
        volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_WRITER'),
        readonly: true,
        volume_context: ephemeralContext(image, { name: 'killed', uid: String((pod['metadata'] as JsonObject)['uid']) }),
      };
      /** One publish: undefined once it succeeds, else the ABORTED message (any other error fails the test). */
      const tryPublish = async (): Promise<string | undefined> => {
        try {
          await node.NodePublishVolume(publish);
          return undefined;
        } catch (err) {
          const error = err as grpc.ServiceError;
          assert.equal(grpc.status[error.code], 'ABORTED', error.details);
          return error.details;
        }
      };
      try {
        // The controller is alive: the node waits for it, and says whom it waits for.
        await pollUntil('a publish answering ABORTED naming the controller', tryPublish, (message) => /being indexed by controller\/doomed/.test(message ?? ''));
        await controller.kill9();
        assert.ok(await inS3(`${key}.clip.indexing`), 'the dead controller left its marker');
        assert.ok(!(await inS3(`${key}.clip`)), 'and no index');

        // Publishes answer ABORTED until the marker is stale; then the node indexes the image.
        await pollUntil('a publish succeeding', tryPublish, (message) => message === undefined, 90_000);
        assert.equal(await readFile(join(volume.targetPath, 'hello.txt'), 'utf8'), 'made by the node\n');
        const stale = plugin.logs().find((line) => line.msg === 'the indexing marker went stale; indexing the image here');
        assert.equal(stale?.['holder'], 'controller/doomed');
        const scraped = (await httpGet(plugin.metricsAddress, '/metrics')).body;
        const sources = (source: string): number | undefined => metricValue(scraped, 'clip_csi_index_source_total', { source });
        assert.deepEqual([sources('indexed'), sources('controller'), sources('s3')], [1, 0, 0]);
      } finally {
        await node.NodeUnpublishVolume({ volume_id: publish.volume_id, target_path: publish.target_path }).catch(() => undefined);
        node.close();
        await plugin.stop();
      }
    } finally {
      await controller?.stop();
      left = await mountsUnder(nodeDir);
      await cleanupPluginDir(nodeDir);
      await rm(workDir, { recursive: true, force: true });
    }
    assert.deepEqual(left, [], 'no mount left behind');
  });
});
