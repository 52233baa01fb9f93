/**
 * OCI layer whiteouts (image-spec layer.md): `.wh.<name>` deletes <name> from lower layers,
 * `.wh..wh..opq` hides a directory's lower contents. Other `.wh..wh.` names are reserved (aufs
 * used `.wh..wh.plnk` and friends) and carry nothing an image should show.
 */
export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';

export type WhiteoutKind =
  | { readonly kind: 'none' }
  | { readonly kind: 'remove'; readonly name: string }
  | { readonly kind: 'opaque' }
  /** Reserved or meaningless whiteout names, and anything inside a `.wh.*` directory. */
  | { readonly kind: 'ignore' };

const NONE: WhiteoutKind = { kind: 'none' };
const OPAQUE: WhiteoutKind = { kind: 'opaque' };
const IGNORE: WhiteoutKind = { kind: 'ignore' };

/** Classifies a normalized layer path by its whiteout meaning. */
export function classifyWhiteout(path: string): WhiteoutKind {
  if (!path.includes(WHITEOUT_PREFIX)) return NONE;
  const slash = path.lastIndexOf('/');
  const dir = path.slice(0, slash + 1);
  if (dir.startsWith(WHITEOUT_PREFIX) || dir.includes(`/${WHITEOUT_PREFIX}`)) return IGNORE;
  const base = path.slice(slash + 1);
  if (!base.startsWith(WHITEOUT_PREFIX)) return NONE;
  if (base === OPAQUE_MARKER) return OPAQUE;
  if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return IGNORE;
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '' || name === '.' || name === '..') return IGNORE;
  return { kind: 'remove', name };
}
