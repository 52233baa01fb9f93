import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ClipError } from '../errors.js';
import type { ClipMetrics } from '../metrics/clip-metrics.js';
import type { ClipLogger } from '../metrics/logger.js';
import { collectChunks, type ContentCache } from './content-cache.js';
import { DirLock, processExists } from './dir-lock.js';
import {
  DEFAULT_BLOCK_BYTES,
  dataOffsetFor,
  encodeEntryHeader,
  headerProbeBytes,
  MAX_ENTRY_CONTENT,
  parseEntryHeader,
  sha256,
  type EntryHeader,
} from './disk-entry.js';

export interface DiskCacheOptions {
  /** The cache directory; created if missing. Several processes may share it. */
  readonly dir: string;
  /** The bound: entries (rounded up to 4 KiB) plus writes in progress never exceed it. */
  readonly maxBytes: number;
  readonly logger?: ClipLogger;
  readonly metrics?: ClipMetrics;
  /** Size of the independently checked blocks of an entry. Default 64 KiB. */
  readonly blockBytes?: number;
}

export const DEFAULT_DISK_CACHE_BYTES = 10 * 1024 ** 3;

/** Layout version: a change of layout or entry format uses a new root and leaves the old one alone. */
const ROOT = 'v1';
/** Evicting frees this share of the bound beyond what the new entry needs, so scans are rare. */
const EVICT_SLACK = 0.1;
/** A temporary file older than this belongs to a writer that died. */
const STALE_TEMP_MS = 10 * 60_000;
/** Reads move an entry to the young end of the LRU (its mtime) at most this often per process. */
const TOUCH_INTERVAL_MS = 30_000;
/** After ENOSPC or EDQUOT, writes pause this long: reads go on uncached meanwhile. */
const FULL_PAUSE_MS = 10_000;
const WARN_INTERVAL_MS = 60_000;
const HEADER_CACHE_LIMIT = 20_000;
const HOST_TAG = sha256(hostname()).toString('hex').slice(0, 8);

interface ScannedEntry {
  readonly key: string;
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
}

/**
 * The node-local disk cache: content-addressed entries, one file each, shared by every process
 * that opens the same directory and kept across restarts (docs/cache.md).
 *
 * - Reads take no lock: an entry is complete or absent (written to a temporary file, renamed
 *   into place). Every block a read touches is checked against the digest in the entry's header;
 *   an entry that fails is deleted and reported as a miss, so the caller refetches.
 * - Size: a ledger file holds the bytes of all entries and of writes in progress. A writer
 *   reserves the entry's size under the directory lock, evicting least recently used entries
 *   (oldest mtime; reads refresh it) when the ledger would pass the bound. Evicting rescans the
 *   directory, which also corrects the ledger after crashes.
 * - Failures to write (ENOSPC, EDQUOT, EIO, a busy lock) are never errors: the entry is not
 *   stored, a warning is logged, and reads go on uncached.
 */
export class DiskCache implements ContentCache {
  readonly dir: string;
  private readonly root: string;
  private readonly entriesDir: string;
  private readonly tmpDir: string;
  private readonly ledgerPath: string;
  private readonly lock: DirLock;
  private readonly blockBytes: number;
  private readonly logger: ClipLogger | undefined;
  private readonly metrics: ClipMetrics | undefined;
  private readonly headers = new Map<string, EntryHeader>();
  private readonly touched = new Map<string, number>();
  private readonly warned = new Map<string, number>();
  private pausedUntil = 0;
  private knownBytes = 0;

  private constructor(readonly maxBytes: number, options: DiskCacheOptions) {
    this.dir = resolve(options.dir);
    this.root = join(this.dir, ROOT);
    this.entriesDir = join(this.root, 'entries');
    this.tmpDir = join(this.root, 'tmp');
    this.ledgerPath = join(this.root, 'size');
    this.lock = new DirLock(join(this.root, 'lock'));
    this.blockBytes = options.blockBytes ?? DEFAULT_BLOCK_BYTES;
    this.logger = options.logger;
    this.metrics = options.metrics;
  }

