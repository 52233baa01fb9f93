/**
 * Credentials from Docker's `config.json`: `credHelpers` for the registry, else `credsStore`, else
 * `auths` (base64 `auth` or username/password, identitytoken, registrytoken). Keys may be written as
 * `host`, `https://host`, `https://host/v1/`; Docker Hub is stored under `https://index.docker.io/v1/`.
 */
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ClipError } from '../errors.js';
import { findCredentialHelper, runCredentialHelper, type Env } from './credential-helper.js';
import type { Credentials } from './credentials.js';
import { isObject, optionalString, parseJsonObject, type JsonObject } from './json.js';
import { DOCKER_HUB_REGISTRY } from './reference.js';

const HUB_HOSTS = new Set(['docker.io', 'index.docker.io', DOCKER_HUB_REGISTRY]);
const HUB_SERVER_URL = 'https://index.docker.io/v1/';

/** `DOCKER_CONFIG`/config.json, else `~/.docker/config.json`; an explicit path may be a file or a directory. */
export async function dockerConfigFile(explicit: string | undefined, env: Env): Promise<string> {
  if (explicit !== undefined) {
    const info = await stat(explicit).catch(() => undefined);
    return info?.isDirectory() ? join(explicit, 'config.json') : explicit;
  }
  const dir = env['DOCKER_CONFIG'];
  if (dir) return join(dir, 'config.json');
  return join(env['HOME'] ?? homedir(), '.docker', 'config.json');
}

/** Reads config.json; undefined when there is none (anonymous access is then the default). */
export async function loadDockerConfig(file: string): Promise<JsonObject | undefined> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ClipError('INVALID_ARGUMENT', `cannot read docker config ${file}: ${(err as Error).message}`);
  }
  try {
    return parseJsonObject(data, `docker config ${file}`);
  } catch (err) {
    throw new ClipError('INVALID_ARGUMENT', (err as Error).message);
  }
}

/** `https://Host:1/v1/` → `host:1`; Docker Hub aliases collapse to one name. */
export function normaliseRegistryKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').split('/')[0]?.toLowerCase() ?? '';
  return HUB_HOSTS.has(host) ? DOCKER_HUB_REGISTRY : host;
}

/** The server URL helpers are asked about: Docker Hub's historical URL, otherwise the host. */
export function helperServerUrl(registry: string): string {
  return normaliseRegistryKey(registry) === DOCKER_HUB_REGISTRY ? HUB_SERVER_URL : registry;
}

function findKey(map: JsonObject, registry: string): string | undefined {
  const wanted = normaliseRegistryKey(registry);
  return Object.keys(map).find((key) => normaliseRegistryKey(key) === wanted);
}

export async function credentialsFromDockerConfig(
  config: JsonObject,
  registry: string,
  env: Env,
  helperTimeoutMs: number,
): Promise<Credentials | undefined> {
  const helpers = config['credHelpers'];
  const helperKey = isObject(helpers) ? findKey(helpers, registry) : undefined;
  const helperName =
    (helperKey !== undefined && isObject(helpers) ? optionalString(helpers, helperKey) : undefined) ??
    optionalString(config, 'credsStore');
  if (helperName) {
    const path = await findCredentialHelper(helperName, env);
    if (path !== undefined) {
      const found = await runCredentialHelper(path, helperServerUrl(registry), env, helperTimeoutMs);
      if (found !== undefined) return found;
    }
  }
  const auths = config['auths'];
  const authKey = isObject(auths) ? findKey(auths, registry) : undefined;
  const entry = authKey !== undefined && isObject(auths) ? auths[authKey] : undefined;
  return isObject(entry) ? credentialsFromAuthEntry(entry, registry) : undefined;
}

function credentialsFromAuthEntry(entry: JsonObject, registry: string): Credentials | undefined {
  const identityToken = optionalString(entry, 'identitytoken');
  if (identityToken) return { identityToken };
  const registryToken = optionalString(entry, 'registrytoken');
  if (registryToken) return { token: registryToken };
  const auth = optionalString(entry, 'auth');
  if (auth) {
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon === -1) {
      throw new ClipError('INVALID_ARGUMENT', `docker config entry for ${registry} has an "auth" value that is not base64 user:password`);
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  const username = optionalString(entry, 'username');
  const password = optionalString(entry, 'password');
  if (username !== undefined && password !== undefined) return { username, password };
  return undefined;
}
