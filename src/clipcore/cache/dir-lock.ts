import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * A lock between processes sharing a directory: a file created with O_EXCL. It guards only
 * short bookkeeping (the size ledger, evictions); readers never take it. A lock left by a dead
 * process is broken: at once when its owner's pid is gone (same host), otherwise once it is older
 * than `staleMs`. Breaking renames the lock away and checks that it renamed the file it judged
 * stale, so two breakers cannot both win on a live lock in the usual case; in the worst case two
 * holders overlap, which the cache tolerates (its size ledger is rebuilt by the next scan).
 */
export class DirLock {
  private readonly host = hostname();
  /** One attempt at a time within this process; the file arbitrates between processes. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly options: { timeoutMs?: number; staleMs?: number } = {},
  ) {}

  /** Runs `fn` holding the lock; resolves undefined (without running it) if the lock stays busy. */
  run<T>(fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    const result = this.chain.then(async () => {
      const ino = await this.acquire();
      if (ino === undefined) return undefined;
      try {
        return { value: await fn() };
      } finally {
        await this.release(ino);
      }
    });
    this.chain = result.catch(() => undefined);
    return result;
  }

  private async acquire(): Promise<number | undefined> {
    const deadline = Date.now() + (this.options.timeoutMs ?? 10_000);
    const content = JSON.stringify({ pid: process.pid, host: this.host });
    for (;;) {
      try {
        const handle = await open(this.path, 'wx');
        try {
          const { ino } = await handle.stat();
          // On a full disk the write may fail: the lock still holds, and goes stale by age.
          await handle.writeFile(content).catch(() => undefined);
          return ino;
        } finally {
          await handle.close();
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      if (await this.breakIfStale()) continue;
      if (Date.now() > deadline) return undefined;
      await delay(2 + Math.random() * 8);
    }
  }

  private async release(ino: number): Promise<void> {
    try {
      if ((await stat(this.path)).ino === ino) await unlink(this.path);
    } catch {
      // Already broken by someone who judged it stale: nothing to release.
    }
  }

  /** True when the lock is gone or was broken (try again at once). */
  private async breakIfStale(): Promise<boolean> {
    let judged;
    let text = '';
    try {
      judged = await stat(this.path);
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT';
    }
    const age = Date.now() - judged.mtimeMs;
    if (age <= (this.options.staleMs ?? 30_000) && !this.ownerIsDead(text)) return false;
    const aside = `${this.path}.stale.${randomBytes(6).toString('hex')}`;
    try {
      await rename(this.path, aside);
    } catch {
      return true; // someone else broke it first
    }
    try {
      if ((await stat(aside)).ino !== judged.ino) {
        // We moved a fresh lock that replaced the stale one: put it back if the name is free.
        await link(aside, this.path).catch(() => undefined);
      }
    } finally {
      await unlink(aside).catch(() => undefined);
    }
    return true;
  }

  private ownerIsDead(text: string): boolean {
    let owner: { pid?: unknown; host?: unknown };
    try {
      owner = JSON.parse(text) as { pid?: unknown; host?: unknown };
    } catch {
      return false; // just created, content not written yet
    }
    if (owner.host !== this.host || typeof owner.pid !== 'number') return false;
    return !processExists(owner.pid);
  }
}

export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
