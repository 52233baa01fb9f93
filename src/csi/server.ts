/**
 * The gRPC server of the CSI driver: csi.proto loaded with @grpc/proto-loader, served with
 * @grpc/grpc-js on a unix socket. Every call goes through one wrapper that maps errors to a gRPC
 * status once, writes one structured log line (method, volume id, duration, code; never the request
 * itself, which may carry secrets) and tracks the call so that shutdown can let it finish.
 */
import { connect } from 'node:net';
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { ClipError } from '../clipcore/index.js';
import { packageFile } from '../clipcore/package-root.js';
import { toGrpcError } from './errors.js';
import { MESSAGE_CHARS, truncate } from './limits.js';
import type { Logger } from './log.js';
import type {
  ControllerGetCapabilitiesRequest,
  ControllerGetCapabilitiesResponse,
  CreateVolumeRequest,
  CreateVolumeResponse,
  DeleteVolumeRequest,
  DeleteVolumeResponse,
  EmptyResponse,
  GetPluginCapabilitiesRequest,
  GetPluginCapabilitiesResponse,
  GetPluginInfoRequest,
  GetPluginInfoResponse,
  NodeGetCapabilitiesRequest,
  NodeGetCapabilitiesResponse,
  NodeGetInfoRequest,
  NodeGetInfoResponse,
  NodeGetVolumeStatsRequest,
  NodeGetVolumeStatsResponse,
  NodePublishVolumeRequest,
  NodePublishVolumeResponse,
  NodeUnpublishVolumeRequest,
  NodeUnpublishVolumeResponse,
  ProbeRequest,
  ProbeResponse,
  ValidateVolumeCapabilitiesRequest,
  ValidateVolumeCapabilitiesResponse,
  VolumeIdRequest,
} from './types.js';

export const CSI_PROTO_PATH = packageFile('proto/csi.proto');

/** The options every CSI peer (this server, the tests' kubelet stand-in) loads csi.proto with. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

export interface CallContext {
  readonly method: string;
  /** When the caller gives up, in ms since the epoch; Infinity when it set no deadline. */
  readonly deadline: number;
  /** Aborted when the caller cancels the call or the server is shutting down. */
  readonly signal: AbortSignal;
  /** Adds fields to the call's log line. Never pass secrets. */
  annotate(fields: Record<string, unknown>): void;
}

export type Handler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;

export interface IdentityService {
  GetPluginInfo: Handler<GetPluginInfoRequest, GetPluginInfoResponse>;
  GetPluginCapabilities: Handler<GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse>;
  Probe: Handler<ProbeRequest, ProbeResponse>;
}

export interface NodeService {
  NodeStageVolume: Handler<VolumeIdRequest, EmptyResponse>;
  NodeUnstageVolume: Handler<VolumeIdRequest, EmptyResponse>;
  NodePublishVolume: Handler<NodePublishVolumeRequest, NodePublishVolumeResponse>;
  NodeUnpublishVolume: Handler<NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse>;
  NodeGetVolumeStats: Handler<NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse>;
  NodeExpandVolume: Handler<VolumeIdRequest, EmptyResponse>;
  NodeGetCapabilities: Handler<NodeGetCapabilitiesRequest, NodeGetCapabilitiesResponse>;
  NodeGetInfo: Handler<NodeGetInfoRequest, NodeGetInfoResponse>;
}

/** The Controller RPCs `clip controller` serves; the others answer UNIMPLEMENTED. */
export interface ControllerService {
  CreateVolume: Handler<CreateVolumeRequest, CreateVolumeResponse>;
  DeleteVolume: Handler<DeleteVolumeRequest, DeleteVolumeResponse>;
  ValidateVolumeCapabilities: Handler<ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse>;
  ControllerGetCapabilities: Handler<ControllerGetCapabilitiesRequest, ControllerGetCapabilitiesResponse>;
}

export interface CallRecord {
  method: string;
  codeName: string;
  seconds: number;
}

export interface CsiServerOptions {
  /** `unix:///csi/csi.sock`, `unix:/csi/csi.sock` or a plain absolute path. */
  endpoint: string;
  identity: IdentityService;
  /** The node plugin serves Node, the controller serves Controller. */
  node?: NodeService;
  controller?: ControllerService;
  log: Logger;
  /** Observes every finished call (metrics). */
  onCall?: (call: CallRecord) => void;
}

