import * as crypto from 'node:crypto';
import { ClipError } from '../errors.js';
import type { Xattr } from '../archive/model.js';
import type { LayerEntry, LayerEntryType } from './layer-entry.js';
import { collectXattrs, paxNumber, paxString, paxTime, parsePaxRecords, rejectSparse, type PaxRecords } from './pax.js';
import { entryKind } from './tar-entry-kind.js';
import { BLOCK_SIZE, decodeHeader, TYPE, type TarHeader } from './tar-header.js';
import { normalizeLayerPath } from './tar-path.js';
import { TarSyntaxError } from './tar-syntax-error.js';

/*
 * Why not tar-stream's extract: it decodes PAX values as UTF-8 strings (binary xattr values such
 * as security.capability would be mangled), applies global PAX headers only to entries that also
 * carry a local one, and wraps every entry in a streamx Readable. Exact data offsets are easy to
 * track here, and the format is small enough to parse directly.
 */

export interface TarParserOptions {
  /** Names the layer in error messages (its digest or index). */
  readonly layer: string;
}

/** Anything that yields the uncompressed layer bytes in order: a Node Readable, an array of Buffers. */
export type ByteChunks = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Extended headers (PAX with big xattrs, GNU long names) larger than this are taken as damage. */
const MAX_EXTENDED_HEADER = 16 * 1024 * 1024;
const EMPTY_SHA256 = crypto.createHash('sha256').digest();
/**
 * One-shot hashing (Node >= 20.12) costs about half of a Hash object, which matters for layers
 * of many small files; most of those sit whole inside one chunk.
 */
const hashOnce: ((data: Buffer) => Buffer) | null =
  typeof crypto.hash === 'function' ? (data) => crypto.hash('sha256', data, 'buffer') : null;

/**
 * A digest as the entry keeps it: copied into Node's shared small-Buffer pool. The hash's own
 * Buffer has a backing store of its own, about 250 bytes of memory for 32 bytes of digest, and a
 * layer's entries all live until the image is written (11,751 of them in golang-src).
 */
const pooled = (digest: Buffer): Buffer => Buffer.from(digest);

/** Most entries have no xattrs: they share one empty list. */
const NO_XATTRS: readonly Xattr[] = Object.freeze([]);

/** An entry under construction; `sha256` is filled in once the content has been read. */
type MutableEntry = { -readonly [K in keyof LayerEntry]: LayerEntry[K] };

type State =
  | { readonly kind: 'header' }
  /** One zero block seen: a second one (or the end of the stream) must follow. */
  | { readonly kind: 'afterZero' }
  | { readonly kind: 'data'; readonly entry: MutableEntry; hash: crypto.Hash | null; remaining: number }
  | { readonly kind: 'extended'; readonly typeflag: number; readonly data: Buffer; fill: number }
  | { readonly kind: 'end' };

const HEADER: State = { kind: 'header' };
const AFTER_ZERO: State = { kind: 'afterZero' };
const END: State = { kind: 'end' };

/**
 * Push-style parser for one layer's uncompressed tar stream. Feed chunks with write() in stream
 * order, then call end(); each entry is handed to `onEntry` as soon as it is complete (for files,
 * once their content has been hashed). Memory stays bounded: content flows through the hash.
 * Failures are ClipError NOT_A_TAR (nothing valid seen yet) or CORRUPT, naming layer and offset.
 */
export class TarEntryParser {
  private readonly layer: string;
  private readonly onEntry: (entry: LayerEntry) => void;
  /** Stream offset of the first byte of the chunk being consumed. */
  private consumed = 0;
  private state: State = HEADER;
  /** Bytes to discard before the next state applies (block padding, ignored content). */
  private skip = 0;
  private readonly headerBuf = Buffer.alloc(BLOCK_SIZE);
  private headerFill = 0;
  /** Offset of the last header block, what error messages point at. */
  private blockOffset = 0;
  private localPax: PaxRecords | null = null;
  private readonly globalPax: PaxRecords = new Map();
  private longName: string | null = null;
  private longLink: string | null = null;
  private sawHeader = false;
  /** The start of the first block, to tell a compressed blob from a tar in error messages. */
  private firstBytes: Buffer | null = null;
  private failure: ClipError | null = null;

