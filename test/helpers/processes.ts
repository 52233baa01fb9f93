import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** bin/clip, the `clip` command as installed (package.json's bin): it runs the built bundle. */
export const CLIP_BIN = fileURLToPath(new URL('../../../bin/clip', import.meta.url));
export const SNAPSHOT_BIN = fileURLToPath(new URL('./snapshot-tree.js', import.meta.url));

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

/** Runs a command asynchronously (never blocking: tests may serve FUSE mounts in-process). */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...(options.env && { env: options.env }) });
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
    // A child that exits without reading its input makes the write fail with EPIPE: not an error here.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

export function runClip(args: string[], options?: RunOptions): Promise<RunResult> {
  return run(CLIP_BIN, args, options);
}

/**
 * Starts `clip mount` in the background and resolves once it reports the mount is up. `args` are
 * extra flags (S3 endpoint, registry options); `env` replaces the child's environment.
 */
export interface ClipMount {
  readonly child: ChildProcess;
  /** The exit result, whenever the command ends. */
  readonly exited: Promise<RunResult>;
  /** SIGTERM (if still running) and the exit result. */
  stop(): Promise<RunResult>;
}

/**
 * Starts `clip mount <archive> <mountPoint> ...args` in a child process (the test process never
 * serves a mount), writes `input` to its stdin (a password for --password-stdin), and resolves
 * once the mount is up.
 */
export function startClipMount(
  archive: string,
  mountPoint: string,
  options: { args?: string[]; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<ClipMount> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLIP_BIN, ['mount', archive, mountPoint, ...(options.args ?? [])], {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.env && { env: options.env }),
    });
    const stderr: Buffer[] = [];
    const stdout: Buffer[] = [];
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
          exited: finished,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            return finished;
          },
        });
      }
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
    void finished.then((result) => {
      if (!started) reject(new Error(`clip mount exited early (${result.code}): ${result.stderr}`));
    });
  });
}
