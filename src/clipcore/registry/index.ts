/** Public surface of the registry client. */
export { RegistryClient, type RepositoryLocator } from './client.js';
export type { RegistryClientOptions } from './client-options.js';
export type { RegistrySession } from './session.js';
export type { BasicCredentials, TokenCredentials, IdentityTokenCredentials, Credentials, CredentialsProvider } from './credentials.js';
export { parseReference, makeReference, DOCKER_HUB_REGISTRY, DOCKER_HUB_DISPLAY, type ImageReference } from './reference.js';
export type { ResolvedManifest, FetchedManifest } from './manifests.js';
export type { Descriptor, ImageManifest, ImageIndex, ManifestDocument } from './manifest.js';
export type { ImageConfig, ImageRuntimeConfig } from './image-config.js';
export type { BlobRange, OpenedBlob } from './blobs.js';
export { hostPlatform, formatPlatform, type Platform } from './platform.js';
export { MediaTypes } from './media-types.js';
export { validateDigest, digestOf } from './digest.js';
export { RegistryBlobSource } from './blob-byte-source.js';
export type { RepositoryLocation } from './registry-call.js';
export { credentialsFromSecrets, registryKey, type RegistryCredentials } from './pull-secret.js';
