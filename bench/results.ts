/** What a bench run records: rows of figures, side by side with their comparison, and skipped measurements. */
import { formatSummary, median, num, type Summary } from './stats.js';

export type Figure =
  | { readonly kind: 'summary'; readonly summary: Summary }
  | { readonly kind: 'value'; readonly value: number; readonly unit: string; readonly text?: string };

export interface Ratio {
  /** clip-csi ÷ comparison (the median of paired runs' ratios, or p50 ÷ p50). */
  readonly value: number;
  /** Paired runs behind the value (absent: a ratio of two independent summaries). */
  readonly n?: number;
  /** How it was formed and its spread. */
  readonly text: string;
}

export interface Row {
  /** A stable name for the rows the headline table quotes (bench/headline.ts). */
  readonly id?: string;
  readonly section: string;
  readonly name: string;
  readonly clip: Figure;
  readonly comparison?: { readonly label: string; readonly figure: Figure };
  readonly ratio?: Ratio;
  readonly note?: string;
}

export interface Skip {
  readonly section: string;
  readonly name: string;
  readonly reason: string;
  /** A measurement that could not run at all (not available) or that broke (failed). */
  readonly kind: 'not available' | 'FAILED';
}

export class Results {
  readonly rows: Row[] = [];
  readonly skipped: Skip[] = [];
  readonly notes: string[] = [];

  add(row: Row): void {
    this.rows.push(row);
    process.stderr.write(`  ${row.name}: ${formatFigure(row.clip)}${row.comparison ? ` | ${row.comparison.label}: ${formatFigure(row.comparison.figure)}` : ''}${row.ratio ? ` | ratio ${num(row.ratio.value)}×` : ''}\n`);
  }

  skip(section: string, name: string, reason: string): void {
    this.skipped.push({ section, name, reason, kind: 'not available' });
    process.stderr.write(`  ${name}: not available: ${reason}\n`);
  }

  fail(section: string, name: string, reason: string): void {
    this.skipped.push({ section, name, reason, kind: 'FAILED' });
    process.stderr.write(`  ${name}: FAILED: ${reason}\n`);
  }

  note(text: string): void {
    this.notes.push(text);
    process.stderr.write(`  note: ${text}\n`);
  }
}

export function value(value: number, unit: string, text?: string): Figure {
  return text === undefined ? { kind: 'value', value, unit } : { kind: 'value', value, unit, text };
}

export function samples(summary: Summary): Figure {
  return { kind: 'summary', summary };
}

export function formatFigure(figure: Figure): string {
  if (figure.kind === 'summary') return formatSummary(figure.summary);
  return figure.text ?? `${num(figure.value)} ${figure.unit}`;
}

/** Runs clip and baseline alternately (which goes first alternates), `runs` times. */
export async function paired(runs: number, clip: () => Promise<number>, baseline: () => Promise<number>): Promise<{ clip: number[]; baseline: number[] }> {
  const [clipTimes, baselineTimes] = await interleaved(runs, [clip, baseline]);
  return { clip: clipTimes as number[], baseline: baselineTimes as number[] };
}

/** `runs` rounds of every one of `sides`, the order rotated by one each round; the times of each side. */
export async function interleaved(runs: number, sides: ReadonlyArray<() => Promise<number>>): Promise<number[][]> {
  const out = sides.map(() => [] as number[]);
  for (let run = 0; run < runs; run++) {
    for (let k = 0; k < sides.length; k++) {
      const side = (run + k) % sides.length;
      (out[side] as number[]).push(await (sides[side] as () => Promise<number>)());
    }
  }
  return out;
}

/**
 * Ratio of paired runs (clip_i ÷ comparison_i, each pair run back to back): the true median of
 * the ratios (with an even n, the mean of the two middle ones), their range and n.
 */
export function pairedRatio(clip: readonly number[], comparison: readonly number[]): Ratio {
  if (clip.length !== comparison.length) throw new Error(`paired runs: ${clip.length} clip runs against ${comparison.length} comparison runs`);
  const ratios = clip.map((c, i) => c / (comparison[i] as number)).sort((a, b) => a - b);
  const value = median(ratios);
  const spread = ratios.length > 1 ? `, paired runs ${num(ratios[0] as number)}–${num(ratios[ratios.length - 1] as number)}, n=${ratios.length}` : ', one pair, n=1';
  return { value, n: ratios.length, text: `${num(value)}× (median${spread})` };
}

/** p50 ÷ p50 of two independent sample sets. */
export function p50Ratio(clip: Summary, comparison: Summary): Ratio {
  const r = clip.p50 / comparison.p50;
  return { value: r, text: `${num(r)}× (p50 ÷ p50)${r < 1 ? `; comparison takes ${num(1 / r)}× as long` : ''}` };
}
