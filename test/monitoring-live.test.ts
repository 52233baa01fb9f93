/**
 * The dashboard and the alerts against real metrics: Debian's Prometheus on loopback scrapes a live
 * `clip node` (real registry, real FUSE mounts) while volumes are published and files read; then
 * every dashboard query and every alert expression goes to Prometheus' HTTP API. Each must parse;
 * each panel of a live component must return data, so a panel naming a metric nobody exports fails.
 *
 * Components scraped: LIVE below. The controller joins by adding its job there once `clip
 * controller` exists (its panels are then checked like the node's); until then the only panels
 * not checked live are the controller's, and the test asserts exactly that.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { connectCsi, ephemeralContext, MOUNT_CAPABILITY, type CsiClient } from './helpers/csi-client.js';
import { cleanupPluginDir, makePluginDir, podVolume, startPlugin, type PluginProcess, type PodVolume } from './helpers/csi-plugin.js';
import { asPromQL, chartDashboard, metricNames, renderedRuleGroups, startPrometheus, type PrometheusServer, type QueryResult } from './helpers/monitoring.js';
import { pushImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { buildTarLayer, patternContent } from './harness/tar-layer.js';

/** The metric name prefix of each component, as the chart's job names call them. */
const COMPONENT_OF = (metric: string): 'clip-csi-node' | 'clip-csi-controller' => (metric.startsWith('clip_controller_') ? 'clip-csi-controller' : 'clip-csi-node');

const FILES = { 'hello.txt': 'hello from the monitored image\n', 'etc/app.conf': 'mode = monitored\n' };

/** Polls until `check` holds, within `timeoutMs`; returns the last value for the failure message. */
async function until<T>(what: string, probe: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (check(value)) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms; last answer ${JSON.stringify(value).slice(0, 2000)}`);
    await delay(250);
  }
}

const hasData = (result: QueryResult): boolean => result.status === 'success' && (result.data?.result.length ?? 0) > 0;

describe('monitoring: dashboard and alerts against a live clip node and Prometheus', () => {
  let dir: string;
  let registry: RegistryHandle | undefined;
  let plugin: PluginProcess | undefined;
  let csi: CsiClient | undefined;
  let prometheus: PrometheusServer | undefined;
  const volumes: PodVolume[] = [];

  before(async () => {
    dir = await makePluginDir('csi-mon-');
    registry = await startRegistry();
    const layer = buildTarLayer([
      { type: 'file', path: 'hello.txt', content: FILES['hello.txt'] },
      { type: 'file', path: 'etc/app.conf', content: FILES['etc/app.conf'] },
      { type: 'file', path: 'big.bin', content: patternContent(3 * 1024 * 1024 + 5, 3) },
    ]);
    await pushImage(registry, 'apps/monitored', 'v1', [layer]);
    plugin = await startPlugin(dir, ['--image-grace-seconds', '1']);
    csi = await connectCsi(plugin.socketPath);
    // One line per component: the controller's job goes here once `clip controller` exists.
    const LIVE: Record<string, string[]> = { 'clip-csi-node': [plugin.metricsAddress] };
    prometheus = await startPrometheus(LIVE);
  });

  after(async () => {
    for (const volume of volumes) await csi?.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath }).catch(() => undefined);
    csi?.close();
    await plugin?.stop();
    await prometheus?.stop();
    await registry?.stop();
    if (dir) await cleanupPluginDir(dir);
  });

  it('publishes volumes and reads files while Prometheus scrapes the plugin', async () => {
    assert.ok(csi && registry && prometheus);
    await until('the node plugin target is up', () => prometheus!.query('up{job="clip-csi-node"} == 1'), hasData);
    const image = `${registry.host}/apps/monitored:v1`;
    for (const readonly of [true, false]) {
      const volume = await podVolume(dir, readonly ? 'ro' : 'rw');
      await csi.NodePublishVolume({
        volume_id: volume.volumeId,
        target_path: volume.targetPath,
        volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_WRITER'),
        readonly,
        volume_context: ephemeralContext(image, { name: volume.podName, uid: volume.podUid }),
        secrets: {},
      });
      volumes.push(volume);
      // Twice: the first read goes to the registry, the second is a cache hit.
      for (let round = 0; round < 2; round++) {
        for (const [path, content] of Object.entries(FILES)) assert.equal(await readFile(join(volume.targetPath, path), 'utf8'), content);
        assert.equal((await readFile(join(volume.targetPath, 'big.bin'))).length, 3 * 1024 * 1024 + 5);
      }
    }
  });

  it('every dashboard query parses, and every panel of a live component returns data', async () => {
    assert.ok(prometheus);
    const dashboard = await chartDashboard();
    const notLive: string[] = [];
    for (const panel of dashboard.panels) {
      const queries = (panel.targets ?? []).map((target) => asPromQL(target.expr, '30s'));
      const live = queries.every((expr) => metricNames(expr).every((name) => COMPONENT_OF(name) === 'clip-csi-node'));
      for (const expr of queries) {
        const parsed = await prometheus.query(expr);
        assert.equal(parsed.status, 'success', `${panel.title}: ${expr}: ${parsed.error}`);
        if (live) await until(`panel "${panel.title}" returns data for ${expr}`, () => prometheus!.query(expr), hasData);
      }
      if (!live) notLive.push(panel.title);
    }
    assert.deepEqual(
      notLive,
      dashboard.panels.filter((p) => p.title.startsWith('Controller')).map((p) => p.title),
      'only the controller panels wait for a live controller',
    );
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
    await until('ClipCSINodePluginDown selects the stopped plugin', () => prometheus!.query(down.expr), hasData);
  });
});
