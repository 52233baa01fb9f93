/**
 * Incremental parser of a gzip member header (RFC 1952): the fixed 10 bytes, then FEXTRA, FNAME,
 * FCOMMENT and FHCRC when flagged. Headers may straddle input chunks, so it consumes what it can
 * and resumes. The header CRC (FHCRC) is skipped, not checked: the deflate data and the trailer
 * CRC are what protect the content.
 */
import { ClipError } from '../errors.js';

const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;
const FHCRC = 0x02;
const RESERVED = 0xe0;

const enum Stage {
  Fixed,
  ExtraLength,
  Extra,
  Name,
  Comment,
  HeaderCrc,
  Done,
}

export class GzipHeaderParser {
  private stage = Stage.Fixed;
  private readonly fixed = new Uint8Array(10);
  private have = 0;
  private flags = 0;
  private skip = 0;

  get done(): boolean {
    return this.stage === Stage.Done;
  }

  /** True once any byte of this header has been consumed. */
  get started(): boolean {
    return this.stage !== Stage.Fixed || this.have > 0;
  }

  /**
   * Consumes header bytes from input[pos..] and returns the new position (input.length when
   * more is needed). `memberOffset` is the member's blob offset, for messages.
   */
  parse(input: Uint8Array, pos: number, memberOffset: number): number {
    for (;;) {
      switch (this.stage) {
        case Stage.Fixed:
          pos = this.collect(input, pos, 10);
          this.checkMagic(memberOffset);
          if (this.have < 10) return pos;
          this.checkFixed(memberOffset);
          break;
        case Stage.ExtraLength:
          pos = this.collect(input, pos, 2);
          if (this.have < 2) return pos;
          this.skip = this.fixed[0]! | (this.fixed[1]! << 8);
          this.stage = Stage.Extra;
          break;
        case Stage.Extra:
        case Stage.HeaderCrc: {
          const n = Math.min(this.skip, input.length - pos);
          pos += n;
          this.skip -= n;
          if (this.skip > 0) return pos;
          this.stage = this.stage === Stage.Extra ? Stage.Name : Stage.Done;
          break;
        }
        case Stage.Name:
        case Stage.Comment: {
          if (this.flags & (this.stage === Stage.Name ? FNAME : FCOMMENT)) {
            const nul = input.indexOf(0, pos);
            if (nul < 0) return input.length;
            pos = nul + 1;
          }
          if (this.stage === Stage.Name) this.stage = Stage.Comment;
          else {
            this.stage = Stage.HeaderCrc;
            this.skip = this.flags & FHCRC ? 2 : 0;
          }
          break;
        }
        case Stage.Done:
          return pos;
      }
    }
  }

  private collect(input: Uint8Array, pos: number, want: number): number {
    const n = Math.min(want - this.have, input.length - pos);
    this.fixed.set(input.subarray(pos, pos + n), this.have);
    this.have += n;
    return pos + n;
  }

  /** Checks the magic as soon as its bytes arrive, so trailing garbage is named as such. */
  private checkMagic(offset: number): void {
    const f = this.fixed;
    if ((this.have >= 1 && f[0] !== 0x1f) || (this.have >= 2 && f[1] !== 0x8b)) {
      throw new ClipError('CORRUPT', `not a gzip member at compressed offset ${offset}: bad magic`);
    }
  }

  private checkFixed(offset: number): void {
    const f = this.fixed;
    if (f[2] !== 8) throw new ClipError('CORRUPT', `gzip member at compressed offset ${offset}: unknown method ${f[2]}`);
    this.flags = f[3]!;
    if (this.flags & RESERVED) {
      throw new ClipError('CORRUPT', `gzip member at compressed offset ${offset}: reserved flag bits set`);
    }
    this.have = 0;
    this.stage = this.flags & FEXTRA ? Stage.ExtraLength : Stage.Name;
    this.skip = 0;
  }
}
