/** Runs a command asynchronously (never execSync: tests may share the loop with servers). */
import { execFile, type ChildProcess } from 'node:child_process';

export function run(command: string, args: string[], options: { input?: string; cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { cwd: options.cwd, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Stops a service started by a harness: SIGTERM, then SIGKILL if it lingers past 3 s. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/** Keeps the last 20 kB a service printed, for the error when it does not start. */
export function captureLog(child: ChildProcess): () => string {
  let log = '';
  const keep = (data: Buffer): void => {
    log = (log + data.toString('utf8')).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => log;
}
