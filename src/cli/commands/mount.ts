import type { Command } from 'commander';
import { mountArchive } from '../../clipcore/index.js';
import { logJson } from '../log.js';
import { addRegistryFlags, registryOptionsFrom, type RegistryFlags } from '../registry-options.js';

export function registerMount(program: Command): void {
  const command = program
    .command('mount')
    .description('mount an archive read-only with FUSE; stays in the foreground until SIGINT or SIGTERM')
    .argument('<file.clip>', 'archive to mount')
    .argument('<mountpoint>', 'directory to mount on (created if missing; a stale mount there is cleaned first)')
    .option('--fuse-debug', 'print libfuse debug output');
  addRegistryFlags(command)
    .action(async (file: string, mountPoint: string, options: RegistryFlags & { fuseDebug?: boolean }) => {
      const registry = await registryOptionsFrom(options);
      const handle = await mountArchive({ archive: file, mountPoint, debug: options.fuseDebug, registry });
      handle.onError(({ error, operation, path }) => logJson('error', 'read failed', { operation, path, error: error.message }));
      await handle.start();
      logJson('info', 'mounted', { archive: file, mountPoint: handle.mountPoint });
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals): void => {
          logJson('info', 'unmounting', { mountPoint: handle.mountPoint, signal });
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          handle.unmount().then(resolve, (err: Error) => {
            logJson('error', 'unmount failed', { mountPoint: handle.mountPoint, error: err.message });
            resolve();
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
