import type { Command } from 'commander';
import { createArchive } from '../../clipcore/index.js';
import { formatBytes, ProgressLine } from '../progress.js';

export function registerCreate(program: Command): void {
  program
    .command('create')
    .description('archive a directory tree into a local .clip file (symlinks are stored, not followed)')
    .argument('<dir>', 'directory to archive')
    .requiredOption('-o, --output <file.clip>', 'archive to write (replaced atomically)')
    .option('--no-xattrs', 'do not store extended attributes (they are read with getfattr)')
    .action(async (dir: string, options: { output: string; xattrs: boolean }) => {
      const progress = new ProgressLine();
      const started = Date.now();
      const result = await createArchive({
        inputPath: dir,
        outputPath: options.output,
        xattrs: options.xattrs,
        onProgress: ({ entries, bytesRead }) => progress.update(`${entries} entries, ${formatBytes(bytesRead)} read`),
      });
      progress.done();
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      process.stdout.write(
        `created ${result.outputPath}: ${result.entries} entries, ${formatBytes(result.dataBytes)} of distinct content, ` +
          `archive ${formatBytes(result.archiveBytes)}, ${seconds} s\n`,
      );
    });
}
