/**
 * Docker credential helpers (`docker-credential-<name> get`, server URL on stdin, JSON on stdout).
 * Spawned asynchronously: the CSI node plugin must never block its event loop on a helper.
 */
import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { ClipError } from '../errors.js';
import type { Credentials } from './credentials.js';
import { isObject, optionalString } from './json.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** Absolute path of `docker-credential-<name>` on PATH, or undefined when it is not installed. */
export async function findCredentialHelper(name: string, env: Env): Promise<string | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return undefined;
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, `docker-credential-${name}`);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Runs `<helper> get`; undefined when the helper has nothing for `serverUrl`. */
export async function runCredentialHelper(
  helperPath: string,
  serverUrl: string,
  env: Env,
  timeoutMs: number,
): Promise<Credentials | undefined> {
  const { code, stdout, stderr } = await runWithInput(helperPath, ['get'], serverUrl, env, timeoutMs);
  const name = helperPath.slice(helperPath.lastIndexOf('/') + 1);
  if (code !== 0) {
    // The protocol's "not found" answer: no credentials, which is not an error.
    if (/credentials not found/i.test(stdout + stderr)) return undefined;
    const detail = stderr.trim().split('\n')[0]?.slice(0, 200) ?? '';
    throw new ClipError('UNAUTHORIZED', `credential helper ${name} failed for ${serverUrl} (exit ${code})${detail ? `: ${detail}` : ''}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new ClipError('UNAUTHORIZED', `credential helper ${name} printed something that is not JSON for ${serverUrl}`);
  }
  if (!isObject(parsed)) return undefined;
  const username = optionalString(parsed, 'Username') ?? '';
  const secret = optionalString(parsed, 'Secret') ?? '';
  if (secret === '') return undefined;
  // Docker's convention: the username `<token>` marks the secret as an identity (refresh) token.
  return username === '<token>' ? { identityToken: secret } : { username, password: secret };
}

function runWithInput(
  command: string,
  args: string[],
  input: string,
  env: Env,
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...env }, stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => reject(new ClipError('UNAUTHORIZED', `could not run credential helper ${command}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (signal !== null) reject(new ClipError('UNAUTHORIZED', `credential helper ${command} was stopped (${signal}); timeout ${timeoutMs} ms`));
      else resolve({ code: code ?? 1, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}
