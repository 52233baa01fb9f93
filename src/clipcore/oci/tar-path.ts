/**
 * Normalizes a path from a tar header the way unpackers resolve it against the layer root:
 * leading `/` and `./` are dropped, `//` and `.` parts collapse, and `..` is resolved lexically.
 * Returns `''` for the root itself, or `null` when `..` would climb above the root (callers
 * report that, since such an entry can never be placed inside the image).
 */
export function normalizeLayerPath(raw: string): string | null {
  // Fast paths: most names are clean, or clean once the `./` that `tar -C dir .` adds is gone.
  if (!needsCleaning(raw)) return raw;
  if (raw.startsWith('./')) {
    const rest = raw.slice(2);
    if (!needsCleaning(rest)) return rest;
  }
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) return null;
      parts.pop();
      continue;
    }
    parts.push(part);
  }
  return parts.join('/');
}

function needsCleaning(path: string): boolean {
  if (path === '' || path.startsWith('/') || path.endsWith('/')) return true;
  if (path.includes('//')) return true;
  // Any `.` or `..` component: `./x`, `x/.`, `x/../y`, `.` itself.
  return path === '.' || path === '..' || path.startsWith('./') || path.startsWith('../') ||
    path.includes('/./') || path.includes('/../') || path.endsWith('/.') || path.endsWith('/..');
}
