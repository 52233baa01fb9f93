/**
 * A CSI client that calls the plugin the way kubelet does: gRPC over the unix socket, with
 * messages from the same csi.proto, loaded with the same proto-loader options.
 */
import assert from 'node:assert/strict';
import grpc from '@grpc/grpc-js';
import { csiServiceDefinitions } from '../../src/csi/server.js';
import type {
  ControllerGetCapabilitiesResponse,
  CreateVolumeRequest,
  CreateVolumeResponse,
  DeleteVolumeRequest,
  GetPluginCapabilitiesResponse,
  GetPluginInfoResponse,
  NodeGetCapabilitiesResponse,
  NodeGetInfoResponse,
  NodeGetVolumeStatsRequest,
  NodeGetVolumeStatsResponse,
  NodePublishVolumeRequest,
  NodeUnpublishVolumeRequest,
  ProbeResponse,
  StringMap,
  ValidateVolumeCapabilitiesRequest,
  ValidateVolumeCapabilitiesResponse,
  VolumeCapability,
} from '../../src/csi/types.js';

type UnaryMethod = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

/** Requests as a test writes them: any field may be left out (proto3 defaults apply). */
export type PublishRequest = Partial<Omit<NodePublishVolumeRequest, 'volume_capability'>> & { volume_capability?: VolumeCapability | null };

export interface CsiClient {
  GetPluginInfo(): Promise<GetPluginInfoResponse>;
  GetPluginCapabilities(): Promise<GetPluginCapabilitiesResponse>;
  Probe(): Promise<ProbeResponse>;
  NodeGetCapabilities(): Promise<NodeGetCapabilitiesResponse>;
  NodeGetInfo(): Promise<NodeGetInfoResponse>;
  NodePublishVolume(request: PublishRequest, timeoutMs?: number): Promise<Record<string, never>>;
  NodeUnpublishVolume(request: Partial<NodeUnpublishVolumeRequest>, timeoutMs?: number): Promise<Record<string, never>>;
  NodeGetVolumeStats(request: Partial<NodeGetVolumeStatsRequest>): Promise<NodeGetVolumeStatsResponse>;
  NodeStageVolume(request: Record<string, unknown>): Promise<Record<string, never>>;
  close(): void;
}

const call = <Res>(client: grpc.Client, method: string, request: unknown, timeoutMs = 150_000): Promise<Res> =>
  new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, UnaryMethod>)[method];
    assert.ok(fn, `no method ${method}`);
    fn.call(client, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, response) => {
      if (err) reject(err);
      else resolve(response as Res);
    });
  });

/** The Identity and Controller services, as the external-provisioner calls them. */
export interface ControllerClient {
  GetPluginInfo(): Promise<GetPluginInfoResponse>;
  GetPluginCapabilities(): Promise<GetPluginCapabilitiesResponse>;
  Probe(): Promise<ProbeResponse>;
  CreateVolume(request: Partial<CreateVolumeRequest>, timeoutMs?: number): Promise<CreateVolumeResponse>;
  DeleteVolume(request: Partial<DeleteVolumeRequest>): Promise<Record<string, never>>;
  ValidateVolumeCapabilities(request: Partial<ValidateVolumeCapabilitiesRequest>): Promise<ValidateVolumeCapabilitiesResponse>;
  ControllerGetCapabilities(): Promise<ControllerGetCapabilitiesResponse>;
  /** Any Controller method by name (those the driver does not serve answer UNIMPLEMENTED). */
  raw(method: string, request: unknown): Promise<unknown>;
  close(): void;
}

