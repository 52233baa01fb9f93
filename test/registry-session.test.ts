/**
 * RegistrySession: a client hands what it learned (scheme, auth scheme, bearer tokens) to another
 * client, as createFromOCIImage does for its layer workers; and each thread keeps its client from one
 * image to the next (kept-client.ts). Against real registries: token requests are counted by the test
 * token server, 401s by a counting proxy, connections and TLS attempts on the wire by a TCP tap.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ArchiveReader, createFromOCIImage, RegistryClient, type RegistryClientOptions, type RegistrySession } from '../src/clipcore/index.js';
import { CREDENTIALS_MAX_AGE_MS, CredentialResolver } from '../src/clipcore/registry/credential-resolver.js';
import { expectClipError } from './harness/expect-error.js';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy.js';
import { pushImageDetailed, type PushedImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { buildTarLayer, patternContent } from './harness/tar-layer.js';
import { startTcpTap, type TcpTap } from './harness/tcp-tap.js';

/** Four distinct layers (several workers, several blobs). */
const layers = [0, 1, 2, 3].map((i) =>
  buildTarLayer([
    { type: 'file', path: `layer-${i}/hello.txt`, content: `hello from layer ${i}\n` },
    { type: 'file', path: `layer-${i}/data.bin`, content: patternContent(50_000, i + 1) },
  ]),
);