export interface CsiServer {
  /** The socket path served. */
  readonly socketPath: string;
  /** Stops accepting calls, lets the calls in flight finish (aborting their waits), closes the socket. */
  stop(graceMs?: number): Promise<void>;
}

/** `unix:///a/b` → `/a/b`. Only unix sockets are served: CSI plugins talk to the kubelet locally. */
export function socketPathOf(endpoint: string): string {
  let path: string;
  if (endpoint.startsWith('unix://')) path = endpoint.slice('unix://'.length);
  else if (endpoint.startsWith('unix:')) path = endpoint.slice('unix:'.length);
  else if (endpoint.startsWith('/')) path = endpoint;
  else throw new ClipError('INVALID_ARGUMENT', `endpoint ${JSON.stringify(endpoint)} must be unix:///absolute/path.sock`);
  if (!path.startsWith('/')) throw new ClipError('INVALID_ARGUMENT', `endpoint ${JSON.stringify(endpoint)} must name an absolute socket path`);
  // sockaddr_un holds 108 bytes including the terminating NUL.
  if (Buffer.byteLength(path) > 107) throw new ClipError('INVALID_ARGUMENT', `socket path ${path} is longer than 107 bytes`);
  return resolve(path);
}

export async function loadCsiPackage(): Promise<grpc.GrpcObject> {
  const definition = await protoLoader.load(CSI_PROTO_PATH, PROTO_LOADER_OPTIONS);
  return grpc.loadPackageDefinition(definition);
}

/** The service definitions of csi.v1 (Identity, Node, Controller), for servers and clients. */
export async function csiServiceDefinitions(): Promise<{
  Identity: grpc.ServiceClientConstructor;
  Node: grpc.ServiceClientConstructor;
  Controller: grpc.ServiceClientConstructor;
}> {
  const pkg = await loadCsiPackage();
  const v1 = (pkg['csi'] as grpc.GrpcObject)['v1'] as grpc.GrpcObject;
  return {
    Identity: v1['Identity'] as grpc.ServiceClientConstructor,
    Node: v1['Node'] as grpc.ServiceClientConstructor,
    Controller: v1['Controller'] as grpc.ServiceClientConstructor,
  };
}

