import { isIP } from 'node:net';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { ClipError } from '../errors.js';

/** The AWS SDK's S3 module, loaded on first use: commands that never touch S3 do not pay for it. */
export type S3Sdk = typeof import('@aws-sdk/client-s3');
let sdk: Promise<S3Sdk> | undefined;
export function loadS3Sdk(): Promise<S3Sdk> {
  sdk ??= import('@aws-sdk/client-s3');
  return sdk;
}

/**
 * How to reach S3 (or an S3-compatible store). Everything is optional: by default the AWS SDK's
 * standard chains apply (region from AWS_REGION or the profile, credentials from the environment,
 * the shared config and credentials files, web identity, container or instance metadata).
 */
export interface S3Options {
  /** Region; default AWS_REGION or the profile's, else `us-east-1`. */
  readonly region?: string;
  /**
   * Endpoint URL of an S3-compatible store (`http://127.0.0.1:9000`, `https://minio.example`).
   * Default: `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL` (unless
   * `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true), else AWS itself.
   */
  readonly endpoint?: string;
  /**
   * Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted ones
   * (`bucket.endpoint/key`). Always on when the endpoint host is an IP address or localhost.
   */
  readonly forcePathStyle?: boolean;
  /** Explicit credentials (or a provider of them); default: the SDK's standard provider chain. */
  readonly credentials?: S3ClientConfig['credentials'];
  /** Shared config/credentials file profile; default AWS_PROFILE or `default`. */
  readonly profile?: string;
  /** Attempts per request, retries included (SDK default 3). */
  readonly maxAttempts?: number;
  /** Abandon a connection attempt after this long. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Abandon a request whose socket stays idle this long. Default 30 s. */
  readonly idleTimeoutMs?: number;
}

/** The S3 settings actually in effect, safe to record in an archive (no credentials). */
export interface ResolvedS3Settings {
  readonly region: string;
  /** undefined: AWS's own endpoints. */
  readonly endpoint?: string;
  readonly forcePathStyle: boolean;
}

const DEFAULT_REGION = 'us-east-1';

/** An S3 client with the settings it was built from. */
export class S3Connection {
  private constructor(
    readonly client: S3Client,
    readonly settings: ResolvedS3Settings,
    /** The SDK module, for its command classes. */
    readonly sdk: S3Sdk,
  ) {}

  static async open(options: S3Options = {}): Promise<S3Connection> {
    const endpoint = resolveEndpoint(options.endpoint, process.env);
    const forcePathStyle = options.forcePathStyle === true || (endpoint !== undefined && needsPathStyle(endpoint));
    const aws = await loadS3Sdk();
    const region = options.region ?? (await defaultRegion(aws, options.profile));
    const settings: ResolvedS3Settings = { region, forcePathStyle, ...(endpoint !== undefined && { endpoint }) };
    const client = new aws.S3Client({
      region,
      ...(endpoint !== undefined && { endpoint }),
      forcePathStyle,
      // A bucket in another region than the one configured answers with a redirect: follow it.
      followRegionRedirects: true,
      ...(options.credentials !== undefined && { credentials: options.credentials }),
      ...(options.profile !== undefined && { profile: options.profile }),
      ...(options.maxAttempts !== undefined && { maxAttempts: options.maxAttempts }),
      requestHandler: {
        connectionTimeout: options.connectTimeoutMs ?? 10_000,
        socketTimeout: options.idleTimeoutMs ?? 30_000,
      },
      // Checksums: the SDK's defaults (CRC32 on uploads, validation of whole-object downloads).
    });
    return new S3Connection(client, settings, aws);
  }

  /** `s3://bucket/key`, with the endpoint when it is not AWS's own: for messages and descriptions. */
  describe(location: { bucket: string; key: string }): string {
    const url = `s3://${location.bucket}/${location.key}`;
    return this.settings.endpoint === undefined ? url : `${url} (endpoint ${this.settings.endpoint})`;
  }

  close(): void {
    this.client.destroy();
  }
}

/**
 * The endpoint to use: the explicit one, else the SDK's standard environment variables (the SDK
 * reads them itself too; reading them here lets path style be chosen and the endpoint recorded).
 * Normalized to `scheme://host[:port][/path]`; URLs carrying credentials are refused.
 */
export function resolveEndpoint(explicit: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  let raw = explicit;
  if (raw === undefined || raw === '') {
    const ignore = (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS ?? '').toLowerCase() === 'true';
    raw = ignore ? undefined : env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  }
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ClipError('INVALID_ARGUMENT', `S3 endpoint ${JSON.stringify(redactUserinfo(raw))} is not a URL (expected http(s)://host[:port])`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ClipError('INVALID_ARGUMENT', `S3 endpoint must be an http:// or https:// URL, got ${url.protocol}`);
  }
  if (url.username !== '' || url.password !== '') {
    // Never echo them: the message would end up in logs.
    throw new ClipError('INVALID_ARGUMENT', `S3 endpoint ${url.protocol}//${url.host} must not carry credentials in the URL; use the AWS credential chain`);
  }
  if (url.search !== '' || url.hash !== '') {
    throw new ClipError('INVALID_ARGUMENT', `S3 endpoint ${url.protocol}//${url.host} must not have a query or fragment`);
  }
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

/** Virtual-hosted addressing needs DNS names: IP addresses and localhost get path style. */
export function needsPathStyle(endpoint: string): boolean {
  const host = new URL(endpoint).hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return isIP(host) !== 0 || host === 'localhost' || host.endsWith('.localhost');
}

/** The region the SDK would pick (AWS_REGION, the profile's), else us-east-1. */
async function defaultRegion(aws: S3Sdk, profile: string | undefined): Promise<string> {
  const probe = new aws.S3Client(profile === undefined ? {} : { profile });
  try {
    const region = await probe.config.region();
    return region || DEFAULT_REGION;
  } catch {
    return DEFAULT_REGION;
  } finally {
    probe.destroy();
  }
}

function redactUserinfo(raw: string): string {
  return raw.replace(/\/\/[^/@]*@/, '//***@');
}