async function withClient<T>(options: RegistryClientOptions, fn: (c: RegistryClient) => Promise<T>): Promise<T> {
  const client = new RegistryClient({ retryBaseDelayMs: 5, ...options });
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-session-'));
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('session hand-off with token auth', () => {
  let registry: RegistryHandle;
  let proxy: CountingProxy;
  let image: PushedImage;
  let ref: string;

  before(async () => {
    registry = await startRegistry({ auth: 'token', tokenExpiresInS: 300 });
    image = await pushImageDetailed(registry, 'tok/layers', 'v1', layers);
    proxy = await startCountingProxy(registry.host);
    ref = `${proxy.host}/tok/layers:v1`;
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });

  const server = (): NonNullable<RegistryHandle['tokenServer']> => {
    assert.ok(registry.tokenServer);
    return registry.tokenServer;
  };
  /** Explicit credentials (no docker config read) and a fresh count of token requests and 401s. */
  const options = (): RegistryClientOptions => ({ auth: { username: registry.username ?? '', password: registry.password ?? '' }, env: { HOME: work, PATH: '' } });
  const counters = (): (() => { tokens: number; unauthorized: number }) => {
    const tokens = server().requests.length;
    proxy.resetStats();
    return () => ({ tokens: server().requests.length - tokens, unauthorized: proxy.stats.statuses.get(401) ?? 0 });
  };
  const learnedSession = (): Promise<RegistrySession> => withClient(options(), async (c) => (await c.resolveManifest(ref), c.session()));

  it('createFromOCIImage fetches one token for the manifest and every layer', async () => {
    const count = counters();
    const { auth, ...rest } = options();
    const outputPath = join(work, 'token.clip');
    const result = await createFromOCIImage({ imageRef: ref, outputPath, auth, registry: rest, concurrency: 2 });
    assert.equal(result.layers, 4);
    // Before the hand-off: one token and one 401 per layer on top of the manifest's.
    assert.deepEqual(count(), { tokens: 1, unauthorized: 1 });
    for (const layer of image.layers) assert.equal(proxy.requestsFor(layer.digest), 1);
    // No token in the archive: every token from this server starts with the same JWT header.
    const tokenHeader = (await learnedSession()).tokens[0]?.token.split('.')[0] ?? '';
    assert.ok(tokenHeader.length > 100);
    await assertArchiveLacks(outputPath, [tokenHeader, registry.password ?? '']);
  });

  it('holds scheme, auth scheme and a live token, without credentials, and survives structuredClone', async () => {
    const session = await learnedSession();
    assert.deepEqual(session.schemes, [{ registry: proxy.host, scheme: 'http' }]);
    assert.deepEqual(session.auth, [{ registry: proxy.host, kind: 'bearer', realm: server().realm, service: 'clip-test-registry' }]);
    assert.equal(session.tokens.length, 1);
    assert.equal(session.tokens[0]?.scope, 'repository:tok/layers:pull');
    assert.ok((session.tokens[0]?.validForMs ?? 0) > 250_000);
    assert.deepEqual(structuredClone(session), session);
    assert.deepEqual(JSON.parse(JSON.stringify(session)), session);
    assert.ok(!JSON.stringify(session).includes(registry.password ?? ''));
  });

  it('a seeded client (from a cloned session) neither fetches a token nor meets a 401', async () => {
    const session = structuredClone(await learnedSession());
    const count = counters();
    await withClient({ ...options(), session }, async (c) => {
      const resolved = await c.resolveManifest(ref);
      await c.fetchBlob(ref, image.layers[0]?.digest ?? '');
      assert.equal(resolved.digest, image.digest);
    });
    assert.deepEqual(count(), { tokens: 0, unauthorized: 0 });
  });

  it('a token the registry refuses is replaced through the normal flow', async () => {
    const session = await learnedSession();
    server().spoilNextTokens(1);
    const spoiled = await fetchToken(server().realm, 'repository:tok/layers:pull', options());
    const count = counters();
    const seeded = { ...session, tokens: session.tokens.map((t) => ({ ...t, token: spoiled })) };
    const resolved = await withClient({ ...options(), session: seeded }, (c) => c.resolveManifest(ref));
    assert.equal(resolved.digest, image.digest);
    assert.deepEqual(count(), { tokens: 1, unauthorized: 1 });
    // The seeded token went first (not an anonymous request), then a fresh one.
    const sent = proxy.stats.log.map((r) => r.headers.authorization);
    assert.equal(sent[0], `Bearer ${spoiled}`);
    assert.ok(sent[1]?.startsWith('Bearer ') && sent[1] !== sent[0]);
  });

  it('an expired token is dropped, never outlives the original, and is refreshed', async () => {
    server().setExpiresIn(1);
    try {
      const session = await learnedSession();
      const token = session.tokens[0];
      assert.ok(token !== undefined && token.validForMs <= 1000);
      await delay(200);
      // Handed over 200 ms later: it is dropped when the original would have been, not 200 ms after.
      await withClient({ ...options(), session }, async (c) => {
        const again = c.session();
        assert.ok(again.takenAtMs + (again.tokens[0]?.validForMs ?? 0) <= session.takenAtMs + token.validForMs);
      });
      await delay(session.takenAtMs + token.validForMs - Date.now() + 20);
      const count = counters();
      await withClient({ ...options(), session }, (c) => c.resolveManifest(ref));
      // The auth scheme is still known: the new token is fetched up front, with no 401 first.
      assert.deepEqual(count(), { tokens: 1, unauthorized: 0 });
    } finally {
      server().setExpiresIn(300);
    }
  });

  /** Indexes `ref` with `registryOptions` (auth included), in this process. */
  const index = async (registryOptions: RegistryClientOptions, name: string): Promise<void> => {
    const { auth, ...rest } = registryOptions;
    const result = await createFromOCIImage({ imageRef: ref, outputPath: join(work, name), auth, registry: rest, concurrency: 2 });
    assert.equal(result.layers, 4);
  };

  it('a second index keeps the main thread\'s client: no token request, no 401', async () => {
    // Options no other test uses: the first index starts with a client of its own.
    const kept = { ...options(), userAgent: 'clip-test/kept-token' };
    const first = counters();
    await index(kept, 'kept-token-1.clip');
    assert.deepEqual(first(), { tokens: 1, unauthorized: 1 });
    const second = counters();
    await index(kept, 'kept-token-2.clip');
    assert.deepEqual(second(), { tokens: 0, unauthorized: 0 });
  });

  it('a kept client whose token expired fetches a new one up front', async () => {
    server().setExpiresIn(1);
    try {
      const kept = { ...options(), userAgent: 'clip-test/kept-expiry' };
      await index(kept, 'kept-expiry-1.clip');
      await delay(1_100);
      const count = counters();
      await index(kept, 'kept-expiry-2.clip');
      // The bearer scheme is remembered: no anonymous request and 401 first, as a new client would make.
      const { tokens, unauthorized } = count();
      assert.equal(unauthorized, 0);
      assert.ok(tokens >= 1, `${tokens} token requests`);
    } finally {
      server().setExpiresIn(300);
    }
  });

  it('an index with other credentials or options gets a client of its own', async () => {
    const right = { ...options(), userAgent: 'clip-test/kept-creds' };
    const wrong = { ...right, auth: { username: registry.username ?? '', password: 'wrong' } };
    const start = server().requests.length;
    await index(right, 'creds-1.clip');
    // A client kept for other credentials would still hold a token that works.
    await expectClipError(index(wrong, 'creds-2.clip'), 'UNAUTHORIZED', /credentials rejected/);
    assert.deepEqual(server().requests.slice(start).map((r) => r.user), ['tester', 'tester']);
    // The right credentials again: the client kept for them was closed when replaced, so a new one.
    let count = counters();
    await index(right, 'creds-3.clip');
    assert.deepEqual(count(), { tokens: 1, unauthorized: 1 });
    count = counters();
    await index(right, 'creds-4.clip');
    assert.deepEqual(count(), { tokens: 0, unauthorized: 0 });
    // Options that differ in anything but credentials are other options too.
    count = counters();
    await index({ ...right, timeoutMs: 29_000 }, 'creds-5.clip');
    assert.deepEqual(count(), { tokens: 1, unauthorized: 1 });
  });
});

describe('session hand-off on a plain-HTTP loopback registry', () => {
  let registry: RegistryHandle;
  let tap: TcpTap;
  let image: PushedImage;
  let ref: string;

  before(async () => {
    registry = await startRegistry();
    image = await pushImageDetailed(registry, 'plain/layers', 'v1', layers.slice(0, 3));
    tap = await startTcpTap(registry.host);
    ref = `${tap.host}/plain/layers:v1`;
  });
  after(async () => {
    await tap?.close();
    await registry?.stop();
  });

  it('a seeded client makes no TLS attempt; an unseeded one does', async () => {
    const session = await withClient({}, async (c) => (await c.resolveManifest(ref), c.session()));
    assert.deepEqual(session.schemes, [{ registry: tap.host, scheme: 'http' }]);
    const handshakes = tap.tlsHandshakes;
    const connections = tap.connections;
    await withClient({ session: structuredClone(session) }, async (c) => {
      assert.equal((await c.resolveManifest(ref)).digest, image.digest);
      await c.fetchBlob(ref, image.layers[0]?.digest ?? '');
    });
    assert.ok(tap.connections > connections, 'the tap saw the seeded client');
    assert.equal(tap.tlsHandshakes, handshakes);
    await withClient({}, (c) => c.resolveManifest(ref));
    assert.equal(tap.tlsHandshakes, handshakes + 1);
  });

  it('createFromOCIImage tries TLS once, in the main thread, not once per layer', async () => {
    const handshakes = tap.tlsHandshakes;
    const result = await createFromOCIImage({ imageRef: ref, outputPath: join(work, 'plain.clip'), concurrency: 2 });
    assert.equal(result.layers, 3);
    assert.equal(tap.tlsHandshakes - handshakes, 1);
  });

  it('a worker indexes the layers one after another over one connection', async () => {
    const connections = tap.connections;
    // Options no other test uses: neither the main thread nor the worker has a client for them yet.
    const registry = { userAgent: 'clip-test/one-worker' };
    const result = await createFromOCIImage({ imageRef: ref, outputPath: join(work, 'reuse.clip'), registry, concurrency: 1 });
    assert.equal(result.layers, 3);
    // The main thread: its TLS attempt, then one connection for the manifest and the config. The
    // worker: one for the three blobs.
    assert.equal(tap.connections - connections, 3);
  });

  it('a second index keeps the main thread\'s client: no TLS attempt, no new connection for the manifest', async () => {
    const registry = { userAgent: 'clip-test/kept-plain' };
    const index = async (name: string, onProgress?: () => void): Promise<void> => {
      const result = await createFromOCIImage({ imageRef: ref, outputPath: join(work, name), registry, concurrency: 1, ...(onProgress && { onProgress }) });
      assert.equal(result.layers, 3);
    };
    let handshakes = tap.tlsHandshakes;
    await index('kept-plain-1.clip');
    assert.equal(tap.tlsHandshakes - handshakes, 1);
    handshakes = tap.tlsHandshakes;
    const connections = tap.connections;
    // The first progress report comes once the manifest is resolved, before any layer is read.
    let atManifest: number | undefined;
    await index('kept-plain-2.clip', () => (atManifest ??= tap.connections));
    assert.equal(atManifest, connections);
    assert.equal(tap.tlsHandshakes, handshakes);
  });

  it('a failed index does not leave its kept client broken: a registry down, then back with TLS', async () => {
    const tls = await startRegistry({ tls: true });
    const front = await startSwitchableFront(registry.host);
    try {
      await pushImageDetailed(tls, 'plain/layers', 'v1', layers.slice(0, 3));
      const registryOptions = { caCertificates: [tls.caCert ?? ''], retries: 1, retryBaseDelayMs: 5 };
      const index = (name: string): Promise<unknown> =>
        createFromOCIImage({ imageRef: `${front.host}/plain/layers:v1`, outputPath: join(work, name), registry: registryOptions, concurrency: 1 });
      await index('moved-1.clip'); // plain HTTP, learned after a failed TLS attempt
      await front.down();
      await expectClipError(index('moved-2.clip'), 'UNAVAILABLE', /connection refused/);
      // Back on the same address, now speaking TLS: a client still remembering plain HTTP would fail.
      await front.up(tls.host);
      await index('moved-3.clip');
    } finally {
      await front.close();
      await tls.stop();
    }
  });

  it('a process that indexed an image exits on its own (idle kept connections are unref\'d)', async () => {
    const clipcore = new URL('../src/clipcore/index.js', import.meta.url).href;
    const script = [
      `const { createFromOCIImage } = await import(${JSON.stringify(clipcore)});`,
      `const result = await createFromOCIImage(${JSON.stringify({ imageRef: ref, outputPath: join(work, 'exit.clip'), concurrency: 1 })});`,
      'console.log(`indexed ${result.layers}`);',
    ].join('\n');
    // A file, not --eval: workers inherit the process's flags, and --input-type would break them.
    const file = join(work, 'index-and-exit.mjs');
    await writeFile(file, script);
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    try {
      assert.equal(await exited, 0, `the child did not exit on its own; it printed ${JSON.stringify(out)}`);
      assert.equal(out.trim(), 'indexed 3');
    } finally {
      clearTimeout(timer);
    }
  });

  it('a seeded scheme never overrides the client\'s own insecure-registry settings', async () => {
    const session: RegistrySession = {
      takenAtMs: Date.now(),
      schemes: [
        { registry: 'registry.example.com', scheme: 'http' },
        { registry: 'forced.example.com:5000', scheme: 'https' },
        { registry: 'listed.example.com', scheme: 'http' },
      ],
      auth: [],
      tokens: [],
    };
    const insecureRegistries = ['http://forced.example.com:5000', 'listed.example.com'];
    await withClient({ session, insecureRegistries }, async (c) => {
      assert.deepEqual(c.session().schemes, [{ registry: 'listed.example.com', scheme: 'http' }]);
    });
  });
});

describe('credentials a kept client reads from Docker\'s config', () => {
  it('are read again after a while, so that a long-lived client sees a new login', async () => {
    const file = join(work, 'docker-config.json');
    const login = (user: string): Promise<void> =>
      writeFile(file, JSON.stringify({ auths: { 'registry.example.com': { auth: Buffer.from(`${user}:secret`).toString('base64') } } }));
    let now = 1_000_000;
    const resolver = new CredentialResolver({ dockerConfigPath: file, env: { HOME: work, PATH: '' }, helperTimeoutMs: 1_000, now: () => now });
    const user = async (): Promise<string | undefined> => {
      const found = await resolver.forRegistry('registry.example.com');
      return found !== undefined && 'username' in found ? found.username : undefined;
    };
    await login('first');
    assert.equal(await user(), 'first');
    await login('second');
    now += CREDENTIALS_MAX_AGE_MS - 1;
    assert.equal(await user(), 'first');
    now += 1;
    assert.equal(await user(), 'second');
  });
});

/** A registry's address that can go down and come back in front of another one (a restart). */
interface SwitchableFront {
  host: string;
  /** Drops every connection and refuses new ones. */
  down(): Promise<void>;
  up(target: string): Promise<void>;
  close(): Promise<void>;
}

async function startSwitchableFront(initialTarget: string): Promise<SwitchableFront> {
  let target = initialTarget;
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const { hostname, port } = new URL(`tcp://${target}`);
    const upstream = connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
    }
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  const listen = (port: number): Promise<void> => new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      for (const socket of open) socket.destroy();
      server.close(() => resolve());
    });
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    down: stop,
    up: async (next) => {
      target = next;
      await listen(port);
    },
    close: () => (server.listening ? stop() : Promise.resolve()),
  };
}

/** A token straight from the token server, as a client would get it. */
async function fetchToken(realm: string, scope: string, options: RegistryClientOptions): Promise<string> {
  const auth = options.auth;
  assert.ok(auth !== undefined && 'username' in auth);
  const url = new URL(realm);
  url.searchParams.set('service', 'clip-test-registry');
  url.searchParams.set('scope', scope);
  const res = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` } });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { token: string };
  return body.token;
}

/** Neither the archive's bytes nor any of its sections, decompressed, contain any of `secrets`. */
async function assertArchiveLacks(archive: string, secrets: string[]): Promise<void> {
  const raw = await readFile(archive);
  const reader = await ArchiveReader.open(archive);
  try {
    const sections = await Promise.all(reader.index.header.sections.map((section) => reader.index.readSection(section.kind)));
    for (const secret of secrets) {
      assert.ok(secret.length > 0);
      for (const blob of [raw, ...sections]) assert.ok(!blob.includes(Buffer.from(secret)), `${archive} contains a secret`);
    }
  } finally {
    await reader.close();
  }
}
