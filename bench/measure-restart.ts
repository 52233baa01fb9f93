/**
 * 5b. The node plugin going away under a running reader (docs/node.md, "Restarts"): a process
 * reads the files of a volume of the debian image in a loop, checking every byte, while
 * `clip node` is replaced by a new process started beside it (handover), or killed with kill -9 and
 * started again with `clip holder` keeping its connections. Measured: the longest single read the
 * reader sees (its stall), and the time from the new process's start until a read it answers
 * completes. Beside them, in the same run, what the same kill -9 costs without the holder (the
 * alternative: today's remount): how long reads fail with ENOTCONN, and how many fail.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ArchiveReader } from '../src/clipcore/index.js';
import { connectCsi, ephemeralContext, MOUNT_CAPABILITY, type CsiClient } from '../test/helpers/csi-client.js';
import { cleanupPluginDir, makePluginDir, podVolume, startPlugin, type PluginProcess } from '../test/helpers/csi-plugin.js';
import { startLoggedProcess, type LoggedProcess } from '../test/helpers/logged-process.js';
import { startVolumeReader as startReader, type VolumeReader } from '../test/helpers/volume-reader-client.js';
import type { BenchContext } from './context.js';
import { CLIP_BIN } from './proc.js';
import { samples } from './results.js';
import { msSince, num, seededRandom, summarize } from './stats.js';
import { pick, regularFiles } from './tree.js';

const SECTION = '5. Node plugin';
const FILES = 60;

async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Reads one file through the mount in a child process; resolves when it completes (with its exit code). */
function probeRead(path: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('cat', [path], { stdio: 'ignore' });
    child.on('close', (code) => resolve(code ?? -1));
  });
}

