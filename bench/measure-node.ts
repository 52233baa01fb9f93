/**
 * 5. The node plugin (`clip node`, driven over its CSI socket as kubelet does, with the tests'
 *    CSI client and plugin helpers):
 *    - NodePublishVolume latency: image never seen (indexed on the fly; outside --quick, the first
 *      --runs of them each paired with a full pull run right before or after it), index on the node
 *      but the image not mounted, image already mounted by another volume; against the full pull;
 *    - resident memory of the plugin process with 10 images mounted, against the idle plugin.
 * Volumes are published as kubelet publishes inline ephemeral volumes (readonly false: an overlay
 * with a private upper layer over the image mount).
 */
import { join } from 'node:path';
import grpc from '@grpc/grpc-js';
import { ArchiveReader } from '../src/clipcore/index.js';
import { readMountTable } from '../src/node/mount-utils.js';
import { connectCsi, ephemeralContext, MOUNT_CAPABILITY, type CsiClient } from '../test/helpers/csi-client.js';
import { cleanupPluginDir, makePluginDir, podVolume, startPlugin, type PluginProcess, type PodVolume } from '../test/helpers/csi-plugin.js';
import { pushImageDetailed, type LayerInput } from '../test/harness/image-builder.js';
import { buildTarLayer } from '../test/harness/tar-layer.js';
import type { BenchContext } from './context.js';
import { CONTAINERD_PULL_LABEL } from './containerd.js';
import { fullPull, TAR_PULL_LABEL, UMOCI_PULL_LABEL, type FullPull } from './full-pull.js';
import { rawLayers } from './images.js';
import { residentBytes } from './mount.js';
import { CLIP_BIN, exec, sh } from './proc.js';
import { pairedRatio, samples, type Ratio } from './results.js';
import { formatBytes, msSince, num, seededRandom, summarize, type Summary } from './stats.js';
import { pick, regularFiles } from './tree.js';

const SECTION = '5. Node plugin';
const IMAGES = 10;
const FILES_READ_PER_IMAGE = 20;
/**
 * When the plugin's memory is measured again after the release: by then its idle index workers
 * have ended (10 s) and its periodic release of freed memory (every 15 s) has run at least once.
 */
const LATER_MS = 30_000;

export async function nodePluginAvailability(): Promise<{ available: true } | { available: false; reason: string }> {
  const help = await exec(CLIP_BIN, ['--help']).catch((err: Error) => ({ code: -1, stderr: err.message, stdout: '' }));
  if (help.code !== 0 || !/^\s+node\b/m.test(help.stdout)) {
    return { available: false, reason: `\`clip node\` is not in this build (clip --help lists no node command)` };
  }
  return { available: true };
}

interface Published {
  readonly volume: PodVolume;
  readonly image: string;
}

async function publish(csi: CsiClient, volume: PodVolume, image: string): Promise<{ ms: number; aborted: number }> {
  const started = process.hrtime.bigint();
  let aborted = 0;
  for (;;) {
    try {
      await csi.NodePublishVolume(
        {
          volume_id: volume.volumeId,
          target_path: volume.targetPath,
          volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_WRITER'),
          readonly: false,
          volume_context: ephemeralContext(image, { name: volume.podName, uid: volume.podUid }),
          secrets: {},
        },
        600_000,
      );
      return { ms: msSince(started), aborted };
    } catch (err) {
      // ABORTED: the image is still being indexed; kubelet retries (with backoff), we retry at once.
      if ((err as grpc.ServiceError).code !== grpc.status.ABORTED || aborted > 20) throw err;
      aborted++;
    }
  }
}

async function unpublish(csi: CsiClient, volume: PodVolume): Promise<void> {
  await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
}

/** FUSE mounts (image mounts and their binds) under the plugin's directory. */
async function fuseMountCount(dir: string): Promise<number> {
  return (await readMountTable()).filter((entry) => entry.fsType.startsWith('fuse') && entry.mountPoint.startsWith(`${dir}/`)).length;
}

