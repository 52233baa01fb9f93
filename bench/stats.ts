/** Summaries of repeated measurements: every figure carries its unit, its number of runs and its spread. */

export interface Summary {
  readonly unit: string;
  readonly n: number;
  /** The true median: the middle value, or the mean of the two middle values when n is even. */
  readonly p50: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
}

/** Nearest-rank quantile of sorted samples (q in [0, 1]). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

/** The median of sorted samples: the middle value, or the mean of the two middle ones. */
export function median(sorted: readonly number[]): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const upper = sorted[Math.floor(n / 2)] as number;
  return n % 2 === 1 ? upper : ((sorted[n / 2 - 1] as number) + upper) / 2;
}

export function summarize(samples: readonly number[], unit: string): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  return {
    unit,
    n,
    p50: median(sorted),
    p99: quantile(sorted, 0.99),
    min: sorted[0] ?? Number.NaN,
    max: sorted[n - 1] ?? Number.NaN,
    mean: n === 0 ? Number.NaN : sorted.reduce((a, b) => a + b, 0) / n,
  };
}

/** A number with about three significant digits. */
export function num(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs === 0) return '0';
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  if (abs >= 0.01) return value.toFixed(3);
  return value.toPrecision(2);
}

/**
 * `1.23 s (median, range 1.20–1.31, n=3)` for few runs; `p50 1.23 ms, p99 4.5 ms (range ..., n=200)`
 * when there are enough samples for a p99 to mean something.
 */
export function formatSummary(s: Summary): string {
  if (s.n === 0) return 'no samples';
  if (s.n === 1) return `${num(s.p50)} ${s.unit} (n=1, no spread)`;
  if (s.n < 20) return `${num(s.p50)} ${s.unit} (median; range ${num(s.min)}–${num(s.max)}, n=${s.n})`;
  return `p50 ${num(s.p50)} ${s.unit}, p99 ${num(s.p99)} ${s.unit} (range ${num(s.min)}–${num(s.max)}, n=${s.n})`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${num(value)} ${units[unit]}`;
}

/** Milliseconds since `start` (from process.hrtime.bigint()). */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** A small seeded generator (mulberry32): the same seed picks the same files on every run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