  constructor(onEntry: (entry: LayerEntry) => void, options: TarParserOptions) {
    this.onEntry = onEntry;
    this.layer = options.layer;
  }

  write(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    if (!(chunk instanceof Uint8Array)) {
      throw new ClipError('INVALID_ARGUMENT', `layer ${this.layer}: tar input chunks must be bytes, got ${typeof chunk}`);
    }
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    try {
      this.consume(buf);
    } catch (err) {
      throw this.fail(err);
    }
    this.consumed += buf.length;
  }

  /** Declares the end of the stream; throws if it stopped inside an entry. */
  end(): void {
    if (this.failure) throw this.failure;
    const state = this.state;
    if (state.kind === 'end' || state.kind === 'afterZero') return;
    if (state.kind === 'header' && this.headerFill === 0 && this.skip === 0) {
      // A missing end-of-archive marker is tolerated (Go's archive/tar does the same); a dangling
      // extended header is not, its entry is gone.
      if (!this.hasPendingExtensions()) return;
      throw this.fail(new TarSyntaxError('the stream ends after an extended header, before its entry'));
    }
    let where: string;
    if (state.kind === 'data') where = `inside the content of ${JSON.stringify(state.entry.path)} (${state.remaining} bytes missing)`;
    else if (state.kind === 'extended') where = `inside an extended header (${state.data.length - state.fill} bytes missing)`;
    else if (this.skip > 0) where = `inside block padding (${this.skip} bytes missing)`;
    else where = `inside a header block (${BLOCK_SIZE - this.headerFill} of 512 bytes missing)`;
    throw this.fail(new TarSyntaxError(`truncated at offset ${this.consumed}, ${where}`));
  }

