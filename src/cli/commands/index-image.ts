import { Option, type Command } from 'commander';
import { createFromOCIImage } from '../../clipcore/index.js';
import { formatBytes, ProgressLine } from '../progress.js';
import { addRegistryFlags, registryOptionsFrom, type RegistryFlags } from '../registry-options.js';

interface IndexFlags extends RegistryFlags {
  output: string;
  platform?: string;
  checkpointMib: number;
  concurrency?: number;
}

export function registerIndex(program: Command): void {
  const command = program
    .command('index')
    .description('index an OCI image into a metadata-only .clip (storage mode oci); file bytes stay in the registry')
    .argument('<image-ref>', 'image reference: alpine, registry:port/repo:tag, repo@sha256:...')
    .requiredOption('-o, --output <file.clip>', 'archive to write (replaced atomically; nothing is left on failure)')
    .option('--platform <os/arch[/variant]>', 'platform to pick from a multi-platform image (default: this host)')
    .addOption(new Option('--checkpoint-mib <n>', 'uncompressed MiB between gzip checkpoints, 1-16').argParser(Number).default(2))
    .addOption(new Option('--concurrency <n>', 'layers indexed at once (default: one per core)').argParser(Number));
  addRegistryFlags(command).action(async (imageRef: string, flags: IndexFlags) => {
    const { auth, ...registry } = await registryOptionsFrom(flags);
    const progress = new ProgressLine();
    const result = await createFromOCIImage({
      imageRef,
      outputPath: flags.output,
      platform: flags.platform,
      checkpointMiB: flags.checkpointMib,
      concurrency: flags.concurrency,
      auth,
      registry,
      onProgress: ({ layersDone, layers, bytesDone, bytes }) =>
        progress.update(`${formatBytes(bytesDone)} / ${formatBytes(bytes)}, layers ${layersDone}/${layers}`, bytes > 0 ? bytesDone / bytes : undefined),
    });
    progress.done();
    const share = (part: number): string => `${((100 * part) / Math.max(1, result.uncompressedImageBytes)).toFixed(3)}%`;
    process.stdout.write(
      `indexed ${imageRef} (${result.manifestDigest}, ${result.platform}): ${result.files} files, ${result.layers} layers, ` +
        `index ${formatBytes(result.archiveBytes)} (${share(result.archiveBytes)} of the uncompressed image; ` +
        `${formatBytes(result.mountBytes)} needed to mount, ${share(result.mountBytes)}), ${result.seconds.toFixed(1)} s\n`,
    );
  });
}
