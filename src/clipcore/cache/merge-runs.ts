import type { SpanRef } from './span-cache.js';

/**
 * Read-ahead merges neighbouring spans of a blob into one range request of at most this many
 * spans and bytes: fewer round trips, while several requests still run at once and the first
 * span of a request is not held back long behind the others.
 */
const MERGE_SPANS = 4;
const MERGE_BYTES = 8 * 1024 * 1024;

/** Consecutive spans of one blob whose origin ranges touch, cut at MERGE_SPANS and MERGE_BYTES. */
export function mergeableRuns(refs: readonly SpanRef[]): SpanRef[][] {
  const runs: SpanRef[][] = [];
  let run: SpanRef[] = [];
  for (const ref of refs) {
    const range = ref.originRange;
    const head = run[0]?.originRange;
    const previous = run[run.length - 1]?.originRange;
    const joins =
      range !== undefined && head !== undefined && previous !== undefined && range.blob === previous.blob &&
      range.start >= previous.start && range.start <= previous.end && run.length < MERGE_SPANS && range.end - head.start <= MERGE_BYTES;
    if (!joins && run.length > 0) {
      runs.push(run);
      run = [];
    }
    run.push(ref);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
