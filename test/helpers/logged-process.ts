/**
 * A child process that writes structured JSON log lines on stderr (`clip node`, `clip controller`):
 * its lines parsed as they come, waits for a line, and stopping it as Kubernetes would.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface LoggedProcess {
  readonly child: ChildProcess;
  /** The line that said the process started. */
  readonly started: LogLine;
  logs(): LogLine[];
  rawLogs(): string;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** SIGKILL, as a crash or an OOM kill would. */
  kill9(): Promise<void>;
  /** SIGTERM, as kubelet stopping the pod; resolves with the exit code. */
  stop(): Promise<number | null>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startLoggedProcess(
  command: string,
  args: readonly string[],
  options: { env?: Record<string, string>; startedMessage: string; name: string },
): Promise<LoggedProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...options.env } });
  let raw = '';
  let partial = '';
  const lines: LogLine[] = [];
  const waiters: Array<{ predicate: (line: LogLine) => boolean; resolve: (line: LogLine) => void }> = [];
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    raw += text;
    partial += text;
    const complete = partial.split('\n');
    partial = complete.pop() ?? '';
    for (const line of complete) {
      if (!line.trim()) continue;
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        parsed = { level: 'raw', msg: line };
      }
      lines.push(parsed);
      for (const waiter of [...waiters]) {
        if (waiter.predicate(parsed)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(parsed);
        }
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const waitForLog = (predicate: (line: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> => {
    const seen = lines.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no such log line within ${timeoutMs} ms; logs:\n${raw.slice(-4000)}`)), timeoutMs);
      waiters.push({
        predicate,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${options.name} exited (${code ?? signal}) before the expected log line; logs:\n${raw.slice(-4000)}`));
      });
    });
  };
  let started: LogLine;
  try {
    started = await waitForLog((line) => line.msg === options.startedMessage, 20_000);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  return {
    child,
    started,
    logs: () => lines,
    rawLogs: () => raw,
    waitForLog,
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const { code } = await exited;
      clearTimeout(timer);
      return code;
    },
    exited,
  };
}