export async function connectController(socketPath: string): Promise<ControllerClient> {
  const { Identity, Controller } = await csiServiceDefinitions();
  const address = `unix:${socketPath}`;
  const identity = new Identity(address, grpc.credentials.createInsecure());
  const controller = new Controller(address, grpc.credentials.createInsecure());
  return {
    GetPluginInfo: () => call(identity, 'GetPluginInfo', {}),
    GetPluginCapabilities: () => call(identity, 'GetPluginCapabilities', {}),
    Probe: () => call(identity, 'Probe', {}),
    CreateVolume: (request, timeoutMs) => call(controller, 'CreateVolume', request, timeoutMs),
    DeleteVolume: (request) => call(controller, 'DeleteVolume', request),
    ValidateVolumeCapabilities: (request) => call(controller, 'ValidateVolumeCapabilities', request),
    ControllerGetCapabilities: () => call(controller, 'ControllerGetCapabilities', {}),
    raw: (method, request) =>
      new Promise((resolve, reject) => {
        controller.makeUnaryRequest(
          `/csi.v1.Controller/${method}`,
          () => Buffer.alloc(0),
          (bytes: Buffer) => bytes,
          request,
          (err, response) => (err ? reject(err) : resolve(response)),
        );
      }),
    close: () => {
      identity.close();
      controller.close();
    },
  };
}

/**
 * Calls CreateVolume as the external-provisioner does until it stops answering ABORTED (bounded);
 * the ABORTED messages are pushed to `aborts`.
 */
export async function createVolumeUntilDone(client: ControllerClient, request: Partial<CreateVolumeRequest>, aborts: string[] = []): Promise<CreateVolumeResponse> {
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      return await client.CreateVolume(request);
    } catch (err) {
      const error = err as grpc.ServiceError;
      if (error.code !== grpc.status.ABORTED) throw err;
      aborts.push(error.details);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  assert.fail('CreateVolume kept answering ABORTED');
}

/** `channelOptions`: e.g. `grpc.max_metadata_size`, to call as a client with a small metadata limit does. */
export async function connectCsi(socketPath: string, channelOptions: grpc.ChannelOptions = {}): Promise<CsiClient> {
  const { Identity, Node } = await csiServiceDefinitions();
  const address = `unix:${socketPath}`;
  const identity = new Identity(address, grpc.credentials.createInsecure(), channelOptions);
  const node = new Node(address, grpc.credentials.createInsecure(), channelOptions);
  return {
    GetPluginInfo: () => call(identity, 'GetPluginInfo', {}),
    GetPluginCapabilities: () => call(identity, 'GetPluginCapabilities', {}),
    Probe: () => call(identity, 'Probe', {}),
    NodeGetCapabilities: () => call(node, 'NodeGetCapabilities', {}),
    NodeGetInfo: () => call(node, 'NodeGetInfo', {}),
    NodePublishVolume: (request, timeoutMs) => call(node, 'NodePublishVolume', request, timeoutMs),
    NodeUnpublishVolume: (request, timeoutMs) => call(node, 'NodeUnpublishVolume', request, timeoutMs),
    NodeGetVolumeStats: (request) => call(node, 'NodeGetVolumeStats', request),
    NodeStageVolume: (request) => call(node, 'NodeStageVolume', request),
    close: () => {
      identity.close();
      node.close();
    },
  };
}

/** Asserts a call fails with `code` (and a message matching `message`); returns the error. */
export async function expectGrpcError(promise: Promise<unknown>, code: grpc.status, message?: RegExp): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (err) {
    const error = err as grpc.ServiceError;
    assert.equal(
      grpc.status[error.code],
      grpc.status[code],
      `expected ${grpc.status[code]}, got ${grpc.status[error.code]}: ${error.details}`,
    );
    if (message) assert.match(error.details, message);
    return error;
  }
  assert.fail(`expected ${grpc.status[code]}, but the call succeeded`);
}

export const MOUNT_CAPABILITY = (mode: NonNullable<VolumeCapability['access_mode']>['mode'] = 'SINGLE_NODE_WRITER'): VolumeCapability => ({
  mount: { fs_type: '', mount_flags: [], volume_mount_group: '' },
  access_mode: { mode },
});

/** The volume_context kubelet sends for a CSI inline ephemeral volume (podInfoOnMount on). */
export function ephemeralContext(image: string, pod: { name: string; namespace?: string; uid: string }, extra: StringMap = {}): StringMap {
  return {
    image,
    'csi.storage.k8s.io/ephemeral': 'true',
    'csi.storage.k8s.io/pod.name': pod.name,
    'csi.storage.k8s.io/pod.namespace': pod.namespace ?? 'default',
    'csi.storage.k8s.io/pod.uid': pod.uid,
    'csi.storage.k8s.io/serviceAccount.name': 'default',
    ...extra,
  };
}
