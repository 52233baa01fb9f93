/**
 * RegistrySession: a client hands what it learned (scheme, auth scheme, bearer tokens) to another
 * client, as createFromOCIImage does for its layer workers. Against real registries: token requests
 * are counted by the test token server, 401s by a counting proxy, TLS attempts on the wire by a TCP tap.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ArchiveReader, createFromOCIImage, RegistryClient, type RegistryClientOptions, type RegistrySession } from '../src/clipcore/index.js';
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
    const result = await createFromOCIImage({ imageRef: ref, outputPath: join(work, 'reuse.clip'), concurrency: 1 });
    assert.equal(result.layers, 3);
    // The main thread: its TLS attempt, then one connection for the manifest and the config. The
    // worker: one for the three blobs, or none if it kept one from the image before.
    const opened = tap.connections - connections;
    assert.ok(opened >= 2 && opened <= 3, `${opened} connections for 3 layers`);
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
