import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { pack, type Header } from 'tar-stream';
import type { Inode, Toc } from '../../src/clipcore/archive/model.js';
import { collectLayerEntries } from '../../src/clipcore/oci/tar-entries.js';
import type { LayerEntry } from '../../src/clipcore/oci/layer-entry.js';

/** tar-stream's header argument, with PAX records typed as the strings it encodes. */
export type PackHeader = Partial<Omit<Header, 'pax'>> & { name: string; pax?: Record<string, string> };

export interface PackEntry {
  readonly header: PackHeader;
  readonly content?: Buffer | string;
}

/** Builds a tar in memory with tar-stream's packer (ustar, PAX when names or records need it). */
export async function packTar(entries: readonly PackEntry[]): Promise<Buffer> {
  const packer = pack();
  const chunks: Buffer[] = [];
  const drained = (async () => {
    // streamx types its chunks as unknown; the packer only ever emits Buffers.
    for await (const chunk of packer) chunks.push(chunk as Buffer);
  })();
  for (const entry of entries) {
    await new Promise<void>((resolve, reject) => {
      packer.entry(entry.header, entry.content ?? '', (err) => (err ? reject(err) : resolve()));
    });
  }
  packer.finalize();
  await drained;
  return Buffer.concat(chunks);
}

/** Runs the system tar (GNU tar) and returns what it wrote to stdout. */
export function runTar(args: readonly string[], cwd: string): Promise<Buffer> {
  return runCommand('tar', args, cwd);
}

export function runCommand(command: string, args: readonly string[], cwd: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${Buffer.concat(err).toString()}`));
    });
  });
}

/** Parses `tar` fed in chunks of `chunkSize` bytes (0 = one chunk), so headers straddle chunk edges. */
export function parseInChunks(tar: Buffer, chunkSize = 0, layer = 'test'): Promise<LayerEntry[]> {
  return collectLayerEntries(splitChunks(tar, chunkSize), { layer });
}

export function splitChunks(data: Buffer, chunkSize: number): Buffer[] {
  if (chunkSize <= 0) return [data];
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunkSize) chunks.push(data.subarray(i, i + chunkSize));
  return chunks;
}

export function sha256(data: Buffer | string): Buffer {
  return createHash('sha256').update(data).digest();
}

// ---- hand-built tar blocks, for what no writer at hand produces ----

export interface RawHeaderFields {
  readonly name: string;
  /** The typeflag character; '\0' for a pre-POSIX file. */
  readonly type: string;
  readonly size?: number;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly mtime?: number;
  readonly linkName?: string;
  readonly prefix?: string;
  readonly format?: 'ustar' | 'gnu' | 'v7';
  readonly devMajor?: number;
  readonly devMinor?: number;
  /** Numeric fields to store in base-256 instead of octal. */
  readonly base256?: ReadonlyArray<'uid' | 'gid' | 'size' | 'mtime'>;
  /** Store a checksum computed over signed bytes (historic tars). */
  readonly signedChecksum?: boolean;
}

export function rawHeader(fields: RawHeaderFields): Buffer {
  const block = Buffer.alloc(512);
  block.write(fields.name, 0, 100, 'utf8');
  const numeric = (value: number, offset: number, length: number, key?: 'uid' | 'gid' | 'size' | 'mtime'): void => {
    if (key !== undefined && fields.base256?.includes(key)) writeBase256(block, BigInt(value), offset, length);
    else block.write(value.toString(8).padStart(length - 1, '0') + '\0', offset, length, 'latin1');
  };
  numeric(fields.mode ?? 0o644, 100, 8);
  numeric(fields.uid ?? 0, 108, 8, 'uid');
  numeric(fields.gid ?? 0, 116, 8, 'gid');
  numeric(fields.size ?? 0, 124, 12, 'size');
  numeric(fields.mtime ?? 0, 136, 12, 'mtime');
  block.write(fields.type, 156, 1, 'latin1');
  if (fields.linkName !== undefined) block.write(fields.linkName, 157, 100, 'utf8');
  const format = fields.format ?? 'ustar';
  if (format === 'ustar') block.write('ustar\u000000', 257, 8, 'latin1');
  if (format === 'gnu') block.write('ustar  \u0000', 257, 8, 'latin1');
  if (format !== 'v7') {
    numeric(fields.devMajor ?? 0, 329, 8);
    numeric(fields.devMinor ?? 0, 337, 8);
  }
  if (fields.prefix !== undefined) block.write(fields.prefix, 345, 155, 'utf8');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += fields.signedChecksum ? block.readInt8(i) : (block[i] as number);
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return block;
}

function writeBase256(block: Buffer, value: bigint, offset: number, length: number): void {
  // Two's complement over the field, high bit of the first byte set as the marker.
  let v = value < 0n ? (1n << BigInt(length * 8)) + value : value;
  for (let i = offset + length - 1; i >= offset; i--) {
    block[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[offset] = (block[offset] as number) | 0x80;
}

/** A header plus its data, padded to whole blocks. */
export function rawEntry(fields: RawHeaderFields, data: Buffer | string = Buffer.alloc(0)): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const header = rawHeader({ ...fields, size: fields.size ?? bytes.length });
  return Buffer.concat([header, bytes, Buffer.alloc((512 - (bytes.length % 512)) % 512)]);
}

/** PAX extended header data: "<len> <key>=<value>\n" records. */
export function paxData(records: ReadonlyArray<readonly [string, Buffer | string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
    let length = body.length + 1;
    while (String(length).length + body.length !== length) length = String(length).length + body.length;
    parts.push(Buffer.concat([Buffer.from(String(length)), body]));
  }
  return Buffer.concat(parts);
}

export const END_OF_ARCHIVE = Buffer.alloc(1024);

// ---- Toc inspection ----

export type InodeSummary = Partial<Omit<Inode, 'firstEntry' | 'entryCount' | 'xattrs'>> & { xattrs?: Record<string, string> };

/** Every path in the Toc ('' is the root) with its inode, for comparing against expectations. */
export function tocPaths(toc: Toc): Map<string, Inode> {
  const paths = new Map<string, Inode>();
  const walk = (index: number, path: string): void => {
    const inode = toc.inodes[index] as Inode;
    paths.set(path, inode);
    if (inode.type !== 'directory') return;
    const first = inode.firstEntry ?? 0;
    for (let i = first; i < first + (inode.entryCount ?? 0); i++) {
      const entry = toc.entries[i];
      if (entry === undefined) throw new Error(`entry ${i} missing`);
      walk(entry.inode, path === '' ? entry.name : `${path}/${entry.name}`);
    }
  };
  walk(0, '');
  return paths;
}

/** Projects an inode onto the keys an expectation names, so tests state only what they care about. */
export function pick(inode: Inode, expected: InodeSummary): InodeSummary {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(expected)) {
    if (key === 'xattrs') out.xattrs = Object.fromEntries(inode.xattrs.map((x) => [x.name, x.value.toString('latin1')]));
    else out[key] = (inode as unknown as Record<string, unknown>)[key];
  }
  return out as InodeSummary;
}
