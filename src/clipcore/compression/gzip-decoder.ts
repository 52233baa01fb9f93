/**
 * A resumable gzip decoder over raw inflate (raw-inflate.ts): we parse member headers and trailers
 * ourselves so that decoding can start either at the blob start or at a checkpoint inside any
 * member (raw deflate state + window + primed bits), and continue across member boundaries.
 * Both the indexer and range reads drive it one step at a time.
 */
import { constants } from 'node:zlib';
import { ClipError } from '../errors.js';
import { GzipHeaderParser } from './gzip-header.js';
import { crc32, createRawInflater } from './raw-inflate.js';
import type { Checkpoint } from './types.js';

const enum Phase {
  /** Expecting a member header, or the end of the blob. */
  Between,
  Header,
  Deflate,
  Trailer,
}

/** What the last step stopped at. */
export const enum GzipEvent {
  None,
  /** A deflate block just ended (and it was not the member's last block). */
  BlockBoundary,
  /** A member header was just parsed; deflate data starts here. */
  MemberStart,
}

const { Z_BUF_ERROR, Z_OK, Z_STREAM_END } = constants;
const EMPTY = new Uint8Array(0);
const TWO_32 = 2 ** 32;

export class GzipDecoder {
  private readonly strm = createRawInflater();
  /** Output room left after the last inflate call: 0 means it stopped only for lack of room. */
  private outRoom = 1;
  private phase: Phase;
  private header = new GzipHeaderParser();
  private readonly trailer = new Uint8Array(8);
  private trailerHave = 0;
  private input: Uint8Array = EMPTY;
  private inPos = 0;
  private inputBase = 0;
  private memberStart = 0;
  private memberOut = 0;
  private crc = 0;
  private members = 0;
  /** Whether the member's CRC and length can be checked (false when started mid-member). */
  private checkTrailer: boolean;
  event = GzipEvent.None;

  private constructor(phase: Phase, checkTrailer: boolean) {
    this.phase = phase;
    this.checkTrailer = checkTrailer;
  }

  /** A decoder for a whole blob, from its first byte. */
  static fromStart(): GzipDecoder {
    return new GzipDecoder(Phase.Between, true);
  }

  /**
   * A decoder resuming at `cp`, whose input starts at byteStart(cp). When cp.bits > 0 the
   * first input byte is the shared one: its high `bits` bits are primed and the rest skipped.
   */
  static atCheckpoint(cp: Checkpoint, firstByte: number): GzipDecoder {
    const d = new GzipDecoder(Phase.Deflate, false);
    d.members = 1;
    if (cp.window.length > 0 && d.strm.setDictionary(cp.window) !== Z_OK) {
      throw new ClipError('CORRUPT', `cannot set the window of checkpoint at compressed offset ${cp.compressedOffset}`);
    }
    d.strm.prime(cp.bits, firstByte >> (8 - cp.bits));
    return d;
  }

  /** Blob offset of the next unread input byte. */
  get position(): number {
    return this.inputBase + this.inPos;
  }

  /** At a block boundary: how many high bits of the byte before `position` belong to the next block. */
  get pendingBits(): number {
    return this.strm.dataType & 7;
  }

  /** True when no step can progress until more input is supplied. */
  get needsInput(): boolean {
    if (this.inPos < this.input.length) return false;
    return this.phase !== Phase.Deflate || this.outRoom > 0;
  }

  /** True when the blob ended cleanly: after a complete member and before any next one. */
  get atCleanEnd(): boolean {
    return this.phase === Phase.Between && this.members > 0;
  }

  /** Describes where decoding stopped, for truncation errors. */
  describeState(): string {
    switch (this.phase) {
      case Phase.Between:
        return this.members === 0 ? 'no gzip member' : 'complete';
      case Phase.Header:
        return 'truncated gzip header';
      case Phase.Deflate:
        return 'deflate data ended before the gzip trailer';
      case Phase.Trailer:
        return 'truncated gzip trailer';
    }
  }

