/** The markdown table a run prints (and docs/performance.md holds). */
import { formatMachine, type MachineInfo } from './machine.js';
import { formatFigure, type Results } from './results.js';

interface Recorded {
  readonly rows: Readonly<Results['rows']>;
  readonly skipped: Readonly<Results['skipped']>;
  readonly notes: Readonly<Results['notes']>;
}

export interface RunDescription {
  readonly title: string;
  readonly date: string;
  readonly command: string;
  readonly machine: MachineInfo;
  readonly source: string;
  readonly load: string;
  readonly network: string;
  readonly images: readonly string[];
  readonly seconds: number;
}

const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

export function markdown(run: RunDescription, results: Recorded): string {
  const lines: string[] = [];
  lines.push(`### ${run.title}`, '');
  lines.push(`Run ${run.date} with \`${run.command}\` in ${Math.round(run.seconds)} s.`, '');
  lines.push('Machine:', '', ...formatMachine(run.machine).split('\n').map((l) => `- ${l}`), `- ${run.load}`, '');
  lines.push(`Measured: ${run.source}.`, '');
  lines.push(`Network: ${run.network}`, '');
  lines.push('Images:', '', ...run.images.map((i) => `- ${i}`), '');
  const sections = [...new Set([...results.rows.map((r) => r.section), ...results.skipped.map((s) => s.section)])].sort();
  for (const section of sections) {
    lines.push(`#### ${section}`, '');
    const rows = results.rows.filter((r) => r.section === section);
    if (rows.length > 0) {
      lines.push('| measurement | clip-csi | comparison | ratio clip ÷ comparison | notes |', '|---|---|---|---|---|');
      for (const row of rows) {
        const comparison = row.comparison ? `${row.comparison.label}: ${formatFigure(row.comparison.figure)}` : '—';
        lines.push(`| ${cell(row.name)} | ${cell(formatFigure(row.clip))} | ${cell(comparison)} | ${cell(row.ratio?.text ?? '—')} | ${cell(row.note ?? '')} |`);
      }
      lines.push('');
    }
    for (const skip of results.skipped.filter((s) => s.section === section)) lines.push(`- ${skip.name}: ${skip.kind}: ${skip.reason.split('\n')[0] ?? ''}`);
    if (results.skipped.some((s) => s.section === section)) lines.push('');
  }
  if (results.notes.length > 0) lines.push('Notes:', '', ...results.notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}
