/**
 * The controller's index side (IndexQueue + Indexer) against a real registry with basic auth
 * (behind a counting, fault-injecting proxy) and moto S3: the marker kept while a job runs, one job
 * for equal requests, an index already in S3 reported at once, credentials tried in order (then the
 * controller's Docker config), backoff on an unavailable registry without a retry storm, and
 * permanent failures retried only for a new revision.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { imageKeyOf, parseMarker, S3IndexStore, type IndexingMarker, type RegistryCredentials } from '../src/clipcore/index.js';
import type { Logger } from '../src/csi/log.js';
import type { IndexOutcome, Requester } from '../src/controller/contracts.js';
import { IndexQueue } from '../src/controller/indexing/index-service.js';
import { Indexer } from '../src/controller/indexing/indexer.js';
import type { RegistrySettings } from '../src/controller/indexing/resolve.js';
import { ControllerMetrics } from '../src/controller/metrics.js';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy.js';
import { pushImageDetailed } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { startS3, type S3Handle } from './harness/s3.js';
import { buildTarLayer } from './harness/tar-layer.js';

// "bucket" in the name: a missing object must not be taken for a missing bucket.
const BUCKET = 'clip-controller-index-bucket';

interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

/** Polls `check` until it returns a value (bounded): waiting for a condition, not for time. */
async function until<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('controller: the index queue', () => {
  let registry: RegistryHandle;
  let proxy: CountingProxy;
  let s3: S3Handle;
  let dir: string;
  let right: { username: string; password: string };
  const queues: IndexQueue[] = [];
  const images = new Map<string, { ref: string; digest: string; layer: string }>();

  before(async () => {
    [registry, s3] = await Promise.all([startRegistry({ auth: 'basic' }), startS3()]);
    await s3.createBucket(BUCKET);
    proxy = await startCountingProxy(registry.host);
    right = { username: registry.username ?? '', password: registry.password ?? '' };
    dir = await mkdtemp(join(tmpdir(), 'ctl-index-'));
    for (const name of ['marker', 'shared', 'exists', 'order', 'dockercfg', 'flaky']) {
      const pushed = await pushImageDetailed(registry, `apps/${name}`, 'v1', [buildTarLayer([{ type: 'file', path: `${name}.txt`, content: `${name}\n` }])]);
      images.set(name, { ref: `${proxy.host}/apps/${name}:v1`, digest: pushed.digest, layer: pushed.layers[0]?.digest ?? '' });
    }
    const notTar = await pushImageDetailed(registry, 'apps/not-a-tar', 'v1', [
      { kind: 'raw', data: Buffer.from('this is not a tar archive at all, and not compressed either'.repeat(20)), mediaType: 'application/vnd.oci.image.layer.v1.tar' },
    ]);
    images.set('not-a-tar', { ref: `${proxy.host}/apps/not-a-tar:v1`, digest: notTar.digest, layer: notTar.layers[0]?.digest ?? '' });
  });

  after(async () => {
    for (const queue of queues) queue.close();
    await proxy?.close();
    await Promise.all([registry?.stop(), s3?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function image(name: string): { ref: string; digest: string; layer: string } {
    const found = images.get(name);
    assert.ok(found, name);
    return found;
  }

  function makeQueue(holder = 'controller/test', registrySettings: Partial<RegistrySettings> = {}) {
    const lines: LogLine[] = [];
    const log: Logger = (level, msg, fields = {}) => {
      lines.push({ level, msg, ...fields });
    };
    const store = new S3IndexStore({ bucket: BUCKET, prefix: 'indexes/', options: { endpoint: s3.endpoint, region: s3.region, credentials: s3.credentials } });
    const settings: RegistrySettings = { insecureRegistries: [], caCertificates: [], dockerConfigPath: join(dir, 'no-docker-config'), ...registrySettings };
    let queue: IndexQueue | undefined;
    const metrics = new ControllerMetrics({ queueDepth: () => queue?.queueDepth ?? 0, inFlight: () => queue?.inFlight ?? 0 });
    const indexer = new Indexer({ store, registry: settings, holder, tempDir: join(dir, 'tmp'), log, onRegistryBytes: (bytes) => metrics.registryRead(bytes) });
    queue = new IndexQueue({ indexer, registry: settings, concurrency: 2, metrics, log, location: (key) => store.url(key) });
    queues.push(queue);
    const outcomes: Array<{ requester: Requester; outcome: IndexOutcome }> = [];
    queue.onOutcome((requester, outcome) => outcomes.push({ requester, outcome }));
    const told = (uid: string): IndexOutcome[] => outcomes.filter((entry) => entry.requester.uid === uid).map((entry) => entry.outcome);
    const final = (uid: string): Promise<IndexOutcome> => until(() => told(uid).find((outcome) => outcome.state !== 'Indexing'), `an outcome for ${uid}`);
    return { queue, lines, metrics, told, final, store };
  }

  const requester = (uid: string, revision = '1'): Requester => ({ kind: 'ClipImage', name: uid, uid, revision });

  async function readMarker(key: string): Promise<IndexingMarker | undefined> {
    try {
      const object = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `indexes/${key}.clip.indexing` }));
      return parseMarker(await (object.Body as { transformToString(): Promise<string> }).transformToString());
    } catch {
      return undefined;
    }
  }

  async function indexExists(key: string): Promise<boolean> {
    return s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `indexes/${key}.clip` })).then(
      () => true,
      () => false,
    );
  }

  it('keeps a marker next to the index while indexing (refreshed, with progress) and removes it after; another replica waits for that index', async () => {
    const { ref, digest, layer } = image('marker');
    const key = imageKeyOf(digest, 'linux/amd64');
    // Slow layer: the job outlives a couple of marker refreshes (every 5 s).
    proxy.addFault({ kind: 'delay', ms: 12_000 }, { match: (req) => req.method === 'GET' && req.path.includes(layer) });
    const { queue, final } = makeQueue('controller/replica-a');
    queue.submit({ image: ref, platforms: ['linux/amd64'], credentials: [right], requester: requester('marker') });
    const first = await until(() => readMarker(key), 'the marker');
    assert.equal(first.holder, 'controller/replica-a');
    const refreshed = await until(async () => {
      const marker = await readMarker(key);
      return marker && marker.refreshedAt !== first.refreshedAt ? marker : undefined;
    }, 'a refreshed marker', 20_000);
    assert.equal(refreshed.startedAt, first.startedAt);
    assert.ok(Date.parse(refreshed.expiresAt) > Date.parse(first.expiresAt));
    assert.match(refreshed.progress ?? '', /^indexing: \d+ % of [\d,]+ compressed bytes, \d+\/1 layers$/);
    // Another replica asked for the same image meanwhile: it waits for this one's index.
    const other = makeQueue('controller/replica-b');
    other.queue.submit({ image: ref, platforms: ['linux/amd64'], credentials: [right], requester: requester('marker-b') });
    await until(() => {
      const seen = other.queue.outcomeOf('marker-b', ref);
      return seen?.state === 'Indexing' && seen.progress.startsWith('being indexed by controller/replica-a') ? true : undefined;
    }, 'the other replica waiting on the marker');
    const outcome = await final('marker');
    assert.equal(outcome.state, 'Indexed');
    assert.equal(await readMarker(key), undefined, 'the marker is removed');
    assert.ok(await indexExists(key));
    assert.equal((await other.final('marker-b')).state, 'Indexed');
    assert.equal(other.lines.filter((line) => line.msg === 'indexing image').length, 0, 'the other replica did not index it too');
  });

  it('two requests for one image make one job; each requester is told Indexing, then Indexed, once', async () => {
    const { ref, digest } = image('shared');
    const { queue, lines, told, final } = makeQueue();
    queue.submit({ image: ref, platforms: ['linux/amd64'], credentials: [right], requester: requester('pod-a') });
    queue.submit({ image: ref, platforms: ['linux/amd64'], credentials: [right], requester: requester('pod-b') });
    const [a, b] = await Promise.all([final('pod-a'), final('pod-b')]);
    // A requester joining once the job is done is told Indexed at once; the others nothing more,
    // nor when they ask again (a relist).
    queue.submit({ image: ref, platforms: ['linux/amd64'], credentials: [right], requester: requester('pod-c') });
    queue.submit({ image: ref, platforms: ['linux/amd64'], credentials: [right], requester: requester('pod-a') });
    assert.deepEqual(told('pod-c').map((o) => o.state), ['Indexed']);
    assert.equal(lines.filter((line) => line.msg === 'indexing image').length, 1);
    for (const [uid, outcome] of [['pod-a', a], ['pod-b', b]] as const) {
      assert.deepEqual(told(uid).map((o) => o.state), ['Indexing', 'Indexed']);
      assert.ok(outcome.state === 'Indexed');
      assert.equal(outcome.digest, digest);
      assert.equal(outcome.indexes.length, 1);
      const [indexed] = outcome.indexes;
      assert.equal(indexed?.platform, 'linux/amd64');
      assert.equal(indexed?.location, `s3://${BUCKET}/indexes/${imageKeyOf(digest, 'linux/amd64')}.clip`);
      assert.equal(indexed?.files, 1);
      assert.ok((indexed?.indexBytes ?? 0) > 0);
    }
  });

  it('an index already in S3 is reported Indexed without reading the image\'s layers', async () => {
    const { ref, layer } = image('exists');
    const first = makeQueue();
    first.queue.submit({ image: ref, platforms: ['linux/amd64'], credentials: [right], requester: requester('first') });
    const made = await first.final('first');
    assert.equal(made.state, 'Indexed');
    const layerRequests = proxy.requestsFor(layer);

    const second = makeQueue('controller/replica-b');
    second.queue.submit({ image: ref, platforms: ['linux/amd64'], credentials: [right], requester: requester('second') });
    const found = await second.final('second');
    assert.ok(found.state === 'Indexed' && made.state === 'Indexed');
    assert.equal(found.indexes[0]?.files, made.indexes[0]?.files);
    assert.equal(found.indexes[0]?.indexBytes, made.indexes[0]?.indexBytes);
    assert.equal(proxy.requestsFor(layer), layerRequests, 'no layer read');
    assert.equal(second.lines.filter((line) => line.msg === 'indexing image').length, 0);
    assert.equal(second.lines.filter((line) => line.msg === 'index already in S3').length, 1);
  });

  it('credentials are tried in order, then the controller\'s own Docker config', async () => {
    const wrong: RegistryCredentials = { username: 'tester', password: 'not-the-password' };
    const ordered = makeQueue();
    ordered.queue.submit({ image: image('order').ref, platforms: ['linux/amd64'], credentials: [wrong, right], requester: requester('ordered') });
    assert.equal((await ordered.final('ordered')).state, 'Indexed');

    const refused = makeQueue();
    refused.queue.submit({ image: image('order').ref, platforms: ['linux/amd64'], credentials: [wrong], requester: requester('refused') });
    const outcome = await refused.final('refused');
    assert.ok(outcome.state === 'Failed');
    assert.equal(outcome.reason, 'Unauthorized');

    const config = join(dir, 'docker-config.json');
    await writeFile(config, JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from(`${right.username}:${right.password}`).toString('base64') } } }));
    const own = makeQueue('controller/test', { dockerConfigPath: config });
    own.queue.submit({ image: image('dockercfg').ref, platforms: ['linux/amd64'], credentials: [wrong], requester: requester('own') });
    assert.equal((await own.final('own')).state, 'Indexed');
    for (const lines of [ordered.lines, refused.lines, own.lines]) {
      assert.ok(!JSON.stringify(lines).includes(right.password ?? '') && !JSON.stringify(lines).includes('not-the-password'), 'no credential logged');
    }
  });

  it('an unavailable registry: retried with exponential backoff, no retry storm, indexed once it is back', async () => {
    const { ref } = image('flaky');
    proxy.resetStats();
    proxy.addFault({ kind: 'status', status: 503 }, { times: 1_000_000 });
    const { queue, lines, told, final } = makeQueue();
    try {
      queue.submit({ image: ref, platforms: ['linux/amd64'], credentials: [right], requester: requester('flaky') });
      await until(() => lines.find((line) => line.msg === 'cannot resolve the image; retrying' && line['attempt'] === 3), 'the third retry', 60_000);
      const retries = lines.filter((line) => line.msg === 'cannot resolve the image; retrying');
      assert.deepEqual(
        retries.map((line) => line['retry_in_s']),
        [1, 2, 4],
      );
      // Three attempts, each the registry client's request and its own three retries.
      assert.ok(proxy.stats.requests <= 3 * 4, `${proxy.stats.requests} requests for three attempts`);
      const failed = told('flaky');
      assert.deepEqual(failed.map((o) => o.state), ['Indexing', 'Failed'], 'told once, not at every retry');
      assert.ok(failed[1]?.state === 'Failed' && failed[1].reason === 'Unavailable');
    } finally {
      proxy.clearFaults();
    }
    const outcome = await until(() => told('flaky').find((o) => o.state === 'Indexed'), 'Indexed after the registry is back', 30_000);
    assert.equal(outcome.state, 'Indexed');
    assert.equal((await final('flaky')).state, 'Failed', 'the Unavailable came first');
  });

  it('permanent failures (not found, not a filesystem) are retried only for another revision', async () => {
    const { queue, told, final } = makeQueue();
    const missing = `${proxy.host}/apps/shared:absent`;
    queue.submit({ image: missing, platforms: ['linux/amd64'], credentials: [right], requester: requester('missing', '7') });
    const outcome = await final('missing');
    assert.ok(outcome.state === 'Failed');
    assert.equal(outcome.reason, 'NotFound');
    const requests = proxy.stats.requests;
    queue.submit({ image: missing, platforms: ['linux/amd64'], credentials: [right], requester: requester('missing', '7') });
    assert.equal(queue.outcomeOf('missing', missing)?.state, 'Failed', 'the same revision: no new attempt');
    assert.equal(proxy.stats.requests, requests);
    queue.submit({ image: missing, platforms: ['linux/amd64'], credentials: [right], requester: requester('missing', '8') });
    assert.equal(queue.outcomeOf('missing', missing)?.state, 'Indexing', 'another revision: tried again');
    await until(() => (told('missing').length === 4 ? true : undefined), 'the second failure');
    assert.deepEqual(told('missing').map((o) => o.state), ['Indexing', 'Failed', 'Indexing', 'Failed']);

    // Another object asks for the missing image: tried again (as for another revision), and every
    // requester waiting on it is told each state change once, the one that asked before too.
    queue.submit({ image: missing, platforms: ['linux/amd64'], credentials: [right], requester: requester('missing-too', '1') });
    assert.deepEqual(told('missing-too').map((o) => o.state), ['Indexing']);
    assert.deepEqual(told('missing').map((o) => o.state), ['Indexing', 'Failed', 'Indexing', 'Failed', 'Indexing'], 'told the retry');
    await until(() => (told('missing').length === 6 && told('missing-too').length === 2 ? true : undefined), 'the third failure, for both');
    assert.deepEqual(told('missing-too').map((o) => o.state), ['Indexing', 'Failed']);
    // The same revisions again (a relist): nobody is told anything, nothing is asked.
    const before = [told('missing').length, told('missing-too').length, proxy.stats.requests];
    queue.submit({ image: missing, platforms: ['linux/amd64'], credentials: [right], requester: requester('missing', '8') });
    queue.submit({ image: missing, platforms: ['linux/amd64'], credentials: [right], requester: requester('missing-too', '1') });
    assert.deepEqual([told('missing').length, told('missing-too').length, proxy.stats.requests], before);

    queue.submit({ image: image('not-a-tar').ref, platforms: ['linux/amd64'], credentials: [right], requester: requester('garbage') });
    const garbage = await final('garbage');
    assert.ok(garbage.state === 'Failed');
    assert.equal(garbage.reason, 'NotAFilesystem');
    assert.equal(garbage.digest, image('not-a-tar').digest);
  });
});
