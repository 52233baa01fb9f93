/**
 * A resumable zstd stream decoder. We walk the frame and block headers ourselves (RFC 8878) to
 * find frame boundaries, which are the only places decoding can restart (blocks depend on the
 * frame's window and entropy state), and hand each regular frame to its own fzstd decompressor.
 *
 * Why fzstd: Node 20's zlib has no zstd; @bokuweb/zstd-wasm (and zstddec) expose only one-shot
 * decompression, which needs a whole frame in memory, and a layer is often a single frame of
 * hundreds of MB; zstd-napi needs a node-gyp build. fzstd is pure JS and streams block by block.
 * It does not check the optional content checksum; span sha256s protect range reads.
 */
import { Decompress } from 'fzstd';
import { ClipError } from '../errors.js';

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const BLOCK_MAX = 128 * 1024;
/** libzstd refuses larger windows by default (ZSTD_WINDOWLOG_LIMIT_DEFAULT = 27); so do we. */
export const ZSTD_MAX_WINDOW = 2 ** 27;

const enum Phase {
  FrameStart,
  FrameHeader,
  BlockHeader,
  BlockBody,
  Checksum,
  SkippableHeader,
  SkippableBody,
}

const EMPTY = new Uint8Array(0);

function le(b: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + b[at + i]!;
  return v;
}

export class ZstdDecoder {
  private phase = Phase.FrameStart;
  private readonly acc = new Uint8Array(18);
  private accHave = 0;
  private accNeed = 4;
  private remaining = 0;
  private lastBlock = false;
  private hasChecksum = false;
  private contentSize: number | null = null;
  private frameStart = 0;
  private frameOut = 0;
  private frames = 0;
  private dec: Decompress | null = null;
  private readonly queue: Uint8Array[] = [];
  private input: Uint8Array = EMPTY;
  private inPos = 0;
  private inputBase = 0;
  private announced = false;
  /** Uncompressed bytes produced so far (including output still queued). */
  totalOut = 0;
  /** Set by step() when it stopped at the first byte of a frame (not at the blob end). */
  atFrameStart = false;

  /** Blob offset of the next unread input byte. */
  get position(): number {
    return this.inputBase + this.inPos;
  }

  get needsInput(): boolean {
    return this.inPos >= this.input.length && this.queue.length === 0;
  }

  /** True when the blob ended between frames, after at least one. */
  get atCleanEnd(): boolean {
    return this.phase === Phase.FrameStart && this.accHave === 0 && this.frames > 0;
  }

  describeState(): string {
    if (this.phase === Phase.FrameStart && this.accHave === 0) return this.frames === 0 ? 'no zstd frame' : 'complete';
    return `truncated zstd frame starting at compressed offset ${this.frameStart}`;
  }

  /** Supplies the next input; `offset` is the blob offset of input[0]. */
  setInput(input: Uint8Array, offset: number): void {
    // A plain Uint8Array view: JS decoders run faster without Buffers in the mix.
    this.input = new Uint8Array(input.buffer, input.byteOffset, input.length);
    this.inputBase = offset;
    this.inPos = 0;
  }

  /** Next piece of decoded output, if any is queued. */
  takeOutput(): Uint8Array | undefined {
    return this.queue.shift();
  }

  /** Consumes input up to the next structural boundary (at most one block is decoded). */
  step(): void {
    this.atFrameStart = false;
    const input = this.input;
    let pos = this.inPos;
    if (pos >= input.length) return;
    switch (this.phase) {
      case Phase.FrameStart:
        if (this.accHave === 0 && !this.announced) {
          this.announced = true;
          this.frameStart = this.position;
          this.atFrameStart = true;
          return;
        }
        pos = this.collect(input, pos);
        if (this.accHave === this.accNeed) this.onMagic();
        break;
      case Phase.FrameHeader:
        pos = this.forward(input, pos, this.collect(input, pos));
        if (this.accHave === 5) this.accNeed = this.frameHeaderSize();
        if (this.accHave === this.accNeed) this.onFrameHeader();
        break;
      case Phase.BlockHeader:
        pos = this.forward(input, pos, this.collect(input, pos));
        if (this.accHave === 3) this.onBlockHeader();
        break;
      case Phase.BlockBody:
      case Phase.Checksum: {
        const n = Math.min(this.remaining, input.length - pos);
        pos = this.forward(input, pos, pos + n);
        this.remaining -= n;
        if (this.remaining === 0) this.afterBody();
        break;
      }
      case Phase.SkippableHeader:
        pos = this.collect(input, pos);
        if (this.accHave === 8) {
          this.phase = Phase.SkippableBody;
          this.remaining = le(this.acc, 4, 4);
          if (this.remaining === 0) this.endSkippable();
        }
        break;
      case Phase.SkippableBody: {
        const n = Math.min(this.remaining, input.length - pos);
        pos += n;
        this.remaining -= n;
        if (this.remaining === 0) this.endSkippable();
        break;
      }
    }
    this.inPos = pos;
  }

  private collect(input: Uint8Array, pos: number): number {
    const n = Math.min(this.accNeed - this.accHave, input.length - pos);
    this.acc.set(input.subarray(pos, pos + n), this.accHave);
    this.accHave += n;
    return pos + n;
  }

