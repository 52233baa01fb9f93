/**
 * The docs against the code, where a machine can check them:
 * - every `--flag` the docs give a `clip <command>` is in that command's `--help` (the built
 *   bin/clip), and every `npm run bench -- --flag` is in the bench's usage;
 * - every metric the docs list is in the registry of a live process (a real `clip node` with
 *   --metrics-addr, scraped), with the documented type and label values, and every metric that
 *   process exports is documented; the controller's metrics are checked against its metrics
 *   module once `clip controller` exists (it needs a Kubernetes API to run);
 * - every volume attribute docs/node.md names is one the parser accepts, and no other.
 *
 * Where flags are found (docs/*.md and README.md):
 * - code (fenced shell blocks, inline code spans): `clip <command> ... --flag` on one logical line
 *   (backslash continuations joined; a `#` comment ends it);
 * - tables with a `flag` column: the flags of the first column belong to the `clip <command>` named
 *   last before the table;
 * - prose, one sentence at a time: "flags (`index`, `mount`): `--a`, `--b`" means every listed
 *   command has each flag; otherwise the flags of a sentence that names `clip <command>`s belong to
 *   one of them. A flag in a sentence that names no command (a V8 flag, say) is not checked.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import client from 'prom-client';
import { USAGE as BENCH_USAGE } from '../bench/options.js';
import { DISK_WRITE_FAILURE_REASONS } from '../src/clipcore/metrics/names.js';
import { parsePublishRequest } from '../src/node/volume-spec.js';
import type { NodePublishVolumeRequest } from '../src/csi/types.js';
import { cleanupPluginDir, httpGet, makePluginDir, startPlugin, type PluginProcess } from './helpers/csi-plugin.js';
import { ephemeralContext, MOUNT_CAPABILITY } from './helpers/csi-client.js';
import { runClip } from './helpers/processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Doc {
  name: string;
  text: string;
}

async function readDocs(): Promise<Doc[]> {
  const names = ['README.md', ...(await readdir(join(ROOT, 'docs'))).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];
  return Promise.all(names.map(async (name) => ({ name, text: await readFile(join(ROOT, name), 'utf8') })));
}

/** A document cut into fenced code blocks, tables and prose paragraphs, in order. */
type Block = { kind: 'code'; lang: string; lines: string[] } | { kind: 'table'; rows: string[][] } | { kind: 'prose'; text: string };

function blocksOf(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  let prose: string[] = [];
  const endProse = (): void => {
    if (prose.length > 0) blocks.push({ kind: 'prose', text: prose.join(' ') });
    prose = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const fence = /^\s*```(\w*)/.exec(line);
    if (fence) {
      endProse();
      const code: string[] = [];
      for (i++; i < lines.length && !/^\s*```/.test(lines[i] as string); i++) code.push(lines[i] as string);
      blocks.push({ kind: 'code', lang: fence[1] ?? '', lines: code });
    } else if (line.startsWith('|')) {
      endProse();
      const rows: string[][] = [];
      for (; i < lines.length && (lines[i] as string).startsWith('|'); i++) {
        const cells = (lines[i] as string).split(/(?<!\\)\|/).slice(1, -1).map((cell) => cell.trim());
        if (!cells.every((cell) => /^:?-+:?$/.test(cell))) rows.push(cells);
      }
      i--;
      blocks.push({ kind: 'table', rows });
    } else if (line.trim() === '' || line.startsWith('#')) {
      endProse();
      if (line.startsWith('#')) blocks.push({ kind: 'prose', text: line });
    } else prose.push(line);
  }
  endProse();
  return blocks;
}

