import { open, type FileHandle } from 'node:fs/promises';
import { ClipError } from '../errors.js';
import type { ByteSource } from './byte-source.js';

/** A ByteSource over a local file, read with positioned reads (safe for concurrent callers). */
export class FileByteSource implements ByteSource {
  private constructor(
    private readonly handle: FileHandle,
    private readonly length: number,
    readonly description: string,
  ) {}

  static async open(path: string): Promise<FileByteSource> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ClipError(code === 'ENOENT' ? 'NOT_FOUND' : 'IO', `cannot open ${path}: ${(err as Error).message}`, { cause: err });
    }
    const stats = await handle.stat();
    if (!stats.isFile()) {
      await handle.close();
      throw new ClipError('INVALID_ARGUMENT', `${path} is not a regular file`);
    }
    return new FileByteSource(handle, stats.size, path);
  }

  async size(): Promise<number> {
    return this.length;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const wanted = Math.max(0, Math.min(length, this.length - offset));
    const buffer = Buffer.allocUnsafe(wanted);
    let filled = 0;
    while (filled < wanted) {
      const { bytesRead } = await this.handle.read(buffer, filled, wanted - filled, offset + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
