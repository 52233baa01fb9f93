/**
 * Entry point of `npm run bench`. Other engineers rebuild dist/ while a bench runs (npm test
 * builds first), and worker threads and child processes load modules long after the start: so
 * the bench runs from a private copy of dist/ (with package.json, bin/, proto/, the native addons and a
 * link to node_modules), made right after the build, and removed at the end. Cache and results still go to
 * this checkout's bench/.cache and bench/results.
 */
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../', import.meta.url));

if (process.env['CLIP_BENCH_REPO'] !== undefined) {
  await import('./main.js');
} else {
  const snapshot = await mkdtemp(join(tmpdir(), 'clip-bench-dist-'));
  let code = 1;
  try {
    await cp(join(repo, 'dist'), join(snapshot, 'dist'), { recursive: true });
    await cp(join(repo, 'package.json'), join(snapshot, 'package.json'));
    await cp(join(repo, 'bin'), join(snapshot, 'bin'), { recursive: true });
    await cp(join(repo, 'proto'), join(snapshot, 'proto'), { recursive: true }).catch(() => undefined);
    // Every addon: without clip_zlib the copy would silently inflate with pako (the machine section
    // names the backend), without clip_fuse no mount could start, without clip_digest no disk cache
    // could open, and so on.
    const addons = join('native', 'build', 'Release');
    for (const name of (await readdir(join(repo, addons)).catch(() => [])).filter((file) => file.endsWith('.node'))) {
      await cp(join(repo, addons, name), join(snapshot, addons, name));
    }
    await symlink(join(repo, 'node_modules'), join(snapshot, 'node_modules'));
    const child = spawn(process.execPath, [join(snapshot, 'dist', 'bench', 'run.js'), ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, CLIP_BENCH_REPO: repo },
    });
    // Ctrl-C reaches the child through the process group; it cleans up and exits.
    process.on('SIGINT', () => undefined);
    code = await new Promise<number>((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1))));
  } finally {
    await rm(snapshot, { recursive: true, force: true });
  }
  process.exitCode = code;
}
