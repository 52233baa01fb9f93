/**
 * The CSI Controller service (dynamic provisioning through the external-provisioner): a volume is
 * an image pinned by digest. CreateVolume makes sure an index exists in S3 for every platform the
 * volume is for and answers ABORTED while it is being made (the provisioner retries; a retry joins
 * the running job). Nothing is stored per volume: the volume id is derived from the digest and the
 * platforms, and DeleteVolume has nothing to delete (indexes are shared by every volume of an image).
 */
import grpc from '@grpc/grpc-js';
import { credentialsFromSecrets, describeError, type ImageReference } from '../../clipcore/index.js';
import { aborted, CsiError, invalidArgument, notFound, unavailable } from '../../csi/errors.js';
import type { Logger } from '../../csi/log.js';
import type { CallContext, ControllerService } from '../../csi/server.js';
import type { CreateVolumeRequest, CreateVolumeResponse, StringMap } from '../../csi/types.js';
import type { ClusterView, FailureReason, Requester } from '../contracts.js';
import type { IndexQueue } from '../indexing/index-service.js';
import {
  checkCapabilities,
  checkParameters,
  CONTEXT_IMAGE,
  CONTEXT_PLATFORM,
  CONTEXT_REQUESTED_IMAGE,
  isVolumeId,
  PARAM_IMAGE,
  PARAM_PLATFORMS,
  PARAM_PVC_NAME,
  PARAM_PVC_NAMESPACE,
  parseImage,
  parsePlatformList,
  PVC_IMAGE_ANNOTATION,
  requireName,
  requireVolumeId,
  unsupportedCapability,
  volumeIdOf,
} from './volume-request.js';

export interface ControllerServiceOptions {
  queue: IndexQueue;
  cluster: ClusterView;
  /** --platforms; else the StorageClass parameter, else the cluster's Nodes. */
  platforms?: readonly string[];
  /** How long CreateVolume waits for the indexes before answering ABORTED. */
  createWaitMs: number;
  log: Logger;
}

/** A volume (made, or still being made) not asked for again within this long is forgotten. */
const IDLE_MS = 10 * 60_000;
/** Time kept between our answer and the caller's deadline. */
const DEADLINE_MARGIN_MS = 1_000;

export function controllerService(options: ControllerServiceOptions): ControllerService {
  const { queue } = options;
  const idle = new Map<string, NodeJS.Timeout>();

  const forget = (requester: Requester): void => {
    clearTimeout(idle.get(requester.uid));
    idle.delete(requester.uid);
    queue.withdraw(requester);
  };
  const forgetLater = (requester: Requester): void => {
    clearTimeout(idle.get(requester.uid));
    idle.set(
      requester.uid,
      setTimeout(() => forget(requester), IDLE_MS).unref(),
    );
  };

  async function createVolume(request: CreateVolumeRequest, ctx: CallContext): Promise<CreateVolumeResponse> {
    const name = requireName(request.name);
    const parameters = checkParameters(request.parameters ?? {});
    checkCapabilities(request.volume_capabilities ?? []);
    if (request.volume_content_source?.snapshot || request.volume_content_source?.volume) {
      throw invalidArgument('volume_content_source is not supported: a clip volume is made from an image (snapshots and clones are not)');
    }
    const pvc = { name: parameters[PARAM_PVC_NAME], namespace: parameters[PARAM_PVC_NAMESPACE] };
    const image = await imageOf(parameters, pvc, options.cluster);
    const reference = parseImage(image.value, image.field);
    const pinned = parameters[PARAM_PLATFORMS] !== undefined ? parsePlatformList(parameters[PARAM_PLATFORMS], `parameters.${PARAM_PLATFORMS}`) : undefined;
    const platforms = pinned ?? (options.platforms?.length ? [...options.platforms] : options.cluster.nodePlatforms());
    if (platforms.length === 0) {
      throw unavailable(`no platform to index ${image.value} for: the cluster's Nodes are not listed yet; set the StorageClass parameter ${PARAM_PLATFORMS} or --platforms`);
    }
    ctx.annotate({ image: image.value, platforms });
    const credentials = credentialsFromSecrets(request.secrets ?? {}, reference.registry);
    // The PVC asks (events go to it); its uid is in the provisioner's volume name (pvc-<uid>).
    const requester: Requester = {
      kind: 'PersistentVolumeClaim',
      ...(pvc.namespace && { namespace: pvc.namespace }),
      name: pvc.name ?? name,
      uid: name.startsWith('pvc-') ? name.slice('pvc-'.length) : name,
      // A failure forgets the request, so the provisioner's next call starts afresh: one revision is enough.
      revision: 'csi',
    };
    queue.submit({ image: image.value, platforms, credentials: credentials ? [credentials] : [], requester });
    const waitMs = Math.max(0, Math.min(options.createWaitMs, ctx.deadline - Date.now() - DEADLINE_MARGIN_MS));
    const outcome = await queue.settled(requester.uid, image.value, waitMs, ctx.signal);
    const indexed = outcome?.state === 'Indexed' ? queue.indexedImage(requester.uid, image.value) : undefined;
    if (indexed) {
      // Kept a while: the provisioner repeating the call (a lost answer) gets the same volume at once.
      forgetLater(requester);
      ctx.annotate({ digest: indexed.digest });
      return { volume: volumeOf(indexed.reference, indexed.digest, platforms, pinned, image.value, indexed.fileBytes) };
    }
    if (outcome?.state === 'Failed') {
      forget(requester);
      throw failureError(outcome.reason, outcome.message);
    }
    forgetLater(requester);
    const progress = outcome?.state === 'Indexing' ? outcome.progress : 'indexing';
    throw aborted(`${progress}; the work goes on in the background, retry later`);
  }

  return {
    CreateVolume: createVolume,
    async DeleteVolume(request) {
      // Idempotent and stateless: the indexes stay in S3 for every other volume of the image.
      requireVolumeId(request.volume_id);
      return {};
    },
    async ValidateVolumeCapabilities(request) {
      const volumeId = requireVolumeId(request.volume_id);
      if (!isVolumeId(volumeId)) throw notFound(`volume ${volumeId} is not a clip volume`);
      const capabilities = request.volume_capabilities ?? [];
      if (capabilities.length === 0) throw invalidArgument('volume_capabilities is required');
      for (const capability of capabilities) {
        const problem = unsupportedCapability(capability);
        if (problem) return { confirmed: null, message: problem };
      }
      return {
        confirmed: { volume_context: request.volume_context ?? {}, volume_capabilities: capabilities, parameters: request.parameters ?? {} },
        message: '',
      };
    },
    async ControllerGetCapabilities() {
      return { capabilities: [{ rpc: { type: 'CREATE_DELETE_VOLUME' } }] };
    },
  };
}

