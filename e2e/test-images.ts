/**
 * The workload images of the e2e run, made of real Debian packages as the bench's realistic image
 * is (one layer per package: `apt-get download`, `dpkg-deb --fsys-tarfile`), but smaller, so that
 * a run stays short: the C library, dash, Python's minimal interpreter with what it links, and
 * tzdata (a few thousand small files). A container chrooted into a volume of it runs the image's
 * own shell and Python. The .debs are cached ($CLIP_E2E_CACHE, default ~/.cache/clip-csi-e2e).
 *
 * umoci assembles the images (gzip layers), skopeo pushes them to the registry directly (not through
 * the proxy the system reads through, so that the proxy's log holds only the system's requests), and
 * `umoci unpack` gives the reference tree the volumes' bytes are compared with.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { run, type RunResult } from '../test/helpers/processes.js';

/** In dependency order: the bottom layer first. */
export const PACKAGES = ['libc6', 'zlib1g', 'libexpat1', 'dash', 'libpython3.11-minimal', 'python3.11-minimal', 'tzdata'] as const;

export interface WorkloadImage {
  /** `REGISTRY/REPO:TAG` as pods name it (the registry as the system reaches it). */
  ref: string;
  repo: string;
  tag: string;
  /** The manifest's digest. */
  digest: string;
  /** Layer blob digests and compressed sizes, bottom first, with the package each holds. */
  layers: Array<{ digest: string; size: number; package: string }>;
}

export interface WorkloadImages {
  /** Scenario 1, 2, 3, 6, 7: every package. */
  debian: WorkloadImage;
  /** Scenario 4 (a PVC): libc6 and dash only. */
  shell: WorkloadImage;
  /** Scenario 5 (private, with a pull secret): tzdata only. */
  zoneinfo: WorkloadImage;
  /** `debian` unpacked by umoci: the reference bytes. */
  debianRootfs: string;
}

async function must(command: string, args: string[]): Promise<RunResult> {
  const result = await run(command, args, { timeoutMs: 300_000 });
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.code ?? result.signal}):\n${result.stderr.slice(-3000)}`);
  return result;
}

async function debFiles(): Promise<Map<string, string>> {
  const dir = join(process.env['CLIP_E2E_CACHE'] ?? join(homedir(), '.cache', 'clip-csi-e2e'), 'debs');
  await mkdir(dir, { recursive: true });
  const find = async (pkg: string): Promise<string | undefined> => (await readdir(dir)).find((file) => file.startsWith(`${pkg}_`) && file.endsWith('.deb'));
  const missing: string[] = [];
  for (const pkg of PACKAGES) if ((await find(pkg)) === undefined) missing.push(pkg);
  if (missing.length > 0) await must('sh', ['-c', 'cd "$1" && shift && exec apt-get download "$@"', 'sh', dir, ...missing]);
  const files = new Map<string, string>();
  for (const pkg of PACKAGES) {
    const file = await find(pkg);
    if (file === undefined) throw new Error(`apt-get download did not produce ${pkg}`);
    files.set(pkg, join(dir, file));
  }
  return files;
}

/**
 * Builds the three images in an OCI layout under `workDir`, pushes them to `pushHost` (the
 * registry itself, with `creds` `user:password`) and names them with `pullHost` (what the system
 * reads through).
 */
export async function buildWorkloadImages(workDir: string, pushHost: string, pullHost: string, creds: string): Promise<WorkloadImages> {
  const debs = await debFiles();
  const layout = join(workDir, 'oci');
  const tars = join(workDir, 'tars');
  await mkdir(tars, { recursive: true });
  await must('umoci', ['init', '--layout', layout]);
  for (const [pkg, deb] of debs) await must('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" > "$2"', 'sh', deb, join(tars, `${pkg}.tar`)]);
  const make = async (repo: string, tag: string, packages: readonly string[]): Promise<WorkloadImage> => {
    const image = `${layout}:${repo.replace('/', '-')}`;
    await must('umoci', ['new', '--image', image]);
    for (const pkg of packages) await must('umoci', ['raw', 'add-layer', '--image', image, '--history.created_by', `dpkg-deb --fsys-tarfile ${pkg}`, join(tars, `${pkg}.tar`)]);
    await must('umoci', ['config', '--image', image, '--architecture', 'amd64', '--os', 'linux', '--config.cmd', '/bin/sh']);
    await must('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', creds, `oci:${image}`, `docker://${pushHost}/${repo}:${tag}`]);
    const raw = (await must('skopeo', ['inspect', '--raw', `oci:${image}`])).stdout;
    const manifest = JSON.parse(raw) as { layers: Array<{ digest: string; size: number }> };
    return {
      ref: `${pullHost}/${repo}:${tag}`,
      repo,
      tag,
      digest: `sha256:${createHash('sha256').update(raw).digest('hex')}`,
      layers: manifest.layers.map((layer, i) => ({ digest: layer.digest, size: layer.size, package: packages[i] ?? '' })),
    };
  };
  const debian = await make('e2e/debian', '12', PACKAGES);
  const shell = await make('e2e/shell', '1', ['libc6', 'dash']);
  const zoneinfo = await make('e2e/private-zoneinfo', '1', ['tzdata']);
  const bundle = join(workDir, 'debian-bundle');
  await must('umoci', ['unpack', '--image', `${layout}:e2e-debian`, bundle]);
  return { debian, shell, zoneinfo, debianRootfs: join(bundle, 'rootfs') };
}
