/** The image-builder harness itself: the tar layers it writes must say exactly what tests asked for. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { compressor } from './harness/compress.js';
import { readAll, tarBytes } from './harness/image-builder.js';
import { buildTarLayer, contentBytes, patternContent, type LayerEntry } from './harness/tar-layer.js';

interface Seen {
  header: tar.Header;
  body: Buffer;
}

async function extractAll(data: Buffer): Promise<Seen[]> {
  const extract = tar.extract();
  const seen: Seen[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const parts: Buffer[] = [];
      for await (const chunk of entry) parts.push(chunk as Buffer);
      seen.push({ header: entry.header, body: Buffer.concat(parts) });
    }
  })();
  extract.end(data);
  await done;
  return seen;
}

function zstdDecompress(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`zstd -d exited ${code}`))));
    child.stdin.end(data);
  });
}

const longName = `deep/${'d'.repeat(90)}/${'n'.repeat(120)}.txt`;
const entries: LayerEntry[] = [
  { type: 'dir', path: './etc', mode: 0o750, uid: 5, gid: 6 },
  { type: 'file', path: './etc/conf', content: 'key=value\n', mode: 0o600, uid: 1000, gid: 1001, mtime: new Date('2020-02-02T00:00:00Z') },
  { type: 'file', path: longName, content: Buffer.from('long') },
  { type: 'file', path: 'attrs', content: 'x', xattrs: { 'user.foo': 'bar', 'security.capability': 'cap' } },
  { type: 'symlink', path: 'link', target: '/etc/conf' },
  { type: 'hardlink', path: 'hard', target: './etc/conf' },
  { type: 'fifo', path: 'pipe' },
  { type: 'char-device', path: 'dev/null', major: 1, minor: 3 },
  { type: 'whiteout', path: 'usr/old' },
  { type: 'opaque', path: 'var/cache/' },
  { type: 'file', path: 'big', content: patternContent(3 * 1024 * 1024 + 5, 9) },
  { type: 'file', path: 'ünïcode', content: 'u' },
];

describe('image-builder tar layers', () => {
  it('writes every entry kind with its metadata', async () => {
    const seen = await extractAll(await tarBytes(buildTarLayer(entries)));
    const by = new Map(seen.map((s) => [s.header.name.replace(/\/$/, ''), s]));
    assert.equal(by.get('./etc')?.header.type, 'directory');
    assert.equal(by.get('./etc')?.header.mode, 0o750);
    const conf = by.get('./etc/conf');
    assert.equal(conf?.body.toString(), 'key=value\n');
    assert.deepEqual([conf?.header.mode, conf?.header.uid, conf?.header.gid], [0o600, 1000, 1001]);
    assert.equal(conf?.header.mtime.toISOString(), '2020-02-02T00:00:00.000Z');
    assert.equal(by.get(longName)?.body.toString(), 'long');
    const pax = (by.get('attrs')?.header.pax ?? {}) as Record<string, string>;
    assert.equal(pax['SCHILY.xattr.user.foo'], 'bar');
    assert.equal(pax['SCHILY.xattr.security.capability'], 'cap');
    assert.deepEqual([by.get('link')?.header.type, by.get('link')?.header.linkname], ['symlink', '/etc/conf']);
    assert.deepEqual([by.get('hard')?.header.type, by.get('hard')?.header.linkname], ['link', './etc/conf']);
    assert.equal(by.get('pipe')?.header.type, 'fifo');
    const dev = by.get('dev/null')?.header;
    assert.deepEqual([dev?.type, dev?.devmajor, dev?.devminor], ['character-device', 1, 3]);
    assert.equal(by.get('usr/.wh.old')?.header.size, 0);
    assert.equal(by.get('var/cache/.wh..wh..opq')?.header.type, 'file');
    const big = by.get('big');
    assert.equal(big?.body.length, 3 * 1024 * 1024 + 5);
    assert.deepEqual(big?.body, await contentBytes(patternContent(3 * 1024 * 1024 + 5, 9)));
    assert.equal(by.get('ünïcode')?.body.toString(), 'u');
  });

  it('is reproducible, and gzip/zstd/none round-trip', async () => {
    const layer = buildTarLayer(entries);
    const tarData = await tarBytes(layer);
    const again = await tarBytes(layer);
    assert.equal(createHash('sha256').update(tarData).digest('hex'), createHash('sha256').update(again).digest('hex'));
    const gz = await readAll(Readable.from([tarData]).pipe(compressor('gzip')));
    assert.deepEqual(gunzipSync(gz), tarData);
    const zst = await readAll(Readable.from([tarData]).pipe(compressor('zstd')));
    assert.deepEqual(zst.subarray(0, 4), Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    assert.deepEqual(await zstdDecompress(zst), tarData);
    assert.deepEqual(await readAll(Readable.from([tarData]).pipe(compressor('none'))), tarData);
  });
});
