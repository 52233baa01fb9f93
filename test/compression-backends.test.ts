/**
 * Raw inflate has two backends (raw-inflate.ts): zlib through our addon, which `npm run build`
 * compiles, and pako as the fallback. These tests check that the addon is really in use here,
 * that its boundary rejects bad calls without crashing, and that the gzip suites also pass on pako.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { crc32 as zlibCrc32, deflateRawSync } from 'node:zlib';
import { crc32, createRawInflater, inflateBackend } from '../src/clipcore/compression/raw-inflate.js';
import { mixedData } from './helpers/compression-data.js';

describe('raw inflate backends', () => {
  test('the zlib addon is built and used (CLIP_INFLATE=pako is the only way to get pako)', () => {
    const { backend, detail } = inflateBackend();
    if (process.env['CLIP_INFLATE'] === 'pako') assert.equal(backend, 'pako');
    else assert.equal(backend, 'zlib', `expected the addon, got pako because: ${detail}`);
  });

  test('inflates to block boundaries and reports them in data_type', () => {
    const data = mixedData(3 * 1024 * 1024, 7);
    const deflated = deflateRawSync(data, { level: 6 });
    const inflater = createRawInflater();
    const out = new Uint8Array(data.length);
    let inPos = 0;
    let outPos = 0;
    let boundaries = 0;
    for (;;) {
      const ret = inflater.inflate(deflated, inPos, out, outPos, out.length - outPos);
      inPos = inflater.inPos;
      outPos = inflater.outPos;
      if (ret === 1) break; // Z_STREAM_END
      assert.equal(ret, 0, `inflate returned ${ret}: ${inflater.message()}`);
      if ((inflater.dataType & 0xc0) === 0x80) boundaries++;
    }
    inflater.close();
    assert.equal(inPos, deflated.length, 'the stream ends exactly at the last deflate byte');
    assert.ok(Buffer.from(out).equals(data));
    assert.ok(boundaries > 3, `only ${boundaries} block boundaries in 3 MiB`);
  });

  test('the gzip CRC-32 (folded with PCLMULQDQ in the addon) is zlib\'s for every length, alignment and running value', () => {
    const data = mixedData(1024 * 1024 + 77, 11);
    const lengths = [1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000, 4096, 65_536 + 3, data.length - 40];
    for (const length of lengths) {
      for (const offset of [0, 1, 7, 33]) {
        const view = data.subarray(offset, offset + length);
        for (const value of [0, 0xffffffff, 0x12345678]) assert.equal(crc32(view, value), zlibCrc32(view, value), `${length} bytes at ${offset}, from ${value}`);
      }
    }
    // In pieces, as the decoder feeds it.
    let running = 0;
    for (let at = 0; at < data.length; at += 4099) running = crc32(data.subarray(at, at + 4099), running);
    assert.equal(running, zlibCrc32(data));
    if (inflateBackend().backend === 'zlib') assert.notEqual(crc32, zlibCrc32, 'the addon computes it');
  });

  test('bad calls throw instead of crashing the process', () => {
    const inflater = createRawInflater();
    const out = new Uint8Array(16);
    assert.throws(() => inflater.inflate(new Uint8Array(4), 5, out, 0, 16), RangeError);
    assert.throws(() => inflater.inflate(new Uint8Array(4), 0, out, 8, 16), RangeError);
    const garbage = Uint8Array.of(0xff, 0xff, 0xff, 0xff);
    assert.equal(inflater.inflate(garbage, 0, out, 0, 16), -3, 'Z_DATA_ERROR');
    assert.match(inflater.message(), /invalid/);
    inflater.close();
    inflater.close();
    if (inflateBackend().backend === 'zlib') assert.throws(() => inflater.reset(), /after close/);
  });

  test('the gzip suites pass on the pako fallback too', { timeout: 300_000 }, async () => {
    const files = ['compression.test.js', 'compression-layer.test.js'].map((name) => fileURLToPath(new URL(name, import.meta.url)));
    // Without NODE_TEST_CONTEXT, which makes a nested `node --test` skip its files.
    const { NODE_TEST_CONTEXT: _nested, ...env } = process.env;
    const child = spawn(process.execPath, ['--test', '--test-reporter=tap', ...files], {
      env: { ...env, CLIP_INFLATE: 'pako' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, output.slice(-4000));
    assert.match(output, /^# fail 0$/m);
    assert.match(output, /^# pass [1-9]\d*$/m);
    // Each suite names its backend: pako, in both.
    assert.deepEqual([...output.matchAll(/^\s*# inflate backend: (\w+)$/gm)].map((m) => m[1]), ['pako', 'pako'], output.slice(-4000));
  });
});
