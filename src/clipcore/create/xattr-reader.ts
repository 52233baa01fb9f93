import { spawn } from 'node:child_process';
import { relative } from 'node:path';
import { ClipError } from '../errors.js';
import type { Xattr } from '../archive/model.js';

/**
 * Node has no extended-attribute API, so one `getfattr -R` (Debian package `attr`) reads every
 * attribute of a tree in a single child process. It is spawned asynchronously, never with a
 * blocking call, so it is safe even in a process that serves a FUSE mount.
 *
 * Returns a map from the path relative to `root` ('' for the root itself) to its attributes,
 * sorted by name. Paths without attributes are absent.
 */
export async function readTreeXattrs(root: string): Promise<Map<string, Xattr[]>> {
  const output = await run('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root]);
  const result = new Map<string, Xattr[]>();
  let current: Xattr[] | undefined;
  for (const line of output.split('\n')) {
    if (line.startsWith('# file: ')) {
      const path = relative(root, unescapeName(line.slice('# file: '.length)));
      current = [];
      result.set(path, current);
    } else if (current && line !== '') {
      const equals = line.indexOf('=');
      const name = unescapeName(equals < 0 ? line : line.slice(0, equals));
      const encoded = equals < 0 ? '' : line.slice(equals + 1);
      current.push({ name, value: decodeValue(encoded) });
    }
  }
  for (const xattrs of result.values()) xattrs.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  return result;
}

/** getfattr escapes unprintable bytes and backslashes as \ooo octal. */
function unescapeName(escaped: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(escaped, 'latin1');
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i] as number;
    if (byte === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else {
      bytes.push(byte);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function decodeValue(encoded: string): Buffer {
  if (encoded.startsWith('0x')) return Buffer.from(encoded.slice(2), 'hex');
  if (encoded.startsWith('0s')) return Buffer.from(encoded.slice(2), 'base64');
  if (encoded.startsWith('"') && encoded.endsWith('"')) return Buffer.from(unescapeName(encoded.slice(1, -1)), 'utf8');
  return Buffer.from(encoded, 'utf8');
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    // latin1 keeps every byte of the output, so non-UTF-8 escapes survive until unescapeName.
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const chunks: Buffer[] = [];
    const errors: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => errors.push(chunk));
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT'
        ? new ClipError('INVALID_ARGUMENT', `reading extended attributes needs ${command} (Debian package "attr"); install it or turn xattrs off`)
        : new ClipError('IO', `${command} failed: ${err.message}`));
    });
    child.on('close', (code) => {
      // Exit 1 means some paths could not be read; the rest of the output is still valid.
      if (code === 0 || code === 1) resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(new ClipError('IO', `${command} exited with ${code}: ${Buffer.concat(errors).toString().trim()}`));
    });
  });
}
