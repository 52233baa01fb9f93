/**
 * Getting a bearer token from the realm a registry's challenge names (Distribution token spec):
 * GET with basic credentials (or none), or the OAuth2 POST when holding a refresh (identity) token.
 */
import { ClipError } from '../errors.js';
import { basicHeader, isBasic, type Credentials } from './credentials.js';
import { optionalString, parseJsonObject } from './json.js';
import { DEFAULT_TOKEN_LIFETIME_S } from './token-cache.js';
import { discard, readBody, type IncomingResponse } from './transport.js';

export interface PlainRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: Buffer;
  /** Who is being talked to, for error messages. */
  peer: string;
}

/** Sends without the registry auth flow (retries and redirects still apply). */
export type PlainSender = (req: PlainRequest) => Promise<IncomingResponse>;

export interface TokenRequest {
  realm: string;
  service?: string;
  scopes: string[];
  credentials?: Credentials;
  /** The registry the token is for, for messages. */
  registry: string;
}

export interface IssuedToken {
  token: string;
  expiresInS: number;
}

const CLIENT_ID = 'clip-csi';
const MAX_TOKEN_RESPONSE = 1024 * 1024;

export async function fetchToken(send: PlainSender, req: TokenRequest): Promise<IssuedToken> {
  let realm: URL;
  try {
    realm = new URL(req.realm);
  } catch {
    throw new ClipError('UNAUTHORIZED', `registry ${req.registry} named a token realm that is not a URL`);
  }
  if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
    throw new ClipError('UNAUTHORIZED', `registry ${req.registry} named a token realm with scheme ${realm.protocol}`);
  }
  const peer = `token server ${realm.host} of registry ${req.registry}`;
  const res = await send(buildRequest(realm, req, peer));
  if (res.status !== 200) {
    discard(res);
    throw tokenStatusError(res.status, peer, req);
  }
  const body = parseJsonObject(await readBody(res, MAX_TOKEN_RESPONSE, `answer of ${peer}`), `answer of ${peer}`);
  const token = optionalString(body, 'token') ?? optionalString(body, 'access_token');
  if (!token) throw new ClipError('UNAUTHORIZED', `${peer} answered without a token`);
  const expires = body['expires_in'];
  return { token, expiresInS: typeof expires === 'number' && expires > 0 ? expires : DEFAULT_TOKEN_LIFETIME_S };
}

function buildRequest(realm: URL, req: TokenRequest, peer: string): PlainRequest {
  const url = new URL(realm.href);
  const creds = req.credentials;
  if (creds !== undefined && 'identityToken' in creds) {
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: CLIENT_ID });
    if (req.service) form.set('service', req.service);
    if (req.scopes.length > 0) form.set('scope', req.scopes.join(' '));
    return {
      method: 'POST',
      url,
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: Buffer.from(form.toString(), 'utf8'),
      peer,
    };
  }
  if (req.service) url.searchParams.set('service', req.service);
  for (const scope of req.scopes) url.searchParams.append('scope', scope);
  url.searchParams.set('client_id', CLIENT_ID);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (isBasic(creds)) headers['authorization'] = basicHeader(creds);
  return { method: 'GET', url, headers, peer };
}

function tokenStatusError(status: number, peer: string, req: TokenRequest): ClipError {
  const scopes = req.scopes.join(' ');
  if (status === 401) {
    return new ClipError(
      'UNAUTHORIZED',
      req.credentials === undefined
        ? `authentication required: ${peer} refused anonymous access for ${scopes}`
        : `credentials rejected by ${peer} for ${scopes}`,
    );
  }
  if (status === 403) return new ClipError('FORBIDDEN', `${peer} denied ${scopes}`);
  return new ClipError('UNAVAILABLE', `${peer} answered HTTP ${status} for ${scopes}`);
}
