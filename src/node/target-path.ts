/**
 * Where a target path really is. Kubelet only ever asks for paths under its own directory; a
 * request for `/etc`, for `<kubelet>/../../etc`, for a symlink planted in a pod directory, or for
 * the plugin's own state would otherwise get an image mounted over it. A target must resolve
 * (after `..` and every symlink, the last component included) to a path strictly under the
 * kubelet directory and outside the state and cache directories.
 */
import { lstat, readlink, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { invalidArgument } from '../csi/errors.js';
import { quote } from '../csi/limits.js';

/** Linux's own limit on symlinks followed while resolving one path. */
const MAX_SYMLINKS = 40;

export interface TargetRules {
  /** --kubelet-dir: targets must be under it. */
  kubeletDir: string;
  /** Targets may not be inside these (the state and cache directories). */
  forbidden: ReadonlyArray<{ dir: string; name: string }>;
}

/** The rules with every directory resolved as targets are: symlinks followed. */
export async function resolveRules(kubeletDir: string, forbidden: ReadonlyArray<{ dir: string; name: string }>): Promise<TargetRules> {
  return {
    kubeletDir: await resolvePath(kubeletDir),
    forbidden: await Promise.all(forbidden.map(async ({ dir, name }) => ({ dir: await resolvePath(dir), name }))),
  };
}

/**
 * The real path of `path` (absolute), or INVALID_ARGUMENT naming the rule it breaks. Components
 * that do not exist yet (the target itself, before the first publish) are taken as they are.
 */
export async function checkTarget(field: string, path: string, rules: TargetRules): Promise<string> {
  let real: string;
  try {
    real = await resolvePath(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === undefined) throw err;
    throw invalidArgument(`${field} ${quote(path)} cannot be resolved (${code}): it must be a plain directory path under the kubelet directory`);
  }
  const shown = real === resolve(path) ? '' : ` (it resolves to ${quote(real)})`;
  if (!isUnder(real, rules.kubeletDir)) {
    throw invalidArgument(`${field} ${quote(path)}${shown} is not under the kubelet directory ${rules.kubeletDir} (--kubelet-dir): clip mounts only at kubelet's target paths`);
  }
  for (const { dir, name } of rules.forbidden) {
    if (real === dir || isUnder(real, dir)) throw invalidArgument(`${field} ${quote(path)}${shown} is inside the plugin's ${name} ${dir}: clip never mounts there`);
  }
  return real;
}

export function isUnder(path: string, dir: string): boolean {
  return path.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`);
}

/** Like realpath(3), but components that do not exist are kept as written. */
export async function resolvePath(path: string, hops = 0): Promise<string> {
  const absolute = resolve(path);
  const parent = dirname(absolute);
  if (parent === absolute) return absolute;
  const realParent = await realExisting(parent);
  const candidate = join(realParent, basename(absolute));
  const stats = await lstat(candidate).catch((err: NodeJS.ErrnoException) => {
    // ENOENT: not there yet. Anything else (ENOTCONN of a dead FUSE mount): a mount point, not a link.
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR' || err.code === 'ENOTCONN' || err.code === 'EIO' || err.code === 'EACCES') return undefined;
    throw err;
  });
  if (!stats?.isSymbolicLink()) return candidate;
  if (hops >= MAX_SYMLINKS) throw invalidArgument(`${quote(path)}: too many levels of symbolic links`);
  const link = await readlink(candidate);
  return resolvePath(isAbsolute(link) ? link : join(realParent, link), hops + 1);
}

/** realpath of the longest existing prefix of `path`, plus the rest. */
async function realExisting(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    const parent = dirname(path);
    if (parent === path) return path;
    // A dangling symlink among the components is followed by resolvePath itself.
    return resolvePath(join(await realExisting(parent), basename(path)));
  }
}