  /** Hands frame bytes [from, to) to fzstd; returns `to`. */
  private forward(input: Uint8Array, from: number, to: number): number {
    if (to > from) {
      try {
        this.dec!.push(input.subarray(from, to));
      } catch (err) {
        throw this.corrupt(err);
      }
    }
    return to;
  }

  private expect(phase: Phase, bytes: number): void {
    this.phase = phase;
    this.accHave = 0;
    this.accNeed = bytes;
  }

  private onMagic(): void {
    const magic = le(this.acc, 0, 4);
    if (magic === ZSTD_MAGIC) {
      this.dec = new Decompress((data) => {
        if (data.length === 0) return;
        this.queue.push(data);
        this.totalOut += data.length;
        this.frameOut += data.length;
      });
      this.frameOut = 0;
      this.phase = Phase.FrameHeader;
      this.accNeed = 5;
      // A copy: fzstd may hold on to what it is given, and acc is reused.
      this.forward(this.acc.slice(0, 4), 0, 4);
    } else if (((magic & SKIPPABLE_MAGIC_MASK) >>> 0) === SKIPPABLE_MAGIC) {
      this.phase = Phase.SkippableHeader;
      this.accNeed = 8;
    } else {
      throw new ClipError('CORRUPT', `no zstd frame at compressed offset ${this.frameStart}: bad magic`);
    }
  }

  private frameHeaderSize(): number {
    const fhd = this.acc[4]!;
    const singleSegment = (fhd >> 5) & 1;
    const fcsField = [singleSegment, 2, 4, 8][fhd >> 6]!;
    const dictField = [0, 1, 2, 4][fhd & 3]!;
    return 5 + (singleSegment ? 0 : 1) + dictField + fcsField;
  }

  private onFrameHeader(): void {
    const a = this.acc;
    const fhd = a[4]!;
    const at = `zstd frame at compressed offset ${this.frameStart}`;
    if (fhd & 0x08) throw new ClipError('CORRUPT', `${at}: reserved header bit set`);
    const singleSegment = (fhd >> 5) & 1;
    let p = singleSegment ? 5 : 6;
    const dictBytes = [0, 1, 2, 4][fhd & 3]!;
    const dictId = le(a, p, dictBytes);
    p += dictBytes;
    if (dictId !== 0) throw new ClipError('UNSUPPORTED_MEDIA_TYPE', `${at} needs dictionary ${dictId}`);
    const fcsFlag = fhd >> 6;
    const fcsBytes = [singleSegment, 2, 4, 8][fcsFlag]!;
    this.contentSize = fcsBytes === 0 ? null : le(a, p, fcsBytes) + (fcsBytes === 2 ? 256 : 0);
    let window: number;
    if (singleSegment) window = this.contentSize ?? 0;
    else {
      const base = 2 ** (10 + (a[5]! >> 3));
      window = base + (base / 8) * (a[5]! & 7);
    }
    if (window > ZSTD_MAX_WINDOW) {
      throw new ClipError('UNSUPPORTED_MEDIA_TYPE', `${at}: window of ${window} bytes exceeds the ${ZSTD_MAX_WINDOW} limit`);
    }
    this.hasChecksum = (fhd & 0x04) !== 0;
    this.expect(Phase.BlockHeader, 3);
  }

  private onBlockHeader(): void {
    const h = le(this.acc, 0, 3);
    this.lastBlock = (h & 1) === 1;
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3 || size > BLOCK_MAX) {
      throw new ClipError('CORRUPT', `zstd frame at compressed offset ${this.frameStart}: bad block header`);
    }
    this.phase = Phase.BlockBody;
    this.remaining = type === 1 ? 1 : size;
    // An empty raw block has no body; finish it without waiting for input.
    if (this.remaining === 0) this.afterBody();
  }

  /** A block body or the checksum was consumed: what comes next. */
  private afterBody(): void {
    if (this.phase === Phase.Checksum || (this.lastBlock && !this.hasChecksum)) this.endFrame();
    else if (this.lastBlock) {
      this.phase = Phase.Checksum;
      this.remaining = 4;
    } else this.expect(Phase.BlockHeader, 3);
  }

  private endFrame(): void {
    try {
      this.dec!.push(EMPTY, true);
    } catch (err) {
      throw this.corrupt(err);
    }
    this.dec = null;
    if (this.contentSize !== null && this.frameOut !== this.contentSize) {
      throw new ClipError(
        'CORRUPT',
        `zstd frame at compressed offset ${this.frameStart}: ${this.frameOut} bytes decoded, header says ${this.contentSize}`,
      );
    }
    this.frames++;
    this.nextFrame();
  }

  private endSkippable(): void {
    this.frames++;
    this.nextFrame();
  }

  private nextFrame(): void {
    this.expect(Phase.FrameStart, 4);
    this.announced = false;
  }

  private corrupt(err: unknown): ClipError {
    const msg = err instanceof Error ? err.message : String(err);
    return new ClipError('CORRUPT', `bad zstd data in frame at compressed offset ${this.frameStart}: ${msg}`, { cause: err });
  }
}
