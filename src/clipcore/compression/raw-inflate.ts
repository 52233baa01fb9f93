/**
 * Raw deflate decoding with the zlib calls random access needs: inflate(Z_BLOCK) with data_type,
 * inflatePrime and inflateSetDictionary. Two backends: zlib itself through our small addon
 * (native/clip_zlib.c, built by `npm run build`), and pako (zlib ported to JavaScript) where the
 * addon is not built. zlib is faster and needs no JIT warm-up, which dominates small layers.
 * CLIP_INFLATE=pako forces pako (tests run both).
 */
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';
import type * as Pako from 'pako';
import { ClipError } from '../errors.js';
import { loadAddon } from '../native-addon.js';
import { inflatePrime, takeHeldBytes } from './pako-bits.js';

export type InflateBackend = 'zlib' | 'pako';

/** One raw deflate stream. After inflate(), inPos/outPos/dataType describe where it stopped. */
export interface RawInflater {
  readonly inPos: number;
  readonly outPos: number;
  /** zlib's strm->data_type: unused bits in the last input byte, +64 in the last block, +128 at a block boundary. */
  readonly dataType: number;
  /** Starts the next raw deflate stream (the next gzip member). */
  reset(): void;
  /** Restores the history a checkpoint saved; returns zlib's code. */
  setDictionary(window: Uint8Array): number;
  /** Inserts the low `bits` bits of `value` into the bit buffer (zlib's inflatePrime). */
  prime(bits: number, value: number): void;
  /**
   * Inflates input[inPos..] into output[outPos, outPos + outLen) with Z_BLOCK: it also stops at
   * each deflate block boundary, the only places a checkpoint can go. Returns zlib's code.
   */
  inflate(input: Uint8Array, inPos: number, output: Uint8Array<ArrayBuffer>, outPos: number, outLen: number): number;
  /** Whole bytes read ahead past the end of the deflate stream, which belong to what follows. */
  takeHeldBytes(): number[];
  /** zlib's message for the last error. */
  message(): string;
  /** Frees the stream's memory now rather than at garbage collection. */
  close(): void;
}

interface NativeRawInflate {
  reset(): number;
  setDictionary(window: Uint8Array): number;
  prime(bits: number, value: number): number;
  inflate(input: Uint8Array, inPos: number, output: Uint8Array, outPos: number, outLen: number, state: Int32Array): number;
  message(): string;
  close(): void;
}

interface NativeModule {
  readonly RawInflate: new () => NativeRawInflate;
  readonly zlibVersion: string;
  /** The gzip CRC-32, folded with PCLMULQDQ where the CPU has it (native/clip_crc32.c). */
  crc32(data: Uint8Array, value: number): number;
}

function isNativeModule(value: unknown): value is NativeModule {
  return typeof value === 'object' && value !== null && 'RawInflate' in value && typeof value.RawInflate === 'function' && 'crc32' in value && typeof value.crc32 === 'function';
}

/** The addon, or why it is not used. */
function loadNative(): NativeModule | string {
  if (process.env['CLIP_INFLATE'] === 'pako') return 'CLIP_INFLATE=pako';
  try {
    const loaded = loadAddon('clip_zlib');
    return isNativeModule(loaded) ? loaded : 'native/build/Release/clip_zlib.node has an unexpected shape';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const native = loadNative();

/** pako, loaded only where it is used: importing it costs about 18 ms, in every worker too. */
let pakoModule: typeof Pako | undefined;
function pako(): typeof Pako {
  pakoModule ??= createRequire(import.meta.url)('pako') as typeof Pako;
  return pakoModule;
}

/** Which backend raw inflate uses in this process, and the zlib version or why pako is used. */
export function inflateBackend(): { backend: InflateBackend; detail: string } {
  return typeof native === 'string' ? { backend: 'pako', detail: native } : { backend: 'zlib', detail: `zlib ${native.zlibVersion}` };
}

/**
 * The gzip CRC-32 of `data` continuing from `value`: the addon's (about twice as fast here as
 * zlib's, which Node's zlib.crc32 runs) when it is loaded.
 */
export const crc32: (data: Uint8Array, value: number) => number = typeof native === 'string' ? zlibCrc32 : native.crc32;

export function createRawInflater(): RawInflater {
  return typeof native === 'string' ? new PakoInflater() : new ZlibInflater(new native.RawInflate());
}

class ZlibInflater implements RawInflater {
  private readonly state = new Int32Array(3);

  constructor(private readonly strm: NativeRawInflate) {}

  get inPos(): number {
    return this.state[0]!;
  }
  get outPos(): number {
    return this.state[1]!;
  }
  get dataType(): number {
    return this.state[2]!;
  }
  reset(): void {
    this.strm.reset();
  }
  setDictionary(window: Uint8Array): number {
    return this.strm.setDictionary(window);
  }
  prime(bits: number, value: number): void {
    if (bits > 0) this.strm.prime(bits, value);
  }
  inflate(input: Uint8Array, inPos: number, output: Uint8Array<ArrayBuffer>, outPos: number, outLen: number): number {
    return this.strm.inflate(input, inPos, output, outPos, outLen, this.state);
  }
  /** zlib gives back unused whole bytes itself: next_in ends just past the deflate stream. */
  takeHeldBytes(): number[] {
    return [];
  }
  message(): string {
    return this.strm.message();
  }
  close(): void {
    this.strm.close();
  }
}

class PakoInflater implements RawInflater {
  private readonly zlib = pako();
  private readonly strm = new this.zlib.ZStream();

  constructor() {
    if (this.zlib.zlibInflateInit2(this.strm, -15) !== this.zlib.Z_OK) throw new ClipError('CORRUPT', 'cannot initialise inflate');
  }

  get inPos(): number {
    return this.strm.next_in;
  }
  get outPos(): number {
    return this.strm.next_out;
  }
  get dataType(): number {
    return this.strm.data_type;
  }
  reset(): void {
    this.zlib.zlibInflateReset(this.strm);
  }
  setDictionary(window: Uint8Array): number {
    return this.zlib.zlibInflateSetDictionary(this.strm, window);
  }
  prime(bits: number, value: number): void {
    inflatePrime(this.strm, bits, value);
  }
  inflate(input: Uint8Array, inPos: number, output: Uint8Array<ArrayBuffer>, outPos: number, outLen: number): number {
    const s = this.strm;
    s.input = input;
    s.next_in = inPos;
    s.avail_in = input.length - inPos;
    s.output = output;
    s.next_out = outPos;
    s.avail_out = outLen;
    return this.zlib.zlibInflate(s, this.zlib.Z_BLOCK);
  }
  takeHeldBytes(): number[] {
    return takeHeldBytes(this.strm);
  }
  message(): string {
    return this.strm.msg;
  }
  close(): void {}
}
