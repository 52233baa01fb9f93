/**
 * A real registry for tests: Debian's `docker-registry` (distribution 2.8) on a free loopback port,
 * with its config, storage and certificates in a temporary directory that stop() removes.
 * Options: no auth, htpasswd basic auth, or token auth backed by an in-process token server; TLS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from './free-port.js';
import { captureLog, run, stopProcess } from './run.js';
import { createSelfSignedCert } from './tls-cert.js';
import { startTokenServer, type TokenServer } from './token-server.js';

export type RegistryAuth = 'none' | 'basic' | 'token';

export interface StartRegistryOptions {
  auth?: RegistryAuth;
  tls?: boolean;
  /** Token lifetime the token server announces (token auth only). Default 300 s. */
  tokenExpiresInS?: number;
}

export interface RegistryHandle {
  /** `127.0.0.1:PORT` */
  host: string;
  /** `http://127.0.0.1:PORT` or `https://...` */
  url: string;
  auth: RegistryAuth;
  username?: string;
  password?: string;
  /** Refresh token the token server accepts (token auth only). */
  identityToken?: string;
  /** PEM of the registry's self-signed certificate (TLS only). */
  caCert?: string;
  tokenServer?: TokenServer;
  /** The registry's recent log output, for diagnosing failures. */
  logs(): string;
  stop(): Promise<void>;
}

const SERVICE = 'clip-test-registry';
const ISSUER = 'clip-test-issuer';
const START_TIMEOUT_MS = 15_000;

export async function startRegistry(options: StartRegistryOptions = {}): Promise<RegistryHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-registry-'));
  let tokenServer: TokenServer | undefined;
  try {
    const auth = options.auth ?? 'none';
    const username = auth === 'none' ? undefined : 'tester';
    const password = auth === 'none' ? undefined : randomBytes(9).toString('base64url');
    const identityToken = auth === 'token' ? randomBytes(12).toString('base64url') : undefined;
    const lines = ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true'];
    lines.push('storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'data')}`, '  delete:', '    enabled: true');
    if (auth === 'basic') {
      const htpasswd = await run('htpasswd', ['-Bbn', username as string, password as string]);
      await writeFile(join(dir, 'htpasswd'), htpasswd);
      lines.push('auth:', '  htpasswd:', '    realm: clip-test', `    path: ${join(dir, 'htpasswd')}`);
    }
    if (auth === 'token') {
      const signing = await createSelfSignedCert(dir, 'token-signer', 'clip-token-signer');
      tokenServer = await startTokenServer({
        service: SERVICE,
        issuer: ISSUER,
        keyPem: signing.keyPem,
        certPem: signing.certPem,
        username: username as string,
        password: password as string,
        identityToken: identityToken as string,
        expiresInS: options.tokenExpiresInS ?? 300,
      });
      lines.push('auth:', '  token:', `    realm: ${tokenServer.realm}`, `    service: ${SERVICE}`, `    issuer: ${ISSUER}`);
      lines.push(`    rootcertbundle: ${signing.certPath}`);
    }
    const tls = options.tls === true ? await createSelfSignedCert(dir, 'registry') : undefined;
    const started = await launch(dir, lines, tls);
    const handle: RegistryHandle = {
      host: started.host,
      url: `${tls ? 'https' : 'http'}://${started.host}`,
      auth,
      logs: started.logs,
      stop: async () => {
        await stopProcess(started.child);
        await tokenServer?.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
    if (username !== undefined) handle.username = username;
    if (password !== undefined) handle.password = password;
    if (identityToken !== undefined) handle.identityToken = identityToken;
    if (tls) handle.caCert = tls.certPem;
    if (tokenServer) handle.tokenServer = tokenServer;
    return handle;
  } catch (err) {
    await tokenServer?.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Starts the process on a free port; tries again if another process grabbed the port first. */
async function launch(
  dir: string,
  baseLines: string[],
  tls: { certPath: string; keyPath: string; certPem: string } | undefined,
): Promise<{ child: ChildProcess; host: string; logs: () => string }> {
  for (let attempt = 0; ; attempt++) {
    const host = `127.0.0.1:${await freePort()}`;
    const lines = [...baseLines, 'http:', `  addr: ${host}`, `  secret: ${randomBytes(16).toString('hex')}`];
    if (tls) lines.push('  tls:', `    certificate: ${tls.certPath}`, `    key: ${tls.keyPath}`);
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, `${lines.join('\n')}\n`);
    const child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    const logs = captureLog(child);
    try {
      await waitReady(child, host, tls?.certPem);
      return { child, host, logs };
    } catch (err) {
      await stopProcess(child);
      if (attempt >= 2) throw new Error(`docker-registry did not start: ${(err as Error).message}\n${logs()}`);
    }
  }
}

async function waitReady(child: ChildProcess, host: string, ca: string | undefined): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited with ${child.exitCode ?? child.signalCode}`);
    const status = await probe(host, ca).catch(() => 0);
    if (status === 200 || status === 401) return;
    await delay(50);
  }
  throw new Error(`no answer on ${host} within ${START_TIMEOUT_MS} ms`);
}

function probe(host: string, ca: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const url = `${ca ? 'https' : 'http'}://${host}/v2/`;
    const req = (ca ? https : http).get(url, { agent: false, timeout: 1000, ...(ca && { ca }) }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