async function waitForNoFuseMounts(dir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await fuseMountCount(dir)) > 0) {
    if (Date.now() > deadline) throw new Error('image mounts were not released after their grace period');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function measureNodePlugin(ctx: BenchContext): Promise<void> {
  const { options, results } = ctx;
  const availability = await nodePluginAvailability();
  if (!availability.available) {
    results.skip(SECTION, 'NodePublishVolume latency (index present)', availability.reason);
    results.skip(SECTION, `resident memory with ${IMAGES} images mounted`, availability.reason);
    return;
  }
  // Ten distinct images: a one-file layer of their own, then (full run) every debian layer or
  // (--quick) one debian layer each, so that --quick does not index ten 300 MB images.
  const debianLayers = ctx.debian.image.layers;
  const images: string[] = [];
  for (let i = 0; i < IMAGES; i++) {
    const own = buildTarLayer([{ type: 'file', path: 'bench-image-id', content: `image ${i}\n` }]);
    const shared = options.quick ? [debianLayers[i % debianLayers.length]] : debianLayers;
    const layers: LayerInput[] = [own, ...(await rawLayers(shared.filter((l) => l !== undefined)))];
    await pushImageDetailed({ url: ctx.registry.url }, 'bench/node', `image-${i}`, layers);
    images.push(`${ctx.proxies.host}/bench/node:image-${i}`);
  }
  const imageKind = options.quick ? 'one debian layer + one file each (--quick)' : 'the debian image + one file each';
  const dir = await makePluginDir('cbn-');
  let plugin: PluginProcess | undefined;
  let csi: CsiClient | undefined;
  const published: Published[] = [];
  try {
    plugin = await startPlugin(dir, ['--image-grace-seconds', '2', '--index-wait-seconds', '300']);
    csi = await connectCsi(plugin.socketPath);
    const pid = plugin.child.pid ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const idleRss = await residentBytes(pid);

    // Never seen: the publish indexes the image. Outside --quick (where the images are small),
    // the first --runs publishes are each paired with a full pull of the debian image run right
    // before or after it (alternating), as the other paired rows are.
    const lister = await ArchiveReader.open(ctx.debian.clipPath);
    const candidates = regularFiles(lister).filter((f) => f.size > 0);
    await lister.close();
    const pullFile = pick(candidates, 1, seededRandom(options.seed + 3))[0];
    const neverSeen: number[] = [];
    const pairedPulls: FullPull[] = [];
    let abortedTotal = 0;
    for (const [i, image] of images.entries()) {
      const volume = await podVolume(dir);
      const pairWith = !options.quick && i < options.runs && pullFile !== undefined ? pullFile : undefined;
      if (pairWith && i % 2 === 1) pairedPulls.push(await fullPull(ctx, `node-${i}`, pairWith));
      const { ms, aborted } = await publish(csi, volume, image);
      if (pairWith && i % 2 === 0) pairedPulls.push(await fullPull(ctx, `node-${i}`, pairWith));
      neverSeen.push(ms);
      abortedTotal += aborted;
      published.push({ volume, image });
    }
    const mountedRss = await residentBytes(pid);
    // Read some files of every image through its volume (child processes: cat).
    const random = seededRandom(options.seed + 2);
    const quote = (p: string): string => `'${p.replaceAll("'", `'\\''`)}'`;
    const readSome = async (): Promise<void> => {
      for (const { volume } of published) {
        const layerFiles = options.quick ? [] : pick(candidates, FILES_READ_PER_IMAGE, random);
        const paths = ['bench-image-id', ...layerFiles.map((f) => f.path)].map((p) => quote(join(volume.targetPath, p)));
        await sh(`cat ${paths.join(' ')} > /dev/null`);
      }
    };
    await readSome();
    const readRss = await residentBytes(pid);

    // Already mounted: another volume of an image in use.
    const bindOnly: number[] = [];
    for (let run = 0; run < options.runs; run++) {
      const volume = await podVolume(dir);
      bindOnly.push((await publish(csi, volume, images[run % IMAGES] as string)).ms);
      await unpublish(csi, volume);
    }
    for (const { volume } of published.splice(0)) await unpublish(csi, volume);
    await waitForNoFuseMounts(dir, 30_000);

    // Index on the node, image not mounted.
    const indexPresent: number[] = [];
    for (let run = 0; run < options.runs; run++) {
      const volume = await podVolume(dir);
      indexPresent.push((await publish(csi, volume, images[run % IMAGES] as string)).ms);
      await unpublish(csi, volume);
      await waitForNoFuseMounts(dir, 30_000);
    }
    const afterRss = await residentBytes(pid);
    // Idle index workers end IDLE_WORKER_MS after their last layer, and the plugin hands freed
    // memory back every 15 s: wait for both.
    await new Promise((resolve) => setTimeout(resolve, LATER_MS));
    const laterRss = await residentBytes(pid);

    // A fresh plugin process (same state directory: the indexes are on the node), ten images mounted.
    csi.close();
    await plugin.stop();
    plugin = await startPlugin(dir, ['--image-grace-seconds', '2', '--index-wait-seconds', '300']);
    csi = await connectCsi(plugin.socketPath);
    const freshPid = plugin.child.pid ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const freshIdleRss = await residentBytes(freshPid);
    for (const image of images) {
      const volume = await podVolume(dir);
      await publish(csi, volume, image);
      published.push({ volume, image });
    }
    const freshMountedRss = await residentBytes(freshPid);
    await readSome();
    const freshReadRss = await residentBytes(freshPid);
    for (const { volume } of published.splice(0)) await unpublish(csi, volume);

    // The publishes with the index on the node compare with every full pull of this run (section 3's
    // and this section's): not paired, p50 ÷ median.
    const pulls = [...ctx.shared.fullPulls, ...pairedPulls];
    const tarPullMs = summarize(pulls.map((p) => p.tarTotalMs), 'ms');
    const pullFigure = pulls.length > 0 ? { label: `${TAR_PULL_LABEL} (debian image, all of this run's pulls)`, figure: samples(summarize(pulls.map((p) => p.tarTotalMs / 1000), 's')) } : undefined;
    const versusPull = (s: Summary): Ratio => {
      const r = s.p50 / tarPullMs.p50;
      return { value: r, text: `${num(r)}× (p50 ÷ median): the full pull takes ${num(1 / r)}× as long` };
    };
    const present = summarize(indexPresent, 'ms');
    results.add({
      id: 'node.publish.present',
      section: SECTION,
      name: 'NodePublishVolume, index on the node, image not mounted (open index + FUSE mount + overlay)',
      clip: samples(present),
      ...(pullFigure && { comparison: pullFigure, ratio: versusPull(present) }),
      note: `images: ${imageKind}`,
    });
    const bind = summarize(bindOnly, 'ms');
    results.add({
      id: 'node.publish.mounted',
      section: SECTION,
      name: 'NodePublishVolume, image already mounted for another volume (overlay only)',
      clip: samples(bind),
      ...(pullFigure && { comparison: pullFigure, ratio: versusPull(bind) }),
    });
    const never = summarize(neverSeen.map((ms) => ms / 1000), 's');
    const neverRow = {
      id: 'node.publish.never-seen',
      section: SECTION,
      name: `NodePublishVolume, image never seen (indexed during the publish, ${IMAGES} images one after another)`,
      clip: samples(never),
      note: `images: ${imageKind}; ${abortedTotal} ABORTED answers retried at once (kubelet would back off)`,
    };
    if (pairedPulls.length > 0) {
      const pairedPublishes = neverSeen.slice(0, pairedPulls.length);
      const umoci = pairedRatio(pairedPublishes, pairedPulls.map((p) => p.totalMs));
      const containerdMs = pairedPulls.flatMap((p) => (p.containerdMs === undefined ? [] : [p.containerdMs]));
      const containerd = containerdMs.length === pairedPulls.length ? `; against ${CONTAINERD_PULL_LABEL}: ${pairedRatio(pairedPublishes, containerdMs).text}` : '';
      results.add({
        ...neverRow,
        comparison: { label: `${TAR_PULL_LABEL} (the debian image, without the one file)`, figure: samples(summarize(pairedPulls.map((p) => p.tarTotalMs / 1000), 's')) },
        ratio: pairedRatio(pairedPublishes, pairedPulls.map((p) => p.tarTotalMs)),
        note: `${neverRow.note}; the first ${pairedPulls.length} publishes each paired with a full pull run right before or after it (alternating order); against ${UMOCI_PULL_LABEL} in the same pairs: ${umoci.text}${containerd}`,
      });
    } else results.add(neverRow);
    const filesRead = options.quick ? 'one file' : `${FILES_READ_PER_IMAGE + 1} files`;
    results.add({
      section: SECTION,
      name: `resident memory of clip node with ${IMAGES} images mounted (fresh process, indexes on the node)`,
      clip: { kind: 'value', value: freshMountedRss, unit: 'B', text: `${formatBytes(freshMountedRss)} just mounted; ${formatBytes(freshReadRss)} after reading ${filesRead} of each (n=1 each)` },
      comparison: { label: 'the same process idle, no image', figure: { kind: 'value', value: freshIdleRss, unit: 'B', text: formatBytes(freshIdleRss) } },
      ratio: { value: freshMountedRss / freshIdleRss, text: `${num(freshMountedRss / freshIdleRss)}×; ${formatBytes((freshMountedRss - freshIdleRss) / IMAGES)} per image mounted` },
      note: `images: ${imageKind}`,
    });
    results.add({
      section: SECTION,
      name: `resident memory of clip node after indexing and mounting ${IMAGES} images itself`,
      clip: { kind: 'value', value: mountedRss, unit: 'B', text: `${formatBytes(mountedRss)} just mounted; ${formatBytes(readRss)} after reading ${filesRead} of each (n=1 each)` },
      comparison: { label: 'the same process idle, before', figure: { kind: 'value', value: idleRss, unit: 'B', text: formatBytes(idleRss) } },
      ratio: { value: mountedRss / idleRss, text: `${num(mountedRss / idleRss)}×; ${formatBytes((mountedRss - idleRss) / IMAGES)} per image` },
      note: `after every volume was unpublished and the images released: ${formatBytes(afterRss)}; ${num(LATER_MS / 1000)} s later (idle index workers ended, freed memory handed back): ${formatBytes(laterRss)}${laterRss > idleRss * 2 ? ' (not all given back)' : ''}`,
    });
  } finally {
    if (csi) for (const { volume } of published) await unpublish(csi, volume).catch(() => undefined);
    csi?.close();
    await plugin?.stop();
    await cleanupPluginDir(dir);
  }
}
