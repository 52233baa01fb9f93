/**
 * A slow network in front of a registry, for `npm run bench -- --slow`: every request waits
 * `latencyMs` before it is forwarded (a round trip to a distant registry), and the response bodies
 * of all connections share one link of `bitsPerSecond`, served first come, first served. Request
 * bodies are not throttled (the bench pushes images directly to the registry, not through here).
 * The Host header is passed through, as the counting proxy does.
 */
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';

export interface ThrottleOptions {
  /** `127.0.0.1:PORT` of the registry. */
  readonly target: string;
  readonly latencyMs: number;
  readonly bitsPerSecond: number;
}

export interface ThrottleProxy {
  readonly host: string;
  readonly url: string;
  close(): Promise<void>;
}

/** Pieces small enough that concurrent responses interleave on the shared link. */
const PIECE_BYTES = 64 * 1024;

/** One shared link: each piece of body reserves its transmission time after whatever is queued before it. */
class Link {
  private freeAt = 0;

  constructor(private readonly bytesPerMs: number) {}

  /** Milliseconds to wait until `bytes` have crossed the link. */
  reserve(bytes: number): number {
    const now = performance.now();
    const start = Math.max(now, this.freeAt);
    this.freeAt = start + bytes / this.bytesPerMs;
    return this.freeAt - now;
  }
}

export async function startThrottleProxy(options: ThrottleOptions): Promise<ThrottleProxy> {
  const [hostname, port] = options.target.split(':') as [string, string];
  const agent = new http.Agent({ keepAlive: true });
  const link = new Link(options.bitsPerSecond / 8 / 1000);

  const relay = async (up: IncomingMessage, res: ServerResponse): Promise<void> => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    for await (const chunk of up as AsyncIterable<Buffer>) {
      for (let offset = 0; offset < chunk.length; offset += PIECE_BYTES) {
        const piece = chunk.subarray(offset, offset + PIECE_BYTES);
        const wait = link.reserve(piece.length);
        if (wait >= 1) await delay(wait);
        if (res.destroyed) return;
        if (!res.write(piece)) await once(res, 'drain');
      }
    }
    res.end();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    await delay(options.latencyMs);
    if (req.socket.destroyed) return;
    const upstream = http.request({ host: hostname, port: Number(port), method: req.method, path: req.url, headers: req.headers, agent }, (up) => {
      relay(up, res).catch(() => res.destroy());
    });
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
  const address = server.address() as AddressInfo;
  const host = `127.0.0.1:${address.port}`;
  return {
    host,
    url: `http://${host}`,
    close: () =>
      new Promise((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
