/**
 * The name of an image index, shared by every place that stores one: the node-local cache
 * (`<state-dir>/indexes/<key>.clip`) and S3 (`<prefix><key>.clip`). Nodes and the controller both
 * derive it from the manifest digest and the platform, so they find each other's indexes.
 */

/** `sha256:ab…` + `linux/arm64/v8` → `sha256-ab…-linux-arm64-v8`: safe in paths, keys and overlay options. */
export function imageKeyOf(digest: string, platform: string): string {
  return `${digest.replace(':', '-')}-${platform.replaceAll('/', '-')}`.replace(/[^A-Za-z0-9._-]/g, '_');
}
