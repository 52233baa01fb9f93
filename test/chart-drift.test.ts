/**
 * deploy/manifests/clip-csi.yaml and the dashboard JSON are generated from the chart and
 * scripts/dashboard.ts (scripts/render-deploy.ts): a committed copy that differs fails here.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../scripts/helm.js';
import { derivedFiles } from '../scripts/render-deploy.js';

describe('generated deploy files', () => {
  it('deploy/manifests and the dashboard JSON are what scripts/render-deploy.ts writes from the chart', async () => {
    for (const file of await derivedFiles()) {
      const committed = await readFile(file.path, 'utf8').catch(() => '');
      assert.ok(
        committed === file.content,
        `${file.path.slice(REPO_ROOT.length)} drifted from the chart: run \`npm run build && node dist/scripts/render-deploy.js\` and commit`,
      );
    }
  });
});
