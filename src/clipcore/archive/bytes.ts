import { ArchiveFormatError } from '../errors.js';

/**
 * Little helpers to write and read the variable-length integers and length-prefixed fields of the
 * binary sections. The reader checks every bound so that damaged input gives a typed error, never
 * an out-of-range read or a huge allocation.
 */
export class ByteWriter {
  private buffer: Buffer;
  private length = 0;

  /** `sizeHint`: the expected size, so that big sections are not copied as they grow. */
  constructor(sizeHint = 64 * 1024) {
    this.buffer = Buffer.allocUnsafe(sizeHint);
  }

  private ensure(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + extra));
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }

  u8(value: number): void {
    this.ensure(1);
    this.buffer[this.length++] = value;
  }

  /** Unsigned LEB128 for integers up to 2^53. */
  varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint out of range: ${value}`);
    this.ensure(8);
    while (value >= 0x80) {
      this.buffer[this.length++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.buffer[this.length++] = value;
  }

  /** Zig-zag signed varint. */
  svarint(value: number): void {
    this.varint(value < 0 ? -value * 2 - 1 : value * 2);
  }

  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.raw(value);
  }

  /** Length-prefixed UTF-8, written in place (no temporary Buffer per string: TOCs hold many). */
  string(value: string): void {
    const length = Buffer.byteLength(value, 'utf8');
    this.varint(length);
    this.ensure(length);
    this.length += this.buffer.write(value, this.length, length, 'utf8');
  }

  raw(value: Uint8Array): void {
    this.ensure(value.length);
    this.buffer.set(value, this.length);
    this.length += value.length;
  }

  finish(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

export class ByteReader {
  private position = 0;

  constructor(
    private readonly buffer: Buffer,
    /** Names the structure being read, for error messages. */
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.buffer.length - this.position;
  }

  get offset(): number {
    return this.position;
  }

  u8(): number {
    if (this.position >= this.buffer.length) throw this.truncated();
    return this.buffer[this.position++] as number;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.u8();
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (!Number.isSafeInteger(result)) break;
        return result;
      }
      scale *= 0x80;
    }
    throw new ArchiveFormatError('CORRUPT', `${this.what}: integer too large at byte ${this.position}`);
  }

  svarint(): number {
    const value = this.varint();
    return value % 2 === 1 ? -(value + 1) / 2 : value / 2;
  }

  /** A count of items that each take at least `minBytesEach` bytes: bounded by what is left. */
  count(minBytesEach: number): number {
    const value = this.varint();
    if (value * minBytesEach > this.remaining) {
      throw new ArchiveFormatError('CORRUPT', `${this.what}: count ${value} at byte ${this.position} exceeds the data`);
    }
    return value;
  }

  raw(length: number): Buffer {
    if (length > this.remaining) throw this.truncated();
    const value = this.buffer.subarray(this.position, this.position + length);
    this.position += length;
    return value;
  }

  bytes(): Buffer {
    return this.raw(this.varint());
  }

  string(): string {
    return this.bytes().toString('utf8');
  }

  expectEnd(): void {
    if (this.remaining !== 0) {
      throw new ArchiveFormatError('CORRUPT', `${this.what}: ${this.remaining} unexpected trailing bytes`);
    }
  }

  private truncated(): ArchiveFormatError {
    return new ArchiveFormatError('CORRUPT', `${this.what}: data ends early at byte ${this.position}`);
  }
}
