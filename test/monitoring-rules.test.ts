/**
 * The chart's alerts and dashboard, checked without a running driver: `promtool check rules` on the
 * PrometheusRule's groups, and the dashboard's shape (a unit, a description and the datasource
 * variable on every panel; every metric it or an alert names is one that a component exports).
 * test/monitoring-live.test.ts then runs every query against a live plugin.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import client from 'prom-client';
import { ClipMetrics } from '../src/clipcore/index.js';
import { ControllerMetrics } from '../src/controller/metrics.js';
import { NodeMetrics } from '../src/node/metrics.js';
import { run } from './helpers/processes.js';
import { chartDashboard, metricNames, renderedRuleGroups, rulesYaml, type RuleGroups } from './helpers/monitoring.js';

/** Every metric name the node plugin and the controller export, from their own registries. */
async function exportedMetricNames(): Promise<Set<string>> {
  const node = new client.Registry();
  new NodeMetrics({ volumes: () => 0, imageMounts: () => 0, holderUp: () => 1 }, node);
  new ClipMetrics(node);
  const controller = new ControllerMetrics({ queueDepth: () => 0, inFlight: () => 0 }).registry;
  const metrics = [...(await node.getMetricsAsJSON()), ...(await controller.getMetricsAsJSON())];
  return new Set(metrics.map((metric) => metric.name));
}

async function promtoolCheck(groups: RuleGroups): Promise<{ code: number | null; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'promtool-'));
  try {
    const file = join(dir, 'rules.yaml');
    await writeFile(file, rulesYaml(groups));
    const result = await run('promtool', ['check', 'rules', file]);
    return { code: result.code, output: result.stdout + result.stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('monitoring: alert rules and dashboard', () => {
  it("promtool check rules accepts the PrometheusRule's groups", async () => {
    const groups = await renderedRuleGroups();
    const result = await promtoolCheck(groups);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /SUCCESS: 9 rules found/);
  });

  it('promtool refuses a broken expression (the check can fail)', async () => {
    const groups = await renderedRuleGroups();
    const first = groups.groups[0]?.rules[0];
    assert.ok(first);
    first.expr = 'sum(rate(clip_csi_calls_total[5m]) by';
    const result = await promtoolCheck(groups);
    assert.notEqual(result.code, 0, result.output);
  });

  it('every alert has a severity, a summary and a description', async () => {
    for (const rule of (await renderedRuleGroups()).groups.flatMap((g) => g.rules)) {
      assert.match(rule.labels?.['severity'] ?? '', /^(critical|warning|info)$/, rule.alert);
      assert.ok(rule.annotations?.['summary'] && rule.annotations['description'], rule.alert);
    }
  });

  it('every dashboard panel has a unit, a description and the datasource variable; the variable exists', async () => {
    const dashboard = await chartDashboard();
    assert.ok(dashboard.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource' && v.query === 'prometheus'));
    assert.ok(dashboard.panels.length >= 15);
    for (const panel of dashboard.panels) {
      assert.ok(panel.fieldConfig?.defaults?.unit, `${panel.title}: no unit`);
      assert.ok((panel.description ?? '').length > 20, `${panel.title}: no description`);
      assert.equal(panel.datasource?.uid, '${datasource}', panel.title);
      assert.ok(panel.targets && panel.targets.length > 0, `${panel.title}: no query`);
      for (const target of panel.targets) assert.equal(target.datasource?.uid, '${datasource}', `${panel.title} ${target.refId}`);
    }
  });

  it('the dashboard covers what the issue lists', async () => {
    const exprs = (await chartDashboard()).panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    for (const metric of [
      'clip_span_reads_total',
      'clip_cache_lookups_total',
      'clip_first_read_duration_seconds_bucket',
      'clip_origin_fetched_bytes_total',
      'clip_span_read_duration_seconds_bucket',
      'clip_csi_publish_duration_seconds_bucket',
      'clip_csi_calls_total',
      'clip_csi_volumes_published',
      'clip_csi_image_mounts',
      'clip_disk_cache_size_bytes',
      'clip_controller_queue_depth',
      'clip_controller_index_jobs_total',
      'clip_controller_index_duration_seconds_bucket',
    ]) {
      assert.ok(exprs.includes(metric), `no panel reads ${metric}`);
    }
  });

  it('every metric a panel or an alert names is exported by the node plugin or the controller', async () => {
    const exported = await exportedMetricNames();
    const exprs = [
      ...(await chartDashboard()).panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: p.title, expr: t.expr }))),
      ...(await renderedRuleGroups()).groups.flatMap((g) => g.rules.map((r) => ({ where: r.alert, expr: r.expr }))),
    ];
    for (const { where, expr } of exprs) {
      for (const name of metricNames(expr)) assert.ok(exported.has(name), `${where}: nobody exports ${name}`);
    }
  });
});
