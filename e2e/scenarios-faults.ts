/**
 * Scenarios 6–8: faults while pods read, and what Prometheus saw of the whole run.
 */
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { asPromQL, chartDashboard, renderedRuleGroups, type QueryResult } from '../test/helpers/monitoring.js';
import { pollUntil } from '../test/helpers/poll.js';
import { setTimeout as delay } from 'node:timers/promises';
import { mountsAt } from '../src/node/mount-utils.js';
import type { Cluster } from './cluster.js';
import type { Kubelet, Pod } from './kubelet.js';
import { inPod } from './probes.js';
import type { RunState, ScenarioResult } from './scenarios-volumes.js';

/** The sha256 the reference listing (umoci's unpack) gives a file, as `sha256sum` prints it. */
function referenceSum(state: RunState, path: string): string {
  const line = state.reference?.split('\n').find((entry) => entry.endsWith(`  ./${path}`));
  assert.ok(line, `${path} is in the reference listing`);
  return line.split(' ')[0] as string;
}

/** Reads a file in the pod: its sha256 when the whole read worked, or the error `cat` printed. */
async function readIn(kubelet: Kubelet, pod: Pod, path: string): Promise<{ sum?: string; error?: string }> {
  const result = await kubelet.exec(pod, `cat /data/${path} > /tmp/read && sha256sum < /tmp/read`);
  if (result.code === 0) return { sum: result.stdout.split(' ')[0] as string };
  return { error: result.stderr.trim() };
}

export async function scenario6(cluster: Cluster, state: RunState): Promise<ScenarioResult> {
  const kubelet = cluster.kubelets[1]!;
  const pod = state.readerB;
  assert.ok(pod, 'scenario 2 left its pod running');
  const warm = 'usr/bin/python3.11';
  const cold = 'bin/dash';
  assert.equal((await readIn(kubelet, pod, warm)).sum, referenceSum(state, warm));
  // The registry goes away: every connection to it is closed without an answer.
  cluster.proxy.addFault({ kind: 'drop' }, { times: Number.MAX_SAFE_INTEGER });
  const started = performance.now();
  let cached: { sum?: string; error?: string };
  let coldRead: { sum?: string; error?: string };
  try {
    cached = await readIn(kubelet, pod, warm);
    coldRead = await readIn(kubelet, pod, cold);
  } finally {
    cluster.proxy.clearFaults();
  }
  const failMs = performance.now() - started;
  assert.equal(cached.sum, referenceSum(state, warm), `cached data is still read: ${cached.error}`);
  assert.equal(coldRead.sum, undefined, 'a cold read cannot succeed without the registry');
  assert.match(coldRead.error ?? '', /Input\/output error/, 'a cold read fails with EIO');
  // The registry is back: the same read works, with the right bytes.
  const recovered = await pollUntil('the cold read works again', () => readIn(kubelet, pod, cold), (read) => read.sum !== undefined, 30_000);
  assert.equal(recovered.sum, referenceSum(state, cold));
  return { details: `registry down: cached read OK, cold read EIO (after ${failMs.toFixed(0)} ms, never wrong bytes); recovered with the right bytes` };
}

/**
 * The plugin is killed while a pod reads (kill -9: a crash, an OOM kill) and started again, then
 * replaced by a new container started beside it (a rolling update with maxSurge) (docs/node.md
 * "Restarts" is the behaviour asserted). With clip holder beside it, as the chart runs it, the pod
 * sees no error: a read made while no plugin runs waits and completes with the right bytes once
 * the new process took the connection back; the mounts at the target never change, so the running
 * container needs no restart whatever its mount propagation.
 */