  /** Supplies the next input; `offset` is the blob offset of input[0]. */
  setInput(input: Uint8Array, offset: number, pos = 0): void {
    // For pako: a plain Uint8Array view: pako's hot loop runs much slower on Buffers (a Uint8Array
    // subclass) than on Uint8Arrays, and mixing the two makes it polymorphic.
    this.input = new Uint8Array(input.buffer, input.byteOffset, input.length);
    this.inputBase = offset;
    this.inPos = pos;
  }

  /**
   * Makes one step of progress, writing at most `len` bytes of output at out[pos..]; returns
   * the number written. Sets `event` when the step ended at a block boundary or member start.
   */
  step(out: Uint8Array<ArrayBuffer>, pos: number, len: number): number {
    this.event = GzipEvent.None;
    switch (this.phase) {
      case Phase.Between:
        if (this.inPos < this.input.length) {
          this.phase = Phase.Header;
          this.header = new GzipHeaderParser();
          this.memberStart = this.position;
        }
        return 0;
      case Phase.Header:
        this.inPos = this.header.parse(this.input, this.inPos, this.memberStart);
        if (this.header.done) this.startMember();
        return 0;
      case Phase.Deflate:
        return this.inflate(out, pos, len);
      case Phase.Trailer:
        this.readTrailer(this.input, this.inPos);
        return 0;
    }
  }

  private startMember(): void {
    this.strm.reset();
    this.phase = Phase.Deflate;
    this.memberOut = 0;
    this.crc = 0;
    this.checkTrailer = true;
    this.members++;
    this.event = GzipEvent.MemberStart;
  }

  private inflate(out: Uint8Array<ArrayBuffer>, pos: number, len: number): number {
    const s = this.strm;
    const ret = s.inflate(this.input, this.inPos, out, pos, len);
    this.inPos = s.inPos;
    const produced = s.outPos - pos;
    this.outRoom = len - produced;
    if (produced > 0) {
      if (this.checkTrailer) this.crc = crc32(out.subarray(pos, pos + produced), this.crc);
      this.memberOut += produced;
    }
    if (ret === Z_STREAM_END) {
      this.phase = Phase.Trailer;
      this.trailerHave = 0;
      const held = s.takeHeldBytes();
      if (held.length > 0) this.readTrailer(Uint8Array.from(held), 0, false);
    } else if (ret !== Z_OK && ret !== Z_BUF_ERROR) {
      throw new ClipError('CORRUPT', `bad deflate data near compressed offset ${this.position}: ${s.message() || `error ${ret}`}`);
    } else if ((s.dataType & 0xc0) === 0x80 && (s.dataType & 0x3f) < 8) {
      // 128: stopped at a block boundary; 64 would mean the block that ended was the last.
      this.event = GzipEvent.BlockBoundary;
    }
    return produced;
  }

  /** Frees the inflate state now (it is also freed when the decoder is garbage collected). */
  close(): void {
    this.strm.close();
  }

  private readTrailer(src: Uint8Array, pos: number, fromInput = true): void {
    const n = Math.min(8 - this.trailerHave, src.length - pos);
    this.trailer.set(src.subarray(pos, pos + n), this.trailerHave);
    this.trailerHave += n;
    if (fromInput) this.inPos = pos + n;
    if (this.trailerHave < 8) return;
    const t = this.trailer;
    const crc = (t[0]! | (t[1]! << 8) | (t[2]! << 16) | (t[3]! << 24)) >>> 0;
    const size = (t[4]! | (t[5]! << 8) | (t[6]! << 16) | (t[7]! << 24)) >>> 0;
    if (this.checkTrailer && crc !== this.crc >>> 0) {
      throw new ClipError('CORRUPT', `gzip member at compressed offset ${this.memberStart}: CRC mismatch`);
    }
    if (this.checkTrailer && size !== this.memberOut % TWO_32) {
      throw new ClipError('CORRUPT', `gzip member at compressed offset ${this.memberStart}: length mismatch`);
    }
    this.phase = Phase.Between;
  }
}