  private consume(buf: Buffer): void {
    const n = buf.length;
    let i = 0;
    while (i < n) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, n - i);
        this.skip -= take;
        i += take;
        continue;
      }
      const state = this.state;
      switch (state.kind) {
        case 'data': {
          const take = Math.min(state.remaining, n - i);
          const piece = buf.subarray(i, i + take);
          i += take;
          state.remaining -= take;
          if (state.remaining === 0 && state.hash === null && hashOnce !== null) {
            state.entry.sha256 = pooled(hashOnce(piece));
          } else {
            state.hash ??= crypto.createHash('sha256');
            state.hash.update(piece);
            if (state.remaining === 0) state.entry.sha256 = pooled(state.hash.digest());
          }
          if (state.remaining === 0) {
            this.state = HEADER;
            this.skip = padding(state.entry.size);
            this.onEntry(state.entry);
          }
          break;
        }
        case 'extended': {
          const take = Math.min(state.data.length - state.fill, n - i);
          buf.copy(state.data, state.fill, i, i + take);
          state.fill += take;
          i += take;
          if (state.fill === state.data.length) this.finishExtended(state.typeflag, state.data);
          break;
        }
        case 'end':
          // Writers pad archives to a record size (10 KiB for GNU tar); nothing after the marker counts.
          return;
        case 'header':
        case 'afterZero': {
          let block: Buffer;
          if (this.headerFill === 0 && n - i >= BLOCK_SIZE) {
            block = buf.subarray(i, i + BLOCK_SIZE);
            i += BLOCK_SIZE;
          } else {
            const take = Math.min(BLOCK_SIZE - this.headerFill, n - i);
            buf.copy(this.headerBuf, this.headerFill, i, i + take);
            this.headerFill += take;
            i += take;
            if (this.headerFill < BLOCK_SIZE) break;
            this.headerFill = 0;
            block = this.headerBuf;
          }
          this.blockOffset = this.consumed + i - BLOCK_SIZE;
          this.onBlock(block);
          break;
        }
      }
    }
  }

  private onBlock(block: Buffer): void {
    if (!this.sawHeader && this.firstBytes === null) this.firstBytes = Buffer.from(block.subarray(0, 4));
    const header = decodeHeader(block);
    if (header === null) {
      if (this.state.kind === 'afterZero') {
        this.state = END;
        return;
      }
      if (this.hasPendingExtensions()) throw new TarSyntaxError('end-of-archive marker right after an extended header');
      this.state = AFTER_ZERO;
      return;
    }
    // Go's archive/tar rejects this too: a lone zero block is damage, not a separator.
    if (this.state.kind === 'afterZero') throw new TarSyntaxError('a header follows a single zero block');
    this.sawHeader = true;
    switch (header.typeflag) {
      case TYPE.PAX_LOCAL:
      case TYPE.PAX_GLOBAL:
      case TYPE.GNU_LONG_NAME:
      case TYPE.GNU_LONG_LINK:
        if (header.size > MAX_EXTENDED_HEADER) throw new TarSyntaxError(`extended header of ${header.size} bytes is too large`);
        this.state = { kind: 'extended', typeflag: header.typeflag, data: Buffer.alloc(header.size), fill: 0 };
        if (header.size === 0) this.finishExtended(header.typeflag, Buffer.alloc(0));
        return;
      default:
        this.onEntryHeader(header);
    }
  }

  private finishExtended(typeflag: number, data: Buffer): void {
    this.state = HEADER;
    this.skip = padding(data.length);
    switch (typeflag) {
      case TYPE.PAX_LOCAL: {
        const records = parsePaxRecords(data);
        if (this.localPax === null) this.localPax = records;
        else for (const [key, value] of records) this.localPax.set(key, value);
        return;
      }
      case TYPE.PAX_GLOBAL:
        // Global records apply to every later entry; an empty value deletes the keyword.
        for (const [key, value] of parsePaxRecords(data)) {
          if (value.length === 0) this.globalPax.delete(key);
          else this.globalPax.set(key, Buffer.from(value));
        }
        return;
      case TYPE.GNU_LONG_NAME:
        this.longName = nulTerminated(data);
        return;
      case TYPE.GNU_LONG_LINK:
        this.longLink = nulTerminated(data);
        return;
    }
  }

  private onEntryHeader(header: TarHeader): void {
    const pax = this.takePax();
    const longName = this.longName;
    const longLink = this.longLink;
    this.longName = null;
    this.longLink = null;

    const rawPath = paxString(pax, 'path') ?? longName ?? header.name;
    const rawLink = paxString(pax, 'linkpath') ?? longLink ?? header.linkName;
    const size = paxNumber(pax, 'size') ?? header.size;
    const kind = entryKind(header.typeflag, rawPath);
    if (kind === 'skip') {
      this.skip = size + padding(size);
      return;
    }
    if (pax !== null) rejectSparse(pax);
    const uid = paxNumber(pax, 'uid') ?? header.uid;
    const gid = paxNumber(pax, 'gid') ?? header.gid;
    if (size < 0 || uid < 0 || gid < 0) throw new TarSyntaxError('negative size, uid or gid');
    const mtimeNs = paxTime(pax) ?? BigInt(header.mtimeSec) * 1_000_000_000n;
    const path = normalizeEntryPath(rawPath, 'path');

    // Header-only types carry no data whatever their size field says (as in Go's archive/tar);
    // a GNU dumpdir lists its directory in data nobody needs.
    if (kind === 'dumpdir') this.skip = size + padding(size);
    const type: LayerEntryType = kind === 'dumpdir' ? 'directory' : kind;
    const entry: MutableEntry = {
      path,
      type,
      mode: header.mode & 0o7777,
      uid,
      gid,
      size: type === 'file' ? size : 0,
      mtimeNs,
      xattrs: pax === null ? NO_XATTRS : collectXattrs(pax),
      headerOffset: this.blockOffset,
    };
    switch (type) {
      case 'file':
        entry.dataOffset = this.blockOffset + BLOCK_SIZE;
        if (size === 0) {
          entry.sha256 = Buffer.from(EMPTY_SHA256);
          this.onEntry(entry);
        } else {
          this.state = { kind: 'data', entry, hash: null, remaining: size };
        }
        return;
      case 'hardlink':
        if (rawLink === '') throw new TarSyntaxError(`hard link ${JSON.stringify(rawPath)} has no target`);
        entry.linkTarget = normalizeEntryPath(rawLink, 'hard link target');
        break;
      case 'symlink':
        entry.linkTarget = rawLink;
        break;
      case 'char':
      case 'block':
        entry.rdevMajor = header.devMajor;
        entry.rdevMinor = header.devMinor;
        break;
    }
    this.onEntry(entry);
  }

  /** The PAX records in force for the entry being read (global overlaid with local), then resets local. */
  private takePax(): PaxRecords | null {
    const local = this.localPax;
    this.localPax = null;
    if (this.globalPax.size === 0) return local;
    if (local === null) return this.globalPax;
    const merged = new Map(this.globalPax);
    for (const [key, value] of local) merged.set(key, value);
    return merged;
  }

  private hasPendingExtensions(): boolean {
    return this.localPax !== null || this.longName !== null || this.longLink !== null;
  }

  private fail(err: unknown): unknown {
    if (err instanceof TarSyntaxError) {
      const code = this.sawHeader ? 'CORRUPT' : 'NOT_A_TAR';
      let message = `layer ${this.layer}: ${err.message} (header at offset ${this.blockOffset})`;
      if (!this.sawHeader) message = `layer ${this.layer}: not a tar stream${compressionHint(this.firstBytes ?? this.headerBuf)}: ${err.message}`;
      this.failure = new ClipError(code, message, { cause: err });
      return this.failure;
    }
    if (err instanceof ClipError) this.failure = err;
    return err;
  }
}

