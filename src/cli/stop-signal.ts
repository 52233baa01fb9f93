import { logJson } from './log.js';

/**
 * Resolves on the first SIGTERM or SIGINT (a pod being stopped, Ctrl-C); a second signal ends the
 * process at once.
 */
export async function waitForStopSignal(): Promise<void> {
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logJson('info', 'stopping', { signal });
  const now = (): never => process.exit(1);
  process.once('SIGTERM', now);
  process.once('SIGINT', now);
}
