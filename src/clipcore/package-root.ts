import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'clip-csi';

interface PackageJson {
  readonly name?: string;
  readonly version?: string;
}

function packageJsonIn(dir: string): PackageJson | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
  } catch {
    return undefined;
  }
}

/**
 * This package's root and its package.json, found by walking up from this module: the same answer
 * whether the code runs as compiled modules (dist/src/...) or from the bundle (dist/bundle/, see
 * scripts/bundle.ts), which sit at different depths. The package.json must be ours: dist/bundle/
 * has one of its own that only marks the bundle as CommonJS.
 */
const PACKAGE: { readonly root: string; readonly json: PackageJson } = (() => {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const json = packageJsonIn(dir);
    if (json?.name === PACKAGE_NAME) return { root: dir, json };
    if (dirname(dir) === dir) throw new Error(`no package.json of ${PACKAGE_NAME} above ${start}`);
  }
})();

/** A file shipped with the package (`proto/csi.proto`, the native addon), by its path from the root. */
export function packageFile(relativePath: string): string {
  return join(PACKAGE.root, relativePath);
}

/** The version in our package.json. */
export const PACKAGE_VERSION: string = PACKAGE.json.version ?? '0.0.0';
