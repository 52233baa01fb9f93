import { tmpdir } from 'node:os';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { CLIP_VERSION } from '../../clipcore/version.js';
import { checkDriverName, DEFAULT_DRIVER_NAME } from '../../csi/identity.js';
import { positiveInteger, seconds } from '../flag-parsers.js';
import { logJson } from '../log.js';
import { caCertOption, insecureRegistryOption, serviceRegistrySettings, type ServiceRegistryFlags } from '../registry-options.js';
import { addS3Flags, S3_HELP, s3OptionsFrom, type S3Flags } from '../s3-options.js';
import { waitForStopSignal } from '../stop-signal.js';

interface ControllerFlags extends S3Flags, ServiceRegistryFlags {
  endpoint: string;
  s3Bucket: string;
  s3Prefix: string;
  kubeconfig?: string;
  kubernetes: boolean;
  platforms?: string[];
  concurrency: number;
  metricsAddr?: string;
  leaderElection?: boolean;
  leaderElectionNamespace?: string;
  driverName: string;
  identity?: string;
  readPullSecrets: boolean;
  createVolumeWaitSeconds: number;
  tempDir: string;
}

function platformList(value: string): string[] {
  const platforms = value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  for (const platform of platforms) {
    if (!/^[a-z0-9_.-]+\/[a-z0-9_.-]+(?:\/[a-z0-9_.-]+)?$/i.test(platform)) {
      throw new InvalidArgumentError(`${JSON.stringify(platform)} is not os/arch or os/arch/variant`);
    }
  }
  if (platforms.length === 0) throw new InvalidArgumentError('names no platform');
  return platforms;
}

export function registerController(program: Command): void {
  const command = program
    .command('controller')
    .description(
      'run the controller: indexes images into S3 as soon as Pods, PersistentVolumeClaims or ClipImages ask for them, ' +
        'and serves the CSI Identity and Controller services (dynamic provisioning) on a unix socket; runs until SIGTERM',
    )
    .option('--endpoint <unix:///path.sock>', 'CSI endpoint to serve, for the external-provisioner sidecar', 'unix:///csi/csi.sock')
    .requiredOption('--s3-bucket <bucket>', 'the bucket indexes are written to, where the nodes look for them')
    .option('--s3-prefix <prefix>', 'key prefix of the indexes in the bucket (the nodes\' --s3-prefix)', 'indexes/')
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, else the in-cluster service account)')
    .option('--no-kubernetes', 'serve the CSI Controller service only, without watching the cluster (StorageClass parameter image only; platforms from --platforms or this host)')
    .addOption(new Option('--platforms <os/arch,...>', 'platforms to index for when a request names none (default: the os/arch pairs of the cluster\'s Nodes)').argParser(platformList))
    .addOption(new Option('--concurrency <n>', 'index jobs run at once').argParser(positiveInteger).default(2))
    .option('--metrics-addr <[host]:port>', 'serve /metrics, /healthz and /readyz over HTTP on this address (e.g. :9101); off by default')
    .option('--leader-election', 'elect a leader through a coordination.k8s.io Lease: only the leader watches and indexes for Pods and ClipImages')
    .option('--leader-election-namespace <ns>', 'namespace of the Lease (default: the pod\'s namespace)')
    .option('--driver-name <name>', 'CSI driver name: volumes of this driver are watched, and GetPluginInfo reports it', DEFAULT_DRIVER_NAME)
    .option('--identity <name>', 'this replica\'s name in S3 markers and the Lease (default: the host name, i.e. the pod name)')
    .option('--read-pull-secrets', 'read the volumes\' and pods\' pull secrets to index private images (needs RBAC on Secrets)', true)
    .option('--no-read-pull-secrets', 'never read Secrets: private images need --docker-config')
    .addOption(insecureRegistryOption())
    .addOption(caCertOption())
    .option('--docker-config <path>', "the controller's Docker config.json (or its directory), tried after the requests' own credentials; default $DOCKER_CONFIG or ~/.docker")
    .addOption(
      new Option('--create-volume-wait-seconds <n>', 'longest CreateVolume waits for an index before answering ABORTED (the work goes on; the retry picks it up)')
        .argParser(seconds)
        .default(5),
    )
    .option('--temp-dir <dir>', 'where indexes are written before their upload (removed after)', tmpdir());
  addS3Flags(command)
    .addHelpText('after', S3_HELP)
    .action(async (flags: ControllerFlags) => {
      const { startController } = await import('../../controller/controller.js');
      const controller = await startController({
        endpoint: flags.endpoint,
        driverName: checkDriverName(flags.driverName),
        version: CLIP_VERSION,
        ...(flags.identity !== undefined && { identity: flags.identity }),
        s3: { bucket: flags.s3Bucket, prefix: flags.s3Prefix, options: s3OptionsFrom(flags) },
        ...(flags.platforms !== undefined && { platforms: flags.platforms }),
        concurrency: flags.concurrency,
        ...(flags.metricsAddr !== undefined && { metricsAddr: flags.metricsAddr }),
        createWaitSeconds: flags.createVolumeWaitSeconds,
        registry: await serviceRegistrySettings(flags),
        tempDir: flags.tempDir,
        kubernetes: flags.kubernetes && {
          ...(flags.kubeconfig !== undefined && { kubeconfig: flags.kubeconfig }),
          readPullSecrets: flags.readPullSecrets,
          leaderElection: flags.leaderElection === true,
          ...(flags.leaderElectionNamespace !== undefined && { leaderElectionNamespace: flags.leaderElectionNamespace }),
        },
        log: logJson,
      });
      await waitForStopSignal();
      await controller.stop();
      logJson('info', 'stopped', {});
      // Index jobs still running keep worker threads alive: exit explicitly.
      process.exit(0);
    });
}
