import { createRequire } from 'node:module';
import { packageFile } from './package-root.js';

/** One of our addons (native/, built by `npm run build:native`), by target name; throws if not built. */
export function loadAddon(name: 'clip_zlib' | 'clip_digest' | 'clip_memory' | 'clip_fuse' | 'clip_fdpass'): unknown {
  return createRequire(import.meta.url)(packageFile(`native/build/Release/${name}.node`));
}
