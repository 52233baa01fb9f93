/**
 * The chart's container arguments against the built `clip` itself: every flag the DaemonSet and the
 * Deployment pass must be one that `clip node --help` / `clip controller --help` lists, taking a
 * value exactly when the chart gives one. A flag renamed in code cannot silently break the chart.
 * Rendered with every feature on, so that every flag the templates can emit appears.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { container, find, render, valuesFile, type Workload } from './helpers/chart.js';
import { runClip } from './helpers/processes.js';

/** Options of `clip <command> --help`: flag name → whether it takes a value. */
async function helpOptions(command: string): Promise<Map<string, boolean>> {
  const result = await runClip([command, '--help']);
  assert.equal(result.code, 0, `clip ${command} --help failed: ${result.stderr}`);
  assert.match(result.stdout, new RegExp(`^Usage: clip ${command} `), `clip has no \`${command}\` command:\n${result.stdout}`);
  const options = new Map<string, boolean>();
  // Commander prints each option at a two-space indent: `  -x, --long <value>  description`.
  for (const match of result.stdout.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)( [<[])?/gm)) options.set(match[1] as string, match[2] !== undefined);
  assert.ok(options.size > 3, `no options parsed from:\n${result.stdout}`);
  return options;
}

function checkArgs(args: readonly string[], command: string, options: Map<string, boolean>): void {
  assert.equal(args[0], command, `the container runs \`clip ${command}\``);
  for (const arg of args.slice(1)) {
    assert.match(arg, /^--/, `${command}: positional argument ${arg}`);
    const [flag, ...value] = arg.split('=');
    const takesValue = options.get(flag as string);
    assert.notEqual(takesValue, undefined, `clip ${command} has no flag ${flag} (passed by the chart as ${arg}); it has: ${[...options.keys()].join(' ')}`);
    assert.equal(value.length > 0, takesValue, `${arg}: clip ${command} ${takesValue ? 'expects a value' : 'takes no value'} for ${flag}`);
  }
}

describe('chart container args against clip --help', () => {
  const everything = [valuesFile('s3-secret'), valuesFile('registry-ca')];
  const extra = ['--set', 's3.credentials.sessionTokenKey=AWS_SESSION_TOKEN'];

  it('the DaemonSet passes only flags that `clip node --help` lists', async () => {
    const options = await helpOptions('node');
    for (const values of [[], everything]) {
      const objects = await render(values, extra);
      checkArgs(container(find<Workload>(objects, 'DaemonSet', 'clip-csi-node'), 'clip-node').args ?? [], 'node', options);
    }
  });

  it('the Deployment passes only flags that `clip controller --help` lists', async () => {
    const options = await helpOptions('controller');
    for (const set of [[], ['--set', 'controller.readPullSecrets=false', '--set', 'controller.platforms={linux/amd64}']]) {
      const objects = await render(everything, [...extra, ...set]);
      checkArgs(container(find<Workload>(objects, 'Deployment', 'clip-csi-controller'), 'clip-controller').args ?? [], 'controller', options);
    }
  });

  it('the check fails for a flag clip does not have', async () => {
    const options = await helpOptions('node');
    assert.throws(() => checkArgs(['node', '--no-such-flag=1'], 'node', options), /has no flag --no-such-flag/);
    assert.throws(() => checkArgs(['node', '--state-dir'], 'node', options), /expects a value/);
  });
});