export async function measureRestarts(ctx: BenchContext): Promise<void> {
  const { options, results } = ctx;
  const lister = await ArchiveReader.open(ctx.debian.clipPath);
  const chosen = pick(
    regularFiles(lister).filter((f) => f.size > 0 && f.size < 256 * 1024),
    FILES,
    seededRandom(options.seed + 11),
  );
  await lister.close();
  const runs = options.runs;
  const handoverStall: number[] = [];
  const crashStall: number[] = [];
  const crashFirstServed: number[] = [];
  const remountBroken: number[] = [];
  const remountErrors: number[] = [];
  let wrong = 0;

  const dir = await makePluginDir('cbr-');
  const processes: Array<PluginProcess | LoggedProcess> = [];
  const clients: CsiClient[] = [];
  let reader: VolumeReader | undefined;
  try {
    const start = async (extra: string[] = []): Promise<PluginProcess> => {
      const plugin = await startPlugin(dir, ['--image-grace-seconds', '0', ...extra]);
      processes.push(plugin);
      return plugin;
    };
    let plugin = await start();
    const holder = await startLoggedProcess(CLIP_BIN, ['holder', '--socket', join(plugin.stateDir, 'holder.sock')], { startedMessage: 'holder started', name: 'clip holder' });
    processes.push(holder);
    let csi = await connectCsi(plugin.socketPath);
    clients.push(csi);
    const volume = await podVolume(dir);
    await csi.NodePublishVolume({
      volume_id: volume.volumeId,
      target_path: volume.targetPath,
      volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_WRITER'),
      readonly: true,
      volume_context: ephemeralContext(ctx.debian.ref, { name: volume.podName, uid: volume.podUid }),
    }, 600_000);
    await plugin.waitForLog((line) => line.msg === 'the FUSE connection holder answers again; putting every connection there', 20_000);
    // Expected bytes: from the mount itself, read once (the data is then in the node's cache).
    const files = await Promise.all(
      chosen.map(async (file) => {
        const path = join(volume.targetPath, file.path);
        return { path, sha256: createHash('sha256').update(await readFile(path)).digest('hex') };
      }),
    );
    reader = startReader(files);
    const readsGrow = (count: number): Promise<void> => {
      const goal = (reader as VolumeReader).status().reads + count;
      return until(() => (reader as VolumeReader).status().reads >= goal, 120_000, 'the reader');
    };
    await readsGrow(50);

    const window = async (event: () => Promise<void>): Promise<number> => {
      // The reader's longest read is cumulative: a fresh reader per window.
      reader?.child.kill('SIGKILL');
      reader = startReader(files);
      await readsGrow(20);
      const before = reader.status().longestMs;
      await event();
      await readsGrow(FILES);
      const status = reader.status();
      wrong += status.errorCount + status.mismatches.length;
      return Math.max(before, status.longestMs);
    };

    for (let run = 0; run < runs; run++) {
      // A rolling update with maxSurge: the new process starts beside the old one.
      handoverStall.push(
        await window(async () => {
          const old = plugin;
          plugin = await start();
          await old.waitForLog((line) => line.msg === 'handed over every FUSE connection; this process serves nothing more');
          await old.stop();
          for (const client of clients.splice(0)) client.close();
          csi = await connectCsi(plugin.socketPath);
          clients.push(csi);
        }),
      );
      // kill -9, then a new start that takes the connections back from the holder.
      crashStall.push(
        await window(async () => {
          await plugin.kill9();
          const probe = probeRead(files[0]?.path ?? '');
          const started = process.hrtime.bigint();
          plugin = await start();
          if ((await probe) !== 0) throw new Error('a read across the crash failed');
          crashFirstServed.push(msSince(started));
          for (const client of clients.splice(0)) client.close();
          csi = await connectCsi(plugin.socketPath);
          clients.push(csi);
        }),
      );
    }

    // The alternative in the same run: the same kill -9 with no holder (the volume is mounted again).
    reader?.child.kill('SIGKILL');
    reader = undefined;
    await holder.stop();
    for (let run = 0; run < runs; run++) {
      await plugin.kill9();
      const killed = process.hrtime.bigint();
      plugin = await start(['--no-holder']);
      let errors = 0;
      await until(
        async () => {
          const code = await probeRead(files[run % files.length]?.path ?? '');
          if (code !== 0) errors++;
          return code === 0;
        },
        120_000,
        'the remounted volume',
      );
      remountBroken.push(msSince(killed));
      remountErrors.push(errors);
    }
  } finally {
    reader?.child.kill('SIGKILL');
    for (const client of clients) client.close();
    for (const child of processes) await child.stop().catch(() => undefined);
    await cleanupPluginDir(dir);
  }

  const remount = summarize(remountBroken, 'ms');
  const remountFigure = { label: 'the same kill -9 without clip holder (volume mounted again): reads fail with ENOTCONN until then', figure: samples(remount) };
  const stallRow = (values: number[], name: string, id: string): void => {
    const stall = summarize(values, 'ms');
    results.add({
      id,
      section: SECTION,
      name,
      clip: samples(stall),
      comparison: remountFigure,
      ratio: { value: stall.p50 / remount.p50, text: `${num(stall.p50 / remount.p50)}× (p50 ÷ p50), and no failed read against ${num(summarize(remountErrors, '').p50)} failed probes per restart` },
      note: `longest single read of a reader looping over ${FILES} files of a read-only volume of the debian image, every byte checked; reads that failed or returned wrong bytes in all windows: ${wrong}`,
    });
  };
  stallRow(handoverStall, 'restart with handover (new process beside the old, maxSurge): longest read a running reader sees', 'node.restart.handover-stall');
  stallRow(crashStall, 'kill -9 and start again with clip holder: longest read a running reader sees', 'node.restart.crash-stall');
  const served = summarize(crashFirstServed, 'ms');
  results.add({
    id: 'node.restart.first-served',
    section: SECTION,
    name: 'kill -9 and start again with clip holder: from the new process\'s start to a read it answers (a read made while no process served)',
    clip: samples(served),
    comparison: remountFigure,
    ratio: { value: served.p50 / remount.p50, text: `${num(served.p50 / remount.p50)}× (p50 ÷ p50)` },
  });
}
