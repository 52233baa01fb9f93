/**
 * /metrics (Prometheus), /healthz (the process answers) and /readyz (readiness) over plain HTTP,
 * for the node plugin and the controller alike.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ClipError } from '../clipcore/index.js';
import type { Readiness } from './identity.js';
import type { Logger } from './log.js';

export interface HealthServer {
  /** `host:port` actually bound (port 0 picks a free one). */
  readonly address: string;
  close(): Promise<void>;
}

/** `:9100` → all interfaces; `127.0.0.1:9100`; `[::1]:9100`. */
export function parseListenAddress(address: string): { host: string | undefined; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ClipError('INVALID_ARGUMENT', `listen address ${JSON.stringify(address)} must look like :9100 or host:9100`);
  }
  const host = match[1] ?? match[2];
  return { host: host === '' ? undefined : host, port };
}

export async function startHealthServer(
  listen: string,
  metrics: { readonly registry: Registry },
  readiness: () => Promise<Readiness>,
  log: Logger,
): Promise<HealthServer> {
  const { host, port } = parseListenAddress(listen);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
    if (path === '/healthz') return reply(200, 'ok\n');
    if (path === '/readyz') {
      readiness().then(
        (result) => reply(result.ready ? 200 : 503, result.ready ? 'ready\n' : `not ready:\n${result.problems.map((p) => `- ${p}\n`).join('')}`),
        (err: Error) => reply(503, `not ready: ${err.message}\n`),
      );
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => reply(200, text, metrics.registry.contentType),
        (err: Error) => reply(500, `metrics failed: ${err.message}\n`),
      );
      return;
    }
    reply(404, 'not found: try /metrics, /healthz or /readyz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new ClipError('IO', `cannot listen on ${listen} for metrics: ${err.message}`, { cause: err })));
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const address = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  log('info', 'metrics listening', { address, paths: ['/metrics', '/healthz', '/readyz'] });
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
