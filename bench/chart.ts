/**
 * The headline as an SVG bar chart: for each figure, clip-csi beside the best alternative, on a
 * logarithmic axis (the ratios span orders of magnitude), one axis per unit (time, bytes). Plain
 * SVG text, no dependencies.
 */
import { formatQuantity, type HeadlineRow } from './headline.js';

const WIDTH = 1200;
const LABEL_WIDTH = 410;
const BAR_LEFT = LABEL_WIDTH + 10;
const BAR_WIDTH = 340;
const BAR_HEIGHT = 13;
const ROW_HEIGHT = 44;
const CLIP_COLOR = '#1b7f79';
const OTHER_COLOR = '#9a9a9a';

const escape = (text: string): string => text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

/** A bar's label without the table's asides (the table keeps them), at most 64 characters. */
function shortLabel(label: string): string {
  const short = label.replace(/^full pull: /, '').replace(/\s*\([^)]*\)/g, '');
  return short.length > 64 ? `${short.slice(0, 63)}…` : short;
}

/** Ticks every factor of 10 for times, of 32 for bytes (1 KiB, 32 KiB, 1 MiB, ...). */
const STEP: Record<'s' | 'B', number> = { s: 10, B: 32 };

/** Tick exponents covering the values: [step^lo, step^hi]. */
function tickRange(values: readonly number[], step: number): { lo: number; hi: number } {
  const logs = values.filter((v) => v > 0).map((v) => Math.log(v) / Math.log(step));
  const lo = Math.floor(Math.min(...logs));
  const hi = Math.ceil(Math.max(...logs));
  return { lo, hi: hi > lo ? hi : lo + 1 };
}

/** A round tick label: 10 ms, 1 s, 32 KiB. */
function tickLabel(value: number, base: 's' | 'B'): string {
  const units: Array<[number, string]> = base === 's' ? [[1, 's'], [1e-3, 'ms'], [1e-6, 'µs']] : [[2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB'], [1, 'B']];
  const [size, name] = units.find(([size]) => value >= size * 0.999) ?? (units[units.length - 1] as [number, string]);
  return `${Math.round(value / size)} ${name}`;
}

export function headlineChart(rows: readonly HeadlineRow[], caption: string): string {
  const charted = rows.filter((row) => !row.secondary);
  const groups = (['s', 'B'] as const)
    .map((base) => ({ base, rows: charted.filter((row) => row.clip.base === base && row.alternative.value.base === base) }))
    .filter((group) => group.rows.length > 0);
  const parts: string[] = [];
  let y = 56;
  for (const group of groups) {
    const step = STEP[group.base];
    const { lo, hi } = tickRange(group.rows.flatMap((row) => [row.clip.value, row.alternative.value.value]), step);
    const x = (value: number): number => BAR_LEFT + (BAR_WIDTH * (Math.log(Math.max(value, step ** lo)) / Math.log(step) - lo)) / (hi - lo);
    const top = y;
    const bottom = y + group.rows.length * ROW_HEIGHT;
    for (let d = lo; d <= hi; d++) {
      const gx = x(step ** d);
      parts.push(`<line x1="${gx.toFixed(1)}" y1="${top - 4}" x2="${gx.toFixed(1)}" y2="${bottom}" stroke="#e2e2e2"/>`);
      parts.push(`<text x="${gx.toFixed(1)}" y="${bottom + 14}" font-size="11" text-anchor="middle" fill="#555">${escape(tickLabel(step ** d, group.base))}</text>`);
    }
    for (const row of group.rows) {
      parts.push(`<text x="${LABEL_WIDTH}" y="${y + 17}" font-size="11.5" text-anchor="end" fill="#222">${escape(row.figure)}</text>`);
      parts.push(`<text x="${LABEL_WIDTH}" y="${y + 32}" font-size="11" text-anchor="end" fill="${CLIP_COLOR}">${escape(row.ratioText)}</text>`);
      const bars: Array<[number, string, string]> = [
        [row.clip.value, CLIP_COLOR, `clip-csi ${formatQuantity(row.clip.value, group.base)}`],
        [row.alternative.value.value, OTHER_COLOR, `${shortLabel(row.alternative.label)} ${formatQuantity(row.alternative.value.value, group.base)}`],
      ];
      for (const [i, [value, color, label]] of bars.entries()) {
        const by = y + 6 + i * (BAR_HEIGHT + 3);
        const end = x(value);
        parts.push(`<rect x="${BAR_LEFT}" y="${by}" width="${Math.max(1, end - BAR_LEFT).toFixed(1)}" height="${BAR_HEIGHT}" fill="${color}"/>`);
        parts.push(`<text x="${(end + 5).toFixed(1)}" y="${by + 10.5}" font-size="11" fill="#333">${escape(label)}</text>`);
      }
      y += ROW_HEIGHT;
    }
    parts.push(`<text x="${BAR_LEFT}" y="${bottom + 30}" font-size="11" fill="#555">${group.base === 's' ? 'time, log scale (shorter is better)' : 'bytes, log scale (shorter is better)'}</text>`);
    y = bottom + 56;
  }
  const height = y;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold" fill="#222">clip-csi beside the best alternative measured in the same run</text>`,
    `<rect x="12" y="32" width="12" height="12" fill="${CLIP_COLOR}"/><text x="30" y="42" font-size="12" fill="#222">clip-csi</text>`,
    `<rect x="100" y="32" width="12" height="12" fill="${OTHER_COLOR}"/><text x="118" y="42" font-size="12" fill="#222">best alternative</text>`,
    `<text x="${WIDTH - 12}" y="42" font-size="11" text-anchor="end" fill="#555">${escape(caption)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
