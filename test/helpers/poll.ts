import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * Polls `probe` until `accept` takes its answer (by default: any answer but undefined), within
 * `timeoutMs`; fails naming `what` and the last answer. A bounded wait for a condition, not a sleep.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => T | Promise<T>,
  accept: (value: T) => boolean = (value) => value !== undefined,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value)) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms; last answer ${JSON.stringify(value)?.slice(0, 2000)}`);
    await delay(200);
  }
}
