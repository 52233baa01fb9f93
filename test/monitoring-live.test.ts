/**
 * The dashboard and the alerts against real metrics: Debian's Prometheus on loopback scrapes a live
 * `clip controller` and a live `clip node` (real registry, moto S3, real FUSE mounts) while the
 * controller provisions a volume (CreateVolume, indexing the image into S3), the node publishes it
 * and an inline volume, and files are read; then every dashboard query and every alert expression
 * goes to Prometheus' HTTP API. Each must parse, and each panel must return data: a panel naming a
 * metric nobody exports fails. Scrape jobs carry the chart's job names (release clip-csi), so the
 * alerts' job selectors are checked too.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import grpc from '@grpc/grpc-js';
import type { CreateVolumeResponse } from '../src/csi/types.js';
import { startControllerProcess, type ControllerProcess } from './helpers/controller-process.js';
import { connectController, connectCsi, ephemeralContext, MOUNT_CAPABILITY, type ControllerClient, type CsiClient } from './helpers/csi-client.js';
import { cleanupPluginDir, makePluginDir, podVolume, startPlugin, type PluginProcess, type PodVolume } from './helpers/csi-plugin.js';
import { pollUntil } from './helpers/poll.js';
import { asPromQL, chartDashboard, renderedRuleGroups, startPrometheus, type PrometheusServer, type QueryResult } from './helpers/monitoring.js';
import { pushImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { startS3, type S3Handle } from './harness/s3.js';
import { buildTarLayer, patternContent } from './harness/tar-layer.js';

const BUCKET = 'clip-monitoring';

const FILES = { 'hello.txt': 'hello from the monitored image\n', 'etc/app.conf': 'mode = monitored\n' };

const hasData = (result: QueryResult): boolean => result.status === 'success' && (result.data?.result.length ?? 0) > 0;

describe('monitoring: dashboard and alerts against a live clip node and Prometheus', () => {
  let dir: string;
  let registry: RegistryHandle | undefined;
  let s3: S3Handle | undefined;
  let controller: ControllerProcess | undefined;
  let controllerCsi: ControllerClient | undefined;
  let plugin: PluginProcess | undefined;
  let csi: CsiClient | undefined;
  let prometheus: PrometheusServer | undefined;
  const volumes: PodVolume[] = [];

  before(async () => {
    dir = await makePluginDir('csi-mon-');
    [registry, s3] = await Promise.all([startRegistry(), startS3()]);
    await s3.createBucket(BUCKET);
    const layer = buildTarLayer([
      { type: 'file', path: 'hello.txt', content: FILES['hello.txt'] },
      { type: 'file', path: 'etc/app.conf', content: FILES['etc/app.conf'] },
      { type: 'file', path: 'big.bin', content: patternContent(3 * 1024 * 1024 + 5, 3) },
    ]);
    await pushImage(registry, 'apps/monitored', 'v1', [layer]);
    const s3Flags = ['--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint];
    // No Kubernetes API here: the controller serves CSI only (CreateVolume indexes), as in its own tests.
    controller = await startControllerProcess(dir, ['--no-kubernetes', ...s3Flags, '--platforms', 'linux/amd64', '--create-volume-wait-seconds', '0'], s3.env);
    controllerCsi = await connectController(controller.socketPath);
    plugin = await startPlugin(dir, ['--image-grace-seconds', '1', ...s3Flags], { env: s3.env });
    csi = await connectCsi(plugin.socketPath);
    // One scrape job per component, named as the chart names them for release clip-csi.
    prometheus = await startPrometheus({ 'clip-csi-node': [plugin.metricsAddress], 'clip-csi-controller': [controller.metricsAddress] });
  });

  after(async () => {
    for (const volume of volumes) await csi?.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath }).catch(() => undefined);
    csi?.close();
    controllerCsi?.close();
    await plugin?.stop();
    await controller?.stop();
    await prometheus?.stop();
    await Promise.all([registry?.stop(), s3?.stop()]);
    if (dir) await cleanupPluginDir(dir);
  });

  /** CreateVolume as the provisioner calls it, retried while it answers ABORTED (bounded). */
  async function provision(image: string): Promise<CreateVolumeResponse> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        return await controllerCsi!.CreateVolume({ name: 'pvc-monitored', volume_capabilities: [MOUNT_CAPABILITY('MULTI_NODE_READER_ONLY')], parameters: { image }, secrets: {} });
      } catch (err) {
        if ((err as grpc.ServiceError).code !== grpc.status.ABORTED || Date.now() > deadline) throw err;
        await delay(100);
      }
    }
  }

  it('provisions a volume, publishes it and an inline volume, and reads files while Prometheus scrapes both', async () => {
    assert.ok(csi && registry && prometheus);
    for (const job of ['clip-csi-node', 'clip-csi-controller']) await pollUntil(`the ${job} target is up`, () => prometheus!.query(`up{job="${job}"} == 1`), hasData);
    const image = `${registry.host}/apps/monitored:v1`;
    const provisioned = await provision(image);
    const pv = await podVolume(dir, 'pv');
    const inline = await podVolume(dir, 'inline');
    const publications = [
      // The PersistentVolume from CreateVolume: the node downloads the controller's index from S3.
      { ...pv, volumeId: provisioned.volume.volume_id, context: provisioned.volume.volume_context, readonly: true, mode: 'MULTI_NODE_READER_ONLY' as const },
      // An inline volume of the same image, writable: it shares the image mount.
      { ...inline, context: ephemeralContext(image, { name: inline.podName, uid: inline.podUid }), readonly: false, mode: 'SINGLE_NODE_WRITER' as const },
    ];
    for (const volume of publications) {
      await csi.NodePublishVolume({
        volume_id: volume.volumeId,
        target_path: volume.targetPath,
        volume_capability: MOUNT_CAPABILITY(volume.mode),
        readonly: volume.readonly,
        volume_context: volume.context,
        secrets: {},
      });
      volumes.push(volume);
      // Twice: the first read goes to the registry, the second is a cache hit.
      for (let round = 0; round < 2; round++) {
        for (const [path, content] of Object.entries(FILES)) assert.equal(await readFile(join(volume.targetPath, path), 'utf8'), content);
        assert.equal((await readFile(join(volume.targetPath, 'big.bin'))).length, 3 * 1024 * 1024 + 5);
      }
    }
    // The node mounted the image from the index the controller put in S3, as Prometheus saw it.
    await pollUntil('the node took its index from S3', () => prometheus!.query('clip_csi_index_source_total{source="s3"} == 1'), hasData);
  });

  it('every dashboard query parses, and every panel returns data', async () => {
    assert.ok(prometheus);
    const dashboard = await chartDashboard();
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        const expr = asPromQL(target.expr, '30s');
        const parsed = await prometheus.query(expr);
        assert.equal(parsed.status, 'success', `${panel.title}: ${expr}: ${parsed.error}`);
        await pollUntil(`panel "${panel.title}" returns data for ${expr}`, () => prometheus!.query(expr), hasData);
      }
    }
  });

  it('every alert expression parses and evaluates; the plugin-down alert fires when the plugin stops', async () => {
    assert.ok(prometheus && plugin);
    const rules = (await renderedRuleGroups()).groups.flatMap((group) => group.rules);
    for (const rule of rules) {
      const result = await prometheus.query(rule.expr);
      assert.equal(result.status, 'success', `${rule.alert}: ${rule.expr}: ${result.error}`);
    }
    const down = rules.find((rule) => rule.alert === 'ClipCSINodePluginDown');
    assert.ok(down);
    assert.equal((await prometheus.query(down.expr)).data?.result.length, 0, 'no alert while the plugin runs');
    for (const volume of volumes.splice(0)) await csi?.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
    assert.equal(await plugin.stop(), 0);
    await pollUntil('ClipCSINodePluginDown selects the stopped plugin', () => prometheus!.query(down.expr), hasData);
  });
});
