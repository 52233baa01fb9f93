import type { Command } from 'commander';
import { parseS3Url } from '../../clipcore/s3/location.js';
import { formatBytes, ProgressLine } from '../progress.js';
import { addS3Flags, S3_HELP, s3OptionsFrom, type S3Flags } from '../s3-options.js';

interface CreateFlags extends S3Flags {
  output: string;
  xattrs: boolean;
  upload?: string;
}

export function registerCreate(program: Command): void {
  const command = program
    .command('create')
    .description('archive a directory tree into a .clip file (symlinks are stored, not followed)')
    .argument('<dir>', 'directory to archive')
    .requiredOption('-o, --output <file.clip>', 'archive to write (replaced atomically)')
    .option('--no-xattrs', 'do not store extended attributes (they are read with getfattr)')
    .option('--upload <s3://bucket/key>', 'store the file contents as this S3 object (storage mode s3, streamed while the tree is walked); the archive at -o then holds only metadata')
    .addHelpText('after', S3_HELP);
  addS3Flags(command).action(async (dir: string, options: CreateFlags) => {
    const progress = new ProgressLine();
    const started = Date.now();
    const seconds = (): string => ((Date.now() - started) / 1000).toFixed(1);
    if (options.upload === undefined) {
      const { createArchive } = await import('../../clipcore/create/create-archive.js');
      const result = await createArchive({
        inputPath: dir,
        outputPath: options.output,
        xattrs: options.xattrs,
        onProgress: ({ entries, bytesRead }) => progress.update(`${entries} entries, ${formatBytes(bytesRead)} read`),
      });
      progress.done();
      process.stdout.write(
        `created ${result.outputPath}: ${result.entries} entries, ${formatBytes(result.dataBytes)} of distinct content, ` +
          `archive ${formatBytes(result.archiveBytes)}, ${seconds()} s\n`,
      );
      return;
    }
    const { bucket, key } = parseS3Url(options.upload);
    const { createAndUploadArchive } = await import('../../clipcore/s3/create-s3-archive.js');
    const result = await createAndUploadArchive({
      inputPath: dir,
      outputPath: options.output,
      xattrs: options.xattrs,
      bucket,
      key,
      ...s3OptionsFrom(options),
      onProgress: ({ entries, bytesRead, bytesUploaded }) =>
        progress.update(`${entries} entries, ${formatBytes(bytesRead)} read, ${formatBytes(bytesUploaded)} uploaded`),
    });
    progress.done();
    process.stdout.write(
      `created ${result.outputPath}: ${result.entries} entries, ${formatBytes(result.dataBytes)} of distinct content ` +
        `uploaded to ${result.dataLocation}, archive ${formatBytes(result.archiveBytes)}, ${seconds()} s\n`,
    );
  });
}