  static async open(options: DiskCacheOptions): Promise<DiskCache> {
    if (!Number.isSafeInteger(options.maxBytes) || options.maxBytes <= 0) {
      throw new ClipError('INVALID_ARGUMENT', `disk cache size must be a positive number of bytes, got ${options.maxBytes}`);
    }
    const cache = new DiskCache(options.maxBytes, options);
    try {
      await mkdir(cache.entriesDir, { recursive: true });
      await mkdir(cache.tmpDir, { recursive: true });
    } catch (err) {
      throw new ClipError('IO', `cannot use ${cache.dir} as a cache directory: ${(err as Error).message}`, { cause: err });
    }
    // Rebuild a missing or damaged ledger now; otherwise trust it until the next eviction scan.
    const ledger = await cache.readLedger();
    if (ledger === undefined) {
      await cache.lock
        .run(async () => {
          const { total } = await cache.scan();
          await cache.writeLedger(total);
          cache.sized(total);
        })
        .catch((err: unknown) => cache.warn('ledger', 'disk cache: cannot rebuild its size ledger', err));
    } else {
      cache.sized(ledger);
    }
    return cache;
  }

  /** The directory's total as this process last saw it. */
  get sizeBytes(): number {
    return this.knownBytes;
  }

  async has(hash: string): Promise<boolean> {
    try {
      await stat(this.entryPath(fileKey(hash)));
      return true;
    } catch {
      return false;
    }
  }

