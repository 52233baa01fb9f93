/**
 * A deliberately small registry HTTP client for the harness (pushing test images). It is separate
 * from the product's RegistryClient so tests do not rely on the code they are testing.
 * Handles basic and bearer challenges; streamed bodies reuse the auth learnt by an earlier request.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';

export interface RegistryEndpoint {
  url: string;
  username?: string;
  password?: string;
  caCert?: string;
}

export interface HarnessResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface SendOptions {
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  /** Token scope, e.g. `repository:foo:pull,push`. */
  scope: string;
}

export class RegistryHttp {
  private readonly authByScope = new Map<string, string>();

  constructor(private readonly endpoint: RegistryEndpoint) {}

  async send(method: string, pathOrUrl: string, options: SendOptions): Promise<HarnessResponse> {
    const url = new URL(pathOrUrl, this.endpoint.url);
    const first = await this.raw(method, url, this.withAuth(options));
    const canRetry = options.body === undefined || Buffer.isBuffer(options.body);
    if (first.status !== 401 || !canRetry) return first;
    const header = await this.answerChallenge(String(first.headers['www-authenticate'] ?? ''), options.scope);
    if (header === undefined) return first;
    this.authByScope.set(options.scope, header);
    return this.raw(method, url, this.withAuth(options));
  }

  private withAuth(options: SendOptions): { headers: Record<string, string>; body?: Buffer | Readable } {
    const headers = { ...options.headers };
    const auth = this.authByScope.get(options.scope);
    if (auth !== undefined) headers['authorization'] = auth;
    return options.body === undefined ? { headers } : { headers, body: options.body };
  }

  private basic(): string | undefined {
    const { username, password } = this.endpoint;
    if (username === undefined || password === undefined) return undefined;
    return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  }

  private async answerChallenge(challenge: string, scope: string): Promise<string | undefined> {
    if (/^basic/i.test(challenge)) return this.basic();
    const realm = /realm="([^"]+)"/.exec(challenge)?.[1];
    const service = /service="([^"]+)"/.exec(challenge)?.[1];
    if (realm === undefined) return undefined;
    const tokenUrl = new URL(realm);
    if (service) tokenUrl.searchParams.set('service', service);
    tokenUrl.searchParams.set('scope', scope);
    const basic = this.basic();
    const res = await this.raw('GET', tokenUrl, { headers: basic ? { authorization: basic } : {} });
    if (res.status !== 200) throw new Error(`token server answered ${res.status}`);
    const parsed = JSON.parse(res.body.toString('utf8')) as { token?: string; access_token?: string };
    return `Bearer ${parsed.token ?? parsed.access_token ?? ''}`;
  }

  private raw(method: string, url: URL, init: { headers: Record<string, string>; body?: Buffer | Readable }): Promise<HarnessResponse> {
    return new Promise((resolve, reject) => {
      const isHttps = url.protocol === 'https:';
      const headers = { ...init.headers };
      if (Buffer.isBuffer(init.body)) headers['content-length'] = String(init.body.length);
      else if (init.body === undefined && (method === 'PUT' || method === 'POST' || method === 'PATCH')) headers['content-length'] = '0';
      const req = (isHttps ? https : http).request(
        url,
        { method, headers, agent: false, ...(isHttps && this.endpoint.caCert && { ca: this.endpoint.caCert }) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      if (init.body === undefined || Buffer.isBuffer(init.body)) req.end(init.body);
      else {
        init.body.on('error', (err) => req.destroy(err));
        init.body.pipe(req);
      }
    });
  }
}
