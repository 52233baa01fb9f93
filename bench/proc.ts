/** Child processes for the bench, always asynchronous (a FUSE server may share a process with us). */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** bin/clip: the `clip` command as installed (package.json's bin), running the built bundle. */
export const CLIP_BIN = fileURLToPath(new URL('../../bin/clip', import.meta.url));

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command (or a shell line with `sh -c`), resolving with its output and wall time. */
export function exec(command: string, args: readonly string[], options: SpawnOptions & { timeoutMs?: number; input?: string } = {}): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { ...options, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: Number(process.hrtime.bigint() - started) / 1e6 });
    });
    if (options.input !== undefined) {
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(options.input);
    }
  });
}

/** Like exec, but a non-zero exit is an error. */
export async function check(command: string, args: readonly string[], options: SpawnOptions & { timeoutMs?: number; input?: string } = {}): Promise<Finished> {
  const result = await exec(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.code ?? result.signal}: ${result.stderr.slice(-2000)}`);
  return result;
}

export function sh(line: string, options: SpawnOptions & { timeoutMs?: number } = {}): Promise<Finished> {
  return check('sh', ['-c', line], options);
}

/** Waits for a child to exit, killing it after `ms`. */
export function waitExit(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function commandExists(command: string): Promise<boolean> {
  const result = await exec('sh', ['-c', `command -v ${command}`]).catch(() => undefined);
  return result?.code === 0;
}
