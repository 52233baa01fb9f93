/**
 * The test API server as its own process, for e2e tests and benchmarks:
 *   node dist/test/harness/kube-apiserver/main.js --dir DIR [--port P] [--crd FILE]... [--seed-pods N]
 *     [--seed-namespace NS] [--seed-template POD.yaml] [--history-size N] [--bookmark-interval-ms MS]
 * Prints one JSON line {"url":...,"kubeconfig":...} (an admin kubeconfig in DIR) when ready; exits on SIGTERM.
 */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { parse } from 'yaml';
import { KubeApiServer } from './server.js';

const program = new Command('kube-apiserver')
  .description('a Kubernetes API server for clip-csi tests (in memory)')
  .requiredOption('--dir <dir>', 'directory for the certificate and the admin kubeconfig')
  .option('--port <port>', 'port on 127.0.0.1 (default: any free port)', (v) => Number(v), 0)
  .option('--crd <file>', 'CustomResourceDefinition YAML to serve (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
  .option('--seed-pods <n>', 'create N pods in namespace default before answering', (v) => Number(v), 0)
  .option('--seed-namespace <ns>', 'namespace of the seeded pods', 'default')
  .option('--seed-template <file>', 'a pod (JSON or YAML) whose metadata and spec the seeded pods copy')
  .option('--history-size <n>', 'watch events kept per resource type', (v) => Number(v), 10_000)
  .option('--bookmark-interval-ms <ms>', 'bookmark period (0: never)', (v) => Number(v), 60_000);

async function main(): Promise<void> {
  program.parse();
  const opts = program.opts<{ dir: string; port: number; crd: string[]; seedPods: number; seedNamespace: string; seedTemplate?: string; historySize: number; bookmarkIntervalMs: number }>();
  const server = await KubeApiServer.start({
    dir: opts.dir,
    port: opts.port,
    crdFiles: opts.crd,
    historySize: opts.historySize,
    bookmarkIntervalMs: opts.bookmarkIntervalMs,
  });
  const template = opts.seedTemplate === undefined ? {} : (parse(await readFile(opts.seedTemplate, 'utf8')) as object);
  if (opts.seedPods > 0) server.seedPods(opts.seedPods, opts.seedNamespace, 'seed', template);
  const kubeconfig = await server.writeKubeconfig();
  process.stdout.write(`${JSON.stringify({ url: server.url, kubeconfig })}\n`);
  const stop = (): void => {
    void server.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`kube-apiserver: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
