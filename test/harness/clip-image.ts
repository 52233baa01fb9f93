/**
 * The project's container image, built by scripts/build-image.sh from this checkout's build output
 * (`npm run build` must have run): pushed to a registry and/or written as an OCI archive for
 * containerd. The root filesystem and node_modules are cached by the script
 * ($CLIP_IMAGE_CACHE, default ~/.cache/clip-csi-image), so only the first build is slow.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { run } from '../helpers/processes.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BUILD_SCRIPT = fileURLToPath(new URL('../../../scripts/build-image.sh', import.meta.url));
const BUILD_TIMEOUT_MS = 10 * 60_000;

export interface BuildImageOptions {
  /** Write the image as an OCI archive here. */
  ociArchive?: string;
  /** Push to the registry named in the reference (default true). */
  push?: boolean;
}

export interface BuiltImage {
  ref: string;
  seconds: number;
  /** The script's progress lines. */
  progress: string[];
}

export async function buildClipImage(ref: string, options: BuildImageOptions = {}): Promise<BuiltImage> {
  const args = ['--no-build'];
  if (options.ociArchive) args.push('--oci-archive', options.ociArchive);
  if (options.push === false) args.push('--no-push');
  const started = Date.now();
  const result = await run(BUILD_SCRIPT, [...args, ref], { timeoutMs: BUILD_TIMEOUT_MS });
  if (result.code !== 0) throw new Error(`scripts/build-image.sh failed (${result.code ?? result.signal}):\n${result.stdout}${result.stderr}`);
  return { ref, seconds: (Date.now() - started) / 1000, progress: result.stderr.split('\n').filter((line) => line.startsWith('[build-image')) };
}

/** The version in package.json, which the image carries. */
export async function packageVersion(): Promise<string> {
  return (JSON.parse(await readFile(`${REPO_ROOT}package.json`, 'utf8')) as { version: string }).version;
}
