import type { Command } from 'commander';
import { parseByteSize } from '../byte-size.js';
import { logJson } from '../log.js';
import { addRegistryFlags, registryOptionsFrom, type RegistryFlags } from '../registry-options.js';
import { addS3Flags, S3_HELP, s3OptionsFrom, type S3Flags } from '../s3-options.js';

interface CacheFlags {
  fuseDebug?: boolean;
  cacheDir?: string;
  cacheMaxBytes?: number;
  memoryCacheBytes?: number;
}

export function registerMount(program: Command): void {
  const command = program
    .command('mount')
    .description('mount an archive read-only with FUSE; stays in the foreground until SIGINT or SIGTERM')
    .argument('<file.clip>', 'archive to mount: a local file or s3://bucket/key (any storage mode)')
    .argument('<mountpoint>', 'directory to mount on (created if missing; a stale mount there is cleaned first)')
    .option('--fuse-debug', 'print libfuse debug output')
    .option('--cache-dir <dir>', 'node-local disk cache of file data, shared by every mount using the same directory and kept across restarts (default: no disk cache)')
    .option('--cache-max-bytes <size>', 'bound of the disk cache: bytes, or with a unit such as 512Mi, 10Gi, 20G (default 10Gi)', parseByteSize)
    .option('--memory-cache-bytes <size>', 'bound of the in-memory cache of decompressed data (default 256Mi; 64Mi for local archives)', parseByteSize);
  addS3Flags(addRegistryFlags(command))
    .addHelpText('after', S3_HELP)
    .action(async (file: string, mountPoint: string, options: RegistryFlags & S3Flags & CacheFlags) => {
      const registry = await registryOptionsFrom(options);
      const { mountArchive } = await import('../../clipcore/fuse/mount.js');
      const handle = await mountArchive({
        archive: file,
        mountPoint,
        debug: options.fuseDebug,
        registry,
        s3: s3OptionsFrom(options),
        ...(options.cacheDir !== undefined && { cacheDir: options.cacheDir }),
        ...(options.cacheMaxBytes !== undefined && { cacheMaxBytes: options.cacheMaxBytes }),
        ...(options.memoryCacheBytes !== undefined && { memoryCacheBytes: options.memoryCacheBytes }),
        logger: logJson,
      });
      handle.onError(({ error, operation, path }) => logJson('error', 'read failed', { operation, path, error: error.message }));
      await handle.start();
      logJson('info', 'mounted', { archive: file, mountPoint: handle.mountPoint });
      await new Promise<void>((resolve) => {
        let stopping = false;
        // Handlers stay installed: a second signal while unmounting must not kill the process
        // before the mount is gone.
        const stop = (signal: NodeJS.Signals): void => {
          if (stopping) return;
          stopping = true;
          logJson('info', 'unmounting', { mountPoint: handle.mountPoint, signal });
          handle.unmount().then(resolve, (err: Error) => {
            logJson('error', 'unmount failed', { mountPoint: handle.mountPoint, error: err.message });
            resolve();
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      // fuse-native releases its native thread only when its own unmount succeeds; after a mount
      // was removed from outside (fusermount -u) nothing else would let the process end.
      process.exit(process.exitCode ?? 0);
    });
}
