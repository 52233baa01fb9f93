/**
 * S3 storage against a real S3 endpoint (moto_server): s3-mode archives (data object in S3),
 * archives stored in S3 (local and oci mode), `clip mount s3://...` through FUSE, and the
 * failures: missing bucket or key, endpoint down, rejected or missing credentials.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  ArchiveReader,
  createAndUploadArchive,
  createArchive,
  needsPathStyle,
  parseS3Url,
  resolveEndpoint,
  uploadFileToS3,
  type CreateAndUploadProgress,
} from '../src/clipcore/index.js';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy.js';
import { expectClipError, expectClipErrorSync } from './harness/expect-error.js';
import { freePort } from './harness/free-port.js';
import { pushImageDetailed, type PushedImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { startS3, type S3Handle } from './harness/s3.js';
import { buildTarLayer, contentBytes, patternContent } from './harness/tar-layer.js';
import { buildHardTree } from './helpers/hard-tree.js';
import { fuseMountsUnder, unmountAllUnder } from './helpers/mounts.js';
import { run, runClip, startClipMount } from './helpers/processes.js';
import { assertSameTree } from './helpers/tree-compare.js';

const BUCKET = 'clip-test';
const MiB = 1024 * 1024;
/** A few MiB of incompressible bytes: several 5 MiB multipart parts, many 256 KiB spans. */
const EXTRA_FILE_BYTES = 12 * MiB + 12_345;

let s3: S3Handle;
let work: string;

/** The environment `clip` children get: this one plus the standard AWS variables. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...s3.env, ...extra };
}

/** Mounts with `clip mount` in a child process and checks the mount against the source tree. */
async function assertMountMatches(archive: string, source: string, mountPoint: string, args: string[] = []): Promise<void> {
  const mount = await startClipMount(archive, mountPoint, { args, env: childEnv() });
  try {
    const actual = await assertSameTree(source, mountPoint);
    assert.equal(actual['/original']?.nlink, 3);
  } finally {
    const result = await mount.stop();
    assert.equal(result.code, 0, result.stderr);
  }
  assert.deepEqual(await fuseMountsUnder(mountPoint), []);
}

async function objectExists(key: string): Promise<boolean> {
  try {
    await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    return true;
  } catch {
    return false;
  }
}

async function getObject(key: string): Promise<Buffer> {
  const response = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await (response.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-s3-'));
  s3 = await startS3();
  await s3.createBucket(BUCKET);
});

