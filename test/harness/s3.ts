/**
 * A real S3 endpoint for tests: `moto_server` (preinstalled in the machine's Python) on a free
 * loopback port, reached through @aws-sdk/client-s3 with its default settings (checksums
 * included). Any access key works, unless `auth` is on: then every request is checked against
 * moto's (empty) IAM, so all credentials are rejected, as a store rejects unknown keys.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './free-port.js';
import { captureLog, stopProcess } from './run.js';

export interface S3Handle {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Environment for child processes: the standard AWS variables (credentials and region). */
  env: Record<string, string>;
  /** A client on this endpoint (path style, as IP endpoints need). Closed by stop(). */
  client: S3Client;
  createBucket(name: string): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;
// The SDK warns once per process that later versions need Node 22: noise in test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export async function startS3(options: { auth?: boolean } = {}): Promise<S3Handle> {
  const credentials = { accessKeyId: 'AKIACLIPTEST0000KEY1', secretAccessKey: 'clip-test-secret-7f3a9c' };
  const region = 'us-east-1';
  const { child, port, logs } = await launch(options.auth === true);
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({ region, endpoint, forcePathStyle: true, credentials });
  return {
    endpoint,
    region,
    credentials,
    env: {
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: region,
      AWS_EC2_METADATA_DISABLED: 'true',
    },
    client,
    createBucket: async (name) => {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    logs,
    stop: async () => {
      client.destroy();
      await stopProcess(child);
    },
  };
}

async function launch(auth: boolean): Promise<{ child: ChildProcess; port: number; logs: () => string }> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const env = { ...process.env, ...(auth && { INITIAL_NO_AUTH_ACTION_COUNT: '0' }) };
    const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'], env });
    const logs = captureLog(child);
    try {
      await waitReady(child, port);
      return { child, port, logs };
    } catch (err) {
      await stopProcess(child);
      if (attempt >= 2) throw new Error(`moto_server did not start: ${(err as Error).message}\n${logs()}`);
    }
  }
}

async function waitReady(child: ChildProcess, port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited with ${child.exitCode ?? child.signalCode}`);
    // Any HTTP answer means it serves (403 when auth is on).
    if ((await probe(port).catch(() => 0)) > 0) return;
    await delay(100);
  }
  throw new Error(`no answer on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms`);
}

function probe(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
