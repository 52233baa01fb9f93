/** kube-apiserver's error responses: every failure is a `Status` object with a reason and an HTTP code. */
import type { JsonObject } from './json.js';

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: { reason: string; message: string; field: string }[];
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
  }

  status(): JsonObject {
    return statusObject(this.code, this.reason, this.message, this.details);
  }
}

export function statusObject(code: number, reason: string, message: string, details?: StatusDetails): JsonObject {
  const status: JsonObject = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason };
  if (details !== undefined) status.details = { ...details };
  status.code = code;
  return status;
}

/** What the messages name: `pods` for the core group, `leases.coordination.k8s.io` otherwise. */
export interface ResourceRef {
  resource: string;
  group: string;
}

function qualified(ref: ResourceRef): string {
  return ref.group === '' ? ref.resource : `${ref.resource}.${ref.group}`;
}

function details(ref: ResourceRef, name?: string): StatusDetails {
  const d: StatusDetails = {};
  if (name !== undefined) d.name = name;
  if (ref.group !== '') d.group = ref.group;
  d.kind = ref.resource;
  return d;
}

export function notFound(ref: ResourceRef, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${qualified(ref)} "${name}" not found`, details(ref, name));
}

export function alreadyExists(ref: ResourceRef, name: string): ApiError {
  return new ApiError(409, 'AlreadyExists', `${qualified(ref)} "${name}" already exists`, details(ref, name));
}

export function conflict(ref: ResourceRef, name: string): ApiError {
  return new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualified(ref)} "${name}": the object has been modified; ` +
      'please apply your changes to the latest version and try again',
    details(ref, name),
  );
}

/** 422: `Pod "x" is invalid: metadata.name: Required value: name or generateName is required`. */
export function invalid(kind: string, name: string, field: string, detail: string, group = ''): ApiError {
  const cause = { reason: 'FieldValueInvalid', message: detail, field };
  const d: StatusDetails = { name, kind, causes: [cause] };
  if (group !== '') d.group = group;
  return new ApiError(422, 'Invalid', `${kind} "${name}" is invalid: ${field}: ${detail}`, d);
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

export function unauthorized(): ApiError {
  return new ApiError(401, 'Unauthorized', 'Unauthorized');
}

export function forbidden(ref: ResourceRef, message: string, name?: string): ApiError {
  return new ApiError(403, 'Forbidden', message, details(ref, name));
}

/** 410 for a watch or a continue token older than the kept history. */
export function expired(message: string): ApiError {
  return new ApiError(410, 'Expired', message);
}

export function methodNotAllowed(message: string): ApiError {
  return new ApiError(405, 'MethodNotAllowed', message);
}

export function unsupportedMediaType(contentType: string): ApiError {
  return new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got ${contentType})`);
}

export function unknownPath(): ApiError {
  return new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
}
