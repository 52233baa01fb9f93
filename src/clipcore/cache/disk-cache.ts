import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ClipError } from '../errors.js';
import type { ClipMetrics } from '../metrics/clip-metrics.js';
import type { ClipLogger } from '../metrics/logger.js';
import { collectChunks, type ContentCache } from './content-cache.js';
import { DirLock, processExists } from './dir-lock.js';
import { closeSoon, fstatDescriptor, openForReading, preadFully } from './descriptors.js';
import {
  DEFAULT_BLOCK_BYTES,
  dataOffsetFor,
  blockDigestsOffThread,
  digestAddonLoaded,
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
  /** Size of the independently checked blocks of the entries it writes. Default 4 KiB. */
  readonly blockBytes?: number;
}

export const DEFAULT_DISK_CACHE_BYTES = 10 * 1024 ** 3;

/** The sha256 of each `blockBytes` block of an entry's content, one after another. */
export interface BlockDigests {
  readonly blockBytes: number;
  readonly digests: Uint8Array;
}

/** An entry whose header was read and checked: the span key it holds, its file, its header. */
export type EntryListener = (hash: string, path: string, header: EntryHeader) => void;

/** Layout version: a change of layout or entry format uses a new root and leaves the old one alone. */
const ROOT = 'v1';
/** Evicting frees this share of the bound beyond what the new entry needs, so scans are rare. */
const EVICT_SLACK = 0.1;
/** A temporary file older than this belongs to a writer that died. */
const STALE_TEMP_MS = 10 * 60_000;
/** Reads move an entry to the young end of the LRU (its mtime) at most this often per process. */
const TOUCH_INTERVAL_MS = 30_000;
/** Touches noted by reads are written this much later, in the background, several at a time. */
const TOUCH_DELAY_MS = 1_000;
/** After ENOSPC or EDQUOT, writes pause this long: reads go on uncached meanwhile. */
const FULL_PAUSE_MS = 10_000;
const WARN_INTERVAL_MS = 60_000;
const HEADER_CACHE_LIMIT = 20_000;
const TOUCHED_LIMIT = 20_000;
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
 *   into place). Every block a read touches is checked against the digest in the entry's header,
 *   on every read (the page cache may have re-read it from the disk since the last check); an
 *   entry that fails is deleted and reported as a miss, so the caller refetches. A read costs two
 *   round trips to the thread pool: open, then the header and the blocks at once (or the blocks
 *   alone once the header is known); the descriptor is closed in the background.
 * - Size: a ledger file holds the bytes of all entries and of writes in progress. A writer
 *   reserves the entry's size under the directory lock, evicting least recently used entries
 *   (oldest mtime; reads refresh it in the background) when the ledger would pass the bound.
 *   Evicting rescans the directory, which also corrects the ledger after crashes.
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
  /** Size of the independently checked blocks of the entries it writes. */
  readonly blockBytes: number;
  private readonly logger: ClipLogger | undefined;
  private readonly metrics: ClipMetrics | undefined;
  /** Checked headers by key: an entry's later reads skip reading and checking its header. */
  private readonly headers = new Map<string, EntryHeader>();
  private readonly entryListeners = new Set<EntryListener>();
  /** When this process last refreshed each entry's mtime (LRU recency), and those still to write. */
  private readonly touched = new Map<string, number>();
  private readonly pendingTouches = new Set<string>();
  private touchTimer: NodeJS.Timeout | undefined;
  /** Entry files being closed after reads: close() waits for them. */
  private readonly closing = new Set<Promise<void>>();
  private closed = false;
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
    digestAddonLoaded();
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

  /**
   * Tells `listener` of each entry whose header this cache has just read and checked (the span
   * key, the entry file, its header): the native FUSE server then reads that entry itself,
   * checking the same block digests. Returns a function that stops the calls.
   */
  watchEntries(listener: EntryListener): () => void {
    this.entryListeners.add(listener);
    return () => this.entryListeners.delete(listener);
  }

  /** Whether something reads entries itself once told of them (watchEntries): a FUSE server. */
  get hasEntryWatchers(): boolean {
    return this.entryListeners.size > 0;
  }

  /**
   * Reads and checks the header of the entry stored under `hash`, so that the watchers of
   * entries (the FUSE server) read it themselves from now on; false when it is absent or damaged.
   */
  async announce(hash: string, entryLength?: number): Promise<boolean> {
    return (await this.getContent(hash, 0, 0, entryLength)) !== undefined;
  }

  /** The entry stored under `hash` was read elsewhere (natively): it is recent in the LRU order. */
  noteUse(hash: string): void {
    this.recordUse(fileKey(hash));
  }

  /**
   * Bytes [offset, offset + length) of the entry stored under `hash`, checked against the entry's
   * block digests; undefined when absent or when the entry fails a check (it is then deleted).
   * `entryLength`, the entry's content length when the caller knows it (a span's length), lets a
   * read whose header is not known yet fetch the header and the blocks it needs at once rather
   * than one after the other.
   */
  async getContent(hash: string, offset: number, length: number, entryLength?: number): Promise<Buffer | undefined> {
    if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0)) return undefined;
    const key = fileKey(hash);
    const path = this.entryPath(key);
    let fd: number;
    try {
      fd = await openForReading(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.warn('read', 'disk cache: cannot open an entry', err);
      return undefined;
    }
    try {
      return await this.readEntry(hash, key, path, fd, offset, length, entryLength);
    } catch (err) {
      this.warn('read', 'disk cache: an entry could not be read', err);
      return undefined;
    } finally {
      const closed = closeSoon(fd);
      this.closing.add(closed);
      void closed.then(() => this.closing.delete(closed));
    }
  }

  /** getContent on an open entry file: a miss (undefined) for a range outside it or a failed check. */
  private async readEntry(hash: string, key: string, path: string, fd: number, offset: number, length: number, entryLength: number | undefined): Promise<Buffer | undefined> {
    const known = this.headers.get(key);
    if (known !== undefined) {
      const part = await readChecked(fd, known, offset, length, undefined);
      if (part === undefined) return undefined;
      if (typeof part !== 'string') {
        this.recordUse(key);
        return part;
      }
      // The header remembered may belong to an earlier file under this name (written with
      // another block size): judge the entry by its own header.
      this.headers.delete(key);
    }
    // Assume this cache's own block size: right for every entry this version wrote.
    const guess = entryLength !== undefined && Number.isSafeInteger(entryLength) && entryLength > 0 && entryLength <= MAX_ENTRY_CONTENT
      ? { blockBytes: this.blockBytes, length: entryLength, dataOffset: dataOffsetFor(entryLength, this.blockBytes) }
      : undefined;
    const earlyRead = guess !== undefined && length > 0 && offset + length <= guess.length ? readBlocks(fd, guess, offset, length) : undefined;
    const [header, early] = await Promise.all([readHeader(fd, sha256(key), guess?.dataOffset ?? headerProbeBytes()), earlyRead?.catch(() => undefined)]);
    if (typeof header === 'string') {
      await this.drop(key, path, fd, header);
      return undefined;
    }
    const part = await readChecked(fd, header, offset, length, early);
    if (part === undefined) return undefined;
    if (typeof part === 'string') {
      await this.drop(key, path, fd, part);
      return undefined;
    }
    this.remember(hash, key, path, header);
    this.recordUse(key);
    return part;
  }

  /** Keeps a checked header and tells the watchers of entries. */
  private remember(hash: string, key: string, path: string, header: EntryHeader): void {
    if (this.headers.size >= HEADER_CACHE_LIMIT) this.headers.clear();
    this.headers.set(key, header);
    for (const listener of this.entryListeners) listener(hash, path, header);
  }

  /**
   * Stores an entry. `blockDigests`: the sha256 of each `blockBytes` block of the content, when
   * the caller has them already (computed on an inflate thread with the span); otherwise they are
   * computed here.
   */
  async storeContent(chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, hash: string, blockDigests?: BlockDigests): Promise<boolean> {
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
    const given = blockDigests?.blockBytes === this.blockBytes && blockDigests.digests.length === 32 * Math.ceil(content.length / this.blockBytes) ? blockDigests.digests : undefined;
    const header = encodeEntryHeader(sha256(key), content, this.blockBytes, given ?? (await blockDigestsOffThread(content, this.blockBytes)));
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
      // Its header is the one just written: the FUSE server may read the entry at once, so that a
      // span evicted from memory is served from here without JavaScript.
      if (this.entryListeners.size > 0) {
        const written = parseEntryHeader(header, sha256(key));
        if (typeof written === 'object' && !('need' in written)) this.remember(hash, key, path, written);
      }
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

  /** Writes pending LRU touches, waits for entry files still open to be closed, and for its lock. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.touchTimer !== undefined) clearTimeout(this.touchTimer);
    this.touchTimer = undefined;
    await this.flushTouches();
    await Promise.all([...this.closing]);
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
    // This process's recent reads count in the order below, however recent.
    await this.flushTouches();
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

  /** An entry that failed a check: its file deleted, reported. */
  private async drop(key: string, path: string, fd: number, reason: string): Promise<void> {
    this.headers.delete(key);
    // Only if the name still holds the file that failed: another process may have replaced it
    // with a good copy since this one was opened.
    try {
      const [failed, current] = await Promise.all([fstatDescriptor(fd), stat(path)]);
      if (failed.ino === current.ino && failed.dev === current.dev) await unlink(path);
    } catch {
      // gone already
    }
    this.metrics?.verificationFailed('disk');
    this.logger?.('warn', 'disk cache entry failed its check; dropped, the span will be refetched', { cacheDir: this.dir, key, reason });
  }

  /**
   * LRU recency is the entry's mtime. A read only notes the entry (at most once per
   * TOUCH_INTERVAL_MS per entry); a timer writes the mtimes in the background, TOUCH_DELAY_MS
   * later, and an eviction by this process writes them first.
   */
  private recordUse(key: string): void {
    const now = Date.now();
    const last = this.touched.get(key);
    if (last !== undefined && now - last < TOUCH_INTERVAL_MS) return;
    if (this.touched.size >= TOUCHED_LIMIT) this.touched.clear();
    this.touched.set(key, now);
    this.pendingTouches.add(key);
    this.scheduleTouches();
  }

  private scheduleTouches(): void {
    if (this.touchTimer !== undefined || this.closed) return;
    this.touchTimer = setTimeout(() => {
      this.touchTimer = undefined;
      void this.flushTouches();
    }, TOUCH_DELAY_MS);
    this.touchTimer.unref();
  }

  private async flushTouches(): Promise<void> {
    if (this.pendingTouches.size === 0) return;
    const keys = [...this.pendingTouches];
    this.pendingTouches.clear();
    const seconds = Date.now() / 1000;
    await Promise.all(keys.map((key) => utimes(this.entryPath(key), seconds, seconds).catch(() => undefined)));
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
    // Concatenated, not path.join: keys are hex and entriesDir is absolute and normalized, and
    // this runs on every read.
    return `${this.entriesDir}/${key.slice(0, 2)}/${key}`;
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

/** Reads and checks an entry's header, `want` bytes first (more if the header says it is longer). */
async function readHeader(fd: number, keyDigest: Buffer, want: number): Promise<EntryHeader | string> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const head = Buffer.allocUnsafe(want);
    const got = await preadFully(fd, head, 0);
    const parsed = parseEntryHeader(head.subarray(0, got), keyDigest);
    if (typeof parsed === 'string') return parsed;
    if (!('need' in parsed)) return parsed;
    if (got < want) return 'header cut short';
    want = parsed.need;
  }
  return 'header cut short';
}

