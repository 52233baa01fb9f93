/** Test data for the compression tests: deterministic mixed content and real compressor output. */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { crc32, deflateRawSync } from 'node:zlib';

/** mulberry32: a small seeded PRNG, so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomInt(next: () => number, lo: number, hi: number): number {
  return lo + Math.floor(next() * (hi - lo));
}

/** Incompressible bytes, seeded (AES-CTR keystream). */
export function randomBytes(n: number, seed: number): Buffer {
  const key = createHash('sha256').update(`key-${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

const WORDS = 'the of layer image tar gzip zstd block window span checkpoint file usr lib share bin include config'.split(' ');

/** Text-like, compressible bytes. */
function text(n: number, next: () => number): Buffer {
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const w = WORDS[randomInt(next, 0, WORDS.length)]! + (next() < 0.1 ? `${randomInt(next, 0, 99999)}\n` : ' ');
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

/**
 * `size` bytes mixing random, text-like, zero-run and repeated-pattern segments: deflate
 * produces stored, fixed and dynamic blocks of very different sizes from it.
 */
export function mixedData(size: number, seed: number, randomShare = 0.3): Buffer {
  const next = rng(seed);
  const corpus = text(256 * 1024, next);
  const random = randomBytes(Math.min(size, 8 * 1024 * 1024), seed);
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  while (pos < size) {
    const n = Math.min(size - pos, randomInt(next, 1, 512 * 1024));
    const kind = next();
    if (kind < randomShare) {
      const at = randomInt(next, 0, random.length - n + 1);
      random.copy(out, pos, Math.max(0, at), Math.max(0, at) + n);
    } else if (kind < 0.75) {
      // text-like
      for (let done = 0; done < n; ) {
        const at = randomInt(next, 0, corpus.length);
        done += corpus.copy(out, pos + done, at, Math.min(corpus.length, at + n - done));
      }
    } else if (kind < 0.9) out.fill(0, pos, pos + n);
    else out.fill(Buffer.from(`pattern-${randomInt(next, 0, 1000)}|`), pos, pos + n);
    pos += n;
  }
  return out;
}

/** Runs a command with `input` on stdin and returns its stdout; rejects on a non-zero exit. */
export function runTool(cmd: string, args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${err}`));
    });
    child.stdin.on('error', () => {}); // a failing tool may close stdin early; 'close' reports it
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

export interface GzipHeaderOptions {
  name?: string;
  comment?: string;
  extra?: Buffer;
  headerCrc?: boolean;
}

/** A gzip member with the header fields we choose, around Node's raw deflate output. */
export function gzipMember(data: Buffer, header: GzipHeaderOptions = {}, level = 6): Buffer {
  let flags = 0;
  const parts: Buffer[] = [];
  if (header.extra) {
    flags |= 0x04;
    const len = Buffer.alloc(2);
    len.writeUInt16LE(header.extra.length);
    parts.push(len, header.extra);
  }
  if (header.name !== undefined) {
    flags |= 0x08;
    parts.push(Buffer.from(`${header.name}\0`, 'latin1'));
  }
  if (header.comment !== undefined) {
    flags |= 0x10;
    parts.push(Buffer.from(`${header.comment}\0`, 'latin1'));
  }
  if (header.headerCrc) flags |= 0x02;
  const fixed = Buffer.from([0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3]);
  const head = Buffer.concat([fixed, ...parts]);
  const hcrc = Buffer.alloc(header.headerCrc ? 2 : 0);
  if (header.headerCrc) hcrc.writeUInt16LE(crc32(head) & 0xffff);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(data) >>> 0, 0);
  trailer.writeUInt32LE(data.length % 2 ** 32, 4);
  return Buffer.concat([head, hcrc, deflateRawSync(data, { level }), trailer]);
}

/** A zstd frame built by hand from raw and RLE blocks (no checksum), for framing tests. */
export function zstdHandFrame(blocks: Array<{ raw: Buffer } | { rle: number; size: number }>, dictId = 0): Buffer {
  const fhd = dictId ? 0x01 : 0x00; // no content size, not single segment, no checksum
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, fhd, 0x58])]; // window 2^21
  if (dictId) parts.push(Buffer.from([dictId]));
  blocks.forEach((b, i) => {
    const last = i === blocks.length - 1 ? 1 : 0;
    const [type, size, body] = 'raw' in b ? [0, b.raw.length, b.raw] : [1, b.size, Buffer.from([b.rle])];
    const h = last | (type << 1) | (size << 3);
    parts.push(Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]), body);
  });
  return Buffer.concat(parts);
}

export function zstdSkippableFrame(payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a53, 0);
  head.writeUInt32LE(payload.length, 4);
  return Buffer.concat([head, payload]);
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}
