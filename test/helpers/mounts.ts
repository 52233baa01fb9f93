import { forceUnmount, readMountTable } from '../../src/clipcore/fuse/mount-table.js';

/** Mount points of FUSE filesystems under a prefix: tests assert none is left behind. */
export async function fuseMountsUnder(prefix: string): Promise<string[]> {
  return (await readMountTable())
    .filter((mount) => mount.fsType.startsWith('fuse') && mount.mountPoint.startsWith(prefix))
    .map((mount) => mount.mountPoint);
}

/** Cleans up whatever a failed test left mounted under a prefix. */
export async function unmountAllUnder(prefix: string): Promise<void> {
  for (const mountPoint of await fuseMountsUnder(prefix)) await forceUnmount(mountPoint);
}
