/**
 * The proxies between the bench's clients and the registry, in a process of their own so that
 * forwarding bytes never competes with the measured code for the bench's event loop:
 * client → counting proxy (test/harness/counting-proxy.ts) → [throttle proxy, with --slow] → registry.
 * Started by proxies.ts with fork(); answers `stats` and `reset` messages over IPC.
 */
import { startCountingProxy } from '../test/harness/counting-proxy.js';
import { serveRequests } from './helper-process.js';
import { startThrottleProxy, type ThrottleProxy } from './throttle-proxy.js';

export interface ProxyConfig {
  readonly registryHost: string;
  /** Present in --slow mode. */
  readonly throttle?: { readonly latencyMs: number; readonly bitsPerSecond: number };
}

export type ProxyRequest = { readonly type: 'stats' | 'reset' | 'close' };
export type ProxyReady = { readonly type: 'ready'; readonly host: string };
export type ProxyReply = { readonly type: 'stats'; readonly requests: number; readonly bytes: number } | { readonly type: 'done' };

const config = JSON.parse(process.argv[2] ?? '{}') as ProxyConfig;
let throttle: ThrottleProxy | undefined;
if (config.throttle) throttle = await startThrottleProxy({ target: config.registryHost, ...config.throttle });
const counting = await startCountingProxy(throttle?.host ?? config.registryHost);

serveRequests<ProxyRequest, ProxyReply>(async (request) => {
  if (request.type === 'stats') return { type: 'stats', requests: counting.stats.requests, bytes: counting.stats.bytesOut };
  if (request.type === 'reset') counting.resetStats();
  else {
    await counting.close();
    await throttle?.close();
  }
  return { type: 'done' };
});
process.send?.({ type: 'ready', host: counting.host } satisfies ProxyReady);
