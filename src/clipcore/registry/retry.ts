/** Backoff for transient failures: exponential with jitter, stretched to honour `Retry-After`. */
import { setTimeout as delay } from 'node:timers/promises';

export interface RetryPolicy {
  /** Extra attempts after the first. */
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** A `Retry-After` longer than this is not waited for; the request fails instead. */
  maxRetryAfterMs: number;
}

/** 429 and 5xx are worth repeating, except 501/505 which will not change. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/** Delay before retry number `attempt` (0-based): uniform in [half, full] of the capped exponential. */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const full = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return full / 2 + Math.random() * (full / 2);
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function sleep(ms: number): Promise<void> {
  return delay(ms);
}
