/** Starts proxy-process.ts and talks to it: the host clients use, byte counts, reset. */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ProxyConfig, ProxyReply, ProxyRequest } from './proxy-process.js';
import { waitExit } from './proc.js';

export interface Proxies {
  /** `127.0.0.1:PORT`: what images are indexed and pulled through. */
  readonly host: string;
  /** Requests and response body bytes since the last reset. */
  stats(): Promise<{ requests: number; bytes: number }>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxies(config: ProxyConfig): Promise<Proxies> {
  const child: ChildProcess = fork(fileURLToPath(new URL('./proxy-process.js', import.meta.url)), [JSON.stringify(config)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const host = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`proxy process exited with ${code}`)));
    child.once('message', (message: ProxyReply) => {
      if (message.type === 'ready') resolve(message.host);
    });
  });
  child.removeAllListeners('exit');
  let nextId = 1;
  const pending = new Map<number, (reply: ProxyReply) => void>();
  child.on('message', (reply: ProxyReply) => {
    if ('id' in reply) {
      pending.get(reply.id)?.(reply);
      pending.delete(reply.id);
    }
  });
  const ask = (type: ProxyRequest['type']): Promise<ProxyReply> =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      child.send({ id, type } satisfies ProxyRequest);
    });
  return {
    host,
    stats: async () => {
      const reply = await ask('stats');
      return reply.type === 'stats' ? { requests: reply.requests, bytes: reply.bytes } : { requests: 0, bytes: 0 };
    },
    reset: async () => {
      await ask('reset');
    },
    close: async () => {
      if (child.connected) await Promise.race([ask('close'), new Promise((r) => setTimeout(r, 3000))]);
      await waitExit(child, 3000);
    },
  };
}
