/** Which spans a read of an uncompressed range needs: the minimal contiguous run. */
import { ClipError } from '../errors.js';
import type { CompressedSpan } from './types.js';

export interface RangePlan {
  /** Index of the first span (and of the checkpoint to start from). */
  firstSpan: number;
  /** Index of the last span, inclusive. */
  lastSpan: number;
  /** The compressed bytes to fetch: [compressedStart, compressedEnd). */
  compressedStart: number;
  compressedEnd: number;
}

/** Returns null for an empty range; throws INVALID_ARGUMENT for one outside the layer. */
export function spansForRange(spans: readonly CompressedSpan[], start: number, end: number): RangePlan | null {
  const size = spans.length > 0 ? spans[spans.length - 1]!.uncompressedEnd : 0;
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end <= size)) {
    throw new ClipError('INVALID_ARGUMENT', `range [${start}, ${end}) is outside the layer's ${size} uncompressed bytes`);
  }
  if (start === end) return null;
  const firstSpan = lastSpanStartingAtOrBefore(spans, start);
  const lastSpan = lastSpanStartingAtOrBefore(spans, end - 1);
  return {
    firstSpan,
    lastSpan,
    compressedStart: spans[firstSpan]!.compressedStart,
    compressedEnd: spans[lastSpan]!.compressedEnd,
  };
}

/** Binary search: the last span whose uncompressedStart <= offset (spans are sorted). */
function lastSpanStartingAtOrBefore(spans: readonly CompressedSpan[], offset: number): number {
  let lo = 0;
  let hi = spans.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (spans[mid]!.uncompressedStart <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
