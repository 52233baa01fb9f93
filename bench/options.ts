/** Command line of `npm run bench -- [flags]`. */

export const MEASUREMENTS = ['index', 'size', 'ttfb', 'fuse', 'fusetree', 'python', 'node', 'controller'] as const;
export type Measurement = (typeof MEASUREMENTS)[number];

export interface BenchOptions {
  readonly quick: boolean;
  readonly slow: boolean;
  readonly only: ReadonlySet<Measurement>;
  /** Repetitions of the expensive measurements (index runs, full pulls, cold starts, sequential reads). */
  readonly runs: number;
  /** Random files for time to first byte. */
  readonly files: number;
  /** Spans sampled by the FUSE 4 KiB random reads. */
  readonly randomReads: number;
  /** --slow: added latency per request and the shared bandwidth. */
  readonly latencyMs: number;
  readonly mbitPerSecond: number;
  readonly seed: number;
}

export const USAGE = `usage: npm run bench -- [--quick] [--slow] [--only index,size,ttfb,fuse,fusetree,python,node,controller] [--runs N] [--files N] [--random-reads N]
  --quick          a few-minute run: 2 runs of each expensive measurement, 3 of the layers indexed alone,
                   1 and 4 layers at once, 50 files, 50 random reads, small images for the node plugin
  --slow           put a throttling proxy (20 ms per request, 200 Mbit/s shared) between clients and the registry
  --latency-ms N   --slow latency per request (default 20)
  --mbit N         --slow bandwidth in Mbit/s (default 200)
  --only LIST      run only these measurements (setup always pushes and indexes the debian, synthetic and text
                   images once; the python image only for python)
  --runs N         repetitions of index runs, full pulls, cold starts and sequential reads (default 3; --quick 2)
  --files N        random files for time to first byte (default 200; --quick 50)
  --random-reads N spans sampled by the FUSE 4 KiB random reads (default 200; --quick 50)
  --seed N         seed of the random choices (default 1)
  --help           this text`;

export function parseOptions(argv: readonly string[]): BenchOptions {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}\n${USAGE}`);
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (['quick', 'slow', 'help'].includes(name)) flags.set(name, true);
    else {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new Error(`--${name} needs a value\n${USAGE}`);
      flags.set(name, value);
    }
  }
  for (const name of flags.keys()) {
    if (!['quick', 'slow', 'help', 'only', 'runs', 'files', 'random-reads', 'latency-ms', 'mbit', 'seed'].includes(name)) throw new Error(`unknown flag --${name}\n${USAGE}`);
  }
  if (flags.has('help')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const quick = flags.has('quick');
  const number = (name: string, fallback: number): number => {
    const raw = flags.get(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
    return value;
  };
  const onlyRaw = flags.get('only');
  const only = new Set<Measurement>();
  if (typeof onlyRaw === 'string') {
    for (const name of onlyRaw.split(',')) {
      if (!(MEASUREMENTS as readonly string[]).includes(name)) throw new Error(`--only: unknown measurement ${name} (${MEASUREMENTS.join(', ')})`);
      only.add(name as Measurement);
    }
  } else for (const name of MEASUREMENTS) only.add(name);
  return {
    quick,
    slow: flags.has('slow'),
    only,
    runs: Math.round(number('runs', quick ? 2 : 3)),
    files: Math.round(number('files', quick ? 50 : 200)),
    randomReads: Math.round(number('random-reads', quick ? 50 : 200)),
    latencyMs: number('latency-ms', 20),
    mbitPerSecond: number('mbit', 200),
    seed: Math.round(number('seed', 1)),
  };
}
