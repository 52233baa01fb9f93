import { Command, CommanderError } from 'commander';
// Light imports only: each command loads the modules it runs on when it runs, so that
// `clip --help` or `clip index` does not pay for FUSE, gRPC and the S3 SDK (about 0.3 s).
import { describeError, isClipError } from '../clipcore/errors.js';
import { CLIP_VERSION } from '../clipcore/version.js';
import { registerController } from './commands/controller.js';
import { registerCreate } from './commands/create.js';
import { registerIndex } from './commands/index-image.js';
import { registerInspect } from './commands/inspect.js';
import { registerMount } from './commands/mount.js';
import { registerHolder } from './commands/holder.js';
import { registerNode } from './commands/node.js';

/** Exit codes: 0 success, 1 failure, 2 usage error (as most Unix tools). */
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

// `clip --help | head`: a reader that goes away early is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(process.exitCode ?? 0);
});

const program = new Command()
  .name('clip')
  .description('Lazily mounted OCI images and .clip archives')
  .version(CLIP_VERSION, '-V, --version', 'print the version')
  .option('--debug', 'print stack traces on errors')
  .showHelpAfterError()
  .exitOverride();

registerCreate(program);
registerIndex(program);
registerInspect(program);
registerMount(program);
registerNode(program);
registerHolder(program);
registerController(program);
for (const command of program.commands) command.exitOverride();

// No top-level await: the bundle bin/clip runs is CommonJS (scripts/bundle.ts).
async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version also arrive here, with exit code 0.
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
    } else {
      const debug = program.opts<{ debug?: boolean }>().debug || process.argv.includes('--debug');
      const code = isClipError(err) ? ` [${err.code}]` : '';
      process.stderr.write(`clip: ${describeError(err)}${code}\n`);
      if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
      process.exitCode = EXIT_FAILURE;
    }
  }
}

void main();
