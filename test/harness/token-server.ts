/**
 * A Distribution token server for tests, in the test process. GET `/token?service=&scope=` with
 * optional basic auth, or the OAuth2 POST (password or refresh_token grant). Valid users get every
 * action they ask for; anonymous callers get a token with no access (as Docker Hub does), so the
 * registry then refuses them. Hooks let tests count requests and spoil tokens.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signJwt } from './jwt.js';

export interface TokenServerOptions {
  service: string;
  issuer: string;
  keyPem: string;
  certPem: string;
  username: string;
  password: string;
  /** Refresh token accepted by the OAuth2 POST (Docker's identitytoken). */
  identityToken: string;
  expiresInS: number;
}

export interface TokenRequestRecord {
  method: string;
  user: string | undefined;
  scopes: string[];
}

export interface TokenServer {
  realm: string;
  /** Every token request, in order. */
  readonly requests: TokenRequestRecord[];
  /** The next `count` tokens are signed over altered claims, so the registry rejects them. */
  spoilNextTokens(count: number): void;
  setExpiresIn(seconds: number): void;
  close(): Promise<void>;
}

type Access = { type: string; name: string; actions: string[] };

function accessFromScopes(scopes: string[]): Access[] {
  return scopes.flatMap((scope) => {
    const [type, ...rest] = scope.split(':');
    const actions = rest.pop();
    const name = rest.join(':');
    return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
  });
}

function readRequestBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (data += d));
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const requests: TokenRequestRecord[] = [];
  let spoil = 0;
  let expiresIn = options.expiresInS;

  const identify = async (req: IncomingMessage, url: URL): Promise<{ user: string | undefined; scopes: string[]; ok: boolean }> => {
    if (req.method === 'POST') {
      const form = new URLSearchParams(await readRequestBody(req));
      const scopes = (form.get('scope') ?? '').split(' ').filter((s) => s !== '');
      if (form.get('grant_type') === 'refresh_token') {
        return { user: options.username, scopes, ok: form.get('refresh_token') === options.identityToken };
      }
      const ok = form.get('username') === options.username && form.get('password') === options.password;
      return { user: form.get('username') ?? undefined, scopes, ok };
    }
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
    const header = req.headers.authorization;
    if (header === undefined) return { user: undefined, scopes, ok: true };
    const decoded = Buffer.from(header.replace(/^Basic /i, ''), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = decoded.slice(0, colon);
    return { user, scopes, ok: user === options.username && decoded.slice(colon + 1) === options.password };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://token');
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    const { user, scopes, ok } = await identify(req, url);
    requests.push({ method: req.method ?? 'GET', user, scopes });
    if (!ok) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"invalid credentials"}');
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: options.issuer,
      sub: user ?? '',
      aud: options.service,
      exp: now + expiresIn,
      nbf: now - 1,
      iat: now,
      jti: randomUUID(),
      access: user === undefined ? [] : accessFromScopes(scopes),
    };
    let token = signJwt(claims, options.keyPem, options.certPem);
    if (spoil > 0) {
      spoil--;
      // Keep header and signature but change the claims: the signature no longer matches.
      const [head, , signature] = token.split('.');
      const forged = Buffer.from(JSON.stringify({ ...claims, jti: 'spoiled' })).toString('base64url');
      token = `${head}.${forged}.${signature}`;
    }
    const body = { token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    requests,
    spoilNextTokens: (count) => (spoil = count),
    setExpiresIn: (seconds) => (expiresIn = seconds),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
