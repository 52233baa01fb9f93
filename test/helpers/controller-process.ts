/** Runs the built `clip controller` as a child process, as its Deployment would. */
import { join } from 'node:path';
import { startLoggedProcess, type LoggedProcess } from './logged-process.js';
import { CLIP_BIN } from './processes.js';

export interface ControllerProcess extends LoggedProcess {
  readonly socketPath: string;
  /** `127.0.0.1:PORT` of /metrics, /healthz, /readyz. */
  readonly metricsAddress: string;
}

/** `dir` holds the socket and the temporary indexes; `args` add to (or override) the defaults. */
export async function startControllerProcess(dir: string, args: readonly string[], env: Record<string, string> = {}): Promise<ControllerProcess> {
  const socketPath = join(dir, 'controller.sock');
  const all = ['controller', '--endpoint', `unix://${socketPath}`, '--metrics-addr', '127.0.0.1:0', '--temp-dir', join(dir, 'tmp'), ...args];
  const controller = await startLoggedProcess(CLIP_BIN, all, { env, startedMessage: 'controller started', name: 'clip controller' });
  return Object.assign(controller, { socketPath, metricsAddress: String(controller.started['metrics']) });
}
