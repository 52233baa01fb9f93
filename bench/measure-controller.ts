/**
 * 6. The controller: the first NodePublishVolume of a provisioned volume (the debian image pinned
 *    by digest) on a node that has never seen the image,
 *    - when `clip controller` indexed it ahead (CreateVolume over its CSI socket, as the
 *      external-provisioner calls it): the node downloads the index from S3 (moto);
 *    - when the node indexes it itself (no S3), as without a controller;
 *    and the peak resident memory of the node plugin over that publish in both cases. Each run
 *    starts a fresh `clip node` with an empty state directory; the two cases alternate.
 */
import { readFile } from 'node:fs/promises';
import grpc from '@grpc/grpc-js';
import type { StringMap } from '../src/csi/types.js';
import { connectController, connectCsi, createVolumeUntilDone, MOUNT_CAPABILITY, type CsiClient } from '../test/helpers/csi-client.js';
import { cleanupPluginDir, makePluginDir, podVolume, startPlugin, type PluginProcess } from '../test/helpers/csi-plugin.js';
import { startControllerProcess, type ControllerProcess } from '../test/helpers/controller-process.js';
import { startS3, type S3Handle } from '../test/harness/s3.js';
import type { BenchContext } from './context.js';
import { CLIP_BIN, exec } from './proc.js';
import { pairedRatio, samples, value } from './results.js';
import { formatBytes, msSince, num, summarize } from './stats.js';

const SECTION = '6. Controller';
const BUCKET = 'clip-bench-indexes';

/** Peak resident memory of a process so far (VmHWM). */
export async function peakResidentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Publishes once on a fresh node (its own empty state directory); the plugin's time and peak memory. */
async function firstPublish(context: StringMap, volumeId: string, s3?: S3Handle): Promise<{ ms: number; peak: number; before: number; source: string }> {
  const dir = await makePluginDir('cbc-');
  let plugin: PluginProcess | undefined;
  let csi: CsiClient | undefined;
  try {
    const s3Args = s3 ? ['--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint] : [];
    plugin = await startPlugin(dir, ['--image-grace-seconds', '0', '--index-wait-seconds', '300', ...s3Args], s3 ? { env: s3.env } : {});
    csi = await connectCsi(plugin.socketPath);
    const pid = plugin.child.pid ?? 0;
    const before = await peakResidentBytes(pid);
    const volume = await podVolume(dir);
    const started = process.hrtime.bigint();
    for (let aborted = 0; ; aborted++) {
      try {
        await csi.NodePublishVolume(
          {
            volume_id: volumeId,
            target_path: volume.targetPath,
            volume_capability: MOUNT_CAPABILITY('MULTI_NODE_READER_ONLY'),
            readonly: true,
            volume_context: context,
          },
          600_000,
        );
        break;
      } catch (err) {
        if ((err as grpc.ServiceError).code !== grpc.status.ABORTED || aborted > 20) throw err;
      }
    }
    const ms = msSince(started);
    const peak = await peakResidentBytes(pid);
    const mounted = plugin.logs().find((line) => line.msg === 'image mounted');
    await csi.NodeUnpublishVolume({ volume_id: volumeId, target_path: volume.targetPath });
    return { ms, peak, before, source: String(mounted?.['index_source'] ?? 'unknown') };
  } finally {
    csi?.close();
    await plugin?.stop();
    await cleanupPluginDir(dir);
  }
}

export async function measureController(ctx: BenchContext): Promise<void> {
  const { results, options } = ctx;
  const help = await exec(CLIP_BIN, ['--help']).catch(() => undefined);
  if (!help || !/^\s+controller\b/m.test(help.stdout)) {
    results.skip(SECTION, 'first NodePublishVolume, image indexed ahead by the controller', '`clip controller` is not in this build');
    return;
  }
  const s3 = await startS3();
  let controller: ControllerProcess | undefined;
  const dir = await makePluginDir('cbc-ctl-');
  try {
    await s3.createBucket(BUCKET);
    controller = await startControllerProcess(
      dir,
      ['--no-kubernetes', '--s3-bucket', BUCKET, '--s3-endpoint', s3.endpoint, '--platforms', 'linux/amd64', '--create-volume-wait-seconds', '0'],
      s3.env,
    );
    const client = await connectController(controller.socketPath);
    const createStarted = process.hrtime.bigint();
    let created;
    try {
      created = await createVolumeUntilDone(client, {
        name: 'pvc-bench',
        volume_capabilities: [MOUNT_CAPABILITY('MULTI_NODE_READER_ONLY')],
        parameters: { image: ctx.debian.ref },
      });
    } finally {
      client.close();
    }
    const createMs = msSince(createStarted);
    const controllerPeak = await peakResidentBytes(controller.child.pid ?? 0);
    const { volume_id: volumeId, volume_context: context } = created.volume;

    const ahead: Array<{ ms: number; peak: number; before: number; source: string }> = [];
    const self: Array<{ ms: number; peak: number; before: number; source: string }> = [];
    for (let run = 0; run < options.runs; run++) {
      ahead.push(await firstPublish(context, volumeId, s3));
      self.push(await firstPublish(context, volumeId));
    }
    const sources = [...new Set(ahead.map((r) => r.source))].join(', ');
    if (sources !== 's3') results.note(`controller: the node's index came from ${sources}, not s3`);
    results.add({
      section: SECTION,
      name: 'first NodePublishVolume of a provisioned volume on a fresh node, image indexed ahead by the controller (the node downloads the index from S3)',
      clip: samples(summarize(ahead.map((r) => r.ms), 'ms')),
      comparison: { label: 'the node indexes the image itself (no controller, no S3)', figure: samples(summarize(self.map((r) => r.ms), 'ms')) },
      ratio: pairedRatio(
        ahead.map((r) => r.ms),
        self.map((r) => r.ms),
      ),
      note: `image: debian (${volumeId.slice(0, 16)}…); CreateVolume until the index was in S3 took ${num(createMs / 1000)} s, controller peak RSS ${formatBytes(controllerPeak)}; S3 is moto on loopback`,
    });
    const peak = (rows: typeof ahead): number => summarize(rows.map((r) => r.peak), 'B').p50;
    const aheadPeak = peak(ahead);
    const selfPeak = peak(self);
    results.add({
      section: SECTION,
      name: 'peak resident memory of clip node over that first publish (VmHWM), image indexed ahead by the controller',
      clip: value(aheadPeak, 'B', `${formatBytes(aheadPeak)} (median of n=${ahead.length})`),
      comparison: { label: 'the node indexes the image itself', figure: value(selfPeak, 'B', `${formatBytes(selfPeak)} (median of n=${self.length})`) },
      ratio: { value: aheadPeak / selfPeak, text: `${num(aheadPeak / selfPeak)}× (median ÷ median)` },
      note: `idle plugin before the publish: ${formatBytes(summarize(ahead.map((r) => r.before), 'B').p50)} peak`,
    });
  } finally {
    await controller?.stop();
    await s3.stop();
    await cleanupPluginDir(dir);
  }
}
