/**
 * deploy/manifests/clip-csi.yaml, the dashboard JSON and the chart README's values table are
 * generated (scripts/render-deploy.ts): a committed copy that differs fails here.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { CHART_DIR, REPO_ROOT } from '../scripts/helm.js';
import { derivedFiles } from '../scripts/render-deploy.js';
import { valuesTable } from '../scripts/values-table.js';

describe('generated deploy files', () => {
  it('every value in values.yaml has a description in the table', async () => {
    const rows = valuesTable(await readFile(join(CHART_DIR, 'values.yaml'), 'utf8')).split('\n').filter((line) => line.startsWith('| `'));
    assert.ok(rows.length > 50, `only ${rows.length} rows`);
    for (const row of rows) assert.doesNotMatch(row, /\|\s*\|$/, `undocumented value: ${row}`);
  });

  it('deploy/manifests, the dashboard JSON and the chart README are what scripts/render-deploy.ts writes from the chart', async () => {
    for (const file of await derivedFiles()) {
      const committed = await readFile(file.path, 'utf8').catch(() => '');
      assert.ok(
        committed === file.content,
        `${file.path.slice(REPO_ROOT.length)} drifted from the chart: run \`npm run render-deploy\` and commit`,
      );
    }
  });
});
