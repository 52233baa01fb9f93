import type { Command } from 'commander';
import type { S3Options } from '../clipcore/index.js';

/** The S3 flags shared by `clip create --upload`, `clip index --upload` and `clip mount`. */
export interface S3Flags {
  s3Endpoint?: string;
  s3Region?: string;
  s3PathStyle?: boolean;
}

// The SDK warns on every run that future versions will need Node 22: noise on a CLI's stderr.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export function addS3Flags(command: Command): Command {
  return command
    .option('--s3-endpoint <url>', 'S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS)')
    .option('--s3-region <region>', 'S3 region (default: $AWS_REGION or the AWS profile\'s, else us-east-1)')
    .option('--s3-path-style', 'path-style S3 requests (endpoint/bucket/key); automatic when the endpoint host is an IP address or localhost');
}

/** Credentials always come from the AWS chain: environment, profile ($AWS_PROFILE), web identity, instance metadata. */
export function s3OptionsFrom(flags: S3Flags): S3Options {
  return {
    ...(flags.s3Endpoint !== undefined && { endpoint: flags.s3Endpoint }),
    ...(flags.s3Region !== undefined && { region: flags.s3Region }),
    ...(flags.s3PathStyle === true && { forcePathStyle: true }),
  };
}

/** Help text appended to commands that talk to S3. */
export const S3_HELP = `
S3 credentials come from the standard AWS chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
(/ AWS_SESSION_TOKEN), AWS_PROFILE and the shared config and credentials files, web identity
(AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN), container and instance metadata. They are never
written into a .clip.`;
