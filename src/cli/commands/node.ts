import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ClipError } from '../../clipcore/errors.js';
import { MARKER_REFRESH_MS, MARKER_STALE_MS } from '../../clipcore/index-store/marker.js';
import { CLIP_VERSION } from '../../clipcore/version.js';
import { checkDriverName, DEFAULT_DRIVER_NAME } from '../../csi/identity.js';
import { parseByteSize } from '../byte-size.js';
import { seconds } from '../flag-parsers.js';
import { logJson } from '../log.js';
import { caCertOption, insecureRegistryOption, serviceRegistrySettings, type ServiceRegistryFlags } from '../registry-options.js';
import { addS3Flags, S3_HELP, s3OptionsFrom, type S3Flags } from '../s3-options.js';
import { waitForStopSignal } from '../stop-signal.js';

/** Twice the controller's refresh interval: a shorter threshold would call a live controller's marker stale between refreshes. */
const MIN_MARKER_STALE_SECONDS = (2 * MARKER_REFRESH_MS) / 1000;

function markerStaleSeconds(value: string): number {
  const parsed = seconds(value);
  if (parsed < MIN_MARKER_STALE_SECONDS) throw new InvalidArgumentError(`${JSON.stringify(value)} is below ${MIN_MARKER_STALE_SECONDS} seconds`);
  return parsed;
}

interface NodeFlags extends S3Flags, ServiceRegistryFlags {
  endpoint: string;
  nodeId?: string;
  driverName: string;
  stateDir: string;
  cacheDir: string;
  cacheMaxBytes: number;
  s3Bucket?: string;
  s3Prefix: string;
  metricsAddr?: string;
  imageGraceSeconds: number;
  indexWaitSeconds: number;
  indexMarkerStaleSeconds: number;
  kubeletDir: string;
  credentialsWaitSeconds: number;
  holderSocket?: string;
  holder: boolean;
}

export function registerNode(program: Command): void {
  const command = program
    .command('node')
    .description(
      'run the CSI node plugin: Identity and Node services on a unix socket, image mounts served through FUSE by this process; ' +
        'runs until SIGTERM (which leaves the mounts pods use in place for the next process)',
    )
    .option('--endpoint <unix:///path.sock>', 'CSI endpoint to serve (a stale socket file there is replaced)', 'unix:///csi/csi.sock')
    .option('--node-id <id>', "this node's id, as NodeGetInfo reports it (default: $NODE_NAME; one of them is required)")
    .option('--driver-name <name>', 'CSI driver name reported by GetPluginInfo', DEFAULT_DRIVER_NAME)
    .option('--kubelet-dir <dir>', "kubelet's root directory (the chart's kubeletDir): target paths must resolve to a path under it, outside the state and cache directories", '/var/lib/kubelet')
    .option('--state-dir <dir>', 'publish records, image mounts, writable layers and the node-local index cache (keep it on the host)', '/var/lib/clip-csi')
    .option('--cache-dir <dir>', 'on-disk cache of image content', '/var/cache/clip-csi')
    .addOption(
      new Option('--cache-max-bytes <size>', 'size limit of the content cache: bytes or with a suffix (K, M, G, T, Ki, Mi, Gi, Ti)')
        .argParser(parseByteSize)
        .default(10 * 2 ** 30, '10Gi'),
    )
    .option('--s3-bucket <bucket>', 'share image indexes through this S3 bucket: fetched from it before indexing an image, uploaded to it after')
    .option('--s3-prefix <prefix>', 'key prefix of the indexes in the bucket', 'indexes/')
    .option('--metrics-addr <[host]:port>', 'serve /metrics, /healthz and /readyz over HTTP on this address (e.g. :9100); off by default')
    .addOption(
      new Option('--image-grace-seconds <n>', "how long an image stays mounted after its last volume is unpublished (pod restarts reuse it)")
        .argParser(seconds)
        .default(30),
    )
    .addOption(
      new Option(
        '--index-wait-seconds <n>',
        'longest a publish waits for an image to be indexed and mounted before answering ABORTED (the work goes on; the retry picks it up)',
      )
        .argParser(seconds)
        .default(100),
    )
    .addOption(
      new Option(
        '--index-marker-stale-seconds <n>',
        `a controller's "being indexed" marker in S3 not refreshed for this long is stale (its controller is gone): the node stops waiting and indexes the image itself; at least ${MIN_MARKER_STALE_SECONDS} (the controller refreshes it every ${MARKER_REFRESH_MS / 1000} s)`,
      )
        .argParser(markerStaleSeconds)
        .default(MARKER_STALE_MS / 1000),
    )
    .addOption(
      new Option(
        '--credentials-wait-seconds <n>',
        "after a restart, how long a read of a private image's uncached data waits for kubelet to publish the volume again with its secret (credentials are never stored); then EIO",
      )
        .argParser(seconds)
        .default(30),
    )
    .addOption(insecureRegistryOption())
    .addOption(caCertOption())
    .option('--docker-config <path>', "the node's Docker config.json (or its directory), for volumes without a secret; default $DOCKER_CONFIG or ~/.docker")
    .option(
      '--holder-socket <path>',
      "socket of the FUSE connection holder (clip holder) that keeps this plugin's connections across its crashes and restarts (default: <state-dir>/holder.sock)",
    )
    .option('--no-holder', 'use no holder: after a crash or restart without handover, volumes are mounted again and running pods see ENOTCONN until then');
  addS3Flags(command)
    .addHelpText('after', S3_HELP)
    .action(async (flags: NodeFlags) => {
      const nodeId = flags.nodeId ?? process.env['NODE_NAME'];
      if (!nodeId) throw new ClipError('INVALID_ARGUMENT', 'a node id is required: pass --node-id or set NODE_NAME');
      const { startNodePlugin } = await import('../../node/plugin.js');
      const plugin = await startNodePlugin({
        endpoint: flags.endpoint,
        nodeId,
        driverName: checkDriverName(flags.driverName),
        version: CLIP_VERSION,
        stateDir: flags.stateDir,
        cacheDir: flags.cacheDir,
        cacheMaxBytes: flags.cacheMaxBytes,
        ...(flags.s3Bucket !== undefined && { s3: { bucket: flags.s3Bucket, prefix: flags.s3Prefix, options: s3OptionsFrom(flags) } }),
        ...(flags.metricsAddr !== undefined && { metricsAddr: flags.metricsAddr }),
        imageGraceSeconds: flags.imageGraceSeconds,
        indexWaitSeconds: flags.indexWaitSeconds,
        indexMarkerStaleSeconds: flags.indexMarkerStaleSeconds,
        kubeletDir: flags.kubeletDir,
        credentialsWaitSeconds: flags.credentialsWaitSeconds,
        registry: await serviceRegistrySettings(flags),
        ...(flags.holder && { holderSocket: flags.holderSocket ?? join(flags.stateDir, 'holder.sock') }),
        onHandedOver(outcome) {
          if (outcome === 'failed') {
            // Half handed over: the successor or the holder has the connections; this process must not serve them.
            logJson('error', 'exiting after a failed handover; the mounts are left in place', {});
            process.exit(1);
          }
        },
        log: logJson,
      });
      await waitForStopSignal();
      await plugin.stop();
      logJson('info', 'stopped', {});
      // FUSE sessions of mounts left for the next process keep the event loop alive: exit explicitly.
      process.exit(0);
    });
}
