import type { Command } from 'commander';
import { SectionKind } from '../../clipcore/archive/format.js';
import { asImageMeta } from '../../clipcore/image/image-meta.js';
import type { ArchiveReader, Inode } from '../../clipcore/index.js';
import { formatPlatform } from '../../clipcore/registry/platform.js';
import { formatBytes } from '../progress.js';

interface InspectOptions {
  json?: boolean;
  list?: boolean;
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show what an archive holds: format, storage mode, sections, entry counts')
    .argument('<file.clip>', 'archive to inspect')
    .option('--json', 'print machine-readable JSON')
    .option('--list', 'also list every path with its type, mode, owner, size, mtime and link target')
    .action(async (file: string, options: InspectOptions) => {
      const { ArchiveReader } = await import('../../clipcore/read/archive-reader.js');
      const reader = await ArchiveReader.open(file);
      try {
        const summary = summarize(reader);
        const paths = options.list ? [...listPaths(reader)] : undefined;
        if (options.json) {
          process.stdout.write(`${JSON.stringify(paths ? { ...summary, paths } : summary, null, 2)}\n`);
          return;
        }
        printSummary(summary);
        for (const path of paths ?? []) process.stdout.write(`${formatPathLine(path)}\n`);
      } finally {
        await reader.close();
      }
    });
}

function summarize(reader: ArchiveReader) {
  const { header, meta, toc } = reader.index;
  const tocSection = reader.index.section(SectionKind.Toc);
  const files = toc.inodes.filter((inode) => inode.type === 'file');
  return {
    formatVersion: header.version,
    archiveBytes: header.archiveLength,
    writer: meta.writer,
    storage: meta.storage,
    image: meta.image,
    inodes: toc.inodes.length,
    entries: toc.entries.length + 1,
    files: files.length,
    contentBytes: files.reduce((sum, inode) => sum + inode.size, 0),
    tocBytesPerEntry: tocSection ? Number((tocSection.length / (toc.entries.length + 1)).toFixed(2)) : 0,
    sections: header.sections.map((section) => ({
      kind: SectionKind[section.kind] ?? String(section.kind),
      offset: section.offset,
      bytes: section.length,
      rawBytes: section.rawLength,
      sha256: section.sha256.toString('hex'),
    })),
  };
}

function printSummary(summary: ReturnType<typeof summarize>): void {
  const lines = [
    `format version   ${summary.formatVersion} (written by ${summary.writer})`,
    `storage mode     ${summary.storage.mode}`,
    ...imageLines(summary.image),
    `archive size     ${formatBytes(summary.archiveBytes)}`,
    `entries          ${summary.entries} paths, ${summary.inodes} inodes, ${summary.files} regular files`,
    `content          ${formatBytes(summary.contentBytes)}`,
    `toc              ${summary.tocBytesPerEntry} bytes per entry (compressed)`,
    'sections',
    ...summary.sections.map((s) => `  ${s.kind.padEnd(11)} offset ${String(s.offset).padStart(10)}  ${formatBytes(s.bytes).padStart(10)} stored  ${formatBytes(s.rawBytes).padStart(10)} raw`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

function imageLines(image: unknown): string[] {
  if (image === undefined) return [];
  const meta = asImageMeta(image);
  return [
    `image            ${meta.registry}/${meta.repository}@${meta.manifestDigest}`,
    `platform         ${formatPlatform(meta.platform)}, ${meta.layers.length} layers`,
  ];
}

interface PathListing {
  path: string;
  type: Inode['type'];
  mode: string;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: string;
  nlink: number;
  ino: number;
  linkTarget?: string;
  sha256?: string;
  xattrs?: Record<string, string>;
}

function* listPaths(reader: ArchiveReader): Generator<PathListing> {
  for (const { path, inode } of reader.index.walk()) {
    const attributes = reader.index.inode(inode);
    yield {
      path: `/${path}`,
      type: attributes.type,
      mode: attributes.mode.toString(8).padStart(4, '0'),
      uid: attributes.uid,
      gid: attributes.gid,
      size: attributes.size,
      mtimeNs: attributes.mtimeNs.toString(),
      nlink: attributes.nlink,
      ino: inode + 1,
      linkTarget: attributes.linkTarget,
      sha256: attributes.sha256?.toString('hex'),
      xattrs: attributes.xattrs.length > 0
        ? Object.fromEntries(attributes.xattrs.map((x) => [x.name, x.value.toString('base64')]))
        : undefined,
    };
  }
}

function formatPathLine(entry: PathListing): string {
  const mtime = new Date(Number(BigInt(entry.mtimeNs) / 1_000_000n)).toISOString();
  const link = entry.linkTarget !== undefined ? ` -> ${entry.linkTarget}` : '';
  return `${entry.type.padEnd(9)} ${entry.mode} ${entry.uid}:${entry.gid} ${String(entry.size).padStart(12)} ${mtime} ${entry.path}${link}`;
}
