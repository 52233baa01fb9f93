/**
 * Helpers for the OCI image tests: independent extraction with skopeo + umoci, tree snapshots
 * (always taken by a child process), `clip mount` with registry flags, and checks that nothing
 * was left at an output path.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run, startClipMount, type ClipMount } from './processes.js';
import type { PathSnapshot, TreeSnapshot } from './snapshot-tree.js';

/** Runs a command without blocking, with extra environment variables; rejects on a non-zero exit. */
export async function runTool(command: string, args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<string> {
  const result = await run(command, args, { env: { ...process.env, ...env }, timeoutMs });
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code ?? result.signal}: ${result.stderr}`);
  return result.stdout;
}

/**
 * Pulls `host/repo:tag` with skopeo into an OCI layout and unpacks it with umoci (as root, so
 * owners, devices and xattrs are applied). Returns the rootfs directory. Temporary files of
 * both tools go under `scratch`.
 */
export async function unpackWithUmoci(host: string, repo: string, tag: string, scratch: string, name: string): Promise<string> {
  const layout = join(scratch, `${name}-layout`);
  const bundle = join(scratch, `${name}-bundle`);
  const env = { TMPDIR: scratch };
  await runTool('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${host}/${repo}:${tag}`, `oci:${layout}:${tag}`], env);
  await runTool('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle], env);
  return join(bundle, 'rootfs');
}

export { linkGroups, snapshotOf } from './tree-compare.js';

/** A snapshot without inode numbers (they differ between filesystems; compare linkGroups instead). */
export function comparable(snapshot: TreeSnapshot, omit: (path: string, entry: PathSnapshot) => (keyof PathSnapshot)[] = () => []): Record<string, Partial<PathSnapshot>> {
  return Object.fromEntries(
    Object.entries(snapshot).map(([path, entry]) => {
      const copy: Partial<PathSnapshot> = { ...entry };
      delete copy.ino;
      for (const key of omit(path, entry)) delete copy[key];
      return [path, copy];
    }),
  );
}

/** `clip mount` with registry flags and a password on stdin (see processes.startClipMount). */
export function startClipMountWith(archive: string, mountPoint: string, extraArgs: string[] = [], stdin = ''): Promise<ClipMount> {
  return startClipMount(archive, mountPoint, { args: extraArgs, input: stdin });
}

/** Runs `fn` against a mount and always stops it; the mount's exit must be clean. */
export async function withClipMount<T>(archive: string, mountPoint: string, extraArgs: string[], stdin: string, fn: (mount: ClipMount) => Promise<T>): Promise<T> {
  const mount = await startClipMountWith(archive, mountPoint, extraArgs, stdin);
  let result: T;
  try {
    result = await fn(mount);
  } catch (err) {
    await mount.stop();
    throw err;
  }
  const stopped = await mount.stop();
  assert.equal(stopped.code, 0, stopped.stderr);
  return result;
}

/** The output directory holds nothing (no archive, no temporary file). */
export async function assertEmptyDir(dir: string): Promise<void> {
  assert.deepEqual(await readdir(dir), [], `${dir} should be empty`);
}