after(async () => {
  await unmountAllUnder(work);
  await s3?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('s3 mode: data object in S3, metadata-only .clip', () => {
  let source: string;
  let archive: string;
  let extra: Buffer;
  const dataKey = 'trees/hard.data';
  const progress: CreateAndUploadProgress[] = [];

  before(async () => {
    source = join(work, 's3-source');
    await buildHardTree(source, { bigFile: false });
    extra = Buffer.from(await contentBytes(patternContent(EXTRA_FILE_BYTES, 7)));
    await writeFile(join(source, 'extra.bin'), extra);
    await mkdir(join(work, 's3-out'));
    archive = join(work, 's3-out', 'hard.clip');
  });

  test('createAndUploadArchive streams the data (multipart) and writes a metadata-only archive', async () => {
    const result = await createAndUploadArchive({
      inputPath: source,
      outputPath: archive,
      bucket: BUCKET,
      key: dataKey,
      endpoint: s3.endpoint,
      credentials: s3.credentials,
      partBytes: 5 * MiB,
      onProgress: (p) => progress.push(p),
    });
    assert.equal(result.dataLocation, `s3://${BUCKET}/${dataKey}`);
    assert.deepEqual(result.storage, {
      mode: 's3',
      bucket: BUCKET,
      key: dataKey,
      region: 'us-east-1',
      endpoint: s3.endpoint,
      spanBytes: 256 * 1024,
      dataLength: result.dataBytes,
    });
    assert.ok(result.dataBytes > EXTRA_FILE_BYTES);
    // The archive holds metadata only: far smaller than the data, which is in the bucket.
    assert.ok(result.archiveBytes < 256 * 1024, `archive is ${result.archiveBytes} bytes`);
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: dataKey }));
    assert.equal(head.ContentLength, result.dataBytes);
    assert.match(head.ETag ?? '', /-3"$/, 'three multipart parts');
    assert.equal(progress.at(-1)?.bytesUploaded, result.dataBytes);
    assert.ok(progress.some((p) => p.bytesUploaded > 0 && p.bytesUploaded < result.dataBytes), 'progress while uploading');
    // Only the archive in the output directory (no temporary file), and no credentials in it.
    assert.deepEqual(await readdir(join(work, 's3-out')), ['hard.clip']);
    const bytes = await readFile(archive);
    const reader = await ArchiveReader.open(archive, { s3: { credentials: s3.credentials } });
    try {
      assert.equal(reader.index.meta.storage.mode, 's3');
      assert.ok(!JSON.stringify(reader.index.meta).includes(s3.credentials.secretAccessKey));
      assert.ok(!JSON.stringify(reader.index.meta).includes(s3.credentials.accessKeyId));
    } finally {
      await reader.close();
    }
    assert.equal(bytes.indexOf(s3.credentials.accessKeyId), -1);
  });

  test('the same tree gives the same data object and a byte-identical archive', async () => {
    const again = join(work, 'again.clip');
    const result = await createAndUploadArchive({
      inputPath: source,
      outputPath: again,
      bucket: BUCKET,
      key: 'trees/hard-again.data',
      endpoint: s3.endpoint,
      credentials: s3.credentials,
    });
    assert.equal(sha256Hex(await getObject('trees/hard-again.data')), sha256Hex(await getObject(dataKey)));
    const reader = await ArchiveReader.open(again, { s3: { credentials: s3.credentials } });
    const original = await ArchiveReader.open(archive, { s3: { credentials: s3.credentials } });
    try {
      assert.deepEqual(reader.index.toc, original.index.toc);
      assert.equal(result.dataBytes, (original.index.meta.storage as { dataLength: number }).dataLength);
    } finally {
      await reader.close();
      await original.close();
    }
  });

  test('clip mount of the s3-mode archive (credentials from the environment) matches the source', async () => {
    await assertMountMatches(archive, source, join(work, 'mnt-s3'));
  });

  test('reads are lazy ranged GETs, verified span by span (a flipped byte is caught)', async () => {
    const proxy: CountingProxy = await startCountingProxy(s3.endpoint);
    try {
      // The reader's endpoint overrides the one recorded in the archive.
      const reader = await ArchiveReader.open(archive, { s3: { endpoint: proxy.url, credentials: s3.credentials }, readAheadSpans: 0 });
      try {
        assert.equal(proxy.bytesFor(dataKey), 0, 'opening fetches no data');
        const slice = await reader.read('extra.bin', 5_000_000, 100_000);
        assert.deepEqual(slice, extra.subarray(5_000_000, 5_100_000));
        assert.ok(proxy.bytesFor(dataKey) <= 2 * 256 * 1024, `fetched ${proxy.bytesFor(dataKey)} bytes for a 100 kB read`);
        assert.ok(proxy.stats.log.some((r) => r.method === 'GET' && typeof r.headers.range === 'string'), 'ranged GETs');

        // The read path fetches a span that fails its digest once more: damage both answers.
        proxy.addFault({ kind: 'flip', offset: 1000 }, { match: (r) => r.method === 'GET' && r.path.includes(dataKey), times: 2 });
        await expectClipError(reader.read('extra.bin', 9_000_000, 10), 'DIGEST_MISMATCH', /fails its sha256 check/);
        // The failed span is not cached: the next read fetches it again, intact.
        assert.deepEqual(await reader.read('extra.bin', 9_000_000, 10), extra.subarray(9_000_000, 9_000_010));
      } finally {
        await reader.close();
      }
    } finally {
      await proxy.close();
    }
  });

  test('an s3-mode archive stored in S3 itself mounts from s3://', async () => {
    await uploadFileToS3(archive, `s3://${BUCKET}/clips/hard.clip`, { endpoint: s3.endpoint, credentials: s3.credentials });
    const mountPoint = join(work, 'mnt-s3-s3');
    const mount = await startClipMount(`s3://${BUCKET}/clips/hard.clip`, mountPoint, { args: ['--s3-endpoint', s3.endpoint], env: childEnv() });
    try {
      const sum = await run('sha256sum', [join(mountPoint, 'extra.bin')]);
      assert.equal(sum.stdout.split(' ')[0], sha256Hex(extra));
      assert.equal((await run('cat', [join(mountPoint, 'hello.txt')])).stdout, 'hello, world\n');
    } finally {
      assert.equal((await mount.stop()).code, 0);
    }
  });

  test('a replaced data object fails its digests; a deleted one fails the mount before anything is mounted', async () => {
    const key = 'trees/small.data';
    const small = join(work, 'small-src');
    await mkdir(small);
    await writeFile(join(small, 'a.txt'), 'A'.repeat(1000));
    const smallArchive = join(work, 'small.clip');
    await createAndUploadArchive({ inputPath: small, outputPath: smallArchive, bucket: BUCKET, key, endpoint: s3.endpoint, credentials: s3.credentials });
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'B'.repeat(1000) }));
    const reader = await ArchiveReader.open(smallArchive, { s3: { credentials: s3.credentials } });
    try {
      await expectClipError(reader.readFile('a.txt'), 'DIGEST_MISMATCH');
    } finally {
      await reader.close();
    }
    await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
    const mountPoint = join(work, 'mnt-deleted');
    const result = await runClip(['mount', smallArchive, mountPoint], { env: childEnv() });
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`cannot open s3://${BUCKET}/${key}.*no such object \\[NOT_FOUND\\]`));
    assert.deepEqual(await fuseMountsUnder(work), []);
  });
});

