/**
 * The chart's monitoring artifacts as data (alert rules from the rendered PrometheusRule, panel
 * queries from the dashboard JSON), and a real Prometheus server (Debian's `prometheus`) on
 * loopback for the tests that send them to it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { stringify } from 'yaml';
import { CHART_DIR } from '../../scripts/helm.js';
import { freePort } from '../harness/free-port.js';
import { find, render, valuesFile } from './chart.js';

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleGroups {
  groups: Array<{ name: string; rules: AlertRule[] }>;
}

/** The PrometheusRule's groups, rendered with the controller on (every alert present). */
export async function renderedRuleGroups(): Promise<RuleGroups> {
  const rule = find(await render([valuesFile('monitoring')]), 'PrometheusRule');
  return rule['spec'] as RuleGroups;
}

export const rulesYaml = (groups: RuleGroups): string => stringify(groups);

export interface DashboardPanel {
  title: string;
  type: string;
  description?: string;
  datasource?: { type: string; uid: string };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Array<{ expr: string; refId: string; datasource?: { uid: string } }>;
}

export interface Dashboard {
  uid: string;
  templating: { list: Array<{ name: string; type: string; query?: string }> };
  panels: DashboardPanel[];
}

/** The dashboard as shipped in the chart. */
export async function chartDashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(join(CHART_DIR, 'dashboards/clip-csi.json'), 'utf8')) as Dashboard;
}

/** A panel query as Prometheus sees it once Grafana has replaced its variables. */
export const asPromQL = (expr: string, rateWindow = '1m'): string => expr.replaceAll('$__rate_interval', rateWindow);

/** clip metric names an expression reads (`_bucket` and the like folded into the histogram's name). */
export function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b(clip_[a-z0-9_]+)/g)].map((m) => (m[1] as string).replace(/_(bucket|sum|count)$/, '')))];
}

export interface QueryResult {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

export interface PrometheusServer {
  readonly url: string;
  query(expr: string): Promise<QueryResult>;
  /** Scrape targets' health as Prometheus reports it. */
  targets(): Promise<Array<{ scrapeUrl: string; health: string; labels: Record<string, string> }>>;
  stop(): Promise<void>;
}

/** Starts Prometheus on loopback scraping `jobs` (job name → host:port targets) every second. */
export async function startPrometheus(jobs: Record<string, string[]>): Promise<PrometheusServer> {
  const dir = await mkdtemp(join(tmpdir(), 'prometheus-'));
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    scrape_configs: Object.entries(jobs).map(([job, targets]) => ({ job_name: job, static_configs: [{ targets }] })),
  };
  await writeFile(join(dir, 'prometheus.yml'), stringify(config));
  const port = await freePort();
  const child: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}): ${stderr}`);
      const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`prometheus not ready within 30 s: ${stderr}`);
      await delay(100);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    async query(expr) {
      const res = await fetch(`${url}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: expr }) });
      return (await res.json()) as QueryResult;
    },
    async targets() {
      const res = await fetch(`${url}/api/v1/targets`);
      const body = (await res.json()) as { data: { activeTargets: Array<{ scrapeUrl: string; health: string; labels: Record<string, string> }> } };
      return body.data.activeTargets;
    },
    stop,
  };
}
