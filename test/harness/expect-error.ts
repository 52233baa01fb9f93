/** Assertion helper: a promise must reject with a ClipError of `code` whose message matches. */
import assert from 'node:assert/strict';
import { ClipError, type ClipErrorCode } from '../../src/clipcore/errors.js';

export async function expectClipError(promise: Promise<unknown>, code: ClipErrorCode, pattern?: RegExp): Promise<ClipError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ClipError, `expected a ClipError, got ${String(err)}`);
    assert.equal(err.code, code, `code ${err.code} (${err.message})`);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected rejection with ${code}`);
}

export function expectClipErrorSync(fn: () => unknown, code: ClipErrorCode, pattern?: RegExp): ClipError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ClipError, `expected a ClipError, got ${String(err)}`);
    assert.equal(err.code, code, `code ${err.code} (${err.message})`);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected ${code}`);
}
