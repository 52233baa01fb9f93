import { PACKAGE_VERSION } from './package-root.js';

/** The package version, from package.json. */
export const CLIP_VERSION: string = PACKAGE_VERSION;

export const WRITER_NAME = `clip-csi ${CLIP_VERSION}`;
