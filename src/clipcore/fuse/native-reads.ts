import type { SpanLayout } from '../cache/spanned-blob.js';
import type { ArchiveReader } from '../read/archive-reader.js';
import type { ClipFuseAddon, FuseSession } from './native-fuse.js';

/** Fields per read in the native server's read log (takeReads). */
const LOGGED_FIELDS = 5;
/**
 * While native reads keep coming, the log is taken this often rather than at each read: being told
 * of every read would wake this thread once per 4 KiB read (as much CPU again as serving it).
 */
const LOG_POLL_MS = 2;

/** The native server's cache tiers, kept in step with the read path's (docs/fuse.md). */
export interface NativeCaches {
  /** Takes the server's log of reads it served and accounts for them as the read path would. */
  takeLog(): void;
  /** Stops handing the server spans (what it holds stays until the session closes). */
  stop(): void;
}

/**
 * Hands the native server the memory tier's spans as they enter and leave it, and each disk
 * cache entry as the read path checks its header, so that reads of those spans never reach
 * JavaScript. What the server then serves comes back through its read log: each span part is
 * counted in the span metrics and kept recent in its tier's LRU (memory, disk), and a reader
 * served from memory keeps its read-ahead going.
 */
export function serveCachesNatively(
  addon: ClipFuseAddon,
  session: FuseSession,
  reader: ArchiveReader,
  layouts: readonly SpanLayout[],
  /** Each layout's span ends, as the server was given them. */
  ends: readonly Float64Array[],
): NativeCaches {
  let positions: Map<string, Array<[number, number]>> | undefined;
  /** Where a span key sits: (blob, span) pairs, several when blobs share a span (the same layer twice). */
  const at = (key: string): ReadonlyArray<[number, number]> => {
    if (!positions) {
      // Built on first use: a mount whose caches stay empty never needs it.
      const map = new Map<string, Array<[number, number]>>();
      layouts.forEach((layout, blob) => {
        for (let span = 0; span < layout.count; span++) {
          const spanKey = layout.ref(span).key;
          const list = map.get(spanKey);
          if (list) list.push([blob, span]);
          else map.set(spanKey, [[blob, span]]);
        }
      });
      positions = map;
    }
    return positions.get(key) ?? [];
  };
  const stopMemory = reader.cache.watchMemory((key, data) => {
    for (const [blob, span] of at(key)) {
      if (data) addon.publishMemorySpan(session, blob, span, data);
      else addon.withdrawMemorySpan(session, blob, span);
    }
  });
  const stopDisk = reader.watchDiskEntries((hash, path, header) => {
    for (const [blob, span] of at(hash)) {
      addon.publishDiskEntry(session, blob, span, path, header.blockBytes, header.length, header.dataOffset, header.blockDigests);
    }
  });
  let poll: NodeJS.Timeout | undefined;
  let stopped = false;
  const takeLog = (): void => {
    clearTimeout(poll);
    const log = addon.takeReads(session);
    // The server announces no more reads until a take finds none.
    if (log.length > 0 && !stopped) poll = setTimeout(takeLog, LOG_POLL_MS).unref();
    for (let i = 0; i + LOGGED_FIELDS <= log.length; i += LOGGED_FIELDS) {
      const inode = log[i] as number;
      const offset = log[i + 1] as number;
      const length = log[i + 2] as number;
      const seconds = (log[i + 3] as number) / 1e6;
      const diskParts = log[i + 4] as number;
      const location = reader.index.inode(inode).location;
      const layout = location && layouts[location.layer];
      const spanEnds = location && ends[location.layer];
      if (!location || !layout || !spanEnds) continue;
      const from = location.offset + offset;
      const to = from + length;
      let span = firstEndAbove(spanEnds, from);
      for (let part = 0; span < layout.count && (part === 0 || (spanEnds[span - 1] as number) < to); span++, part++) {
        // Bit 31 stands for the 32nd part and every later one (the server has 32 bits).
        const tier = (diskParts >>> Math.min(part, 31)) & 1 ? 'disk' : 'memory';
        reader.cache.noteServed(layout.ref(span), tier, seconds);
      }
      if (diskParts === 0) reader.noteNativeRead(inode, offset, length);
    }
  };
  return {
    takeLog,
    stop() {
      stopped = true;
      clearTimeout(poll);
      stopMemory();
      stopDisk();
    },
  };
}

/** The first index whose end lies beyond `offset` (the span holding it). */
function firstEndAbove(ends: Float64Array, offset: number): number {
  let low = 0;
  let high = ends.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((ends[middle] as number) > offset) high = middle;
    else low = middle + 1;
  }
  return low;
}