describe('local-mode archive stored in S3', () => {
  test('clip mount s3://bucket/key of a local .clip uploaded as an object matches the source', async () => {
    const source = join(work, 'local-source');
    await buildHardTree(source, { bigFile: false });
    const archive = join(work, 'local.clip');
    await createArchive({ inputPath: source, outputPath: archive });
    const uploaded = await uploadFileToS3(archive, `s3://${BUCKET}/clips/local.clip`, { endpoint: s3.endpoint, credentials: s3.credentials });
    assert.equal(uploaded.location, `s3://${BUCKET}/clips/local.clip`);
    assert.ok((await getObject('clips/local.clip')).equals(await readFile(archive)));
    await assertMountMatches(`s3://${BUCKET}/clips/local.clip`, source, join(work, 'mnt-local'), ['--s3-endpoint', s3.endpoint]);
  });

  test('the endpoint may come from AWS_ENDPOINT_URL_S3 (clip inspect has no S3 flags)', async () => {
    const result = await runClip(['inspect', `s3://${BUCKET}/clips/local.clip`, '--json'], {
      env: childEnv({ AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' }),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { storage: { mode: string } }).storage.mode, 'local');
  });
});

describe('oci mode: clip index --upload, clip mount s3://', () => {
  let registry: RegistryHandle;
  let proxy: CountingProxy;
  let image: PushedImage;
  const big = patternContent(12 * MiB, 3);
  let ref: string;

  before(async () => {
    registry = await startRegistry();
    image = await pushImageDetailed(registry, 'app/s3', 'v1', [
      buildTarLayer([
        { type: 'dir', path: 'etc' },
        { type: 'file', path: 'etc/hello.txt', content: 'hello from the registry\n' },
        { type: 'symlink', path: 'etc/link', target: 'hello.txt' },
        { type: 'file', path: 'data/big.bin', content: big },
      ]),
      buildTarLayer([{ type: 'file', path: 'etc/second.txt', content: 'second layer\n', mode: 0o600 }]),
    ]);
    // Through a counting proxy: the archive records the proxy as the registry.
    proxy = await startCountingProxy(registry.url);
    ref = `${proxy.host}/app/s3:v1`;
  });

  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });

  test('indexes the image and uploads the .clip; no local file is needed', async () => {
    const result = await runClip(['index', ref, '--platform', 'linux/amd64', '--upload', `s3://${BUCKET}/images/app.clip`, '--s3-endpoint', s3.endpoint], {
      env: childEnv(),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`uploaded s3://${BUCKET}/images/app\\.clip`));
    const bytes = await getObject('images/app.clip');
    assert.equal(bytes.subarray(1, 5).toString(), 'CLIP');
    assert.equal(bytes.indexOf(s3.credentials.secretAccessKey), -1);
  });

  test('-o with --upload keeps a local copy identical to the object', async () => {
    const local = join(work, 'app.clip');
    const result = await runClip(['index', ref, '--platform', 'linux/amd64', '-o', local, '--upload', `s3://${BUCKET}/images/app-2.clip`, '--s3-endpoint', s3.endpoint], {
      env: childEnv(),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.ok((await readFile(local)).equals(await getObject('images/app-2.clip')));
  });

  test('clip mount s3://bucket/key reads lazily from the registry and files match', async () => {
    const mountPoint = join(work, 'mnt-oci');
    const layerDigest = image.layers[0]?.digest as string;
    const mount = await startClipMount(`s3://${BUCKET}/images/app.clip`, mountPoint, { args: ['--s3-endpoint', s3.endpoint], env: childEnv() });
    try {
      proxy.resetStats();
      assert.equal((await run('cat', [join(mountPoint, 'etc/hello.txt')])).stdout, 'hello from the registry\n');
      const afterSmall = proxy.bytesFor(layerDigest);
      assert.ok(afterSmall > 0 && afterSmall < (image.layers[0]?.size ?? 0) / 2, `a small file cost ${afterSmall} of ${image.layers[0]?.size} layer bytes`);
      assert.equal((await run('readlink', [join(mountPoint, 'etc/link')])).stdout.trim(), 'hello.txt');
      assert.equal((await run('cat', [join(mountPoint, 'etc/second.txt')])).stdout, 'second layer\n');
      const sum = await run('sha256sum', [join(mountPoint, 'data/big.bin')]);
      assert.equal(sum.stdout.split(' ')[0], sha256Hex(Buffer.from(await contentBytes(big))));
    } finally {
      assert.equal((await mount.stop()).code, 0);
    }
    assert.deepEqual(await fuseMountsUnder(work), []);
  });

  test('a missing bucket fails before the image is indexed, leaving nothing', async () => {
    const outDir = join(work, 'index-out');
    await mkdir(outDir);
    proxy.resetStats();
    const result = await runClip(['index', ref, '-o', join(outDir, 'x.clip'), '--upload', 's3://no-such-bucket/x.clip', '--s3-endpoint', s3.endpoint], {
      env: childEnv(),
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /bucket no-such-bucket does not exist \[NOT_FOUND\]/);
    assert.equal(proxy.stats.requests, 0, 'the registry was not contacted');
    assert.deepEqual(await readdir(outDir), []);
  });
});

describe('errors', () => {
  let tree: string;

  before(async () => {
    tree = join(work, 'err-src');
    await mkdir(tree);
    await writeFile(join(tree, 'f.txt'), 'content\n');
  });

  test('createAndUploadArchive to a missing bucket: NOT_FOUND, no archive, no temporary file', async () => {
    const outDir = join(work, 'err-out-1');
    await mkdir(outDir);
    await expectClipError(
      createAndUploadArchive({ inputPath: tree, outputPath: join(outDir, 'x.clip'), bucket: 'no-such-bucket', key: 'x', endpoint: s3.endpoint, credentials: s3.credentials }),
      'NOT_FOUND',
      /bucket no-such-bucket does not exist/,
    );
    assert.deepEqual(await readdir(outDir), []);
  });

  test('a failure in the middle of the walk aborts the multipart upload: no object, no parts, no archive', async () => {
    const big = join(work, 'abort-src');
    await mkdir(big);
    await writeFile(join(big, 'a-big.bin'), await contentBytes(patternContent(12 * MiB, 5)));
    for (let i = 0; i < 200; i++) await writeFile(join(big, `z-${i}`), `small ${i}\n`);
    const outDir = join(work, 'err-out-abort');
    await mkdir(outDir);
    let lastEntries = 0;
    await assert.rejects(
      createAndUploadArchive({
        inputPath: big,
        outputPath: join(outDir, 'x.clip'),
        bucket: BUCKET,
        key: 'aborted.data',
        endpoint: s3.endpoint,
        credentials: s3.credentials,
        partBytes: 5 * MiB,
        onProgress: (p) => {
          // Walk progress (not upload progress): fail once the big file has been streamed.
          if (p.entries > lastEntries && p.bytesRead >= 12 * MiB && p.entries > 10) throw new Error('walk failed on purpose');
          lastEntries = p.entries;
        },
      }),
      /walk failed on purpose/,
    );
    assert.deepEqual(await readdir(outDir), []);
    assert.equal(await objectExists('aborted.data'), false);
    const uploads = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    assert.deepEqual(uploads.Uploads ?? [], []);
  });

  test('clip create --upload with the endpoint down: UNAVAILABLE, nothing written', async () => {
    const outDir = join(work, 'err-out-2');
    await mkdir(outDir);
    const down = `http://127.0.0.1:${await freePort()}`;
    const result = await runClip(['create', tree, '-o', join(outDir, 'x.clip'), '--upload', `s3://${BUCKET}/x`, '--s3-endpoint', down], { env: childEnv() });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /S3 endpoint is unreachable or failing \(ECONNREFUSED\) \[UNAVAILABLE\]/);
    assert.deepEqual(await readdir(outDir), []);
    assert.equal(await objectExists('x'), false);
  });

  test('clip mount of a missing key, a missing bucket, or with the endpoint down: clear errors, nothing mounted', async () => {
    const mountPoint = join(work, 'mnt-err');
    const missingKey = await runClip(['mount', `s3://${BUCKET}/no/such.clip`, mountPoint, '--s3-endpoint', s3.endpoint], { env: childEnv() });
    assert.equal(missingKey.code, 1);
    assert.match(missingKey.stderr, new RegExp(`cannot open s3://${BUCKET}/no/such\\.clip \\(endpoint ${s3.endpoint}\\): no such object \\[NOT_FOUND\\]`));
    const missingBucket = await runClip(['mount', 's3://no-such-bucket/a.clip', mountPoint, '--s3-endpoint', s3.endpoint], { env: childEnv() });
    assert.equal(missingBucket.code, 1);
    assert.match(missingBucket.stderr, /bucket no-such-bucket does not exist \[NOT_FOUND\]/);
    const down = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await runClip(['mount', `s3://${BUCKET}/a.clip`, mountPoint, '--s3-endpoint', down], { env: childEnv() });
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /unreachable or failing \(ECONNREFUSED\) \[UNAVAILABLE\]/);
    assert.deepEqual(await fuseMountsUnder(work), []);
  });

  test('no credentials anywhere: UNAUTHORIZED', async () => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: work, AWS_EC2_METADATA_DISABLED: 'true', AWS_REGION: 'us-east-1' };
    const result = await runClip(['mount', `s3://${BUCKET}/a.clip`, join(work, 'mnt-nocred'), '--s3-endpoint', s3.endpoint], { env });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no AWS credentials found.*\[UNAUTHORIZED\]/);
  });

  test('rejected credentials: UNAUTHORIZED, and the secret appears nowhere', async () => {
    const strict = await startS3({ auth: true });
    try {
      const outDir = join(work, 'err-out-3');
      await mkdir(outDir);
      // HeadBucket's 403 passes the pre-check (writers may lack ListBucket); the upload itself is refused.
      const err = await expectClipError(
        createAndUploadArchive({ inputPath: tree, outputPath: join(outDir, 'x.clip'), bucket: BUCKET, key: 'x', endpoint: strict.endpoint, credentials: strict.credentials }),
        'UNAUTHORIZED',
        /the credentials were rejected \(InvalidAccessKeyId, HTTP 403\)/,
      );
      assert.deepEqual(await readdir(outDir), []);
      const mount = await runClip(['mount', `s3://${BUCKET}/a.clip`, join(work, 'mnt-strict'), '--s3-endpoint', strict.endpoint], { env: childEnv(strict.env) });
      assert.equal(mount.code, 1);
      assert.match(mount.stderr, /the credentials were rejected \(InvalidAccessKeyId, HTTP 403\) \[UNAUTHORIZED\]/);
      for (const text of [err.message, JSON.stringify(err), mount.stderr]) {
        assert.ok(!text.includes(strict.credentials.secretAccessKey));
      }
    } finally {
      await strict.stop();
    }
  });

  test('bad S3 arguments are refused without echoing secrets', async () => {
    const badUrl = await runClip(['create', tree, '-o', join(work, 'bad.clip'), '--upload', 's3://bucket-only']);
    assert.equal(badUrl.code, 1);
    assert.match(badUrl.stderr, /must name a bucket and a key.*\[INVALID_ARGUMENT\]/);
    const noTarget = await runClip(['index', 'alpine']);
    assert.equal(noTarget.code, 2);
    assert.match(noTarget.stderr, /-o <file\.clip>, --upload <s3:\/\/bucket\/key>/);
    const userinfo = await runClip(['mount', `s3://${BUCKET}/a.clip`, join(work, 'mnt-x'), '--s3-endpoint', 'http://AKIAUSER:topsecret@127.0.0.1:9']);
    assert.equal(userinfo.code, 1);
    assert.match(userinfo.stderr, /must not carry credentials.*\[INVALID_ARGUMENT\]/);
    assert.ok(!userinfo.stderr.includes('topsecret'));
  });
});

