import { Option, type Command } from 'commander';
import type { IndexProgress } from '../../clipcore/index.js';
import { parseS3Url } from '../../clipcore/s3/location.js';
import { formatBytes, ProgressLine } from '../progress.js';
import { addRegistryFlags, registryOptionsFrom, type RegistryFlags } from '../registry-options.js';
import { addS3Flags, S3_HELP, s3OptionsFrom, type S3Flags } from '../s3-options.js';

interface IndexFlags extends RegistryFlags, S3Flags {
  output?: string;
  upload?: string;
  platform?: string;
  checkpointMib: number;
  concurrency?: number;
}

export function registerIndex(program: Command): void {
  const command = program
    .command('index')
    .description('index an OCI image into a metadata-only .clip (storage mode oci); file bytes stay in the registry')
    .argument('<image-ref>', 'image reference: alpine, registry:port/repo:tag, repo@sha256:...')
    .option('-o, --output <file.clip>', 'archive to write (replaced atomically; nothing is left on failure); optional with --upload')
    .option('--upload <s3://bucket/key>', 'upload the .clip to this S3 object (mount it with: clip mount s3://bucket/key <dir>)')
    .option('--platform <os/arch[/variant]>', 'platform to pick from a multi-platform image (default: this host)')
    .addOption(new Option('--checkpoint-mib <n>', 'uncompressed MiB between gzip checkpoints, 1-16').argParser(Number).default(2))
    .addOption(new Option('--concurrency <n>', 'layers indexed at once (default: one per core)').argParser(Number));
  command.addHelpText('after', S3_HELP);
  addS3Flags(addRegistryFlags(command)).action(async (imageRef: string, flags: IndexFlags) => {
    if (flags.output === undefined && flags.upload === undefined) {
      command.error('error: say where the .clip goes: -o <file.clip>, --upload <s3://bucket/key>, or both', { exitCode: 2 });
    }
    const target = flags.upload === undefined ? undefined : parseS3Url(flags.upload);
    const { auth, ...registry } = await registryOptionsFrom(flags);
    const progress = new ProgressLine();
    const common = {
      imageRef,
      platform: flags.platform,
      checkpointMiB: flags.checkpointMib,
      concurrency: flags.concurrency,
      // This process does nothing else: its own thread indexes too (a one-layer image needs no worker).
      useCallingThread: true,
      auth,
      registry,
      onProgress: ({ layersDone, layers, bytesDone, bytes }: IndexProgress) =>
        progress.update(`${formatBytes(bytesDone)} / ${formatBytes(bytes)}, layers ${layersDone}/${layers}`, bytes > 0 ? bytesDone / bytes : undefined),
    };
    const result = target === undefined
      ? await (await import('../../clipcore/image/create-from-oci.js')).createFromOCIImage({ ...common, outputPath: flags.output as string })
      : await (await import('../../clipcore/s3/create-oci-upload.js')).createAndUploadOCIArchive({ ...common, ...s3OptionsFrom(flags), ...target, outputPath: flags.output });
    progress.done();
    const share = (part: number): string => `${((100 * part) / Math.max(1, result.uncompressedImageBytes)).toFixed(3)}%`;
    process.stdout.write(
      `indexed ${imageRef} (${result.manifestDigest}, ${result.platform}): ${result.files} files, ${result.layers} layers, ` +
        `index ${formatBytes(result.archiveBytes)} (${share(result.archiveBytes)} of the uncompressed image; ` +
        `${formatBytes(result.mountBytes)} needed to mount, ${share(result.mountBytes)}), ${result.seconds.toFixed(1)} s\n`,
    );
    if ('location' in result) process.stdout.write(`uploaded ${result.location}\n`);
  });
}
