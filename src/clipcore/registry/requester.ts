/**
 * The request pipeline shared by every registry call: scheme choice, authentication, redirects and
 * retries. Layering, outermost first: retries (429/5xx/dropped connections, with backoff) → the auth
 * loop (401 → new credentials, at most twice) → redirects (never carrying `Authorization` to another
 * host) → one HTTP exchange.
 */
import { ClipError } from '../errors.js';
import type { Authenticator } from './authenticator.js';
import { classifyNetError, isRetryableNetError, netErrorToClipError } from './net-errors.js';
import { backoffDelay, isRetryableStatus, parseRetryAfter, sleep, type RetryPolicy } from './retry.js';
import type { Scheme, SchemePolicy } from './scheme.js';
import type { PlainRequest } from './token-fetcher.js';
import { discard, type IncomingResponse, type Transport } from './transport.js';

export interface RegistryRequest {
  registry: string;
  /** Path and query below the registry root, e.g. `/v2/library/alpine/manifests/latest`. */
  path: string;
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** Auth scope, e.g. `repository:library/alpine:pull`. */
  scope: string;
}

export interface RequesterOptions {
  retry: RetryPolicy;
  timeoutMs: number;
  maxRedirects: number;
}

/** A response plus how many attempts it took (for messages). */
export interface Answer {
  res: IncomingResponse;
  attempts: number;
}

const MAX_AUTH_ROUNDS = 2;

export class Requester {
  private readonly tlsProbes = new Map<string, Promise<Scheme>>();

  constructor(
    private readonly transport: Transport,
    private readonly schemes: SchemePolicy,
    private readonly auth: Authenticator,
    private readonly options: RequesterOptions,
  ) {}

  /** Sends a registry API request; any final status is returned, transient ones only after retries. */
  request(req: RegistryRequest): Promise<Answer> {
    return this.withRetries(`registry ${req.registry}`, () => this.authenticated(req));
  }

  /** Sends to an arbitrary URL (token realms) with retries and redirects but no registry auth. */
  async plain(req: PlainRequest): Promise<IncomingResponse> {
    const { res } = await this.withRetries(req.peer, () => this.followRedirects(req.method, req.url, req.headers, req.body));
    return res;
  }

  private async withRetries(peer: string, send: () => Promise<IncomingResponse>): Promise<Answer> {
    const { retry } = this.options;
    for (let attempt = 0; ; attempt++) {
      const attempts = attempt + 1;
      const last = attempt >= retry.retries;
      let res: IncomingResponse;
      try {
        res = await send();
      } catch (err) {
        if (err instanceof ClipError) throw err;
        if (last || !isRetryableNetError(classifyNetError(err))) throw netErrorToClipError(err, peer, attempts);
        await sleep(backoffDelay(retry, attempt));
        continue;
      }
      if (last || !isRetryableStatus(res.status)) return { res, attempts };
      const retryAfter = parseRetryAfter(res.headers['retry-after']);
      if (retryAfter !== undefined && retryAfter > retry.maxRetryAfterMs) return { res, attempts };
      discard(res);
      await sleep(Math.max(retryAfter ?? 0, backoffDelay(retry, attempt)));
    }
  }

  private async authenticated(req: RegistryRequest): Promise<IncomingResponse> {
    for (let round = 0; ; round++) {
      const authorization = await this.auth.authorization(req.registry, req.scope);
      const headers: Record<string, string> = { ...req.headers };
      if (authorization !== undefined) headers['authorization'] = authorization;
      const res = await this.toRegistry(req, headers);
      // Only the registry's own 401 drives its auth flow, not one from a redirect target.
      if (res.status !== 401 || res.url.host !== req.registry || round >= MAX_AUTH_ROUNDS) return res;
      const challenge = res.headers['www-authenticate'];
      discard(res);
      if (!(await this.auth.onUnauthorized(req.registry, req.scope, challenge, authorization))) return res;
    }
  }

  private async toRegistry(req: RegistryRequest, headers: Record<string, string>): Promise<IncomingResponse> {
    const scheme = await this.schemeFor(req.registry);
    const res = await this.followRedirects(req.method ?? 'GET', new URL(`${scheme}://${req.registry}${req.path}`), headers);
    // Remembered although it is the default, so that a session carries it: a kept worker client
    // that learned plain HTTP for this address before (the registry has since moved) takes it in.
    this.schemes.remember(req.registry, scheme);
    return res;
  }

  /**
   * HTTPS, unless configured or learned otherwise. A registry allowed plain HTTP is first asked
   * whether it speaks TLS at all (once, however many requests are waiting): only if it does not is
   * it spoken to over plain HTTP. Certificate errors never downgrade.
   */
  private async schemeFor(registry: string): Promise<Scheme> {
    if (this.schemes.hasLearned(registry) || !this.schemes.mayUsePlainHttp(registry)) return this.schemes.schemeFor(registry);
    if (this.schemes.schemeFor(registry) === 'http') return 'http';
    let probe = this.tlsProbes.get(registry);
    if (probe === undefined) {
      probe = this.transport
        .speaksTls(registry, this.options.timeoutMs)
        .then((tls): Scheme => (tls ? 'https' : 'http'))
        .finally(() => this.tlsProbes.delete(registry));
      this.tlsProbes.set(registry, probe);
    }
    const scheme = await probe;
    this.schemes.remember(registry, scheme);
    return scheme;
  }

  private async followRedirects(method: string, start: URL, headers: Record<string, string>, body?: Buffer): Promise<IncomingResponse> {
    let url = start;
    let currentMethod = method;
    let currentHeaders = headers;
    let currentBody = body;
    for (let hop = 0; ; hop++) {
      const res = await this.transport.send({
        method: currentMethod,
        url,
        headers: currentHeaders,
        timeoutMs: this.options.timeoutMs,
        ...(currentBody !== undefined && { body: currentBody }),
      });
      const location = res.headers['location'];
      if (![301, 302, 303, 307, 308].includes(res.status) || location === undefined) return res;
      discard(res);
      if (hop >= this.options.maxRedirects) {
        throw new ClipError('UNAVAILABLE', `more than ${this.options.maxRedirects} redirects from ${start.host}${start.pathname}`);
      }
      const next = new URL(location, url);
      if (next.host !== url.host || next.protocol !== url.protocol) {
        // Credentials belong to the registry: a CDN or storage host must not see them.
        currentHeaders = Object.fromEntries(Object.entries(currentHeaders).filter(([name]) => name !== 'authorization'));
      }
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && currentMethod === 'POST')) {
        currentMethod = 'GET';
        currentBody = undefined;
      }
      url = next;
    }
  }
}
