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
    .description('mount an archive read-only with FUSE; stays in the foreground until SIGINT or SIGTERM, or until the mount is unmounted from outside')
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
      const { watchMount } = await import('../../clipcore/fuse/mount-table.js');
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
        let stopWatching = (): void => undefined;
        const stop = (reason: { signal: NodeJS.Signals } | { unmountedElsewhere: true }): void => {
          if (stopping) return;
          stopping = true;
          stopWatching();
          logJson('info', 'unmounting', { mountPoint: handle.mountPoint, ...reason });
          handle.unmount().then(resolve, (err: Error) => {
            logJson('error', 'unmount failed', { mountPoint: handle.mountPoint, error: err.message });
            resolve();
          });
        };
        // Handlers stay installed: a second signal while unmounting must not kill the process
        // before the mount is gone.
        process.on('SIGINT', () => stop({ signal: 'SIGINT' }));
        process.on('SIGTERM', () => stop({ signal: 'SIGTERM' }));
        // `fusermount3 -u` or `umount` from outside ends the command too, as with other FUSE tools.
        watchMount(handle.mountPoint, () => stop({ unmountedElsewhere: true })).then(
          (cancel) => {
            stopWatching = cancel;
            if (stopping) cancel();
          },
          (err: Error) => logJson('warn', 'cannot watch the mount table', { mountPoint: handle.mountPoint, error: err.message }),
        );
      });
      // Exit explicitly: the kernel connection of a lazily detached mount lives on while files
      // are held open (its native loop thread answers them with EIO), and nothing else should
      // keep the command alive once its mount is gone.
      process.exit(process.exitCode ?? 0);
    });
}
