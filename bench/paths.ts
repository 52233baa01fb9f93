import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout the bench was started from (run.ts runs the bench from a copy of dist/ elsewhere). */
export const REPO_ROOT = process.env['CLIP_BENCH_REPO'] ?? fileURLToPath(new URL('../../', import.meta.url));
/** Downloaded packages, built layer blobs, local copies for baselines: kept between runs, gitignored. */
export const CACHE_DIR = join(REPO_ROOT, 'bench', '.cache');
export const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
