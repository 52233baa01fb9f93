/** Starts proxy-process.ts and talks to it: the host clients use, byte counts, reset. */
import { forkHelper } from './helper-process.js';
import type { ProxyConfig, ProxyReady, ProxyReply, ProxyRequest } from './proxy-process.js';

export interface Proxies {
  /** `127.0.0.1:PORT`: what images are indexed and pulled through. */
  readonly host: string;
  /** Requests and response body bytes since the last reset. */
  stats(): Promise<{ requests: number; bytes: number }>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxies(config: ProxyConfig): Promise<Proxies> {
  const { ready, helper } = await forkHelper<ProxyReady, ProxyRequest, ProxyReply>(new URL('./proxy-process.js', import.meta.url), [JSON.stringify(config)]);
  return {
    host: ready.host,
    stats: async () => {
      const reply = await helper.ask({ type: 'stats' });
      return reply.type === 'stats' ? { requests: reply.requests, bytes: reply.bytes } : { requests: 0, bytes: 0 };
    },
    reset: async () => {
      await helper.ask({ type: 'reset' });
    },
    close: () => helper.close({ type: 'close' }),
  };
}
