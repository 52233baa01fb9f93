/**
 * The node plugin's state directory:
 *
 *   <state>/records/<id>.json   one publish record per (volume id, target path), mode 0600
 *   <state>/volumes/<id>/       upper and work directories of a writable volume's overlay
 *   <state>/images/<key>/       the one FUSE mount of each image (digest + platform)
 *   <state>/indexes/<key>.clip  the node-local index cache
 *
 * Records are written atomically (temporary file, fsync, rename), so a crash leaves either the old
 * record or the new one, never half of one. They never hold a credential: a volume's registry
 * credentials live in memory only (after a restart, kubelet's next NodePublishVolume brings them).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ClipError } from '../clipcore/index.js';
import type { Logger } from '../csi/log.js';
import type { PodInfo, PullPolicy } from './volume-spec.js';

/** 2: no credentials (version 1 kept the secret's credentials; such records are rewritten without them). */
export const RECORD_VERSION = 2;

export interface PublishRecord {
  version: number;
  id: string;
  volumeId: string;
  targetPath: string;
  image: string;
  platform: string;
  pullPolicy: PullPolicy;
  readOnly: boolean;
  ephemeral: boolean;
  pod: PodInfo;
  /** Where the image was found: registry host and repository. */
  registry: string;
  repository: string;
  /** The image manifest's digest the tag resolved to at publish time. */
  digest: string;
  imageKey: string;
  /**
   * Whether the volume's registry credentials came from its secret. They are kept in memory only:
   * after a restart, reads that need the registry wait for kubelet's next NodePublishVolume.
   */
  credentialsFromSecret: boolean;
  publishedAt: string;
}

export class StateDir {
  readonly root: string;
  readonly recordsDir: string;
  readonly volumesDir: string;
  readonly imagesDir: string;
  readonly indexesDir: string;

  constructor(root: string) {
    this.root = resolve(root);
    if (/[,:]/.test(this.root)) {
      // overlayfs options cannot carry these characters (lowerdir/upperdir live under the state dir).
      throw new ClipError('INVALID_ARGUMENT', `state directory ${this.root} may not contain ',' or ':'`);
    }
    this.recordsDir = join(this.root, 'records');
    this.volumesDir = join(this.root, 'volumes');
    this.imagesDir = join(this.root, 'images');
    this.indexesDir = join(this.root, 'indexes');
  }

  async create(): Promise<void> {
    for (const dir of [this.root, this.recordsDir, this.volumesDir, this.imagesDir, this.indexesDir]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    }
  }

  /** One record per (volume, target): the same volume may be published at several targets. */
  static recordId(volumeId: string, targetPath: string): string {
    return createHash('sha256').update(volumeId).update('\0').update(targetPath).digest('hex').slice(0, 32);
  }

  volumeDir(id: string): string {
    return join(this.volumesDir, id);
  }

  imageMountPoint(imageKey: string): string {
    return join(this.imagesDir, imageKey);
  }

  indexPath(imageKey: string): string {
    return join(this.indexesDir, `${imageKey}.clip`);
  }

  async loadRecords(log: Logger): Promise<PublishRecord[]> {
    const records: PublishRecord[] = [];
    for (const name of await readdir(this.recordsDir)) {
      const path = join(this.recordsDir, name);
      if (name.includes('.tmp-')) {
        await unlink(path).catch(() => undefined);
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        const { record, outdated } = parseRecord(await readFile(path, 'utf8'));
        if (record.id !== name.slice(0, -'.json'.length)) throw new Error('its id does not match its file name');
        if (outdated) {
          // An earlier version kept the secret's credentials on disk: rewrite the record without them.
          await this.saveRecord(record);
          log('info', 'publish record of an earlier version rewritten (without credentials)', { volume_id: record.volumeId });
        }
        records.push(record);
      } catch (err) {
        log('error', 'ignoring an unreadable publish record', { file: path, error: (err as Error).message });
      }
    }
    return records;
  }

  async saveRecord(record: PublishRecord): Promise<void> {
    const path = join(this.recordsDir, `${record.id}.json`);
    const temporary = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    const file = await open(temporary, 'wx', 0o600);
    try {
      await file.writeFile(`${JSON.stringify(record, null, 2)}\n`);
      await file.sync();
    } catch (err) {
      await file.close();
      await unlink(temporary).catch(() => undefined);
      throw err;
    }
    await file.close();
    await rename(temporary, path);
    await syncDir(this.recordsDir);
  }

  async removeRecord(id: string): Promise<void> {
    await rm(join(this.recordsDir, `${id}.json`), { force: true });
    await syncDir(this.recordsDir);
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined);
  if (!handle) return;
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await handle.close();
  }
}

function parseRecord(text: string): { record: PublishRecord; outdated: boolean } {
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null) throw new Error('not a JSON object');
  const { credentials, ...record } = value as Partial<PublishRecord> & { credentials?: unknown };
  const outdated = record.version === 1;
  if (record.version !== RECORD_VERSION && !outdated) throw new Error(`unknown record version ${String(record.version)}`);
  for (const field of ['id', 'volumeId', 'targetPath', 'image', 'platform', 'registry', 'repository', 'digest', 'imageKey'] as const) {
    if (typeof record[field] !== 'string' || record[field] === '') throw new Error(`field ${field} is missing`);
  }
  if (typeof record.readOnly !== 'boolean') throw new Error('field readOnly is missing');
  return {
    record: {
      ...(record as PublishRecord),
      version: RECORD_VERSION,
      pullPolicy: record.pullPolicy === 'Always' ? 'Always' : 'IfNotPresent',
      ephemeral: record.ephemeral === true,
      pod: record.pod ?? {},
      credentialsFromSecret: outdated ? credentials !== undefined : record.credentialsFromSecret === true,
    },
    outdated,
  };
}
