/**
 * Content digests (`algorithm:hex`). Only sha256 and sha512 are verifiable; those are the algorithms
 * the OCI image spec registers, so anything else is refused up front rather than trusted blindly.
 */
import { createHash, type Hash } from 'node:crypto';
import { ClipError } from '../errors.js';

const HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha512: 128 };

/** Returns a description of what is wrong with `digest`, or undefined when it is valid. */
export function validateDigest(digest: string): string | undefined {
  const colon = digest.indexOf(':');
  if (colon <= 0) return `digest "${digest}" must look like sha256:<64 hex characters>`;
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const expected = HEX_LENGTH[algorithm];
  if (expected === undefined) {
    return `digest algorithm "${algorithm}" is not supported (use sha256 or sha512)`;
  }
  if (!/^[0-9a-f]*$/.test(hex)) return `digest "${digest}" must use lowercase hexadecimal characters only`;
  if (hex.length !== expected) {
    return `digest "${digest}" has ${hex.length} hex characters, ${algorithm} needs ${expected}`;
  }
  return undefined;
}

/** Throws INVALID_ARGUMENT when `digest` is not a valid digest. */
export function assertDigest(digest: string): void {
  const problem = validateDigest(digest);
  if (problem !== undefined) throw new ClipError('INVALID_ARGUMENT', problem);
}

export function digestAlgorithm(digest: string): string {
  return digest.slice(0, digest.indexOf(':'));
}

/** A running hash that yields a digest string in the same algorithm as `digest`. */
export function hasherFor(digest: string): { hash: Hash; algorithm: string } {
  const algorithm = digestAlgorithm(digest);
  return { hash: createHash(algorithm), algorithm };
}

export function digestOf(data: Buffer, algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Throws DIGEST_MISMATCH when `data` does not hash to `expected`; `what` names the object for the message. */
export function verifyDigest(data: Buffer, expected: string, what: string): void {
  const actual = digestOf(data, digestAlgorithm(expected));
  if (actual !== expected) {
    throw new ClipError('DIGEST_MISMATCH', `${what}: content hashes to ${actual}, expected ${expected}`);
  }
}
