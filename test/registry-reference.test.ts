/** Pure parts of the registry client: references, platforms, challenges, config keys, backoff. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normaliseRegistryKey, helperServerUrl } from '../src/clipcore/registry/docker-config.js';
import { platformScore, selectPlatform, hostPlatform } from '../src/clipcore/registry/platform.js';
import { parseReference } from '../src/clipcore/registry/reference.js';
import { parseRetryAfter, backoffDelay } from '../src/clipcore/registry/retry.js';
import { isLoopbackHost, SchemePolicy } from '../src/clipcore/registry/scheme.js';
import { TokenCache } from '../src/clipcore/registry/token-cache.js';
import { parseWwwAuthenticate } from '../src/clipcore/registry/www-authenticate.js';
import { expectClipErrorSync } from './harness/expect-error.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseReference: valid references', () => {
  const cases: [string, string, string, string | undefined, string | undefined, string][] = [
    // input, registry, repository, tag, digest, toString()
    ['alpine', 'registry-1.docker.io', 'library/alpine', 'latest', undefined, 'docker.io/library/alpine:latest'],
    ['library/alpine:3.20', 'registry-1.docker.io', 'library/alpine', '3.20', undefined, 'docker.io/library/alpine:3.20'],
    ['docker.io/x/y', 'registry-1.docker.io', 'x/y', 'latest', undefined, 'docker.io/x/y:latest'],
    ['index.docker.io/busybox', 'registry-1.docker.io', 'library/busybox', 'latest', undefined, 'docker.io/library/busybox:latest'],
    ['host:5000/a/b:tag', 'host:5000', 'a/b', 'tag', undefined, 'host:5000/a/b:tag'],
    ['localhost/a', 'localhost', 'a', 'latest', undefined, 'localhost/a:latest'],
    ['localhost:5000/a', 'localhost:5000', 'a', 'latest', undefined, 'localhost:5000/a:latest'],
    ['127.0.0.1:5000/x/y/z:v1.2_3-4', '127.0.0.1:5000', 'x/y/z', 'v1.2_3-4', undefined, '127.0.0.1:5000/x/y/z:v1.2_3-4'],
    [`name@${D}`, 'registry-1.docker.io', 'library/name', undefined, D, `docker.io/library/name@${D}`],
    [`name:tag@${D}`, 'registry-1.docker.io', 'library/name', 'tag', D, `docker.io/library/name:tag@${D}`],
    ['ghcr.io/org/a__b.c-d/e', 'ghcr.io', 'org/a__b.c-d/e', 'latest', undefined, 'ghcr.io/org/a__b.c-d/e:latest'],
    ['[::1]:5000/img', '[::1]:5000', 'img', 'latest', undefined, '[::1]:5000/img:latest'],
    ['localhost:5000', 'registry-1.docker.io', 'library/localhost', '5000', undefined, 'docker.io/library/localhost:5000'],
  ];
  for (const [input, registry, repository, tag, digest, text] of cases) {
    it(input, () => {
      const ref = parseReference(input);
      assert.equal(ref.registry, registry);
      assert.equal(ref.repository, repository);
      assert.equal(ref.tag, tag);
      assert.equal(ref.digest, digest);
      assert.equal(ref.toString(), text);
    });
  }
  it('keeps docker.io as the display registry', () => {
    assert.equal(parseReference('alpine').displayRegistry, 'docker.io');
  });
});

describe('parseReference: malformed references name the fault', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['Alpine', /must be lowercase/],
    ['example.com/Foo/bar', /"Foo\/bar" must be lowercase/],
    ['alpine:bad!tag', /tag "bad!tag" is invalid/],
    ['alpine:-tag', /tag "-tag" is invalid/],
    [`alpine:${'t'.repeat(129)}`, /tag "t+" is invalid/],
    ['alpine:', /tag after ':' is empty/],
    ['alpine@sha256:abc', /has 3 hex characters, sha256 needs 64/],
    [`alpine@sha256:${'A'.repeat(64)}`, /lowercase hexadecimal/],
    [`alpine@md5:${'a'.repeat(32)}`, /algorithm "md5" is not supported/],
    ['alpine@', /must look like sha256/],
    [`a@${D}@${D}`, /more than one '@'/],
    ['a//b', /empty path component/],
    ['a/b/', /empty path component/],
    ['foo_/bar', /component "foo_" is invalid/],
    ['host:abc/x', /port "abc" is not a number/],
    ['host:70000/x', /port "70000"/],
    ['-bad.com/x', /"-bad" is not a valid DNS label/],
    [':tag', /repository name is missing/],
    ['alp ine', /whitespace/],
    [`example.com/${'a'.repeat(250)}`, /longer than 255/],
  ];
  for (const [input, pattern] of cases) {
    it(JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input), () => {
      expectClipErrorSync(() => parseReference(input), 'INVALID_REFERENCE', pattern);
    });
  }
});

describe('platforms', () => {
  const entries = [
    { name: 'amd64', platform: { os: 'linux', architecture: 'amd64' } },
    { name: 'arm64', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { name: 'armv6', platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
    { name: 'attest', platform: { os: 'unknown', architecture: 'unknown' } },
  ];
  it('picks by os/architecture and treats arm64 v8 as no variant', () => {
    assert.equal(selectPlatform({ os: 'linux', architecture: 'amd64' }, entries)?.name, 'amd64');
    assert.equal(selectPlatform({ os: 'linux', architecture: 'arm64' }, entries)?.name, 'arm64');
    assert.equal(selectPlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' }, entries)?.name, 'arm64');
  });
  it('lets an armv7 host run armv6 but not the reverse', () => {
    assert.equal(selectPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' }, entries)?.name, 'armv6');
    assert.equal(platformScore({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' }), undefined);
  });
  it('finds nothing for another OS', () => {
    assert.equal(selectPlatform({ os: 'windows', architecture: 'amd64' }, entries), undefined);
  });
  it('maps the host architecture to OCI names', () => {
    const host = hostPlatform();
    const expected: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' };
    // OCI's name for Node's (the same name where none of these renames applies).
    assert.equal(host.architecture, expected[process.arch] ?? process.arch);
    if (process.arch === 'arm64') assert.equal(host.variant, 'v8');
  });
});

describe('WWW-Authenticate', () => {
  it('parses a bearer challenge with quoted params', () => {
    const [c] = parseWwwAuthenticate('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"');
    assert.deepEqual(c, { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'reg', scope: 'repository:a/b:pull,push' } });
  });
  it('parses several challenges and unquoted values', () => {
    const cs = parseWwwAuthenticate(['Basic realm="x y"', 'Bearer realm=tok, error=insufficient_scope']);
    assert.deepEqual(cs.map((c) => c.scheme), ['basic', 'bearer']);
    assert.equal(cs[0]?.params['realm'], 'x y');
    assert.equal(cs[1]?.params['error'], 'insufficient_scope');
  });
});

describe('small policies', () => {
  it('normalises docker config keys', () => {
    assert.equal(normaliseRegistryKey('https://index.docker.io/v1/'), 'registry-1.docker.io');
    assert.equal(normaliseRegistryKey('docker.io'), 'registry-1.docker.io');
    assert.equal(normaliseRegistryKey('https://Reg.Example:5000/v2/'), 'reg.example:5000');
    assert.equal(helperServerUrl('registry-1.docker.io'), 'https://index.docker.io/v1/');
    assert.equal(helperServerUrl('ghcr.io'), 'ghcr.io');
  });
  it('knows loopback hosts and insecure entries', () => {
    for (const h of ['127.0.0.1:5000', 'localhost', '127.9.9.9', '[::1]:80', 'localhost:1']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['10.0.0.1:5000', 'example.com', '128.0.0.1']) assert.ok(!isLoopbackHost(h), h);
    const policy = new SchemePolicy(['reg.lan', 'http://plain.lan:5000']);
    assert.ok(policy.mayUsePlainHttp('reg.lan:443'));
    assert.equal(policy.schemeFor('reg.lan:443'), 'https');
    assert.equal(policy.schemeFor('plain.lan:5000'), 'http');
    assert.ok(!policy.mayUsePlainHttp('other.lan'));
  });
  it('parses Retry-After and bounds backoff', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter(new Date(Date.now() + 5000).toUTCString(), Date.now()) !== undefined, true);
    assert.equal(parseRetryAfter('soon'), undefined);
    const policy = { retries: 5, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 0 };
    for (let i = 0; i < 10; i++) {
      const d = backoffDelay(policy, i);
      assert.ok(d >= Math.min(1000, 100 * 2 ** i) / 2 && d <= 1000, `attempt ${i}: ${d}`);
    }
  });
  it('expires cached tokens before expires_in runs out', () => {
    let now = 0;
    const cache = new TokenCache(() => now);
    const k = { registry: 'r:5000', realm: 'https://auth/token', service: 's', scope: 'repository:a:pull' };
    cache.set(k, 't', 10);
    now = 8_999;
    assert.equal(cache.get(k), 't');
    now = 9_000;
    assert.equal(cache.get(k), undefined);
    cache.set(k, 't2', 60);
    cache.invalidate(k, 'other');
    assert.equal(cache.get(k), 't2');
    cache.invalidate(k, 't2');
    assert.equal(cache.get(k), undefined);
  });
  it('hands cached tokens over without extending their life', () => {
    let now = 1_000;
    const original = new TokenCache(() => now);
    const k = { registry: 'r:5000', realm: 'https://auth/token', scope: 'repository:a:pull' };
    original.set(k, 't', 10); // usable until 1_000 + 9_000
    const listed = original.live();
    assert.deepEqual(listed, [{ ...k, token: 't', validForMs: 9_000 }]);
    now = 4_000; // adopted 3 s after being listed: 6 s left, as for the original
    const adopted = new TokenCache(() => now);
    for (const token of listed) adopted.adopt(token, 1_000);
    assert.equal(adopted.get(k), 't');
    now = 9_999;
    assert.equal(adopted.get(k), 't');
    now = 10_000;
    assert.equal(adopted.get(k), undefined);
    assert.equal(original.get(k), undefined);
    // A clock behind the time of listing counts from now; expired or nonsense lifetimes are ignored.
    now = 500;
    const behind = new TokenCache(() => now);
    behind.adopt({ ...k, token: 't', validForMs: 100 }, 1_000);
    now = 600;
    assert.equal(behind.get(k), undefined);
    behind.adopt({ ...k, token: 'late', validForMs: 50 }, 500);
    behind.adopt({ ...k, token: 'nan', validForMs: Number.NaN }, 600);
    assert.deepEqual(behind.live(), []);
  });
});
