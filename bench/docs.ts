/**
 * `npm run bench:docs -- <results file> [<more results files>]`: puts committed bench results into
 * docs/performance.md and draws the headline chart. The first file (a full run) feeds the headline
 * table and docs/performance-headline.svg; every file gets its full tables under "Latest results".
 * Only the marked regions of docs/performance.md are replaced; the prose around them is the
 * author's, and must not quote figures that no results file holds.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { headlineChart } from './chart.js';
import { headlineRows, headlineTable } from './headline.js';
import { replaceRegion } from './doc-regions.js';
import { REPO_ROOT } from './paths.js';
import { markdown } from './report.js';
import { readResultsFile } from './results-file.js';

const DOC = join(REPO_ROOT, 'docs', 'performance.md');
const CHART = join(REPO_ROOT, 'docs', 'performance-headline.svg');

const paths = process.argv.slice(2);
if (paths.length === 0) {
  process.stderr.write('usage: npm run bench:docs -- bench/results/<full run>.json [bench/results/<other run>.json ...]\n');
  process.exit(2);
}
const files = await Promise.all(paths.map((path) => readResultsFile(resolve(path))));
const [main] = files;
if (main === undefined) throw new Error('no results file');
const link = (name: string): string => relative(join(REPO_ROOT, 'docs'), join(REPO_ROOT, 'bench', 'results', name));
if (headlineRows(main).length === 0) throw new Error(`${main.name} has none of the headline rows (a partial run?)`);

let doc = await readFile(DOC, 'utf8');
doc = replaceRegion(doc, 'headline', headlineTable(main, main.name, link(main.name)));
// Each run's tables under its heading, the results file named first.
const runs = files
  .map((file) => markdown(file.run, file).replace(/\n\n/, `\n\nResults file: [${file.name}](${link(file.name)}).\n\n`))
  .join('\n');
doc = replaceRegion(doc, 'runs', runs);
await writeFile(DOC, doc);
await writeFile(CHART, headlineChart(headlineRows(main), `${main.run.title}, ${main.run.date.slice(0, 10)}, ${main.name}`));
process.stderr.write(`updated ${relative(REPO_ROOT, DOC)} and ${relative(REPO_ROOT, CHART)} from ${files.map((f) => f.name).join(', ')}\n`);
