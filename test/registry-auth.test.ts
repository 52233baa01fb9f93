/** RegistryClient authentication against real registries: basic, docker config.json, TLS, token auth. */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { RegistryClient } from '../src/clipcore/registry/client.js';
import type { RegistryClientOptions } from '../src/clipcore/registry/client-options.js';
import { startCountingProxy } from './harness/counting-proxy.js';
import { expectClipError } from './harness/expect-error.js';
import { recordSecureContexts, trustsNothing } from './harness/secure-contexts.js';
import { pushImageDetailed, type PushedImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { buildTarLayer } from './harness/tar-layer.js';

const layer = buildTarLayer([{ type: 'file', path: 'hello.txt', content: 'hello\n' }]);

/** Runs `fn` with a client and always closes it. */
async function withClient<T>(options: RegistryClientOptions, fn: (c: RegistryClient) => Promise<T>): Promise<T> {
  const client = new RegistryClient({ retryBaseDelayMs: 5, ...options });
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

describe('basic auth and docker config.json', () => {
  let registry: RegistryHandle;
  let image: PushedImage;
  let dir: string;
  let ref: string;

  before(async () => {
    registry = await startRegistry({ auth: 'basic' });
    image = await pushImageDetailed(registry, 'secure/app', 'v1', [layer]);
    dir = await mkdtemp(join(tmpdir(), 'clip-dockercfg-'));
    ref = `${registry.host}/secure/app:v1`;
  });
  after(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const creds = (): { username: string; password: string } => ({ username: registry.username ?? '', password: registry.password ?? '' });
  const noDockerConfig = (): RegistryClientOptions => ({ env: { HOME: dir, PATH: '' } });

  it('accepts the right credentials', async () => {
    const resolved = await withClient({ auth: creds(), ...noDockerConfig() }, (c) => c.resolveManifest(ref));
    assert.equal(resolved.digest, image.digest);
  });

  it('rejects wrong credentials as UNAUTHORIZED without leaking them', async () => {
    const err = await withClient({ auth: { username: 'tester', password: 'hunter2-wrong' }, ...noDockerConfig() }, (c) =>
      expectClipError(c.resolveManifest(ref), 'UNAUTHORIZED', new RegExp(`credentials rejected for registry ${registry.host} repository secure/app`)),
    );
    assert.ok(!err.message.includes('hunter2'));
    assert.ok(!JSON.stringify(err).includes('hunter2'));
  });

  it('asks for authentication when there are no credentials', async () => {
    await withClient(noDockerConfig(), (c) =>
      expectClipError(c.resolveManifest(ref), 'UNAUTHORIZED', /authentication required for registry .* repository secure\/app/),
    );
  });

  it('reads base64 auth from a config.json given by path', async () => {
    const file = join(dir, 'config-auths.json');
    const auth = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
    await writeFile(file, JSON.stringify({ auths: { [registry.host]: { auth } } }));
    const resolved = await withClient({ dockerConfigPath: file, env: { PATH: '' } }, (c) => c.resolveManifest(ref));
    assert.equal(resolved.digest, image.digest);
  });

  it('finds $DOCKER_CONFIG/config.json with URL-style keys and username/password', async () => {
    const cfgDir = join(dir, 'docker-config-env');
    await import('node:fs/promises').then((fs) => fs.mkdir(cfgDir, { recursive: true }));
    await writeFile(
      join(cfgDir, 'config.json'),
      JSON.stringify({ auths: { [`http://${registry.host}/v2/`]: { username: registry.username, password: registry.password } } }),
    );
    const resolved = await withClient({ env: { DOCKER_CONFIG: cfgDir, PATH: '' } }, (c) => c.resolveManifest(ref));
    assert.equal(resolved.digest, image.digest);
  });

  it('runs credential helpers found on PATH (credHelpers, then credsStore falling back to auths)', async () => {
    const bin = join(dir, 'bin');
    await import('node:fs/promises').then((fs) => fs.mkdir(bin, { recursive: true }));
    const helper = join(bin, 'docker-credential-cliptest');
    await writeFile(
      helper,
      [
        '#!/bin/sh',
        'read server',
        `if [ "$server" = "${registry.host}" ]; then`,
        `  printf '{"ServerURL":"%s","Username":"${registry.username}","Secret":"${registry.password}"}' "$server"`,
        'else',
        '  echo "credentials not found in native keychain"; exit 1',
        'fi',
        '',
      ].join('\n'),
    );
    await chmod(helper, 0o755);
    const viaHelper = join(dir, 'config-helper.json');
    await writeFile(viaHelper, JSON.stringify({ credHelpers: { [registry.host]: 'cliptest' } }));
    const env = { PATH: `${bin}:/usr/bin:/bin` };
    assert.equal((await withClient({ dockerConfigPath: viaHelper, env }, (c) => c.resolveManifest(ref))).digest, image.digest);

    // A store that knows nothing about this registry: the auths entry is used instead.
    const auth = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
    const otherHelper = join(bin, 'docker-credential-empty');
    await writeFile(otherHelper, '#!/bin/sh\necho "credentials not found in native keychain"\nexit 1\n');
    await chmod(otherHelper, 0o755);
    const viaStore = join(dir, 'config-store.json');
    await writeFile(viaStore, JSON.stringify({ credsStore: 'empty', auths: { [registry.host]: { auth } } }));
    assert.equal((await withClient({ dockerConfigPath: viaStore, env }, (c) => c.resolveManifest(ref))).digest, image.digest);
  });

  it('lets explicit credentials win over config.json', async () => {
    const file = join(dir, 'config-wrong.json');
    await writeFile(file, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('tester:wrong').toString('base64') } } }));
    const resolved = await withClient({ dockerConfigPath: file, auth: creds(), env: { PATH: '' } }, (c) => c.resolveManifest(ref));
    assert.equal(resolved.digest, image.digest);
  });

  it('hands the basic scheme over in a session, without the credentials: the seeded client meets no 401', async () => {
    const proxy = await startCountingProxy(registry.host);
    try {
      const viaProxy = `${proxy.host}/secure/app:v1`;
      const session = await withClient({ auth: creds(), ...noDockerConfig() }, async (c) => (await c.resolveManifest(viaProxy), c.session()));
      assert.deepEqual(session.auth, [{ registry: proxy.host, kind: 'basic' }]);
      assert.ok(!JSON.stringify(session).includes(registry.password ?? ''));
      proxy.resetStats();
      const resolved = await withClient({ auth: creds(), ...noDockerConfig(), session }, (c) => c.resolveManifest(viaProxy));
      assert.equal(resolved.digest, image.digest);
      assert.equal(proxy.stats.statuses.get(401) ?? 0, 0);
    } finally {
      await proxy.close();
    }
  });

  it('follows a blob redirect without sending Authorization to the other host', async () => {
    const proxy = await startCountingProxy(registry.host);
    const seen: (string | undefined)[] = [];
    const blob = await withClient({ auth: creds(), ...noDockerConfig() }, (c) => c.fetchBlob(`${registry.host}/secure/app`, image.configDigest));
    const storage = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
    });
    await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
    const storagePort = (storage.address() as AddressInfo).port;
    try {
      const fetched = await withClient({ auth: creds(), ...noDockerConfig() }, async (c) => {
        // Learn the registry's auth scheme first, so the redirected request carries credentials.
        await c.resolveManifest(`${proxy.host}/secure/app:v1`);
        proxy.addFault(
          { kind: 'redirect', location: `http://localhost:${storagePort}/bucket/blob?X-Signature=abc` },
          { match: /GET \/v2\/secure\/app\/blobs\// },
        );
        return c.fetchBlob(`${proxy.host}/secure/app`, image.configDigest);
      });
      const redirected = proxy.stats.log.find((r) => r.path.includes('/blobs/'));
      assert.ok(redirected?.headers.authorization?.startsWith('Basic '), 'the registry itself got credentials');
      assert.deepEqual(fetched, blob);
      assert.deepEqual(seen, [undefined]);
    } finally {
      storage.closeAllConnections();
      storage.close();
      await proxy.close();
    }
  });
});