/** The StorageClass parameter, else the PVC's annotation (needs the provisioner's --extra-create-metadata). */
async function imageOf(parameters: StringMap, pvc: { name?: string; namespace?: string }, cluster: ClusterView): Promise<{ value: string; field: string }> {
  const image = parameters[PARAM_IMAGE];
  if (image) return { value: image.trim(), field: `parameters.${PARAM_IMAGE}` };
  if (!pvc.name || !pvc.namespace) {
    throw invalidArgument(
      `no image: set the StorageClass parameter ${PARAM_IMAGE}, or annotate the PVC with ${PVC_IMAGE_ANNOTATION} and run the external-provisioner with --extra-create-metadata`,
    );
  }
  let annotation: string | undefined;
  try {
    annotation = await cluster.pvcAnnotation(pvc.namespace, pvc.name, PVC_IMAGE_ANNOTATION);
  } catch (err) {
    throw unavailable(`cannot read PersistentVolumeClaim ${pvc.namespace}/${pvc.name}: ${describeError(err)}`);
  }
  if (!annotation) {
    throw invalidArgument(`no image: the StorageClass has no parameter ${PARAM_IMAGE} and PersistentVolumeClaim ${pvc.namespace}/${pvc.name} no annotation ${PVC_IMAGE_ANNOTATION}`);
  }
  return { value: annotation.trim(), field: `PersistentVolumeClaim ${pvc.namespace}/${pvc.name} annotation ${PVC_IMAGE_ANNOTATION}` };
}

/**
 * The node plugin reads this volume_context: `image` pinned by digest (the index digest of a
 * multi-arch image: each node mounts its own platform's index), the reference as written, and the
 * platform only when the StorageClass pinned exactly one.
 */
function volumeOf(
  reference: ImageReference,
  digest: string,
  platforms: readonly string[],
  pinned: readonly string[] | undefined,
  requested: string,
  capacityBytes: number,
): CreateVolumeResponse['volume'] {
  const context: StringMap = {
    [CONTEXT_IMAGE]: `${reference.displayRegistry}/${reference.repository}@${digest}`,
    [CONTEXT_REQUESTED_IMAGE]: requested,
  };
  if (pinned?.length === 1 && pinned[0]) context[CONTEXT_PLATFORM] = pinned[0];
  return { capacity_bytes: capacityBytes, volume_id: volumeIdOf(digest, platforms), volume_context: context, content_source: null, accessible_topology: [] };
}

function failureError(reason: FailureReason, message: string): CsiError {
  const codes: Record<FailureReason, grpc.status> = {
    NotFound: grpc.status.NOT_FOUND,
    Unauthorized: grpc.status.UNAUTHENTICATED,
    NotAFilesystem: grpc.status.FAILED_PRECONDITION,
    Unavailable: grpc.status.UNAVAILABLE,
  };
  return new CsiError(codes[reason], message);
}
