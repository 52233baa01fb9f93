/** The CSI driver's pure pieces: error mapping, secrets, request validation, endpoints, locking. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import grpc from '@grpc/grpc-js';
import { ClipError, credentialsFromSecrets, imageKeyOf, type ClipErrorCode } from '../src/clipcore/index.js';
import { CsiError, toGrpcError } from '../src/csi/errors.js';
import { checkLength, quote } from '../src/csi/limits.js';
import { checkDriverName } from '../src/csi/identity.js';
import { socketPathOf } from '../src/csi/server.js';
import type { NodePublishVolumeRequest } from '../src/csi/types.js';
import { parseListenAddress } from '../src/csi/http-server.js';
import { ImageCredentials } from '../src/node/image-credentials.js';
import { KeyedLock } from '../src/node/keyed-lock.js';
import { checkTarget, resolvePath, resolveRules } from '../src/node/target-path.js';
import { parsePublishRequest } from '../src/node/volume-spec.js';

describe('error mapping at the gRPC edge', () => {
  const cases: Array<[ClipErrorCode, grpc.status]> = [
    ['INVALID_ARGUMENT', grpc.status.INVALID_ARGUMENT],
    ['INVALID_REFERENCE', grpc.status.INVALID_ARGUMENT],
    ['IMAGE_NOT_FOUND', grpc.status.NOT_FOUND],
    ['NOT_FOUND', grpc.status.NOT_FOUND],
    ['UNAUTHORIZED', grpc.status.UNAUTHENTICATED],
    ['FORBIDDEN', grpc.status.PERMISSION_DENIED],
    ['UNAVAILABLE', grpc.status.UNAVAILABLE],
    ['UNSUPPORTED_MEDIA_TYPE', grpc.status.FAILED_PRECONDITION],
    ['DIGEST_MISMATCH', grpc.status.DATA_LOSS],
    ['CORRUPT', grpc.status.INTERNAL],
    ['MOUNT_FAILED', grpc.status.INTERNAL],
  ];
  for (const [clip, code] of cases) {
    it(`${clip} → ${grpc.status[code]}`, () => {
      const mapped = toGrpcError(new ClipError(clip, `something ${clip}`));
      assert.equal(mapped.code, code);
      assert.equal(mapped.codeName, grpc.status[code]);
      assert.equal(mapped.message, `something ${clip}`);
      assert.equal(mapped.clipCode, clip);
    });
  }
  it('CsiError keeps its code; anything else is INTERNAL', () => {
    assert.equal(toGrpcError(new CsiError(grpc.status.ALREADY_EXISTS, 'x')).code, grpc.status.ALREADY_EXISTS);
    const other = toGrpcError(new TypeError('boom'));
    assert.equal(other.code, grpc.status.INTERNAL);
    assert.match(other.message, /boom/);
  });
});

describe('credentials from a nodePublishSecretRef', () => {
  const auth = (user: string, password: string): string => Buffer.from(`${user}:${password}`).toString('base64');
  it('reads .dockerconfigjson auths by registry, whatever the key style', () => {
    const secrets = { '.dockerconfigjson': JSON.stringify({ auths: { 'https://reg.example:5000/v1/': { auth: auth('u', 'p:w') } } }) };
    assert.deepEqual(credentialsFromSecrets(secrets, 'reg.example:5000'), { username: 'u', password: 'p:w' });
    assert.equal(credentialsFromSecrets(secrets, 'other.example'), undefined);
  });
  it('maps Docker Hub aliases together, reads username/password and registrytoken entries', () => {
    const secrets = {
      '.dockerconfigjson': JSON.stringify({
        auths: { 'https://index.docker.io/v1/': { username: 'hub', password: 'pw' }, 'tok.example': { registrytoken: 't0k' } },
      }),
    };
    assert.deepEqual(credentialsFromSecrets(secrets, 'registry-1.docker.io'), { username: 'hub', password: 'pw' });
    assert.deepEqual(credentialsFromSecrets(secrets, 'tok.example'), { token: 't0k' });
  });
  it('reads the legacy .dockercfg and plain username/password keys', () => {
    assert.deepEqual(credentialsFromSecrets({ '.dockercfg': JSON.stringify({ 'r.example': { auth: auth('a', 'b') } }) }, 'r.example'), { username: 'a', password: 'b' });
    assert.deepEqual(credentialsFromSecrets({ username: 'x', password: 'y' }, 'any'), { username: 'x', password: 'y' });
  });
  it('rejects malformed secrets without echoing them', () => {
    assert.throws(
      () => credentialsFromSecrets({ '.dockerconfigjson': '{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}' }, 'r'),
      (err: ClipError) => err.code === 'INVALID_ARGUMENT' && !err.message.includes('bm9jb2xvbg'),
    );
    assert.throws(
      () => credentialsFromSecrets({ '.dockerconfigjson': 'secret-text' }, 'r'),
      (err: ClipError) => err.code === 'INVALID_ARGUMENT' && !err.message.includes('secret-text'),
    );
  });
});

function validRequest(overrides: Partial<NodePublishVolumeRequest> = {}): NodePublishVolumeRequest {
  return {
    volume_id: 'v',
    publish_context: {},
    staging_target_path: '',
    target_path: '/var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/v/mount',
    volume_capability: { mount: { fs_type: '', mount_flags: [], volume_mount_group: '' }, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' },
    readonly: false,
    secrets: {},
    volume_context: { image: 'alpine:3.20', 'csi.storage.k8s.io/ephemeral': 'true' },
    ...overrides,
  };
}

describe('NodePublishVolume validation', () => {
  const request = validRequest;
  it('kubelet inline volumes: SINGLE_NODE_WRITER with readonly=false is writable, readonly=true is not', () => {
    assert.equal(parsePublishRequest(request()).readOnly, false);
    assert.equal(parsePublishRequest(request({ readonly: true })).readOnly, true);
  });
  it('reader access modes and the ro mount flag mean read-only', () => {
    const capability = (mode: 'MULTI_NODE_READER_ONLY' | 'SINGLE_NODE_READER_ONLY', flags: string[] = []) => ({
      mount: { fs_type: '', mount_flags: flags, volume_mount_group: '' },
      access_mode: { mode },
    });
    assert.equal(parsePublishRequest(request({ volume_capability: capability('MULTI_NODE_READER_ONLY') })).readOnly, true);
    assert.equal(parsePublishRequest(request({ volume_capability: capability('SINGLE_NODE_READER_ONLY') })).readOnly, true);
  });
  it('pullPolicy: Kubernetes defaults (Always for latest or no tag, else IfNotPresent)', () => {
    const policy = (image: string, pullPolicy?: string): string =>
      parsePublishRequest(request({ volume_context: { image, ...(pullPolicy && { pullPolicy }) } })).pullPolicy;
    assert.equal(policy('alpine'), 'Always');
    assert.equal(policy('alpine:latest'), 'Always');
    assert.equal(policy('alpine:3.20'), 'IfNotPresent');
    assert.equal(policy(`alpine@sha256:${'a'.repeat(64)}`), 'IfNotPresent');
    assert.equal(policy('alpine:3.20', 'Always'), 'Always');
  });
  it('a static PV may use an image reference as its handle', () => {
    const spec = parsePublishRequest(request({ volume_id: 'registry.example/app:1', volume_context: {} }));
    assert.equal(spec.image, 'registry.example/app:1');
    assert.equal(spec.ephemeral, false);
  });
  it('keeps pod information', () => {
    const spec = parsePublishRequest(
      request({ volume_context: { image: 'alpine:3.20', 'csi.storage.k8s.io/pod.name': 'web', 'csi.storage.k8s.io/pod.namespace': 'prod', 'csi.storage.k8s.io/pod.uid': 'u1' } }),
    );
    assert.deepEqual(spec.pod, { name: 'web', namespace: 'prod', uid: 'u1' });
  });
});

describe('small parsers and the keyed lock', () => {
  it('endpoints, listen addresses, driver names, image keys', () => {
    assert.equal(socketPathOf('unix:///csi/csi.sock'), '/csi/csi.sock');
    assert.equal(socketPathOf('unix:/csi/csi.sock'), '/csi/csi.sock');
    assert.throws(() => socketPathOf('tcp://127.0.0.1:1'), /unix/);
    assert.deepEqual(parseListenAddress(':9100'), { host: undefined, port: 9100 });
    assert.deepEqual(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseListenAddress('[::1]:9100'), { host: '::1', port: 9100 });
    assert.throws(() => parseListenAddress('9100'));
    assert.equal(checkDriverName('clip.csi.dev'), 'clip.csi.dev');
    assert.throws(() => checkDriverName('-bad'));
    assert.throws(() => checkDriverName('x'.repeat(64)));
    assert.equal(imageKeyOf(`sha256:${'0'.repeat(64)}`, 'linux/arm64/v8'), `sha256-${'0'.repeat(64)}-linux-arm64-v8`);
  });
  it('runs work for one key one after another, other keys alongside', async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    let releaseA1!: () => void;
    const a1Gate = new Promise<void>((resolve) => (releaseA1 = resolve));
    let a1Started!: () => void;
    const a1Running = new Promise<void>((resolve) => (a1Started = resolve));
    const a1 = lock.run(['a'], async () => {
      order.push('a1+');
      a1Started();
      await a1Gate;
      order.push('a1-');
    });
    const a2 = lock.run(['a'], async () => {
      order.push('a2');
    });
    await a1Running;
    // Another key runs to completion while 'a' is held, and the second holder of 'a' waits.
    await lock.run(['b'], async () => {
      order.push('b1');
    });
    assert.deepEqual(order, ['a1+', 'b1']);
    assert.equal(lock.busy('a'), true);
    assert.equal(lock.busy('b'), false);
    releaseA1();
    await Promise.all([a1, a2]);
    assert.deepEqual(order, ['a1+', 'b1', 'a1-', 'a2']);
    assert.equal(lock.busy('a'), false);
  });
});

describe('target path rules, field limits, credentials held in memory', () => {
  it('resolvePath follows `..` and symlinks (the last component too) and keeps missing components', async () => {
    const dir = await realpath(await mkdtemp(join(tmpdir(), 'csi-paths-')));
    try {
      await mkdir(join(dir, 'kubelet', 'pods'), { recursive: true });
      await mkdir(join(dir, 'elsewhere'));
      await symlink(join(dir, 'elsewhere'), join(dir, 'kubelet', 'pods', 'out'));
      await symlink('../pods', join(dir, 'kubelet', 'pods', 'loop-free'));
      await symlink(join(dir, 'missing', 'target'), join(dir, 'kubelet', 'pods', 'dangling'));
      assert.equal(await resolvePath(join(dir, 'kubelet', 'pods', 'a', 'b')), join(dir, 'kubelet', 'pods', 'a', 'b'));
      assert.equal(await resolvePath(join(dir, 'kubelet', 'pods', '..', '..', 'elsewhere')), join(dir, 'elsewhere'));
      assert.equal(await resolvePath(join(dir, 'kubelet', 'pods', 'out')), join(dir, 'elsewhere'));
      assert.equal(await resolvePath(join(dir, 'kubelet', 'pods', 'out', 'mount')), join(dir, 'elsewhere', 'mount'));
      assert.equal(await resolvePath(join(dir, 'kubelet', 'pods', 'loop-free', 'x')), join(dir, 'kubelet', 'pods', 'x'));
      assert.equal(await resolvePath(join(dir, 'kubelet', 'pods', 'dangling')), join(dir, 'missing', 'target'));
      const rules = await resolveRules(join(dir, 'kubelet'), [{ dir: join(dir, 'kubelet', 'state'), name: 'state directory' }]);
      assert.equal(await checkTarget('target_path', join(dir, 'kubelet', 'pods', 'p', 'mount'), rules), join(dir, 'kubelet', 'pods', 'p', 'mount'));
      for (const [path, message] of [
        [join(dir, 'kubelet', 'pods', 'out', 'mount'), /resolves to .* not under the kubelet directory/],
        [join(dir, 'kubelet'), /not under the kubelet directory/],
        [join(dir, 'kubelet-other', 'x'), /not under the kubelet directory/],
        [join(dir, 'kubelet', 'state', 'x'), /inside the plugin's state directory/],
      ] as const) {
        await assert.rejects(checkTarget('target_path', path, rules), (err: CsiError) => err.code === grpc.status.INVALID_ARGUMENT && message.test(err.message));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('quoted values are truncated; over-long fields are refused with their limit', () => {
    assert.equal(quote('short'), '"short"');
    const long = quote('x'.repeat(10_000));
    assert.ok(long.length < 200, long);
    assert.match(long, /9872 more characters/);
    assert.throws(() => checkLength('f', 'é'.repeat(3), 5), /f is 6 bytes long, over the limit of 5 bytes/);
    assert.equal(checkLength('f', 'abc', 5), 'abc');
    assert.throws(() => parsePublishRequest({ ...validRequest(), volume_id: 'v'.repeat(513) }), /volume_id is 513 bytes long, over the limit of 512/);
  });

  it('image credentials: used once set, awaited (bounded) when expected, refreshed by a later set', async () => {
    let missing = 0;
    const slot = new ImageCredentials(50, () => missing++);
    assert.equal(await slot.provider('r'), undefined, 'none expected: the node config or anonymous');
    slot.expect();
    await assert.rejects(slot.provider('r'), (err: ClipError) => err.code === 'UNAUTHORIZED');
    assert.equal(missing, 1);
    const waiting = slot.provider('r');
    slot.set({ username: 'u', password: 'p' });
    assert.deepEqual(await waiting, { username: 'u', password: 'p' });
    slot.set({ token: 't' });
    assert.deepEqual(await slot.provider('r'), { token: 't' });
  });
});
