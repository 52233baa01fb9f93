/**
 * `npm run e2e`: the whole system on one machine, in containers (issue 15; e2e/README.md). Starts
 * everything below kubelet (e2e/cluster.ts), runs scenarios 1–8 in order (later ones use pods the
 * earlier ones left running), prints one line per scenario with its timings, then tears everything
 * down whatever happened and checks that nothing is left. Exit code 0 only if all of it passed.
 * Needs root (containerd, mounts) and the packages of scripts/setup.sh; run `npm run build` first
 * (`npm run e2e` does).
 */
import { dirname } from 'node:path';
import { startCluster, Teardown, WRONG_PASSWORD, type Cluster } from './cluster.js';
import { mountsUnder, processesLeft, secretsIn, unexpectedRegistryRequests, unexpectedStatuses } from './final-checks.js';
import { scenario6, scenario7, scenario8 } from './scenarios-faults.js';
import { scenario1, scenario2, scenario3, scenario4, scenario5, type RunState, type ScenarioResult } from './scenarios-volumes.js';

const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

function line(n: number, name: string, seconds: number, result: ScenarioResult): string {
  const timing = [
    result.publishMs !== undefined ? `publish ${result.publishMs.toFixed(0)} ms` : undefined,
    result.firstReadMs !== undefined ? `first read ${result.firstReadMs.toFixed(1)} ms` : undefined,
  ].filter(Boolean);
  return `e2e ${n} ${name}: PASS ${seconds.toFixed(1)} s${timing.length ? ` | ${timing.join(', ')}` : ''} | ${result.details}`;
}

async function runScenarios(cluster: Cluster, started: number): Promise<string[]> {
  const state: RunState = {};
  const scenarios: Array<[string, () => Promise<ScenarioResult>]> = [
    ['read-only image volume on node A', () => scenario1(cluster, state)],
    ['same image on node B', () => scenario2(cluster, state)],
    ['writable inline volume', () => scenario3(cluster, state)],
    ['PVC through CreateVolume', () => scenario4(cluster)],
    ['private image, pull secret', () => scenario5(cluster)],
    ['registry stopped mid-reads', () => scenario6(cluster, state)],
    ['node plugin killed and restarted', () => scenario7(cluster, state)],
    ['Prometheus: dashboard and alerts', () => scenario8(cluster, (performance.now() - started) / 1000)],
  ];
  const failures: string[] = [];
  for (const [i, [name, scenario]] of scenarios.entries()) {
    const t0 = performance.now();
    try {
      const result = await scenario();
      log(line(i + 1, name, (performance.now() - t0) / 1000, result));
    } catch (error) {
      failures.push(`scenario ${i + 1}`);
      log(`e2e ${i + 1} ${name}: FAIL ${((performance.now() - t0) / 1000).toFixed(1)} s | ${describe(error)}`);
    }
  }
  // The pods handed between scenarios go as kubelet would delete them.
  for (const [kubelet, pod] of [
    [cluster.kubelets[0], state.readerA],
    [cluster.kubelets[1], state.readerB],
  ] as const) {
    if (kubelet && pod) await kubelet.deletePod(pod).catch((error: unknown) => failures.push(`deleting ${pod.name}: ${describe(error)}`));
  }
  return failures;
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    log('e2e: run as root (containerd, runc and mounts need it)');
    return 2;
  }
  const started = performance.now();
  const failures: string[] = [];
  let cluster: Cluster | undefined;
  const teardown = new Teardown();
  // Interrupted (Ctrl-C, CI's timeout): tear down what was started before going.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`e2e: ${signal}, tearing down`);
      void teardown.run().finally(() => process.exit(130));
    });
  }
  try {
    cluster = await startCluster(log, teardown);
    log(`e2e setup: ${((performance.now() - started) / 1000).toFixed(1)} s (${cluster.timings.map(([what, s]) => `${what} ${s.toFixed(1)} s`).join('; ')})`);
    failures.push(...(await runScenarios(cluster, started)));
    const requests = unexpectedRegistryRequests(cluster.proxy.stats.log, cluster.images);
    const statuses = unexpectedStatuses(cluster.proxy.stats.statuses);
    if (requests.length + statuses.length > 0) failures.push(`registry log: unexpected requests ${requests.slice(0, 20).join(', ')}; statuses ${statuses.join(', ')}`);
    const { registry, s3 } = cluster;
    const leaked = secretsIn(
      { controller: cluster.controller.task.output(), ...Object.fromEntries(cluster.nodes.map((node) => [node.name, node.output()])) },
      {
        'the registry password': registry.password ?? '',
        'the registry basic auth': Buffer.from(`${registry.username}:${registry.password}`).toString('base64'),
        "the wrong secret's password": WRONG_PASSWORD,
        'the S3 secret key': s3.credentials.secretAccessKey,
      },
    );
    if (leaked.length > 0) failures.push(`credentials logged: ${leaked.join(', ')}`);
    log(`e2e logs: ${leaked.length} credentials found in the controller's and node plugins' logs`);
    log(`e2e registry log: ${cluster.proxy.stats.log.length} requests, ${requests.length} unexpected; statuses ${[...cluster.proxy.stats.statuses].map(([s, n]) => `${s} ×${n}`).join(', ')}`);
  } catch (error) {
    failures.push(`setup: ${describe(error)}`);
    log(`e2e setup failed: ${describe(error)}`);
  } finally {
    if (cluster) {
      const root = cluster.root;
      const containerdDir = dirname(cluster.containerd.address);
      if (failures.length > 0) {
        log(`--- controller output (last 6000 characters) ---\n${cluster.controller.task.output().slice(-6000)}`);
        for (const node of cluster.nodes) log(`--- ${node.name} output (last 6000 characters) ---\n${node.output().slice(-6000)}`);
      }
      const errors = await cluster.stop();
      failures.push(...errors.map((error) => `teardown: ${error}`));
      const mounts = await mountsUnder(root);
      const processes = await processesLeft([root, containerdDir]);
      if (mounts.length > 0) failures.push(`mounts left: ${mounts.join(', ')}`);
      if (processes.length > 0) failures.push(`processes left: ${processes.join('; ')}`);
      log(`e2e teardown: ${mounts.length} mounts and ${processes.length} processes left under ${root}`);
    }
  }
  const total = ((performance.now() - started) / 1000).toFixed(0);
  if (failures.length > 0) {
    log(`e2e FAILED in ${total} s: ${failures.join('; ')}`);
    return 1;
  }
  log(`e2e passed in ${total} s`);
  return 0;
}

process.exitCode = await main();
