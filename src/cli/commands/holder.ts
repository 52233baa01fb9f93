import type { Command } from 'commander';
import { logJson } from '../log.js';
import { waitForStopSignal } from '../stop-signal.js';

export function registerHolder(program: Command): void {
  program
    .command('holder')
    .description(
      "keep a copy of the node plugin's FUSE connections so that pods' volumes outlive a crash or restart of `clip node` " +
        '(docs/node.md, "Restarts"); run it beside the plugin, with the same state directory; runs until SIGTERM (which drops the copies)',
    )
    .option('--socket <path>', "where to listen: the plugin's --holder-socket", '/var/lib/clip-csi/holder.sock')
    .action(async (flags: { socket: string }) => {
      const { startHolder } = await import('../../node/handover/holder.js');
      const holder = await startHolder(flags.socket, logJson);
      await waitForStopSignal();
      logJson('info', 'holder stopping', { held: holder.size });
      await holder.close();
      process.exit(0);
    });
}
