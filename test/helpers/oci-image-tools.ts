/**
 * Helpers for the OCI image tests: independent extraction with skopeo + umoci, tree snapshots
 * (always taken by a child process), `clip mount` with registry flags, and checks that nothing
 * was left at an output path.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CLIP_BIN, SNAPSHOT_BIN, type RunResult } from './processes.js';
import type { PathSnapshot, TreeSnapshot } from './snapshot-tree.js';

/** Runs a command without blocking, with extra environment variables; rejects on a non-zero exit. */
export function runTool(command: string, args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(out).toString());
      else reject(new Error(`${command} ${args.join(' ')} exited ${code ?? signal}: ${Buffer.concat(err).toString()}`));
    });
  });
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

export async function snapshotOf(root: string): Promise<TreeSnapshot> {
  const result = await runChild(process.execPath, [SNAPSHOT_BIN, root]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as TreeSnapshot;
}

/** Groups of paths sharing an inode (hard links), sorted. */
export function linkGroups(snapshot: TreeSnapshot): string[][] {
  const groups = new Map<number, string[]>();
  for (const [path, entry] of Object.entries(snapshot)) {
    if (entry.type === 'directory') continue;
    groups.set(entry.ino, [...(groups.get(entry.ino) ?? []), path]);
  }
  return [...groups.values()].filter((paths) => paths.length > 1).map((paths) => paths.sort()).sort();
}

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

export function runChild(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() });
    });
    // A child that exits without reading its input fails the write with EPIPE: not an error here.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

export interface ClipMount {
  readonly child: ChildProcess;
  stop(): Promise<RunResult>;
}

/**
 * Starts `clip mount <archive> <mountPoint> ...extraArgs` in a child process (the test process
 * never serves a mount), writes `stdin` (a password for --password-stdin), and resolves once the
 * mount is up.
 */
export function startClipMountWith(archive: string, mountPoint: string, extraArgs: string[] = [], stdin = ''): Promise<ClipMount> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIP_BIN, 'mount', archive, mountPoint, ...extraArgs], { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let started = false;
    const finished = new Promise<RunResult>((done) => {
      child.on('close', (code, signal) => done({ code, signal, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() }));
    });
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr.push(chunk);
      if (!started && Buffer.concat(stderr).toString().includes('"msg":"mounted"')) {
        started = true;
        resolve({
          child,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            return finished;
          },
        });
      }
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
    void finished.then((result) => {
      if (!started) reject(new Error(`clip mount exited early (${result.code}): ${result.stderr}`));
    });
  });
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