export async function startCsiServer(options: CsiServerOptions): Promise<CsiServer> {
  const socketPath = socketPathOf(options.endpoint);
  const services = await csiServiceDefinitions();
  const stopping = new AbortController();
  const inFlight = new Set<Promise<void>>();
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });

  function wrap<Req, Res>(service: string, method: string, handler: Handler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const started = process.hrtime.bigint();
      const fields: Record<string, unknown> = requestLogFields(call.request);
      const controller = new AbortController();
      const abort = (): void => controller.abort();
      call.on('cancelled', abort);
      if (stopping.signal.aborted) abort();
      else stopping.signal.addEventListener('abort', abort, { once: true });
      const deadline = deadlineMs(call.getDeadline());
      const ctx: CallContext = {
        method,
        deadline,
        signal: controller.signal,
        annotate: (extra) => Object.assign(fields, extra),
      };
      const done = (async () => {
        let codeName = 'OK';
        try {
          const response = await handler(call.request, ctx);
          callback(null, response);
        } catch (err) {
          const mapped = toGrpcError(err);
          codeName = mapped.codeName;
          // Messages quote bounded values already; this cap holds whatever else slips through.
          const message = truncate(mapped.message, MESSAGE_CHARS);
          fields['error'] = message;
          if (mapped.clipCode) fields['clip_code'] = mapped.clipCode;
          callback({ code: mapped.code, details: message });
        } finally {
          stopping.signal.removeEventListener('abort', abort);
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          const quiet = method === 'Probe' || method.startsWith('Get') || method.startsWith('NodeGet') || method === 'ControllerGetCapabilities';
          // ABORTED from CreateVolume is the normal "still indexing, retry" answer, not a problem.
          const level = codeName === 'OK' || (service === 'Controller' && codeName === 'ABORTED') ? (quiet ? 'debug' : 'info') : 'warn';
          options.log(level, 'grpc call', { service, method, ...fields, duration_ms: Math.round(seconds * 1000 * 10) / 10, code: codeName });
          options.onCall?.({ method, codeName, seconds });
        }
      })();
      inFlight.add(done);
      void done.finally(() => inFlight.delete(done));
    };
  }

  const identity = options.identity;
  server.addService(services.Identity.service, {
    GetPluginInfo: wrap('Identity', 'GetPluginInfo', identity.GetPluginInfo),
    GetPluginCapabilities: wrap('Identity', 'GetPluginCapabilities', identity.GetPluginCapabilities),
    Probe: wrap('Identity', 'Probe', identity.Probe),
  });
  const node = options.node;
  if (node) {
    server.addService(services.Node.service, {
      NodeStageVolume: wrap('Node', 'NodeStageVolume', node.NodeStageVolume),
      NodeUnstageVolume: wrap('Node', 'NodeUnstageVolume', node.NodeUnstageVolume),
      NodePublishVolume: wrap('Node', 'NodePublishVolume', node.NodePublishVolume),
      NodeUnpublishVolume: wrap('Node', 'NodeUnpublishVolume', node.NodeUnpublishVolume),
      NodeGetVolumeStats: wrap('Node', 'NodeGetVolumeStats', node.NodeGetVolumeStats),
      NodeExpandVolume: wrap('Node', 'NodeExpandVolume', node.NodeExpandVolume),
      NodeGetCapabilities: wrap('Node', 'NodeGetCapabilities', node.NodeGetCapabilities),
      NodeGetInfo: wrap('Node', 'NodeGetInfo', node.NodeGetInfo),
    });
  }
  const controller = options.controller;
  if (controller) {
    server.addService(services.Controller.service, {
      CreateVolume: wrap('Controller', 'CreateVolume', controller.CreateVolume),
      DeleteVolume: wrap('Controller', 'DeleteVolume', controller.DeleteVolume),
      ValidateVolumeCapabilities: wrap('Controller', 'ValidateVolumeCapabilities', controller.ValidateVolumeCapabilities),
      ControllerGetCapabilities: wrap('Controller', 'ControllerGetCapabilities', controller.ControllerGetCapabilities),
    });
  }

  await removeStaleSocket(socketPath);
  await new Promise<void>((resolvePromise, reject) => {
    server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err) reject(new ClipError('IO', `cannot listen on ${socketPath}: ${err.message}`, { cause: err }));
      else resolvePromise();
    });
  });
  options.log('info', 'csi server listening', { endpoint: `unix://${socketPath}` });

  let stopped: Promise<void> | undefined;
  return {
    socketPath,
    stop(graceMs = 25_000) {
      stopped ??= (async () => {
        const pending = inFlight.size;
        options.log('info', 'csi server stopping', { calls_in_flight: pending });
        // Calls waiting for an image index give up at once (ABORTED: kubelet retries later, against
        // the next plugin process); calls doing mount work finish.
        stopping.abort();
        await new Promise<void>((resolvePromise) => {
          const timer = setTimeout(() => {
            options.log('warn', 'csi server: calls still running after the grace period; closing anyway', { calls_in_flight: inFlight.size });
            server.forceShutdown();
            resolvePromise();
          }, graceMs);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolvePromise();
          });
        });
        await Promise.allSettled([...inFlight]);
        await unlink(socketPath).catch(() => undefined);
        options.log('info', 'csi server stopped', {});
      })();
      return stopped;
    },
  };
}

/** Only these request fields are logged, truncated: identifiers, never secrets or the volume context. */
function requestLogFields(request: unknown): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  if (typeof request !== 'object' || request === null) return fields;
  const record = request as Record<string, unknown>;
  for (const key of ['volume_id', 'name', 'target_path', 'volume_path', 'staging_target_path']) {
    const value = record[key];
    if (typeof value === 'string' && value !== '') fields[key] = truncate(value);
  }
  return fields;
}

function deadlineMs(deadline: grpc.Deadline): number {
  if (deadline instanceof Date) return deadline.getTime();
  return Number.isFinite(deadline) ? deadline : Infinity;
}

/**
 * A socket left by a process that died is removed; a socket something still answers on is not
 * (two plugins on one socket would steal each other's calls), nor is any other kind of file.
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  await mkdir(dirname(socketPath), { recursive: true });
  const stats = await lstat(socketPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!stats) return;
  if (!stats.isSocket()) throw new ClipError('INVALID_ARGUMENT', `${socketPath} exists and is not a socket; refusing to replace it`);
  const alive = await new Promise<boolean>((resolvePromise) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolvePromise(true);
    });
    socket.once('error', () => resolvePromise(false));
  });
  if (alive) throw new ClipError('UNAVAILABLE', `another process is serving on ${socketPath}`);
  await unlink(socketPath);
}
