/**
 * Image references, parsed and normalised the way Docker does (distribution/reference grammar):
 * `alpine` means `docker.io/library/alpine:latest`, served by `registry-1.docker.io`.
 */
import { ClipError } from '../errors.js';
import { validateDigest } from './digest.js';

export const DOCKER_HUB_DISPLAY = 'docker.io';
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';
const DOCKER_HUB_ALIASES = new Set([DOCKER_HUB_DISPLAY, DOCKER_HUB_REGISTRY, 'index.docker.io']);
const DEFAULT_TAG = 'latest';
const MAX_NAME_LENGTH = 255;

export interface ImageReference {
  /** Host (and port) the Distribution API is called on, e.g. `registry-1.docker.io`, `127.0.0.1:5000`. */
  readonly registry: string;
  /** Registry as people write it (`docker.io` for Docker Hub); used in messages and toString(). */
  readonly displayRegistry: string;
  /** Path inside the registry, e.g. `library/alpine`. */
  readonly repository: string;
  /** Tag; `latest` when neither tag nor digest was given, undefined for digest-only references. */
  readonly tag?: string;
  /** `algorithm:hex`; when present it wins over the tag for fetching. */
  readonly digest?: string;
  /** Fully qualified form, e.g. `docker.io/library/alpine:3.20@sha256:...`. */
  toString(): string;
}

// Grammar pieces from distribution/reference (regexp.go).
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6_HOST = /^\[[0-9a-fA-F:.]+\]$/;
const TAG = /^[\w][\w.-]{0,127}$/;

function invalid(input: string, what: string): ClipError {
  return new ClipError('INVALID_REFERENCE', `invalid image reference "${input}": ${what}`);
}

/** Parses `[registry/]repository[:tag][@digest]`; throws ClipError('INVALID_REFERENCE') naming the fault. */
export function parseReference(input: string): ImageReference {
  if (input.length === 0) throw new ClipError('INVALID_REFERENCE', 'invalid image reference: it is empty');
  if (/\s/.test(input)) throw invalid(input, 'it contains whitespace');

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    if (rest.indexOf('@', at + 1) !== -1) throw invalid(input, "it contains more than one '@'");
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const problem = validateDigest(digest);
    if (problem !== undefined) throw invalid(input, problem);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (tag.length === 0) throw invalid(input, "the tag after ':' is empty");
    if (!TAG.test(tag)) {
      throw invalid(
        input,
        `tag "${tag}" is invalid: tags are 1-128 letters, digits, '_', '.' or '-' and must not start with '.' or '-'`,
      );
    }
  }
  if (rest.length === 0) throw invalid(input, 'the repository name is missing');

  const { domain, path } = splitDomain(rest);
  if (domain !== undefined) validateDomain(input, domain);
  validatePath(input, path);

  const hub = domain === undefined || DOCKER_HUB_ALIASES.has(domain);
  const displayRegistry = hub ? DOCKER_HUB_DISPLAY : (domain as string);
  const repository = hub && !path.includes('/') ? `library/${path}` : path;
  if (displayRegistry.length + 1 + repository.length > MAX_NAME_LENGTH) {
    throw invalid(input, `the name is longer than ${MAX_NAME_LENGTH} characters`);
  }
  return makeReference({
    registry: hub ? DOCKER_HUB_REGISTRY : displayRegistry,
    displayRegistry,
    repository,
    tag: tag ?? (digest === undefined ? DEFAULT_TAG : undefined),
    digest,
  });
}

/** Builds a reference from parts already known to be valid (e.g. from a parsed reference). */
export function makeReference(parts: Omit<ImageReference, 'toString'>): ImageReference {
  const text =
    `${parts.displayRegistry}/${parts.repository}` +
    (parts.tag !== undefined ? `:${parts.tag}` : '') +
    (parts.digest !== undefined ? `@${parts.digest}` : '');
  return { ...parts, toString: () => text };
}

/** Docker's rule: the first component is a registry if it has '.', ':', is `localhost`, or has capitals. */
function splitDomain(name: string): { domain?: string; path: string } {
  const slash = name.indexOf('/');
  if (slash === -1) return { path: name };
  const first = name.slice(0, slash);
  const isDomain = /[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase();
  return isDomain ? { domain: first, path: name.slice(slash + 1) } : { path: name };
}

function validateDomain(input: string, domain: string): void {
  let host = domain;
  let port: string | undefined;
  const portMatch = /^(.*?):([^:\]]*)$/.exec(domain);
  if (portMatch !== null && !domain.endsWith(']')) {
    host = portMatch[1] as string;
    port = portMatch[2] as string;
  }
  if (port !== undefined) {
    const n = Number(port);
    if (!/^\d+$/.test(port) || n < 1 || n > 65535) {
      throw invalid(input, `registry port "${port}" is not a number from 1 to 65535`);
    }
  }
  if (host.length === 0) throw invalid(input, `registry "${domain}" has no host name`);
  if (IPV6_HOST.test(host)) return;
  for (const component of host.split('.')) {
    if (!DOMAIN_COMPONENT.test(component)) {
      throw invalid(input, `registry host "${host}" is invalid: "${component}" is not a valid DNS label`);
    }
  }
}

function validatePath(input: string, path: string): void {
  if (path !== path.toLowerCase()) throw invalid(input, `repository name "${path}" must be lowercase`);
  for (const component of path.split('/')) {
    if (component.length === 0) throw invalid(input, `repository name "${path}" has an empty path component`);
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(
        input,
        `repository path component "${component}" is invalid: use lowercase letters and digits, ` +
          "separated by '.', '_', '__' or '-', not at the start or end",
      );
    }
  }
}
