/**
 * Random-access bytes: a local file, an S3 object, a registry blob. Archives are read through
 * this interface so that the same reader works wherever the .clip lives.
 */
export interface ByteSource {
  /** Human-readable location, for error messages (never contains credentials). */
  readonly description: string;
  /** Total size in bytes. */
  size(): Promise<number>;
  /**
   * Reads exactly `length` bytes at `offset`, or fewer only when the source ends first
   * (callers treat a short read as truncation).
   */
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}
