/**
 * The results file a run writes and docs/performance.md cites: bench/results/<when>-<commit>-<mode>.json,
 * committed. It holds figures and their summaries (n, median or p50, p99, range), never raw samples.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { RunDescription } from './report.js';
import type { Row, Skip } from './results.js';

export interface ResultsFile {
  readonly format: 1;
  /** The commit measured (short hash; `-dirty` when src/ had uncommitted changes). */
  readonly commit: string;
  /** quick or full, `-slow` with --slow, `-only-<measurements>` with --only. */
  readonly mode: string;
  readonly run: RunDescription;
  readonly options: Record<string, unknown>;
  readonly rows: readonly Row[];
  readonly skipped: readonly Skip[];
  readonly notes: readonly string[];
}

export function resultsFileName(file: Pick<ResultsFile, 'commit' | 'mode' | 'run'>): string {
  // 2026-12-06T21:30:05Z → 2026-12-06T2130Z: sortable, and two runs of a commit and mode on one day do not collide.
  const when = file.run.date.replace(/^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}).*$/, '$1T$2$3Z');
  return `${when}-${file.commit}-${file.mode}.json`;
}

export async function writeResultsFile(dir: string, file: ResultsFile): Promise<string> {
  const path = join(dir, resultsFileName(file));
  await writeFile(path, `${JSON.stringify(file, null, 1)}\n`);
  return path;
}

export async function readResultsFile(path: string): Promise<ResultsFile & { name: string }> {
  const parsed = JSON.parse(await readFile(path, 'utf8')) as ResultsFile;
  if (parsed.format !== 1 || !Array.isArray(parsed.rows)) throw new Error(`${path} is not a bench results file (format 1)`);
  return { ...parsed, name: basename(path) };
}
