/** RegistryClient against a real docker-registry (no auth): manifests, indexes, configs, blobs, errors. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { RegistryClient } from '../src/clipcore/registry/client.js';
import { MediaTypes } from '../src/clipcore/registry/media-types.js';
import { expectClipError } from './harness/expect-error.js';
import { pushImage, pushImageDetailed, pushIndex, readAll, type PushedImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { buildTarLayer, patternContent } from './harness/tar-layer.js';
import { freePort } from './harness/free-port.js';
import { recordSecureContexts, trustsNothing } from './harness/secure-contexts.js';
import { startTcpTap } from './harness/tcp-tap.js';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('RegistryClient against docker-registry', () => {
  let registry: RegistryHandle;
  let client: RegistryClient;
  let image: PushedImage;
  const blobData = patternContent(300_000, 7);

  before(async () => {
    registry = await startRegistry();
    client = new RegistryClient({ retryBaseDelayMs: 5 });
    image = await pushImageDetailed(
      registry,
      'test/app',
      'v1',
      [
        buildTarLayer([
          { type: 'dir', path: 'etc' },
          { type: 'file', path: 'etc/hello', content: 'hello world\n' },
        ]),
        buildTarLayer([{ type: 'file', path: 'data.bin', content: blobData }], { compression: 'none' }),
      ],
      { config: { Env: ['PATH=/bin', 'A=b'], Entrypoint: ['/bin/app'], Cmd: ['--serve'], User: '1000:1000', WorkingDir: '/srv', Labels: { team: 'clip' } } },
    );
  });

  after(async () => {
    client?.close();
    await registry?.stop();
  });

  it('resolves an OCI image by tag and by digest', async () => {
    const byTag = await client.resolveManifest(`${registry.host}/test/app:v1`);
    assert.equal(byTag.digest, image.digest);
    assert.equal(byTag.mediaType, MediaTypes.ociManifest);
    assert.equal(byTag.manifest.layers.length, 2);
    assert.equal(byTag.manifest.config.digest, image.configDigest);
    assert.equal(byTag.indexDigest, undefined);
    const byDigest = await client.resolveManifest(`${registry.host}/test/app@${image.digest}`);
    assert.equal(byDigest.digest, image.digest);
    assert.deepEqual(byDigest.manifest, byTag.manifest);
  });

  it('reads the image config', async () => {
    const resolved = await client.resolveManifest(`${registry.host}/test/app:v1`);
    const config = await client.getConfig(resolved);
    assert.deepEqual(config.config.Env, ['PATH=/bin', 'A=b']);
    assert.deepEqual(config.config.Entrypoint, ['/bin/app']);
    assert.deepEqual(config.config.Cmd, ['--serve']);
    assert.equal(config.config.User, '1000:1000');
    assert.equal(config.config.WorkingDir, '/srv');
    assert.deepEqual(config.config.Labels, { team: 'clip' });
    assert.deepEqual(config.rootfs.diff_ids, image.layers.map((l) => l.diffId));
    assert.equal(config.os, 'linux');
  });

  it('resolves Docker schema 2 manifests', async () => {
    const digest = await pushImage(registry, 'test/docker', 'latest', [buildTarLayer([{ type: 'file', path: 'x', content: 'x' }])], {
      mediaTypes: 'docker',
    });
    const resolved = await client.resolveManifest(`${registry.host}/test/docker`);
    assert.equal(resolved.digest, digest);
    assert.equal(resolved.mediaType, MediaTypes.dockerManifest);
    assert.equal(resolved.manifest.layers[0]?.mediaType, MediaTypes.dockerLayerGzip);
    assert.equal((await client.getConfig(resolved)).rootfs.diff_ids.length, 1);
  });

  it('trusts Content-Type when the manifest body has no mediaType', async () => {
    const pushed = await pushImageDetailed(registry, 'test/bare', 'v1', [buildTarLayer([{ type: 'file', path: 'f', content: 'f' }])], {
      omitMediaType: true,
    });
    assert.ok(!pushed.manifest.toString().includes('mediaType":"application/vnd.oci.image.manifest'));
    const resolved = await client.resolveManifest(`${registry.host}/test/bare:v1`);
    assert.equal(resolved.mediaType, MediaTypes.ociManifest);
    assert.equal(resolved.manifest.mediaType, MediaTypes.ociManifest);
    assert.equal(resolved.digest, pushed.digest);
  });

  for (const format of ['oci', 'docker'] as const) {
    it(`picks platforms from a ${format} index and lists them when none matches`, async () => {
      const repo = `test/multi-${format}`;
      const amd = await pushImage(registry, repo, undefined, [buildTarLayer([{ type: 'file', path: 'arch', content: 'amd64' }])], {
        mediaTypes: format,
        platform: { os: 'linux', architecture: 'amd64' },
      });
      const arm = await pushImage(registry, repo, undefined, [buildTarLayer([{ type: 'file', path: 'arch', content: 'arm64' }])], {
        mediaTypes: format,
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      });
      const index = await pushIndex(
        registry,
        repo,
        'multi',
        [
          { platform: { os: 'linux', architecture: 'amd64' }, manifestDigest: amd },
          { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, manifestDigest: arm },
        ],
        format,
      );
      const ref = `${registry.host}/${repo}:multi`;
      const a = await client.resolveManifest(ref, { os: 'linux', architecture: 'amd64' });
      assert.equal(a.digest, amd);
      assert.equal(a.indexDigest, index);
      assert.equal(a.indexMediaType, format === 'oci' ? MediaTypes.ociIndex : MediaTypes.dockerManifestList);
      assert.deepEqual(a.platform, { os: 'linux', architecture: 'amd64' });
      const b = await client.resolveManifest(ref, { os: 'linux', architecture: 'arm64' });
      assert.equal(b.digest, arm);
      const hostArch = process.arch === 'x64' ? amd : process.arch === 'arm64' ? arm : undefined;
      if (hostArch !== undefined) assert.equal((await client.resolveManifest(ref)).digest, hostArch);
      await expectClipError(
        client.resolveManifest(ref, { os: 'linux', architecture: 's390x' }),
        'IMAGE_NOT_FOUND',
        /no manifest for platform linux\/s390x; available platforms: linux\/amd64, linux\/arm64\/v8/,
      );
      // The index itself, fetched as is:
      const raw = await client.getManifest(`${registry.host}/${repo}`, 'multi');
      assert.equal(raw.document.kind, 'index');
      assert.equal(raw.digest, index);
    });
  }

  it('reads byte ranges of a blob with HTTP Range', async () => {
    const layer = image.layers[1];
    assert.ok(layer);
    const repo = `${registry.host}/test/app`;
    const full = await readAll((await client.openBlobStream(repo, layer.digest)).stream);
    assert.equal(full.length, layer.size);
    assert.equal(sha256(full), layer.digest);
    assert.deepEqual(await client.fetchBlobRange(repo, layer.digest, 1000, 1010), full.subarray(1000, 1010));
    assert.deepEqual(await client.fetchBlobRange(repo, layer.digest, 0, 1), full.subarray(0, 1));
    assert.deepEqual(await client.fetchBlobRange(repo, layer.digest, layer.size - 5, layer.size + 100), full.subarray(layer.size - 5));
    assert.equal((await client.fetchBlobRange(repo, layer.digest, 7, 7)).length, 0);
    const opened = await client.openBlobStream(repo, layer.digest, { start: 5000, end: 200_000 });
    assert.equal(opened.size, layer.size);
    assert.deepEqual(await readAll(opened.stream), full.subarray(5000, 200_000));
    assert.equal(await client.blobSize(repo, layer.digest), layer.size);
    await expectClipError(client.fetchBlobRange(repo, layer.digest, layer.size + 10, layer.size + 20), 'OUT_OF_RANGE');
    await expectClipError(client.fetchBlobRange(repo, layer.digest, 10, 5), 'INVALID_ARGUMENT');
  });

  it('leaves the connection of a finished blob read to the next request', async () => {
    const layer = image.layers[1];
    assert.ok(layer);
    const tap = await startTcpTap(registry.host);
    const tapped = new RegistryClient({ retryBaseDelayMs: 5 });
    try {
      const repo = `${tap.host}/test/app`;
      await tapped.fetchBlobRange(repo, layer.digest, 0, 10); // the TLS attempt, then a plain-HTTP connection
      const connections = tap.connections;
      assert.equal((await readAll((await tapped.openBlobStream(repo, layer.digest)).stream)).length, layer.size);
      assert.equal((await tapped.fetchBlobRange(repo, layer.digest, 1000, 1010)).length, 10);
      assert.equal((await readAll((await tapped.openBlobStream(repo, layer.digest, { start: 5000, end: 6000 })).stream)).length, 1000);
      // A new connection per read would cost a TCP (and TLS) handshake each time.
      assert.equal(tap.connections, connections);
    } finally {
      tapped.close();
      await tap.close();
    }
  });

  it('streams a large layer with bounded memory and verifies it', async () => {
    const size = 96 * 1024 * 1024;
    const pushed = await pushImageDetailed(registry, 'test/big', 'v1', [
      buildTarLayer([{ type: 'file', path: 'big.bin', content: patternContent(size, 3) }], { compression: 'none' }),
    ]);
    const layer = pushed.layers[0];
    assert.ok(layer && layer.size > size);
    const opened = await client.openBlobStream(`${registry.host}/test/big`, layer.digest);
    const hash = createHash('sha256');
    let total = 0;
    let peak = 0;
    for await (const chunk of opened.stream) {
      hash.update(chunk as Buffer);
      total += (chunk as Buffer).length;
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }
    assert.equal(total, layer.size);
    assert.equal(`sha256:${hash.digest('hex')}`, layer.digest);
    assert.ok(peak < 64 * 1024 * 1024, `array buffers peaked at ${peak} bytes`);
  });

  it('reports unknown tags, repositories and blobs as IMAGE_NOT_FOUND', async () => {
    await expectClipError(client.resolveManifest(`${registry.host}/test/app:nope`), 'IMAGE_NOT_FOUND', /manifest "nope".*repository test\/app/);
    await expectClipError(client.resolveManifest(`${registry.host}/test/absent:v1`), 'IMAGE_NOT_FOUND', /test\/absent/);
    const missing = `sha256:${'0'.repeat(64)}`;
    await expectClipError(client.resolveManifest(`${registry.host}/test/app@${missing}`), 'IMAGE_NOT_FOUND', new RegExp(missing));
    await expectClipError(client.fetchBlobRange(`${registry.host}/test/app`, missing, 0, 10), 'IMAGE_NOT_FOUND', /blob sha256:0+ not found/);
  });

  it('refuses a config whose diff_ids do not match the layers', async () => {
    await pushImage(registry, 'test/odd', 'v1', [buildTarLayer([{ type: 'file', path: 'a', content: 'a' }])], {
      rawConfig: { os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [] } },
    });
    const resolved = await client.resolveManifest(`${registry.host}/test/odd:v1`);
    await expectClipError(client.getConfig(resolved), 'CORRUPT', /0 diff_ids but the manifest has 1 layers/);
  });

  it('can be told to use plain HTTP outright', async () => {
    const plain = new RegistryClient({ insecureRegistries: [`http://${registry.host}`] });
    try {
      assert.equal((await plain.resolveManifest(`${registry.host}/test/app:v1`)).digest, image.digest);
    } finally {
      plain.close();
    }
  });

  it('finds that a loopback registry speaks plain HTTP without loading the trusted CAs', async () => {
    // It is asked whether it speaks TLS with a context that trusts nothing; a TLS peer would then
    // get a verified HTTPS request (the TLS tests of registry-auth.test.ts).
    const fresh = new RegistryClient({});
    try {
      const made = await recordSecureContexts(async () => assert.equal((await fresh.resolveManifest(`${registry.host}/test/app:v1`)).digest, image.digest));
      assert.deepEqual(made.filter((options) => !trustsNothing(options)), []);
    } finally {
      fresh.close();
    }
  });

  it('reports a registry that is down as UNAVAILABLE naming the host', async () => {
    const host = `127.0.0.1:${await freePort()}`;
    const started = Date.now();
    await expectClipError(client.resolveManifest(`${host}/x/y:z`), 'UNAVAILABLE', new RegExp(`registry ${host} is unavailable: connection refused`));
    assert.ok(Date.now() - started < 5000);
  });
});
