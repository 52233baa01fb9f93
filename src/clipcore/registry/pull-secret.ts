/**
 * Registry credentials in the data of a Kubernetes pull secret, as the node plugin gets it in a
 * publish request's `secrets` and the controller reads it from the API: a
 * `kubernetes.io/dockerconfigjson` secret (key `.dockerconfigjson`), the legacy
 * `kubernetes.io/dockercfg` (key `.dockercfg`), or plain `username`/`password` keys. Whatever is
 * found is only ever passed to the registry client; messages name the key, never a value.
 */
import { ClipError } from '../errors.js';
import type { BasicCredentials, TokenCredentials } from './credentials.js';
import { DOCKER_HUB_REGISTRY } from './reference.js';

const invalidArgument = (message: string): ClipError => new ClipError('INVALID_ARGUMENT', message);

export type RegistryCredentials = BasicCredentials | TokenCredentials;

const HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry.hub.docker.com', DOCKER_HUB_REGISTRY]);

/** `https://Host:1/v1/` → `host:1`; Docker Hub's aliases collapse to one name. */
export function registryKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').split('/')[0]?.toLowerCase() ?? '';
  return HUB_HOSTS.has(host) ? DOCKER_HUB_REGISTRY : host;
}

/** Credentials for `registry` from the secrets, or undefined when they hold none for it. */
export function credentialsFromSecrets(secrets: Readonly<Record<string, string>>, registry: string): RegistryCredentials | undefined {
  const dockerConfigJson = secrets['.dockerconfigjson'];
  if (dockerConfigJson !== undefined) {
    const auths = parseObject(dockerConfigJson, '.dockerconfigjson')['auths'];
    if (auths !== undefined && !isObject(auths)) throw invalidArgument('secret key .dockerconfigjson: "auths" is not an object');
    const found = auths ? fromAuths(auths, registry, '.dockerconfigjson') : undefined;
    if (found) return found;
  }
  const dockercfg = secrets['.dockercfg'];
  if (dockercfg !== undefined) {
    const found = fromAuths(parseObject(dockercfg, '.dockercfg'), registry, '.dockercfg');
    if (found) return found;
  }
  const username = secrets['username'];
  const password = secrets['password'];
  if (username !== undefined && password !== undefined) return { username, password };
  return undefined;
}

function fromAuths(auths: Record<string, unknown>, registry: string, secretKey: string): RegistryCredentials | undefined {
  const wanted = registryKey(registry);
  const key = Object.keys(auths).find((candidate) => registryKey(candidate) === wanted);
  if (key === undefined) return undefined;
  const entry = auths[key];
  if (!isObject(entry)) throw invalidArgument(`secret key ${secretKey}: the entry for ${wanted} is not an object`);
  const registryToken = stringField(entry, 'registrytoken');
  if (registryToken) return { token: registryToken };
  const auth = stringField(entry, 'auth');
  if (auth) {
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw invalidArgument(`secret key ${secretKey}: the "auth" of ${wanted} is not base64 of user:password`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  const username = stringField(entry, 'username');
  const password = stringField(entry, 'password');
  if (username !== undefined && password !== undefined) return { username, password };
  if (stringField(entry, 'identitytoken')) {
    throw invalidArgument(`secret key ${secretKey}: the entry for ${wanted} holds an identitytoken, which clip-csi does not exchange; use auth or username/password`);
  }
  return undefined;
}

function parseObject(text: string, secretKey: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalidArgument(`secret key ${secretKey} is not valid JSON`);
  }
  if (!isObject(parsed)) throw invalidArgument(`secret key ${secretKey} is not a JSON object`);
  return parsed;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringField(entry: Record<string, unknown>, name: string): string | undefined {
  const value = entry[name];
  return typeof value === 'string' ? value : undefined;
}