describe('TLS registry', () => {
  let registry: RegistryHandle;
  let image: PushedImage;

  before(async () => {
    registry = await startRegistry({ tls: true });
    image = await pushImageDetailed(registry, 'tls/app', 'v1', [layer]);
  });
  after(async () => registry?.stop());

  it('works with the CA certificate', async () => {
    const resolved = await withClient({ caCertificates: [registry.caCert ?? ''] }, (c) => c.resolveManifest(`${registry.host}/tls/app:v1`));
    assert.equal(resolved.digest, image.digest);
  });

  it('parses the extra CA certificates once per client, not once per connection', async () => {
    // tls.connect makes a SecureContext for every connection not given one.
    const made = await recordSecureContexts(() =>
      withClient({ caCertificates: [registry.caCert ?? ''] }, async (c) => {
        const repository = { registry: registry.host, repository: 'tls/app' };
        const digest = (image.layers[0] as PushedImage['layers'][number]).digest;
        // Three reads at once: three connections.
        const blobs = await Promise.all([0, 1, 2].map(() => c.openBlobStream(repository, digest)));
        for (const blob of blobs) for await (const chunk of blob.stream as AsyncIterable<Buffer>) assert.ok(chunk.length > 0);
      }),
    );
    assert.equal(made.filter((options) => !trustsNothing(options)).length, 1);
  });

  it('fails clearly without it (and does not downgrade to HTTP)', async () => {
    await withClient({}, (c) =>
      expectClipError(c.resolveManifest(`${registry.host}/tls/app:v1`), 'UNAVAILABLE', /TLS certificate of registry 127\.0\.0\.1:\d+ is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)/),
    );
  });
});