const inlineCode = (text: string): string[] => [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
const flagsIn = (text: string): string[] => [...text.matchAll(/(?<![\w-])--[a-z0-9][a-z0-9-]*/g)].map((m) => m[0]);

/** `clip <command> ...flags` invocations in one line of code (comments dropped). */
function invocations(line: string): Array<{ command: string; flags: string[] }> {
  const code = line.replace(/(^|\s)#.*$/, '');
  const found: Array<{ command: string; flags: string[] }> = [];
  const starts = [...code.matchAll(/(?:^|[\s/`(])clip\s+([a-z][a-z-]*)\b/g)];
  for (const [k, match] of starts.entries()) {
    const end = starts[k + 1]?.index ?? code.length;
    const rest = code.slice((match.index ?? 0) + match[0].length, end).split(/\s(?:\||&&|;)\s/)[0] as string;
    found.push({ command: match[1] as string, flags: flagsIn(rest) });
  }
  return found;
}

interface FlagClaim {
  where: string;
  flag: string;
  /** The flag must be in each of these commands' help (`all`), or in one of them (`any`). */
  commands: string[];
  mode: 'all' | 'any';
}

function flagClaims(doc: Doc): { claims: FlagClaim[]; commands: Array<{ where: string; command: string }>; bench: Array<{ where: string; flag: string }> } {
  const claims: FlagClaim[] = [];
  const commands: Array<{ where: string; command: string }> = [];
  const bench: Array<{ where: string; flag: string }> = [];
  let lastCommand: string | undefined;
  const fromCode = (line: string, where: string): void => {
    for (const { command, flags } of invocations(line)) {
      commands.push({ where, command });
      lastCommand = command;
      for (const flag of flags) claims.push({ where, flag, commands: [command], mode: 'all' });
    }
    const benchRun = /npm run bench -- (.*)/.exec(line.replace(/(^|\s)#.*$/, ''));
    if (benchRun) for (const flag of flagsIn(benchRun[1] as string)) bench.push({ where, flag });
  };
  for (const block of blocksOf(doc.text)) {
    if (block.kind === 'code') {
      if (!['', 'sh', 'bash', 'shell', 'console'].includes(block.lang)) continue;
      const joined = block.lines.join('\n').replace(/\\\n\s*/g, ' ').split('\n');
      for (const line of joined) fromCode(line, `${doc.name}: ${line.trim().slice(0, 80)}`);
    } else if (block.kind === 'table') {
      const header = block.rows[0]?.map((cell) => cell.toLowerCase()) ?? [];
      const tableCommand = lastCommand;
      for (const row of block.rows) for (const cell of row) for (const code of inlineCode(cell)) fromCode(code, `${doc.name}: table cell ${cell.slice(0, 60)}`);
      if (header[0] === 'flag') {
        assert.ok(tableCommand, `${doc.name}: a flag table before any \`clip <command>\``);
        for (const row of block.rows.slice(1)) {
          for (const flag of flagsIn(row[0] ?? '')) claims.push({ where: `${doc.name}: flag table of clip ${tableCommand}`, flag, commands: [tableCommand], mode: 'all' });
        }
      }
    } else {
      for (const sentence of block.text.split(/(?<=[.;])\s+(?=[A-Z`(*])/)) {
        const spans = inlineCode(sentence);
        for (const code of spans) fromCode(code, `${doc.name}: \`${code}\``);
        const flags = spans.filter((code) => code.startsWith('--')).map((code) => flagsIn(code)[0] as string);
        if (flags.length === 0) continue;
        const listed = /flags \(((?:`[a-z-]+`(?:,\s*)?)+)\)/.exec(sentence);
        const where = `${doc.name}: "${sentence.slice(0, 100)}"`;
        if (listed) {
          const names = inlineCode(listed[1] as string);
          for (const flag of flags) claims.push({ where, flag, commands: names, mode: 'all' });
          continue;
        }
        const named = [...new Set(spans.flatMap((code) => invocations(code).map((i) => i.command)))];
        if (named.length > 0) for (const flag of flags) claims.push({ where, flag, commands: named, mode: named.length === 1 ? 'all' : 'any' });
      }
    }
  }
  return { claims, commands, bench };
}

/** Long flags of `clip <command> --help` (the global ones included). */
async function helpFlags(command: string): Promise<Set<string>> {
  const help = await runClip(command === '' ? ['--help'] : [command, '--help']);
  assert.equal(help.code, 0, `clip ${command} --help: ${help.stderr}`);
  return new Set(flagsIn(help.stdout.split('\n').filter((line) => /^\s+(-\w, )?--/.test(line)).join('\n')));
}

/** The sub-commands `clip --help` lists. */
async function clipCommands(): Promise<string[]> {
  const help = await runClip(['--help']);
  const section = help.stdout.split(/^Commands:$/m)[1] ?? '';
  return [...section.matchAll(/^\s{2}([a-z][a-z-]*)\b/gm)].map((m) => m[1] as string).filter((name) => name !== 'help');
}

describe('docs agree with the code', () => {
  let docs: Doc[];
  let commands: string[];

  before(async () => {
    docs = await readDocs();
    commands = await clipCommands();
  });

  test('every flag given to a clip command is in its --help, every bench flag in the bench usage', async () => {
    const globals = await helpFlags('');
    const help = new Map<string, Set<string>>();
    for (const command of commands) help.set(command, new Set([...(await helpFlags(command)), ...globals]));
    const problems: string[] = [];
    const perDoc = new Map<string, number>();
    const benchFlags = new Set(flagsIn(BENCH_USAGE));
    for (const doc of docs) {
      const { claims, commands: named, bench } = flagClaims(doc);
      perDoc.set(doc.name, claims.length);
      for (const { where, command } of named) if (!help.has(command)) problems.push(`${where}: \`clip ${command}\` is not a command (clip --help lists ${commands.join(', ')})`);
      for (const claim of claims) {
        const known = claim.commands.filter((command) => help.get(command)?.has(claim.flag));
        const ok = claim.mode === 'all' ? known.length === claim.commands.length : known.length > 0;
        if (!ok) problems.push(`${claim.where}: ${claim.flag} is not a flag of clip ${claim.commands.filter((c) => !known.includes(c)).join(' / ')}`);
      }
      for (const { where, flag } of bench) if (!benchFlags.has(flag)) problems.push(`${where}: ${flag} is not a bench flag`);
    }
    assert.deepEqual(problems, []);
    // The extraction finds what is there (a parser that found nothing would pass anything).
    assert.ok((perDoc.get('README.md') ?? 0) >= 15, `README.md: ${perDoc.get('README.md')} flags found`);
    assert.ok((perDoc.get('docs/node.md') ?? 0) >= 15, `docs/node.md: ${perDoc.get('docs/node.md')} flags found`);
    assert.ok((perDoc.get('docs/cache.md') ?? 0) >= 3, `docs/cache.md: ${perDoc.get('docs/cache.md')} flags found`);
  });

  describe('metrics', () => {
    let dir: string;
    let plugin: PluginProcess | undefined;
    let scrape: Exposition;

    before(async () => {
      dir = await makePluginDir('docs-metrics-');
      plugin = await startPlugin(dir);
      const { status, body } = await httpGet(plugin.metricsAddress, '/metrics');
      assert.equal(status, 200);
      scrape = parseExposition(body);
    });

    after(async () => {
      await plugin?.stop();
      if (dir) await cleanupPluginDir(dir);
    });

    test('every metric in the docs is in a live clip node (or the controller), with its type and label values; every exported metric is documented', async () => {
      const documented = docs.flatMap(metricRows);
      assert.ok(documented.length >= 20, `${documented.length} metric rows found`);
      const controllerRows = documented.filter((row) => row.name.startsWith('clip_controller_'));
      const nodeRows = documented.filter((row) => !row.name.startsWith('clip_controller_'));
      const problems: string[] = [];
      checkRows(nodeRows, scrape, problems);
      // What the node exports beyond Node.js's own process metrics (prefixed clip_node_) is documented.
      const defaults = await defaultMetricNames();
      for (const name of scrape.types.keys()) {
        if (defaults.has(name.replace(/^clip_node_/, '')) && name.startsWith('clip_node_')) continue;
        if (!nodeRows.some((row) => row.name === name)) problems.push(`clip node exports ${name}, which no doc lists`);
      }
      if (commands.includes('controller')) {
        // `clip controller` needs a Kubernetes API to run: its registry is built in-process from
        // its metrics module (src/controller/metrics.ts), the one file holding its names.
        const controller = await controllerExposition();
        checkRows(controllerRows, controller, problems);
        for (const name of controller.types.keys()) {
          if (defaults.has(name.replace(/^clip_controller_/, ''))) continue;
          if (!controllerRows.some((row) => row.name === name)) problems.push(`clip controller exports ${name}, which no doc lists`);
        }
      } else {
        for (const row of controllerRows) problems.push(`${row.where}: ${row.name} is documented but there is no clip controller`);
      }
      assert.deepEqual(problems, []);
    });

    test('metric names in prose and PromQL are exported (by clip node or clip controller); the disk-cache write-failure reasons are the code\'s', async () => {
      const problems: string[] = [];
      const expositions = commands.includes('controller') ? [scrape, await controllerExposition()] : [scrape];
      const exported = (name: string): boolean =>
        expositions.some((exposition) => {
          const histogram = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
          return name.endsWith('_')
            ? [...exposition.types.keys()].some((family) => family.startsWith(name))
            : exposition.types.has(name) || (histogram !== undefined && exposition.types.get(histogram) === 'histogram');
        });
      for (const doc of docs.filter((d) => d.name === 'docs/metrics.md' || d.name === 'docs/node.md')) {
        for (const block of blocksOf(doc.text)) {
          const names =
            block.kind === 'code' && block.lang === 'promql'
              ? block.lines.flatMap((line) => [...line.matchAll(/\bclip_[a-z0-9_]+/g)].map((m) => m[0]))
              : block.kind === 'prose'
                ? inlineCode(block.text).flatMap((code) => [...code.matchAll(/\bclip_[a-z0-9_]+/g)].map((m) => m[0]))
                : [];
          for (const name of names) {
            if (!exported(name)) problems.push(`${doc.name}: ${name} is exported neither by clip node nor by clip controller`);
          }
        }
      }
      assert.deepEqual(problems, []);
      const row = docs.flatMap(metricRows).find((r) => r.name === 'clip_disk_cache_write_failures_total');
      assert.deepEqual(row?.labels.get('reason')?.slice().sort(), [...DISK_WRITE_FAILURE_REASONS].sort());
      assert.match(scrape.help.get('clip_disk_cache_write_failures_total') ?? '', new RegExp(DISK_WRITE_FAILURE_REASONS.join(', ')));
    });
  });

  test('the volume attributes of docs/node.md are the parser\'s', () => {
    const node = docs.find((doc) => doc.name === 'docs/node.md');
    assert.ok(node);
    // The YAML examples' volumeAttributes, and the keys the prose lists.
    const inYaml = new Map<string, string>();
    for (const block of blocksOf(node.text)) {
      if (block.kind !== 'code' || block.lang !== 'yaml') continue;
      let indent = -1;
      for (const line of block.lines) {
        const start = /^(\s*)volumeAttributes:\s*$/.exec(line);
        if (start) {
          indent = (start[1] as string).length;
          continue;
        }
        const entry = /^(\s*)([\w./-]+):\s*(\S+)/.exec(line);
        if (indent >= 0 && entry && (entry[1] as string).length > indent) inYaml.set(entry[2] as string, entry[3] as string);
        else if (indent >= 0 && line.trim() !== '') indent = -1;
      }
    }
    const sentence = /`volume_context` keys: ([^.]*)/.exec(node.text.replace(/\s+/g, ' '));
    assert.ok(sentence, 'docs/node.md lists the volume_context keys');
    const inProse = inlineCode(sentence[1] as string).filter((key) => /^[a-zA-Z]+$/.test(key));
    assert.deepEqual([...inYaml.keys()].sort(), [...inProse].sort(), 'the examples show every key the prose lists');

    // The parser names the keys it knows when it refuses another one.
    // A kubelet inline-volume request with this volume_context (the image from `context`).
    const request = (context: Record<string, string>): NodePublishVolumeRequest => {
      const { image = '', ...rest } = context;
      const kubelet = ephemeralContext(image, { name: 'pod', uid: 'uid' }, rest);
      return { volume_id: 'v', target_path: '/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/v/mount', volume_capability: MOUNT_CAPABILITY(), volume_context: kubelet, readonly: false, secrets: {}, publish_context: {}, staging_target_path: '' };
    };
    let known: string[] = [];
    assert.throws(
      () => parsePublishRequest(request({ image: 'alpine:3.20', imgae: 'typo' })),
      (err: Error) => {
        known = (/known: ([^)]*)\)/.exec(err.message)?.[1] ?? '').split(', ');
        return true;
      },
    );
    assert.deepEqual(known.slice().sort(), [...inProse].sort());
    // And takes each documented example value.
    const spec = parsePublishRequest(request(Object.fromEntries(inYaml)));
    assert.equal(spec.image, inYaml.get('image'));
    assert.equal(spec.pullPolicy, inYaml.get('pullPolicy'));
    assert.match(JSON.stringify(spec.platform), new RegExp((inYaml.get('platform') ?? '').split('/').join('.*')));
    for (const policy of /`pullPolicy` \(?optional: ([A-Za-z |]+)/.exec(node.text)?.[1]?.split('|').map((p) => p.trim()) ?? ['IfNotPresent', 'Always']) {
      assert.equal(parsePublishRequest(request({ image: 'alpine:3.20', pullPolicy: policy })).pullPolicy, policy);
    }
  });
});

interface MetricRow {
  where: string;
  name: string;
  type: string;
  /** Documented values per label (empty: the label is named without values). */
  labels: Map<string, string[]>;
}

/** Rows of the tables whose first column is `metric`. */
function metricRows(doc: Doc): MetricRow[] {
  const rows: MetricRow[] = [];
  for (const block of blocksOf(doc.text)) {
    if (block.kind !== 'table' || block.rows[0]?.[0]?.toLowerCase() !== 'metric') continue;
    const header = (block.rows[0] ?? []).map((cell) => cell.toLowerCase());
    const typeColumn = header.indexOf('type');
    const labelColumn = header.indexOf('labels');
    for (const row of block.rows.slice(1)) {
      const name = inlineCode(row[0] ?? '')[0];
      if (name === undefined) continue;
      const labels = new Map<string, string[]>();
      for (const part of (row[labelColumn] ?? '').split(';')) {
        const valued = /`(\w+)`\s*=\s*(.+)/.exec(part);
        if (valued) labels.set(valued[1] as string, (valued[2] as string).split(',').map((value) => value.trim()));
        else for (const label of inlineCode(part)) labels.set(label, []);
      }
      rows.push({ where: doc.name, name, type: row[typeColumn] ?? '', labels });
    }
  }
  return rows;
}

interface Exposition {
  types: Map<string, string>;
  help: Map<string, string>;
  /** Sample names (with _bucket, _sum, _count) → the label sets seen. */
  samples: Map<string, Array<Record<string, string>>>;
}

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples = new Map<string, Array<Record<string, string>>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) types.set(type[1] as string, type[2] as string);
    const helpLine = /^# HELP (\S+) (.*)/.exec(line);
    if (helpLine) help.set(helpLine[1] as string, helpLine[2] as string);
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s/.exec(line);
    if (sample && !line.startsWith('#')) {
      const labels: Record<string, string> = {};
      for (const pair of (sample[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1] as string] = pair[2] as string;
      samples.set(sample[1] as string, [...(samples.get(sample[1] as string) ?? []), labels]);
    }
  }
  return { types, help, samples };
}

/** Documented rows against an exposition: present, same type, no label value the docs do not list. */
function checkRows(rows: MetricRow[], exposition: Exposition, problems: string[]): void {
  for (const row of rows) {
    const type = exposition.types.get(row.name);
    if (type === undefined) {
      problems.push(`${row.where}: ${row.name} is not exported`);
      continue;
    }
    if (type !== row.type) problems.push(`${row.where}: ${row.name} is documented as a ${row.type}, exported as a ${type}`);
    const series = [...exposition.samples].filter(([name]) => name === row.name || name.startsWith(`${row.name}_`)).flatMap(([, sets]) => sets);
    for (const labels of series) {
      for (const [label, value] of Object.entries(labels)) {
        if (label === 'le' || label === 'quantile') continue;
        const documented = row.labels.get(label);
        if (documented === undefined) problems.push(`${row.where}: ${row.name} has label ${label}, which the docs do not list`);
        else if (documented.length > 0 && !documented.includes(value)) problems.push(`${row.where}: ${row.name}{${label}="${value}"}: the docs list ${documented.join(', ')}`);
      }
    }
  }
}

/** Names of prom-client's default (process and Node.js) metrics, unprefixed. */
async function defaultMetricNames(): Promise<Set<string>> {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  return new Set((await registry.getMetricsAsJSON()).map((metric) => metric.name));
}

/** The controller's metrics, from a registry its metrics module fills (imported only once it exists). */
async function controllerExposition(): Promise<Exposition> {
  const url = pathToFileURL(join(ROOT, 'dist/src/controller/metrics.js')).href;
  const module = (await import(url)) as { ControllerMetrics?: new (gauges: { queueDepth: () => number; inFlight: () => number }, registry?: client.Registry) => unknown };
  assert.ok(module.ControllerMetrics, 'src/controller/metrics.ts exports ControllerMetrics');
  const registry = new client.Registry();
  new module.ControllerMetrics({ queueDepth: () => 0, inFlight: () => 0 }, registry);
  return parseExposition(await registry.metrics());
}
