import { writeFile } from 'node:fs/promises';
import { mountAt } from './mount-table.js';

/**
 * The kernel's read-ahead window for a clip mount: the largest READ a connection takes (libfuse's
 * max_write, 256 pages). The kernel's default for a FUSE mount, 128 KiB, splits a sequential read
 * into eight times as many round trips to the server, each of which costs more on a busy or
 * virtual machine than copying the bytes.
 */
export const KERNEL_READ_AHEAD_KIB = 1024;

/**
 * Sets the read-ahead of the filesystem mounted at `mountPoint` (its backing device's
 * `read_ahead_kb` in sysfs; root only). False when it could not: the mount then keeps the
 * kernel's default, which is slower for sequential readers but otherwise the same.
 */
export async function setKernelReadAhead(mountPoint: string, kib = KERNEL_READ_AHEAD_KIB): Promise<boolean> {
  const entry = await mountAt(mountPoint);
  if (entry === undefined || !/^\d+:\d+$/.test(entry.devId)) return false;
  try {
    await writeFile(`/sys/class/bdi/${entry.devId}/read_ahead_kb`, `${kib}\n`);
    return true;
  } catch {
    return false;
  }
}