/** Parses a whole layer stream, yielding entries as they complete. */
export async function* readLayerEntries(source: ByteChunks, options: TarParserOptions): AsyncGenerator<LayerEntry> {
  let batch: LayerEntry[] = [];
  const parser = new TarEntryParser((entry) => batch.push(entry), options);
  for await (const chunk of source) {
    parser.write(chunk);
    if (batch.length > 0) {
      const ready = batch;
      batch = [];
      yield* ready;
    }
  }
  parser.end();
  yield* batch;
}

/** Parses a whole layer stream into its entry list (no per-entry await, the fast path). */
export async function collectLayerEntries(source: ByteChunks, options: TarParserOptions): Promise<LayerEntry[]> {
  const entries: LayerEntry[] = [];
  const parser = new TarEntryParser((entry) => entries.push(entry), options);
  for await (const chunk of source) parser.write(chunk);
  parser.end();
  return entries;
}

function normalizeEntryPath(raw: string, what: string): string {
  if (raw.includes('\0')) throw new TarSyntaxError(`${what} ${JSON.stringify(raw)} contains a NUL byte`);
  const path = normalizeLayerPath(raw);
  if (path === null) throw new TarSyntaxError(`${what} ${JSON.stringify(raw)} escapes the layer root`);
  return path;
}

function nulTerminated(data: Buffer): string {
  const end = data.indexOf(0);
  return data.toString('utf8', 0, end < 0 ? data.length : end);
}

function padding(size: number): number {
  const rest = size % BLOCK_SIZE;
  return rest === 0 ? 0 : BLOCK_SIZE - rest;
}

function compressionHint(first: Buffer): string {
  if (first[0] === 0x1f && first[1] === 0x8b) return ' (it looks gzip-compressed)';
  if (first[0] === 0x28 && first[1] === 0xb5 && first[2] === 0x2f && first[3] === 0xfd) return ' (it looks zstd-compressed)';
  return '';
}
