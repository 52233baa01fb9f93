/**
 * One HTTP exchange over node:http/https with keep-alive agents. Node's own https is used (not fetch)
 * because the client needs extra CA certificates, manual redirects and streaming bodies.
 * The timeout is an inactivity timeout: it covers waiting for headers and every pause in the body.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { connect as tlsConnect, createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { ClipError } from '../errors.js';
import { classifyNetError, RequestTimeoutError } from './net-errors.js';

export interface OutgoingRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: Buffer;
  timeoutMs: number;
}

export interface IncomingResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  /** The URL that produced this response (after redirects). */
  url: URL;
}

export interface TransportOptions {
  caCertificates?: readonly (string | Buffer)[];
  userAgent: string;
  maxSockets?: number;
}

export class Transport {
  private readonly httpAgent: http.Agent;
  private httpsAgentMade: https.Agent | undefined;
  private readonly userAgent: string;
  private readonly maxSockets: number;
  private readonly caCertificates: readonly (string | Buffer)[];

  constructor(options: TransportOptions) {
    this.maxSockets = options.maxSockets ?? 32;
    this.userAgent = options.userAgent;
    this.caCertificates = options.caCertificates ?? [];
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: this.maxSockets, scheduling: 'lifo' });
  }

  /**
   * Made on first use. Extra CAs go into one SecureContext for all of this transport's connections:
   * given as `ca`, every new connection would parse Node's ~140 bundled roots again (about 25 ms of
   * CPU each). `ca` replaces those roots, so the extra CAs are appended to them, not given alone.
   */
  private get httpsAgent(): https.Agent {
    this.httpsAgentMade ??= new https.Agent({
      keepAlive: true,
      maxSockets: this.maxSockets,
      scheduling: 'lifo',
      ...(this.caCertificates.length > 0 && { secureContext: createSecureContext({ ca: [...rootCertificates, ...this.caCertificates] }) }),
    });
    return this.httpsAgentMade;
  }

  send(req: OutgoingRequest): Promise<IncomingResponse> {
    const isHttps = req.url.protocol === 'https:';
    if (!isHttps && req.url.protocol !== 'http:') {
      return Promise.reject(new ClipError('INVALID_ARGUMENT', `unsupported URL scheme ${req.url.protocol}`));
    }
    const headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers };
    if (req.body !== undefined) headers['content-length'] = String(req.body.length);
    const options: http.RequestOptions = {
      method: req.method,
      headers,
      agent: isHttps ? this.httpsAgent : this.httpAgent,
    };
    return new Promise((resolve, reject) => {
      const outgoing = (isHttps ? https : http).request(req.url, options, (res) => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url: req.url });
      });
      outgoing.setTimeout(req.timeoutMs, () => outgoing.destroy(new RequestTimeoutError(req.timeoutMs)));
      outgoing.on('error', reject);
      outgoing.end(req.body);
    });
  }

  /**
   * Whether `host` (`name:port`) completes a TLS handshake, for a registry allowed both HTTPS and
   * plain HTTP: it decides the scheme, nothing more. No certificate is checked here, as requests
   * check them; a peer that speaks TLS is spoken to with HTTPS, whatever its certificate.
   */
  speaksTls(host: string, timeoutMs: number): Promise<boolean> {
    const { hostname, port } = new URL(`https://${host}`);
    const name = hostname.replace(/^\[(.*)\]$/, '$1');
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({
        host: name,
        port: Number(port || 443),
        ...(isIP(name) === 0 && { servername: name }),
        secureContext: probeContext(),
        rejectUnauthorized: false,
      });
      socket.setTimeout(timeoutMs, () => socket.destroy(new RequestTimeoutError(timeoutMs)));
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', (err) => (classifyNetError(err) === 'not-tls' ? resolve(false) : reject(err)));
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgentMade?.destroy();
  }
}

let probeContextMade: SecureContext | undefined;

/**
 * The context of `speaksTls`: it trusts no CA, so making it skips parsing Node's bundled roots
 * (about 25 ms of CPU, once per process), which a plain-HTTP registry never needs.
 */
function probeContext(): SecureContext {
  probeContextMade ??= createSecureContext({ ca: [] });
  return probeContextMade;
}

/** Reads a whole body, refusing more than `limit` bytes (manifests and configs are small). */
export async function readBody(res: IncomingResponse, limit: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    res.body.destroy();
    throw new ClipError('INVALID_ARGUMENT', `${what} is ${declared} bytes, more than the ${limit} allowed`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > limit) {
      res.body.destroy();
      throw new ClipError('INVALID_ARGUMENT', `${what} is more than the ${limit} bytes allowed`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}

/** Discards a body so its socket can return to the keep-alive pool. */
export function discard(res: IncomingResponse): void {
  res.body.resume();
  res.body.on('error', () => undefined);
}