/** The blocks covering [offset, offset + length) of an entry, as byte offsets into its content. */
interface BlockRange {
  readonly first: number;
  readonly last: number;
  readonly start: number;
  readonly end: number;
}

/** Blocks read before the header was checked, under an assumed layout. */
interface BlockRead extends BlockRange {
  readonly blockBytes: number;
  readonly dataOffset: number;
  readonly buffer: Buffer;
}

type Layout = Pick<EntryHeader, 'blockBytes' | 'length' | 'dataOffset'>;

function blockRange(layout: Layout, offset: number, length: number): BlockRange {
  const block = layout.blockBytes;
  const first = Math.floor(offset / block);
  const last = Math.floor((offset + length - 1) / block);
  return { first, last, start: first * block, end: Math.min((last + 1) * block, layout.length) };
}

async function readBlocks(fd: number, layout: Layout, offset: number, length: number): Promise<BlockRead | undefined> {
  const range = blockRange(layout, offset, length);
  const buffer = Buffer.allocUnsafe(range.end - range.start);
  if ((await preadFully(fd, buffer, layout.dataOffset + range.start)) !== buffer.length) return undefined;
  return { ...range, blockBytes: layout.blockBytes, dataOffset: layout.dataOffset, buffer };
}

/** Whether blocks read under an assumed layout are the ones the checked header locates. */
function sameBlocks(read: BlockRead, range: BlockRange, header: EntryHeader): boolean {
  return read.blockBytes === header.blockBytes && read.dataOffset === header.dataOffset && read.start === range.start && read.end === range.end;
}

/**
 * Bytes [offset, offset + length) of an entry with `header`, every block they touch checked
 * (blocks read early are used if they are the right ones). Undefined for a range outside the
 * entry; a string saying why when the entry fails its check.
 */
async function readChecked(fd: number, header: EntryHeader, offset: number, length: number, early: BlockRead | undefined): Promise<Buffer | string | undefined> {
  if (offset + length > header.length) return undefined;
  if (length === 0) return Buffer.alloc(0);
  const range = blockRange(header, offset, length);
  let buffer = early !== undefined && sameBlocks(early, range, header) ? early.buffer : undefined;
  if (buffer === undefined) {
    buffer = Buffer.allocUnsafe(range.end - range.start);
    if ((await preadFully(fd, buffer, header.dataOffset + range.start)) !== buffer.length) return 'content cut short';
  }
  const block = header.blockBytes;
  for (let b = range.first; b <= range.last; b++) {
    const piece = buffer.subarray((b - range.first) * block, (b - range.first + 1) * block);
    if (!sha256(piece).equals(header.blockDigests.subarray(32 * b, 32 * b + 32))) return `block ${b} fails its sha256 check`;
  }
  return buffer.subarray(offset - range.start, offset - range.start + length);
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