describe('token auth', () => {
  let registry: RegistryHandle;
  let image: PushedImage;
  let dir: string;
  let ref: string;

  before(async () => {
    registry = await startRegistry({ auth: 'token', tokenExpiresInS: 300 });
    image = await pushImageDetailed(registry, 'tok/app', 'v1', [layer]);
    dir = await mkdtemp(join(tmpdir(), 'clip-token-'));
    ref = `${registry.host}/tok/app:v1`;
  });
  after(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const creds = (): { username: string; password: string } => ({ username: registry.username ?? '', password: registry.password ?? '' });
  const server = (): NonNullable<RegistryHandle['tokenServer']> => {
    assert.ok(registry.tokenServer);
    return registry.tokenServer;
  };

  it('gets a pull token with basic credentials and reuses it', async () => {
    const before = server().requests.length;
    await withClient({ auth: creds() }, async (c) => {
      assert.equal((await c.resolveManifest(ref)).digest, image.digest);
      await c.getConfig(await c.resolveManifest(ref));
    });
    const mine = server().requests.slice(before);
    assert.equal(mine.length, 1);
    assert.deepEqual(mine[0]?.scopes, ['repository:tok/app:pull']);
    assert.equal(mine[0]?.user, registry.username);
  });

  it('maps wrong credentials and missing credentials to UNAUTHORIZED', async () => {
    await withClient({ auth: { username: 'tester', password: 'nope' } }, (c) =>
      expectClipError(c.resolveManifest(ref), 'UNAUTHORIZED', /credentials rejected by token server 127\.0\.0\.1:\d+ of registry/),
    );
    await withClient({ env: { HOME: dir, PATH: '' } }, (c) => expectClipError(c.resolveManifest(ref), 'UNAUTHORIZED', /authentication required/));
  });

  it('refreshes the token when expires_in has passed', async () => {
    server().setExpiresIn(1);
    try {
      await withClient({ auth: creds() }, async (c) => {
        const start = server().requests.length;
        await c.resolveManifest(ref);
        await c.resolveManifest(ref);
        assert.equal(server().requests.length - start, 1);
        await delay(1000);
        await c.resolveManifest(ref);
        assert.equal(server().requests.length - start, 2);
      });
    } finally {
      server().setExpiresIn(300);
    }
  });

  it('fetches a new token when the registry rejects the one it has', async () => {
    // First token spoiled: the registry answers 401 and the client must try a fresh token.
    server().spoilNextTokens(1);
    const start = server().requests.length;
    assert.equal((await withClient({ auth: creds() }, (c) => c.resolveManifest(ref))).digest, image.digest);
    assert.equal(server().requests.length - start, 2);

    // A cached token that the registry stops accepting (401 injected by a proxy).
    const proxy = await startCountingProxy(registry.host);
    try {
      await withClient({ auth: creds() }, async (c) => {
        const viaProxy = `${proxy.host}/tok/app:v1`;
        await c.resolveManifest(viaProxy);
        const before = server().requests.length;
        proxy.addFault({
          kind: 'status',
          status: 401,
          headers: { 'www-authenticate': `Bearer realm="${server().realm}",service="clip-test-registry",scope="repository:tok/app:pull"` },
        });
        assert.equal((await c.resolveManifest(viaProxy)).digest, image.digest);
        assert.equal(server().requests.length - before, 1);
      });
    } finally {
      await proxy.close();
    }
  });

  it('uses an identity token from config.json (OAuth2 refresh-token grant)', async () => {
    const file = join(dir, 'config.json');
    await writeFile(file, JSON.stringify({ auths: { [registry.host]: { identitytoken: registry.identityToken } } }));
    const start = server().requests.length;
    assert.equal((await withClient({ dockerConfigPath: dir, env: { PATH: '' } }, (c) => c.resolveManifest(ref))).digest, image.digest);
    assert.equal(server().requests[start]?.method, 'POST');
  });
});