export async function scenario7(cluster: Cluster, state: RunState): Promise<ScenarioResult> {
  const kubelet = cluster.kubelets[0]!;
  const plugin = kubelet.plugin;
  const pod = state.readerA;
  assert.ok(pod, 'scenario 1 left its pod running');
  const path = 'usr/share/zoneinfo/Europe/Paris';
  const waitingPath = 'usr/share/zoneinfo/Asia/Tokyo';
  assert.equal((await readIn(kubelet, pod, path)).sum, referenceSum(state, path));
  const mountIds = async (): Promise<number[]> => (await mountsAt(pod.targetPath)).map((entry) => entry.id);
  const before = await mountIds();

  const killedAt = performance.now();
  await plugin.stop('SIGKILL');
  // Made while no plugin runs: it waits in the kernel's queue instead of failing.
  const waiting = readIn(kubelet, pod, waitingPath);
  await delay(500);
  await plugin.start();
  const readyMs = performance.now() - killedAt;
  const waited = await waiting;
  assert.equal(waited.sum, referenceSum(state, waitingPath), `a read made while the plugin was dead completes with the right bytes: ${waited.error}`);
  const waitedMs = performance.now() - killedAt;
  assert.equal((await readIn(kubelet, pod, path)).sum, referenceSum(state, path));
  assert.match(plugin.output(), /"msg":"took over a FUSE connection of the previous process"/);

  const replacedAt = performance.now();
  const during = readIn(kubelet, pod, path);
  await plugin.replace();
  assert.equal((await during).sum, referenceSum(state, path), 'a read during the rolling update');
  assert.equal((await readIn(kubelet, pod, waitingPath)).sum, referenceSum(state, waitingPath), 'and after it');
  const replacedMs = performance.now() - replacedAt;
  assert.deepEqual(await mountIds(), before, 'the mounts at the target are the same ones');
  await inPod(kubelet, pod, `chroot /data /bin/sh -c 'echo still running'`);
  return {
    details: `plugin killed: a read made meanwhile waited ${(waitedMs / 1000).toFixed(1)} s (plugin ready after ${(readyMs / 1000).toFixed(1)} s) and returned the right bytes; rolling update (handover) in ${(replacedMs / 1000).toFixed(1)} s; no error in the pod, target mounts unchanged, no container restart`,
  };
}

const hasData = (result: QueryResult): boolean => result.status === 'success' && (result.data?.result.length ?? 0) > 0;

/** The alerts the run's faults are meant to fire: scenario 5's refused publish and its refused index job. */
export const EXPECTED_ALERTS = ['ClipCSIPublishErrors', 'ClipCSIControllerIndexingFailures'];

export async function scenario8(cluster: Cluster, runSeconds: number): Promise<ScenarioResult> {
  const prometheus = cluster.prometheus;
  const window = `${Math.max(60, Math.ceil(runSeconds))}s`;
  // Every target is scraped: both node plugins and the controller. Node A's plugin came back in
  // scenario 7 moments ago: its first scrape since may still be due (bounded wait).
  const upByJob = async (): Promise<Record<string, string | undefined>> =>
    Object.fromEntries(((await prometheus.query('count by (job) (up == 1)')).data?.result ?? []).map((r) => [r.metric['job'], r.value[1]]));
  const expectedUp = { 'clip-csi-node': '2', 'clip-csi-controller': '1' };
  await pollUntil('every target is up', upByJob, (up) => isDeepStrictEqual(up, expectedUp), 30_000);
  // Throughout the run: every scrape of the controller and of node B worked (node A was down in scenario 7).
  const nodeB = cluster.nodes[1]!.options.metricsAddress;
  const gaps = await prometheus.query(`min_over_time(up{job="clip-csi-controller"}[${window}]) < 1 or min_over_time(up{instance="${nodeB}"}[${window}]) < 1`);
  assert.equal(gaps.data?.result.length, 0, `scrapes failed: ${JSON.stringify(gaps.data?.result)}`);
  const dashboard = await chartDashboard();
  let queries = 0;
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) {
      const expr = asPromQL(target.expr, window);
      await pollUntil(`panel "${panel.title}" has data for ${expr}`, () => prometheus.query(expr), hasData, 30_000);
      queries++;
    }
  }
  const rules = (await renderedRuleGroups()).groups.flatMap((group) => group.rules);
  // The faults' alerts: their conditions hold once Prometheus has scraped the failures (bounded wait).
  for (const alert of EXPECTED_ALERTS) {
    const rule = rules.find((candidate) => candidate.alert === alert);
    assert.ok(rule, `the chart has the alert ${alert}`);
    await pollUntil(`${alert} fires for the run's faults`, () => prometheus.query(rule.expr), hasData, 30_000);
  }
  const firing: string[] = [];
  for (const rule of rules) {
    const result = await prometheus.query(rule.expr);
    assert.equal(result.status, 'success', `${rule.alert}: ${result.error}`);
    if (hasData(result)) firing.push(rule.alert);
  }
  const unexpected = firing.filter((alert) => !EXPECTED_ALERTS.includes(alert));
  assert.deepEqual(unexpected, [], `alerts whose condition holds though no fault should cause them: ${unexpected.join(', ')}`);
  return { details: `${queries} dashboard queries with data over ${window}; ${rules.length} alert rules, conditions true: ${firing.join(', ')} (expected)` };
}
