/**
 * A long-lived helper process of the bench, started with fork() and spoken to over IPC: each
 * request carries an id and gets exactly one reply with that id. The helper says `ready` first.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitExit } from './proc.js';

export interface HelperProcess<Request, Reply> {
  ask(request: Request): Promise<Reply>;
  /** Sends `closing` (if given) for a last reply, then waits for the process to exit. */
  close(closing?: Request): Promise<void>;
}

type Envelope<T> = T & { readonly id: number };

export async function forkHelper<Ready, Request extends object, Reply extends object>(
  script: URL,
  args: readonly string[],
): Promise<{ ready: Ready; helper: HelperProcess<Request, Reply> }> {
  const child: ChildProcess = fork(fileURLToPath(script), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = await new Promise<Ready>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${script.pathname} exited with ${code} before it was ready`)));
    child.once('message', (message: Ready) => resolve(message));
  });
  child.removeAllListeners('exit');
  let nextId = 1;
  const pending = new Map<number, { resolve: (reply: Reply) => void; reject: (err: Error) => void }>();
  child.on('message', (reply: Envelope<Reply>) => {
    pending.get(reply.id)?.resolve(reply);
    pending.delete(reply.id);
  });
  child.on('exit', (code) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`${script.pathname} exited with ${code}`));
    pending.clear();
  });
  const ask = (request: Request): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      child.send({ ...request, id });
    });
  const helper: HelperProcess<Request, Reply> = {
    ask,
    close: async (closing) => {
      if (closing !== undefined && child.connected) await Promise.race([ask(closing).catch(() => undefined), new Promise((r) => setTimeout(r, 3000))]);
      if (child.connected) child.disconnect();
      await waitExit(child, 3000);
    },
  };
  return { ready, helper };
}

/** The helper's side: answers each request with `handle`'s reply, under the request's id. */
export function serveRequests<Request extends object, Reply extends object>(handle: (request: Request) => Promise<Reply>): void {
  process.on('message', (message: Envelope<Request>) => {
    void handle(message).then((reply) => process.send?.({ ...reply, id: message.id }));
  });
  process.on('disconnect', () => process.exit(0));
}
