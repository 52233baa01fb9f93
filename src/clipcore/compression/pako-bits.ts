/**
 * The two bits of zlib state pako does not expose: inflatePrime (to resume mid-byte at a
 * checkpoint) and the bit count held at stream end. pako's ZStream.state is untyped; this is the
 * narrow, checked view of the fields zlib's inflatePrime touches.
 */
import type { ZStream } from 'pako';
import { ClipError } from '../errors.js';

interface BitBuffer {
  hold: number;
  bits: number;
}

function bitBuffer(strm: ZStream): BitBuffer {
  const state: unknown = strm.state;
  if (typeof state === 'object' && state !== null && 'hold' in state && 'bits' in state) {
    const s = state as BitBuffer;
    if (typeof s.hold === 'number' && typeof s.bits === 'number') return s;
  }
  throw new ClipError('CORRUPT', 'pako inflate state has an unexpected shape (pako version change?)');
}

/** zlib's inflatePrime: inserts `bits` (0..16) low bits of `value` into the input bit buffer. */
export function inflatePrime(strm: ZStream, bits: number, value: number): void {
  if (bits === 0) return;
  const s = bitBuffer(strm);
  s.hold += (value & ((1 << bits) - 1)) << s.bits;
  s.bits += bits;
}

/**
 * Removes and returns whole bytes still held in the bit buffer. At deflate stream end these were
 * read ahead from the input but belong to what follows (the gzip trailer).
 */
export function takeHeldBytes(strm: ZStream): number[] {
  const s = bitBuffer(strm);
  const bytes: number[] = [];
  while (s.bits >= 8) {
    bytes.push(s.hold & 0xff);
    s.hold >>>= 8;
    s.bits -= 8;
  }
  return bytes;
}
