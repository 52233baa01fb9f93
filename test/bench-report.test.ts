/**
 * The bench's arithmetic and reporting, without running it: medians, paired ratios, the headline
 * drawn from a results file, the chart and the generated regions of docs/performance.md.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { headlineChart } from '../bench/chart.js';
import { replaceRegion } from '../bench/doc-regions.js';
import { headlineRows, headlineTable } from '../bench/headline.js';
import { resultsFileName } from '../bench/results-file.js';
import { pairedRatio, samples, type Row } from '../bench/results.js';
import { median, summarize } from '../bench/stats.js';

const summaryRow = (id: string, clip: [number, string, number], other: [number, string, number], ratio: { value: number; n?: number }): Row => ({
  id,
  section: 's',
  name: id,
  clip: samples(summarize(Array.from({ length: clip[2] }, () => clip[0]), clip[1])),
  comparison: { label: `alternative of ${id}`, figure: samples(summarize(Array.from({ length: other[2] }, () => other[0]), other[1])) },
  ratio: { ...ratio, text: `${ratio.value}×` },
});

describe('bench statistics', () => {
  it('a median is the middle value, or the mean of the two middle ones', () => {
    assert.equal(median([3]), 3);
    assert.equal(median([1, 2]), 1.5);
    assert.equal(median([1, 2, 10]), 2);
    assert.equal(summarize([10, 1, 3, 2], 'ms').p50, 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  it('a paired ratio is the true median of the pairs, with n', () => {
    // At n = 2 the lower middle value would be the best case for clip (0.5); the median is 1.25.
    const two = pairedRatio([1, 4], [2, 2]);
    assert.equal(two.value, 1.25);
    assert.equal(two.n, 2);
    assert.match(two.text, /^1\.25× \(median, paired runs 0\.500–2\.00, n=2\)$/);
    assert.equal(pairedRatio([3, 1, 2], [1, 1, 1]).value, 2);
    assert.throws(() => pairedRatio([1, 2], [1]), /2 clip runs against 1 comparison runs/);
  });
});

describe('bench report', () => {
  const rows: Row[] = [
    summaryRow('ttfb.present.tar', [40, 'ms', 200], [5, 's', 3], { value: 0.008 }),
    summaryRow('ttfb.present.umoci', [40, 'ms', 200], [12, 's', 3], { value: 0.0033 }),
    summaryRow('ttfb.bytes', [400, 'KiB', 200], [80, 'MiB', 3], { value: 0.005 }),
    summaryRow('index.fresh.image', [1.4, 's', 7], [1.2, 's', 7], { value: 1.2, n: 7 }),
    { section: 's', name: 'no id', clip: samples(summarize([1], 's')) },
  ];

  it('the headline takes its rows by id, in base units, with how each figure was summarized', () => {
    const headline = headlineRows({ rows });
    assert.deepEqual(
      headline.map((row) => [row.figure.split(' ')[0], row.clip.base, row.clip.value, row.alternative.value.value, row.secondary]),
      [
        ['First', 's', 0.04, 5, false],
        ['First', 's', 0.04, 12, true],
        ['Registry', 'B', 400 * 1024, 80 * 1024 * 1024, false],
        ['Index', 's', 1.4, 1.2, false],
      ],
    );
    assert.equal(headline[0]?.clip.text, '40.0 ms (p50, n=200)');
    assert.equal(headline[0]?.ratioText, '0.0080× (125× faster)');
    assert.equal(headline[2]?.ratioText, '0.0050× (200× fewer bytes)');
    assert.equal(headline[3]?.ratioText, '1.20× (1.20× slower, median of 7 paired runs)');
    const table = headlineTable({ rows }, 'x.json', '../bench/results/x.json');
    assert.equal(table.split('\n').length, 2 + 4);
    assert.ok(table.split('\n').slice(2).every((line) => line.endsWith('| [x.json](../bench/results/x.json) |')));
  });

  it('the chart draws clip beside the best alternative for each charted figure, on log axes', () => {
    const svg = headlineChart(headlineRows({ rows }), 'caption');
    const bars = [...svg.matchAll(/<rect x="420" y="[\d.]+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
    assert.equal(bars.length, 2 * 3, 'two bars for each of the three rows that are not secondary');
    // Time axis from 10 ms to 10 s (decades), bytes axis in powers of 32.
    for (const tick of ['10 ms', '100 ms', '1 s', '10 s', '32 KiB', '1 MiB', '32 MiB', '1 GiB']) assert.match(svg, new RegExp(`>${tick}</text>`));
    // On a log axis, 40 ms against 5 s: the bars differ by log10(125) of the 3 decades' width.
    const [clip, alternative] = bars;
    assert.ok(clip !== undefined && alternative !== undefined);
    assert.ok(Math.abs(alternative - clip - (340 * Math.log10(125)) / 3) < 0.2, `${clip} ${alternative}`);
    assert.doesNotMatch(svg, /NaN|undefined/);
  });

  it('generated regions are replaced, the rest of the page kept; a page without the region is an error', () => {
    const page = 'intro\n<!-- bench:headline -->\nold\n<!-- /bench:headline -->\nprose\n';
    assert.equal(replaceRegion(page, 'headline', 'new table\n'), 'intro\n<!-- bench:headline -->\nnew table\n<!-- /bench:headline -->\nprose\n');
    assert.throws(() => replaceRegion(page, 'runs', 'x'), /no region <!-- bench:runs -->/);
  });

  it('a results file is named by when, commit and mode', () => {
    assert.equal(resultsFileName({ commit: 'abc1234-dirty', mode: 'full-slow', run: { date: '2026-12-06T21:30:05Z' } as never }), '2026-12-06T2130Z-abc1234-dirty-full-slow.json');
  });
});
