/**
 * An HTTP proxy in front of a plain-HTTP server (a test registry) that counts what it serves and
 * injects faults on demand: an error status, a dropped connection, a body cut short (cleanly or by
 * a reset), a flipped byte, a delay, or a redirect. The Host header is passed through unchanged, so
 * URLs the registry builds (upload locations) point back at the proxy.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

export type Fault =
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Close the connection without any response. */
  | { kind: 'drop' }
  /** Send headers (with the real Content-Length) and `bytes` body bytes, then reset the connection. */
  | { kind: 'drop-after'; bytes: number }
  /** Send only `bytes` body bytes and end the response cleanly (chunked, no Content-Length). */
  | { kind: 'truncate'; bytes: number }
  /** Invert the body byte at `offset`. */
  | { kind: 'flip'; offset: number }
  /** Wait before forwarding. */
  | { kind: 'delay'; ms: number }
  | { kind: 'redirect'; location: string; status?: number };

export interface RequestInfo {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

export interface FaultRule {
  /** Which requests; default all. A RegExp is tested against `METHOD path`. */
  match?: RegExp | ((req: RequestInfo) => boolean);
  /** How many matching requests get the fault; default 1. */
  times?: number;
}

export interface ProxyStats {
  requests: number;
  /** Response body bytes sent to clients. */
  bytesOut: number;
  /** Per path (without query): requests and body bytes. */
  byPath: Map<string, { requests: number; bytes: number }>;
  statuses: Map<number, number>;
  /** Every request seen, in order. */
  log: RequestInfo[];
  /** Requests being answered now, and the most at any one time (since the last reset). */
  inFlight: number;
  maxInFlight: number;
}

/** A fault added to the proxy: how many requests it has hit so far. */
export interface AddedFault {
  readonly hits: number;
}

export interface CountingProxy {
  host: string;
  url: string;
  stats: ProxyStats;
  /** Body bytes served for paths containing `fragment` (e.g. a blob digest). */
  bytesFor(fragment: string): number;
  requestsFor(fragment: string): number;
  addFault(fault: Fault, rule?: FaultRule): AddedFault;
  clearFaults(): void;
  resetStats(): void;
  close(): Promise<void>;
}

interface ActiveRule {
  fault: Fault;
  matches: (req: RequestInfo) => boolean;
  remaining: number;
  hits: number;
}

function emptyStats(): ProxyStats {
  return { requests: 0, bytesOut: 0, byPath: new Map(), statuses: new Map(), log: [], inFlight: 0, maxInFlight: 0 };
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const targetUrl = new URL(target.includes('://') ? target : `http://${target}`);
  const agent = new http.Agent({ keepAlive: true });
  let stats = emptyStats();
  let rules: ActiveRule[] = [];

  const takeFault = (info: RequestInfo): Fault | undefined => {
    const rule = rules.find((r) => r.remaining > 0 && r.matches(info));
    if (rule === undefined) return undefined;
    rule.remaining--;
    rule.hits++;
    return rule.fault;
  };

  const count = (path: string, status: number, bytes: number, isNewRequest: boolean): void => {
    const entry = stats.byPath.get(path) ?? { requests: 0, bytes: 0 };
    if (isNewRequest) entry.requests++;
    entry.bytes += bytes;
    stats.byPath.set(path, entry);
    stats.bytesOut += bytes;
    if (isNewRequest) stats.statuses.set(status, (stats.statuses.get(status) ?? 0) + 1);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const info: RequestInfo = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers };
    const path = info.path.split('?')[0] as string;
    stats.requests++;
    stats.log.push(info);
    const counted = stats;
    counted.inFlight++;
    counted.maxInFlight = Math.max(counted.maxInFlight, counted.inFlight);
    res.on('close', () => counted.inFlight--);
    const fault = takeFault(info);
    if (fault?.kind === 'delay') {
      await delay(fault.ms);
      if (req.socket.destroyed) return; // the client gave up meanwhile
    }
    if (fault?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status' || fault?.kind === 'redirect') {
      req.resume();
      const status = fault.kind === 'status' ? fault.status : (fault.status ?? 307);
      const headers = fault.kind === 'status' ? (fault.headers ?? {}) : { location: fault.location };
      const body = fault.kind === 'status' ? (fault.body ?? '') : '';
      count(path, status, Buffer.byteLength(body), true);
      res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) }).end(body);
      return;
    }
    forward(req, res, info, path, fault);
  };

  const forward = (req: IncomingMessage, res: ServerResponse, info: RequestInfo, path: string, fault: Fault | undefined): void => {
    const upstream = http.request(
      { host: targetUrl.hostname, port: targetUrl.port, method: info.method, path: info.path, headers: req.headers, agent },
      (up) => {
        const headers = { ...up.headers };
        if (fault?.kind === 'truncate') delete headers['content-length'];
        res.writeHead(up.statusCode ?? 502, headers);
        count(path, up.statusCode ?? 502, 0, true);
        let sent = 0;
        up.on('data', (chunk: Buffer) => {
          let data = chunk;
          if (fault?.kind === 'flip' && fault.offset >= sent && fault.offset < sent + data.length) {
            data = Buffer.from(data);
            const i = fault.offset - sent;
            data[i] = (data[i] as number) ^ 0xff;
          }
          const limit = fault?.kind === 'truncate' || fault?.kind === 'drop-after' ? fault.bytes : Infinity;
          if (sent + data.length >= limit) {
            const part = data.subarray(0, Math.max(0, limit - sent));
            sent += part.length;
            count(path, 0, part.length, false);
            up.removeAllListeners('data');
            up.removeAllListeners('end');
            up.removeAllListeners('error');
            up.on('error', () => undefined);
            up.destroy();
            if (fault?.kind === 'truncate') res.end(part);
            else res.write(part, () => res.socket?.destroy());
            return;
          }
          sent += data.length;
          count(path, 0, data.length, false);
          if (!res.write(data)) {
            up.pause();
            res.once('drain', () => up.resume());
          }
        });
        up.on('end', () => res.end());
        up.on('error', () => res.destroy());
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const sum = (fragment: string, pick: (e: { requests: number; bytes: number }) => number): number =>
    [...stats.byPath].filter(([p]) => p.includes(fragment)).reduce((n, [, e]) => n + pick(e), 0);

  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    get stats() {
      return stats;
    },
    bytesFor: (fragment) => sum(fragment, (e) => e.bytes),
    requestsFor: (fragment) => sum(fragment, (e) => e.requests),
    addFault: (fault, rule = {}) => {
      const m = rule.match;
      const matches = m === undefined ? () => true : m instanceof RegExp ? (r: RequestInfo) => m.test(`${r.method} ${r.path}`) : m;
      const active: ActiveRule = { fault, matches, remaining: rule.times ?? 1, hits: 0 };
      rules.push(active);
      return {
        get hits() {
          return active.hits;
        },
      };
    },
    clearFaults: () => (rules = []),
    resetStats: () => (stats = emptyStats()),
    close: () =>
      new Promise((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