  async getContent(hash: string, offset: number, length: number): Promise<Buffer | undefined> {
    const key = fileKey(hash);
    const path = this.entryPath(key);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.warn('read', 'disk cache: cannot open an entry', err);
      return undefined;
    }
    try {
      let header = this.headers.get(key);
      if (header === undefined) {
        const parsed = await readHeader(handle, sha256(key));
        if (typeof parsed === 'string') {
          await this.drop(key, path, parsed);
          return undefined;
        }
        header = parsed;
        if (this.headers.size >= HEADER_CACHE_LIMIT) this.headers.clear();
        this.headers.set(key, header);
      }
      if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= header.length)) {
        return undefined;
      }
      if (length === 0) return Buffer.alloc(0);
      const block = header.blockBytes;
      const first = Math.floor(offset / block);
      const last = Math.floor((offset + length - 1) / block);
      const start = first * block;
      const buffer = Buffer.allocUnsafe(Math.min((last + 1) * block, header.length) - start);
      if ((await readFully(handle, buffer, header.dataOffset + start)) !== buffer.length) {
        await this.drop(key, path, 'content cut short');
        return undefined;
      }
      for (let b = first; b <= last; b++) {
        const piece = buffer.subarray((b - first) * block, (b - first + 1) * block);
        if (!sha256(piece).equals(header.blockDigests.subarray(32 * b, 32 * b + 32))) {
          await this.drop(key, path, `block ${b} fails its sha256 check`);
          return undefined;
        }
      }
      this.touch(key, path);
      return buffer.subarray(offset - start, offset - start + length);
    } catch (err) {
      this.warn('read', 'disk cache: an entry could not be read', err);
      return undefined;
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  async storeContent(chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, hash: string): Promise<boolean> {
    if (Date.now() < this.pausedUntil) return false;
    const content = await collectChunks(chunks);
    const key = fileKey(hash);
    const path = this.entryPath(key);
    const fileBytes = dataOffsetFor(content.length, this.blockBytes) + content.length;
    const size = accounted(fileBytes);
    if (size > this.maxBytes || content.length > MAX_ENTRY_CONTENT) return false;
    try {
      if ((await stat(path)).size === fileBytes) return true;
    } catch {
      // absent: write it
    }
    const header = encodeEntryHeader(sha256(key), content, this.blockBytes);
    let reservation: { temp: string; handle: FileHandle } | undefined;
    try {
      const locked = await this.lock.run(() => this.reserve(key, size));
      if (locked === undefined) {
        this.metrics?.diskWriteFailed('lock');
        this.warn('lock', 'disk cache: its lock stayed busy; entry not stored', undefined);
        return false;
      }
      reservation = locked.value;
    } catch (err) {
      this.writeFailed(err);
      return false;
    }
    if (reservation === undefined) return false;
    const { temp, handle } = reservation;
    try {
      await writeFully(handle, header, 0);
      await writeFully(handle, content, header.length);
      await handle.close();
      await mkdir(dirname(path), { recursive: true });
      await rename(temp, path);
      this.metrics?.diskWritten(size);
      return true;
    } catch (err) {
      await handle.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      await this.lock
        .run(async () => {
          const ledger = await this.readLedger();
          if (ledger !== undefined) await this.writeLedger(Math.max(0, ledger - size));
        })
        .catch(() => undefined);
      this.writeFailed(err);
      return false;
    }
  }

  async close(): Promise<void> {
    await this.lock.run(async () => undefined).catch(() => undefined);
  }

  /** Under the lock: makes room for `size` bytes and creates the temporary file that will hold them. */
  private async reserve(key: string, size: number): Promise<{ temp: string; handle: FileHandle } | undefined> {
    let bytes = (await this.readLedger()) ?? (await this.scan()).total;
    if (bytes + size > this.maxBytes) bytes = await this.evict(size);
    if (bytes + size > this.maxBytes) {
      this.metrics?.diskWriteFailed('full');
      return undefined;
    }
    const temp = join(this.tmpDir, `${key}.${size}.${HOST_TAG}.${process.pid}.${randomBytes(4).toString('hex')}`);
    const handle = await open(temp, 'wx');
    try {
      await this.writeLedger(bytes + size);
    } catch (err) {
      await handle.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    this.sized(bytes + size);
    return { temp, handle };
  }

  /** Under the lock: deletes least recently used entries until `size` more bytes fit, with slack. */
  private async evict(size: number): Promise<number> {
    const { total, entries } = await this.scan();
    let target = this.maxBytes - size - Math.floor(this.maxBytes * EVICT_SLACK);
    if (target < 0) target = this.maxBytes - size;
    entries.sort((a, b) => a.mtimeMs - b.mtimeMs);
    let bytes = total;
    let count = 0;
    let freed = 0;
    for (const entry of entries) {
      if (bytes <= target) break;
      try {
        await unlink(entry.path);
        count++;
        freed += entry.size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') continue;
      }
      bytes -= entry.size;
      this.headers.delete(entry.key);
    }
    if (count > 0) this.metrics?.diskEvicted(count, freed);
    await this.writeLedger(bytes);
    this.sized(bytes);
    return bytes;
  }

  /** Under the lock: the true total (entries plus live writes in progress); removes dead temporaries. */
  private async scan(): Promise<{ total: number; entries: ScannedEntry[] }> {
    const entries: ScannedEntry[] = [];
    let total = 0;
    const now = Date.now();
    // Temporaries first: a writer renames its temporary into entries/ without the lock, so a
    // file moving meanwhile is counted twice (harmless) rather than not at all.
    for (const name of await readdirOrEmpty(this.tmpDir)) {
      const path = join(this.tmpDir, name);
      const [, sizeText, host, pidText] = name.split('.');
      let mtimeMs = 0;
      try {
        mtimeMs = (await stat(path)).mtimeMs;
      } catch {
        continue;
      }
      const pid = Number(pidText);
      const dead = host === HOST_TAG && Number.isSafeInteger(pid) && !processExists(pid);
      if (dead || now - mtimeMs > STALE_TEMP_MS || !Number.isSafeInteger(Number(sizeText))) {
        await unlink(path).catch(() => undefined);
      } else {
        total += Number(sizeText);
      }
    }
    for (const fan of await readdirOrEmpty(this.entriesDir)) {
      const names = await readdirOrEmpty(join(this.entriesDir, fan));
      for (let i = 0; i < names.length; i += 64) {
        const batch = await Promise.all(
          names.slice(i, i + 64).map(async (key) => {
            const path = join(this.entriesDir, fan, key);
            try {
              const stats = await stat(path);
              return { key, path, size: accounted(stats.size), mtimeMs: stats.mtimeMs };
            } catch {
              return undefined;
            }
          }),
        );
        for (const entry of batch) {
          if (entry === undefined) continue;
          entries.push(entry);
          total += entry.size;
        }
      }
    }
    for (const name of await readdirOrEmpty(this.root)) {
      if (name.startsWith('lock.stale.')) await unlink(join(this.root, name)).catch(() => undefined);
    }
    return { total, entries };
  }

  private async readLedger(): Promise<number | undefined> {
    try {
      const text = await readFile(this.ledgerPath, 'utf8');
      const bytes = Number(text.trim());
      return /^\d+$/.test(text.trim()) && Number.isSafeInteger(bytes) ? bytes : undefined;
    } catch {
      return undefined;
    }
  }

  private async writeLedger(bytes: number): Promise<void> {
    await writeFile(this.ledgerPath, `${bytes}\n`);
  }

  private sized(bytes: number): void {
    this.knownBytes = bytes;
    this.metrics?.diskCacheSize(bytes, this.maxBytes);
  }

  private async drop(key: string, path: string, reason: string): Promise<void> {
    this.headers.delete(key);
    await unlink(path).catch(() => undefined);
    this.metrics?.verificationFailed('disk');
    this.logger?.('warn', 'disk cache entry failed its check; dropped, the span will be refetched', { cacheDir: this.dir, key, reason });
  }

  private touch(key: string, path: string): void {
    const now = Date.now();
    if (now - (this.touched.get(key) ?? 0) < TOUCH_INTERVAL_MS) return;
    if (this.touched.size >= HEADER_CACHE_LIMIT) this.touched.clear();
    this.touched.set(key, now);
    const seconds = now / 1000;
    utimes(path, seconds, seconds).catch(() => undefined);
  }

  private writeFailed(err: unknown): void {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const reason = code === 'ENOSPC' || code === 'EDQUOT' || code === 'EIO' || code === 'EROFS' || code === 'EACCES' ? code : 'other';
    this.metrics?.diskWriteFailed(reason);
    if (code === 'ENOSPC' || code === 'EDQUOT') this.pausedUntil = Date.now() + FULL_PAUSE_MS;
    this.warn(reason, 'disk cache write failed; reads go on uncached', err);
  }

  /** At most one warning per kind per minute: a full disk must not flood the log. */
  private warn(kind: string, message: string, err: unknown): void {
    const now = Date.now();
    if (now - (this.warned.get(kind) ?? -Infinity) < WARN_INTERVAL_MS) return;
    this.warned.set(kind, now);
    const fields: Record<string, unknown> = { cacheDir: this.dir };
    if (err !== undefined) {
      fields.error = err instanceof Error ? err.message : String(err);
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== undefined) fields.code = code;
    }
    this.logger?.('warn', message, fields);
  }

  private entryPath(key: string): string {
    return join(this.entriesDir, key.slice(0, 2), key);
  }
}

