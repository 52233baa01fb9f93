/**
 * The headline of docs/performance.md: a few figures a user would compare, each clip-csi beside the
 * best alternative measured in the same run (the fastest unpack: skopeo copy + tar -xzf), with
 * a real runtime's pull (containerd, where installed) and umoci as further rows. Rows come from a results file
 * by their stable ids (set by the measure-*.ts modules).
 */
import type { ResultsFile } from './results-file.js';
import type { Figure, Row } from './results.js';
import { formatBytes, num } from './stats.js';

interface HeadlineSpec {
  readonly row: string;
  readonly figure: string;
  /** A second comparison of a figure already shown against the best alternative (not charted). */
  readonly secondary?: boolean;
}

const HEADLINE: readonly HeadlineSpec[] = [
  { row: 'ttfb.present.tar', figure: 'First read of a file, index on the node' },
  { row: 'ttfb.present.containerd', figure: 'First read of a file, index on the node (against containerd)', secondary: true },
  { row: 'ttfb.present.umoci', figure: 'First read of a file, index on the node (against umoci)', secondary: true },
  { row: 'ttfb.nothing.tar', figure: 'First read of a file from nothing (index the image, then read)' },
  { row: 'ttfb.nothing.containerd', figure: 'First read from nothing (against containerd)', secondary: true },
  { row: 'ttfb.nothing.umoci', figure: 'First read from nothing (against umoci)', secondary: true },
  { row: 'node.publish.present', figure: 'Pod volume ready: NodePublishVolume, index on the node' },
  { row: 'node.publish.never-seen', figure: 'Pod volume ready: NodePublishVolume, image never seen' },
  { row: 'ttfb.bytes', figure: 'Registry bytes for the first read of a file' },
  { row: 'index.warm.image.1', figure: 'Index the debian image (long-lived indexer, one layer at a time)' },
  { row: 'index.fresh.image', figure: 'Index the debian image (`clip index`, a fresh process)' },
  { row: 'fuse.sequential.cold', figure: 'Read a 256 MiB file, cold' },
];

export interface HeadlineRow {
  readonly figure: string;
  readonly secondary: boolean;
  readonly clip: Quantity;
  readonly alternative: { readonly label: string; readonly value: Quantity };
  readonly ratio: number;
  readonly ratioText: string;
}

/** A central value in a base unit (seconds or bytes), with how it was summarized. */
export interface Quantity {
  readonly value: number;
  readonly base: 's' | 'B';
  readonly text: string;
}

const TO_BASE: Record<string, { base: 's' | 'B'; factor: number }> = {
  s: { base: 's', factor: 1 },
  ms: { base: 's', factor: 1e-3 },
  B: { base: 'B', factor: 1 },
  KiB: { base: 'B', factor: 1024 },
  MiB: { base: 'B', factor: 1024 * 1024 },
};

function quantity(figure: Figure): Quantity | undefined {
  const unit = figure.kind === 'summary' ? figure.summary.unit : figure.unit;
  const conversion = TO_BASE[unit];
  if (conversion === undefined) return undefined;
  const central = figure.kind === 'summary' ? figure.summary.p50 : figure.value;
  const value = central * conversion.factor;
  const how = figure.kind === 'summary' ? ` (${figure.summary.n >= 20 ? 'p50' : 'median'}, n=${figure.summary.n})` : '';
  return { value, base: conversion.base, text: `${formatQuantity(value, conversion.base)}${how}` };
}

export function formatQuantity(value: number, base: 's' | 'B'): string {
  if (base === 'B') return formatBytes(value);
  if (value >= 1) return `${num(value)} s`;
  if (value >= 1e-3) return `${num(value * 1e3)} ms`;
  return `${num(value * 1e6)} µs`;
}

/** The headline rows a results file has (a partial run has fewer). */
export function headlineRows(file: Pick<ResultsFile, 'rows'>): HeadlineRow[] {
  const out: HeadlineRow[] = [];
  for (const spec of HEADLINE) {
    const row: Row | undefined = file.rows.find((r) => r.id === spec.row);
    if (!row?.comparison || !row.ratio) continue;
    const clip = quantity(row.clip);
    const alternative = quantity(row.comparison.figure);
    if (!clip || !alternative) continue;
    const r = row.ratio.value;
    const paired = row.ratio.n === undefined ? '' : `, median of ${row.ratio.n} paired runs`;
    const [less, more] = clip.base === 'B' ? ['fewer bytes', 'more bytes'] : ['faster', 'slower'];
    const ratioText = r < 1 ? `${num(r)}× (${num(1 / r)}× ${less}${paired})` : `${num(r)}× (${num(r)}× ${more}${paired})`;
    out.push({ figure: spec.figure, secondary: spec.secondary ?? false, clip, alternative: { label: row.comparison.label, value: alternative }, ratio: r, ratioText });
  }
  return out;
}

const cell = (text: string): string => text.replaceAll('|', '\\|');

/** The headline as a markdown table, each row naming the results file it came from. */
export function headlineTable(file: Pick<ResultsFile, 'rows'>, fileName: string, link: string): string {
  const rows = headlineRows(file);
  const lines = ['| figure | clip-csi | best alternative | ratio clip ÷ alternative | run file |', '|---|---|---|---|---|'];
  for (const row of rows) {
    lines.push(`| ${cell(row.figure)} | ${cell(row.clip.text)} | ${cell(`${row.alternative.label}: ${row.alternative.value.text}`)} | ${cell(row.ratioText)} | [${fileName}](${link}) |`);
  }
  return lines.join('\n');
}
