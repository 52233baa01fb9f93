/** RegistryClient under faults injected by the counting proxy: retries, resumption, verification. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { RegistryClient } from '../src/clipcore/registry/client.js';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy.js';
import { expectClipError } from './harness/expect-error.js';
import { pushImageDetailed, readAll, type PushedImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { buildTarLayer, patternContent } from './harness/tar-layer.js';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('RegistryClient under injected faults', () => {
  let registry: RegistryHandle;
  let proxy: CountingProxy;
  let client: RegistryClient;
  let image: PushedImage;
  let repo: string;
  let ref: string;
  let blobDigest: string;
  let blobSize: number;

  before(async () => {
    registry = await startRegistry();
    image = await pushImageDetailed(registry, 'faulty/app', 'v1', [
      buildTarLayer([{ type: 'file', path: 'blob.bin', content: patternContent(2 * 1024 * 1024, 11) }], { compression: 'none' }),
    ]);
    proxy = await startCountingProxy(registry.host);
    client = new RegistryClient({ retries: 3, retryBaseDelayMs: 5, timeoutMs: 1500 });
    repo = `${proxy.host}/faulty/app`;
    ref = `${repo}:v1`;
    const layer = image.layers[0];
    assert.ok(layer);
    blobDigest = layer.digest;
    blobSize = layer.size;
    await client.resolveManifest(ref); // settle the scheme probe before counting
  });
  const manifestRequests = (): number => proxy.stats.log.filter((r) => r.path.includes('/manifests/')).length;
  afterEach(() => {
    proxy.clearFaults();
    proxy.resetStats();
  });
  after(async () => {
    client?.close();
    await proxy?.close();
    await registry?.stop();
  });

  it('retries 503 and succeeds', async () => {
    proxy.addFault({ kind: 'status', status: 503, body: 'busy' }, { times: 2, match: /manifests/ });
    assert.equal((await client.resolveManifest(ref)).digest, image.digest);
    assert.equal(proxy.stats.statuses.get(503), 2);
  });

  it('gives up on a persistent 503 with UNAVAILABLE', async () => {
    proxy.addFault({ kind: 'status', status: 503 }, { times: 100, match: /manifests/ });
    await expectClipError(client.resolveManifest(ref), 'UNAVAILABLE', /answered HTTP 503 for manifest "v1" .* after 4 attempts/);
    assert.equal(proxy.stats.statuses.get(503), 4);
  });

  it('honours Retry-After on 429', async () => {
    proxy.addFault({ kind: 'status', status: 429, headers: { 'retry-after': '1' } }, { match: /manifests/ });
    const started = Date.now();
    assert.equal((await client.resolveManifest(ref)).digest, image.digest);
    assert.ok(Date.now() - started >= 950, `waited ${Date.now() - started} ms`);
  });

  it('retries a connection dropped before any response', async () => {
    proxy.addFault({ kind: 'drop' }, { times: 2, match: /manifests/ });
    assert.equal((await client.resolveManifest(ref)).digest, image.digest);
    assert.equal(manifestRequests(), 3, 'two dropped attempts, then the one that succeeded');
  });

  it('retries after a timeout', async () => {
    proxy.addFault({ kind: 'delay', ms: 2500 }, { match: /manifests/ });
    assert.equal((await client.resolveManifest(ref)).digest, image.digest);
    // The server saw the attempt that timed out and the retry that answered.
    assert.equal(manifestRequests(), 2);
  });

  it('resumes a blob stream dropped mid-body from the first missing byte', async () => {
    proxy.addFault({ kind: 'drop-after', bytes: 700_000 }, { match: /blobs/ });
    proxy.addFault({ kind: 'truncate', bytes: 300_000 }, { match: /blobs/ });
    const opened = await client.openBlobStream(repo, blobDigest);
    const data = await readAll(opened.stream);
    assert.equal(data.length, blobSize);
    assert.equal(sha256(data), blobDigest);
    const ranges = proxy.stats.log.filter((r) => r.path.includes('/blobs/')).map((r) => r.headers.range);
    assert.deepEqual(ranges, [undefined, `bytes=700000-${blobSize - 1}`, `bytes=1000000-${blobSize - 1}`]);
    assert.ok(proxy.bytesFor(blobDigest) >= blobSize);
  });

  it('resumes a range read dropped mid-body', async () => {
    proxy.addFault({ kind: 'drop-after', bytes: 1000 }, { match: /blobs/ });
    const expected = (await readAll((await client.openBlobStream(`${registry.host}/faulty/app`, blobDigest)).stream)).subarray(5000, 105_000);
    assert.deepEqual(await client.fetchBlobRange(repo, blobDigest, 5000, 105_000), expected);
    assert.equal(proxy.requestsFor(blobDigest), 2);
  });

  it('fails a whole-blob stream with DIGEST_MISMATCH when a byte is flipped', async () => {
    proxy.addFault({ kind: 'flip', offset: 123_456 }, { match: /blobs/ });
    const opened = await client.openBlobStream(repo, blobDigest);
    await expectClipError(readAll(opened.stream), 'DIGEST_MISMATCH', new RegExp(`blob ${blobDigest} .* expected ${blobDigest}`));
  });

  it('fails a manifest with DIGEST_MISMATCH when its bytes are altered', async () => {
    proxy.addFault({ kind: 'flip', offset: 20 }, { match: /manifests/ });
    await expectClipError(client.resolveManifest(`${repo}@${image.digest}`), 'DIGEST_MISMATCH', /manifest "sha256:/);
    proxy.addFault({ kind: 'flip', offset: 20 }, { match: /manifests/ });
    await expectClipError(client.resolveManifest(ref), 'DIGEST_MISMATCH', /manifest "v1"/);
  });

  it('gives up when the body keeps breaking', async () => {
    proxy.addFault({ kind: 'drop-after', bytes: 10 }, { match: /blobs/, times: 100 });
    const opened = await client.openBlobStream(repo, blobDigest);
    await expectClipError(readAll(opened.stream), 'UNAVAILABLE', /connection to registry .* was dropped/);
  });

  it('reports a registry that never answers as UNAVAILABLE', async () => {
    proxy.addFault({ kind: 'delay', ms: 3000 }, { match: /manifests/, times: 100 });
    const quick = new RegistryClient({ retries: 1, retryBaseDelayMs: 5, timeoutMs: 300 });
    try {
      await expectClipError(quick.resolveManifest(ref), 'UNAVAILABLE', /did not answer in time \(300 ms\)/);
    } finally {
      quick.close();
    }
  });
});