describe('S3 settings', () => {
  test('s3:// URLs', () => {
    assert.deepEqual(parseS3Url('s3://b/k/with spaces?and#more'), { bucket: 'b', key: 'k/with spaces?and#more' });
    expectClipErrorSync(() => parseS3Url('s3://b'), 'INVALID_ARGUMENT');
    expectClipErrorSync(() => parseS3Url('s3:///k'), 'INVALID_ARGUMENT');
    expectClipErrorSync(() => parseS3Url('/local/path'), 'INVALID_ARGUMENT');
  });

  test('endpoint from the flag, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL; path style for IPs and localhost', () => {
    const env = { AWS_ENDPOINT_URL: 'http://generic:1', AWS_ENDPOINT_URL_S3: 'http://s3only:2/' };
    assert.equal(resolveEndpoint('https://explicit.example', env), 'https://explicit.example');
    assert.equal(resolveEndpoint(undefined, env), 'http://s3only:2');
    assert.equal(resolveEndpoint(undefined, { AWS_ENDPOINT_URL: 'http://generic:1' }), 'http://generic:1');
    assert.equal(resolveEndpoint(undefined, { ...env, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' }), undefined);
    assert.equal(resolveEndpoint(undefined, {}), undefined);
    expectClipErrorSync(() => resolveEndpoint('ftp://x', {}), 'INVALID_ARGUMENT');
    for (const endpoint of ['http://127.0.0.1:9000', 'http://[::1]:9000', 'http://localhost:9000', 'https://minio.localhost']) {
      assert.equal(needsPathStyle(endpoint), true, endpoint);
    }
    assert.equal(needsPathStyle('https://s3.eu-west-1.amazonaws.com'), false);
  });

  test('every S3 flag is documented in --help', async () => {
    for (const command of ['create', 'index', 'mount']) {
      const help = await runClip([command, '--help']);
      assert.equal(help.code, 0);
      for (const flag of ['--s3-endpoint', '--s3-region', '--s3-path-style', 'AWS_ACCESS_KEY_ID']) assert.match(help.stdout, new RegExp(flag), `${command}: ${flag}`);
      if (command !== 'mount') assert.match(help.stdout, /--upload <s3:\/\/bucket\/key>/);
      else assert.match(help.stdout, /s3:\/\/bucket\/key/);
    }
  });
});
