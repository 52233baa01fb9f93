import { readFileSync } from 'node:fs';
import { packageFile } from './package-root.js';

/** The package version, read once from package.json. */
export const CLIP_VERSION: string = (() => {
  const parsed = JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version?: string };
  return parsed.version ?? '0.0.0';
})();

export const WRITER_NAME = `clip-csi ${CLIP_VERSION}`;
