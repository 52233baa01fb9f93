import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory of this package's package.json, found by walking up from this module: the same
 * answer whether the code runs as compiled modules (dist/src/...) or from the bundle
 * (dist/bundle/, see scripts/bundle.ts), which sit at different depths. The package.json must be
 * ours: dist/bundle/ has one of its own that only marks the bundle as CommonJS.
 */
const PACKAGE_NAME = 'clip-csi';

function packageNameIn(dir: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name;
  } catch {
    return undefined;
  }
}

const PACKAGE_ROOT: string = (() => {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (packageNameIn(dir) === PACKAGE_NAME) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json of ${PACKAGE_NAME} above ${start}`);
  }
})();

/** A file shipped with the package (`proto/csi.proto`, the native addon), by its path from the root. */
export function packageFile(relativePath: string): string {
  return join(PACKAGE_ROOT, relativePath);
}
