/**
 * A bash process that times the commands it is given itself, with $EPOCHREALTIME around each
 * one, so that a baseline's time is what a shell user sees: not the cost of Node forking the
 * bench's large process (10–20 ms here, a third of `gzip -dc | tar -t` on a small layer), nor
 * that of the wrapper processes. Commands run one at a time, in the order given; their output is
 * discarded.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { waitExit } from './proc.js';

export interface ShellTimer {
  /** Wall milliseconds of `command` in bash; a non-zero exit is an error. */
  time(command: string): Promise<number>;
  close(): Promise<void>;
}

const MARK = '__clip_bench_timed';

export function startShellTimer(): ShellTimer {
  const bash = spawn('bash', ['--noprofile', '--norc'], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, LC_ALL: 'C' } });
  const waiting: Array<{ command: string; resolve: (ms: number) => void; reject: (err: Error) => void }> = [];
  const lines = createInterface({ input: bash.stdout });
  lines.on('line', (line) => {
    const [mark, rc, start, end] = line.split(' ');
    if (mark !== MARK) return;
    const job = waiting.shift();
    if (rc !== '0') job?.reject(new Error(`${job.command} exited with ${rc}`));
    else job?.resolve((Number(end) - Number(start)) * 1000);
  });
  bash.on('exit', (code) => {
    for (const job of waiting.splice(0)) job.reject(new Error(`bash exited with ${code} before timing ${job.command}`));
  });
  // bash runs its input line by line, so replies come back in the order the commands went in.
  // Each command's stdin is /dev/null: it must not read the commands queued after it.
  const time = (command: string): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      waiting.push({ command, resolve, reject });
      bash.stdin.write(`s=$EPOCHREALTIME; { ${command} ; } < /dev/null > /dev/null; rc=$?; e=$EPOCHREALTIME; echo "${MARK} $rc $s $e"\n`);
    });
  return {
    time,
    close: async () => {
      bash.stdin.end();
      await waitExit(bash, 3000);
    },
  };
}