/** Entry file names: a hex sha256 as given (`sha256:` prefix dropped), anything else hashed. */
export function fileKey(hash: string): string {
  const bare = hash.startsWith('sha256:') ? hash.slice(7) : hash;
  return /^[0-9a-f]{64}$/.test(bare) ? bare : sha256(hash).toString('hex');
}

/** Bytes an entry is counted for: its file size rounded up to whole 4 KiB blocks. */
function accounted(fileBytes: number): number {
  return Math.ceil(fileBytes / 4096) * 4096;
}

async function readHeader(handle: FileHandle, keyDigest: Buffer): Promise<EntryHeader | string> {
  let want = headerProbeBytes();
  for (let attempt = 0; attempt < 2; attempt++) {
    const head = Buffer.alloc(want);
    const got = await readFully(handle, head, 0);
    const parsed = parseEntryHeader(head.subarray(0, got), keyDigest);
    if (typeof parsed === 'string') return parsed;
    if (!('need' in parsed)) return parsed;
    if (got < want) return 'header cut short';
    want = parsed.need;
  }
  return 'header cut short';
}

async function readFully(handle: FileHandle, buffer: Buffer, position: number): Promise<number> {
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}

async function writeFully(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < buffer.length) {
    const { bytesWritten } = await handle.write(buffer, written, buffer.length - written, position + written);
    written += bytesWritten;
  }
}

async function readdirOrEmpty(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch {
    return [];
  }
}
