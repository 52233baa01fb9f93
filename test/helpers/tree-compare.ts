import assert from 'node:assert/strict';
import { run, SNAPSHOT_BIN } from './processes.js';
import type { TreeSnapshot } from './snapshot-tree.js';

/** Snapshots a tree from a child process (never from a process that may serve a mount). */
export async function snapshotOf(root: string): Promise<TreeSnapshot> {
  const result = await run(process.execPath, [SNAPSHOT_BIN, root]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as TreeSnapshot;
}

/** Groups paths by inode number: hard links must form the same groups on both sides. */
export function linkGroups(snapshot: TreeSnapshot): string[][] {
  const groups = new Map<number, string[]>();
  for (const [path, entry] of Object.entries(snapshot)) {
    if (entry.type === 'directory') continue;
    groups.set(entry.ino, [...(groups.get(entry.ino) ?? []), path]);
  }
  return [...groups.values()].filter((paths) => paths.length > 1).map((paths) => paths.sort()).sort();
}

/** Inode numbers differ between trees; everything else must match. */
export function withoutInodes(snapshot: TreeSnapshot): Record<string, unknown> {
  return Object.fromEntries(Object.entries(snapshot).map(([path, { ino: _ino, ...rest }]) => [path, rest]));
}

/**
 * Snapshots `source` and `mountPoint` side by side and asserts they match: same paths, same
 * attributes and content, same hard-link groups. Returns the mount's snapshot for further checks.
 */
export async function assertSameTree(source: string, mountPoint: string): Promise<TreeSnapshot> {
  const [expected, actual] = await Promise.all([snapshotOf(source), snapshotOf(mountPoint)]);
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  assert.deepEqual(withoutInodes(actual), withoutInodes(expected));
  assert.deepEqual(linkGroups(actual), linkGroups(expected));
  return actual;
}
