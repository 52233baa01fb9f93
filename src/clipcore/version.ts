import { readFileSync } from 'node:fs';

/** The package version, read once from package.json (two levels above dist/src/clipcore). */
export const CLIP_VERSION: string = (() => {
  const url = new URL('../../../package.json', import.meta.url);
  const parsed = JSON.parse(readFileSync(url, 'utf8')) as { version?: string };
  return parsed.version ?? '0.0.0';
})();

export const WRITER_NAME = `clip-csi ${CLIP_VERSION}`;
