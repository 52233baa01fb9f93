/**
 * TypeScript shapes of the csi.v1 messages this driver reads and writes, as @grpc/proto-loader
 * decodes them with { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true }:
 * field names as in csi.proto, int64 as number, enums as their names, unset scalars and maps as
 * their defaults, unset messages as null, and a oneof's name holding the name of the field set.
 */

export type StringMap = Record<string, string>;

// ---- Identity

export type GetPluginInfoRequest = Record<string, never>;
export interface GetPluginInfoResponse {
  name: string;
  vendor_version: string;
  manifest?: StringMap;
}

export type GetPluginCapabilitiesRequest = Record<string, never>;
export type PluginServiceType = 'UNKNOWN' | 'CONTROLLER_SERVICE' | 'VOLUME_ACCESSIBILITY_CONSTRAINTS' | 'GROUP_CONTROLLER_SERVICE';
export type VolumeExpansionType = 'UNKNOWN' | 'ONLINE' | 'OFFLINE';
export interface PluginCapability {
  service?: { type: PluginServiceType } | null;
  volume_expansion?: { type: VolumeExpansionType } | null;
  type?: 'service' | 'volume_expansion';
}
export interface GetPluginCapabilitiesResponse {
  capabilities: PluginCapability[];
}

export type ProbeRequest = Record<string, never>;
export interface ProbeResponse {
  /** google.protobuf.BoolValue */
  ready: { value: boolean } | null;
}

// ---- Common

export type AccessModeName =
  | 'UNKNOWN'
  | 'SINGLE_NODE_WRITER'
  | 'SINGLE_NODE_READER_ONLY'
  | 'MULTI_NODE_READER_ONLY'
  | 'MULTI_NODE_SINGLE_WRITER'
  | 'MULTI_NODE_MULTI_WRITER'
  | 'SINGLE_NODE_SINGLE_WRITER'
  | 'SINGLE_NODE_MULTI_WRITER';

export interface MountVolumeCapability {
  fs_type: string;
  mount_flags: string[];
  volume_mount_group: string;
}

export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: MountVolumeCapability | null;
  access_mode?: { mode: AccessModeName } | null;
  access_type?: 'block' | 'mount';
}

// ---- Controller

export interface CapacityRange {
  required_bytes: number;
  limit_bytes: number;
}

export interface Topology {
  segments: StringMap;
}

export interface VolumeContentSource {
  snapshot?: { snapshot_id: string } | null;
  volume?: { volume_id: string } | null;
  type?: 'snapshot' | 'volume';
}

export interface CreateVolumeRequest {
  name: string;
  capacity_range: CapacityRange | null;
  volume_capabilities: VolumeCapability[];
  parameters: StringMap;
  /** csi_secret: never logged. */
  secrets: StringMap;
  volume_content_source: VolumeContentSource | null;
  accessibility_requirements: { requisite: Topology[]; preferred: Topology[] } | null;
  mutable_parameters: StringMap;
}

export interface Volume {
  capacity_bytes: number;
  volume_id: string;
  volume_context: StringMap;
  content_source: VolumeContentSource | null;
  accessible_topology: Topology[];
}

export interface CreateVolumeResponse {
  volume: Volume;
}

export interface DeleteVolumeRequest {
  volume_id: string;
  /** csi_secret: never logged. */
  secrets: StringMap;
}
export type DeleteVolumeResponse = Record<string, never>;

export interface ValidateVolumeCapabilitiesRequest {
  volume_id: string;
  volume_context: StringMap;
  volume_capabilities: VolumeCapability[];
  parameters: StringMap;
  /** csi_secret: never logged. */
  secrets: StringMap;
  mutable_parameters: StringMap;
}
export interface ValidateVolumeCapabilitiesResponse {
  confirmed: {
    volume_context: StringMap;
    volume_capabilities: VolumeCapability[];
    parameters: StringMap;
  } | null;
  message: string;
}

export type ControllerGetCapabilitiesRequest = Record<string, never>;
export type ControllerCapabilityType = 'UNKNOWN' | 'CREATE_DELETE_VOLUME';
export interface ControllerGetCapabilitiesResponse {
  capabilities: Array<{ rpc?: { type: ControllerCapabilityType } | null; type?: 'rpc' }>;
}

// ---- Node

export interface NodePublishVolumeRequest {
  volume_id: string;
  publish_context: StringMap;
  staging_target_path: string;
  target_path: string;
  volume_capability: VolumeCapability | null;
  readonly: boolean;
  /** csi_secret: never logged. */
  secrets: StringMap;
  volume_context: StringMap;
}
export type NodePublishVolumeResponse = Record<string, never>;

export interface NodeUnpublishVolumeRequest {
  volume_id: string;
  target_path: string;
}
export type NodeUnpublishVolumeResponse = Record<string, never>;

export interface NodeGetVolumeStatsRequest {
  volume_id: string;
  volume_path: string;
  staging_target_path: string;
}
export type VolumeUsageUnit = 'UNKNOWN' | 'BYTES' | 'INODES';
export interface VolumeUsage {
  available: number;
  total: number;
  used: number;
  unit: VolumeUsageUnit;
}
export interface VolumeCondition {
  abnormal: boolean;
  message: string;
}
export interface NodeGetVolumeStatsResponse {
  usage: VolumeUsage[];
  volume_condition?: VolumeCondition | null;
}

export type NodeGetCapabilitiesRequest = Record<string, never>;
export type NodeCapabilityType =
  | 'UNKNOWN'
  | 'STAGE_UNSTAGE_VOLUME'
  | 'GET_VOLUME_STATS'
  | 'EXPAND_VOLUME'
  | 'VOLUME_CONDITION'
  | 'SINGLE_NODE_MULTI_WRITER'
  | 'VOLUME_MOUNT_GROUP';
export interface NodeServiceCapability {
  rpc?: { type: NodeCapabilityType } | null;
  type?: 'rpc';
}
export interface NodeGetCapabilitiesResponse {
  capabilities: NodeServiceCapability[];
}

export type NodeGetInfoRequest = Record<string, never>;
export interface NodeGetInfoResponse {
  node_id: string;
  max_volumes_per_node: number;
  accessible_topology?: { segments: StringMap } | null;
}

/** NodeStageVolume, NodeUnstageVolume and NodeExpandVolume are not served: only their ids are read. */
export interface VolumeIdRequest {
  volume_id: string;
}
export type EmptyResponse = Record<string, never>;
