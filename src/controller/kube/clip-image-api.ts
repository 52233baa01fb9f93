/** The ClipImage custom resource (charts/clip-csi/crds/clipimages.clip.csi.dev.yaml), as the controller reads and writes it. */
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { IndexedPlatform } from '../contracts.js';

export const CLIP_IMAGE_GROUP = 'clip.csi.dev';
export const CLIP_IMAGE_VERSION = 'v1alpha1';
export const CLIP_IMAGE_PLURAL = 'clipimages';
export const CLIP_IMAGE_API_VERSION = `${CLIP_IMAGE_GROUP}/${CLIP_IMAGE_VERSION}`;
export const CLIP_IMAGE_PATH = `/apis/${CLIP_IMAGE_API_VERSION}/${CLIP_IMAGE_PLURAL}`;
export const CLIP_IMAGE_RESOURCE = { group: CLIP_IMAGE_GROUP, version: CLIP_IMAGE_VERSION, plural: CLIP_IMAGE_PLURAL };

export interface ClipImageCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface ClipImageStatus {
  observedGeneration?: number;
  digest?: string;
  conditions?: ClipImageCondition[];
  indexes?: IndexedPlatform[];
}

export interface ClipImage {
  apiVersion?: string;
  kind?: string;
  metadata?: V1ObjectMeta;
  spec?: {
    image?: string;
    platforms?: string[];
    pullSecretRef?: { name?: string; namespace?: string };
  };
  status?: ClipImageStatus;
}

export interface ClipImageList {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: ClipImage[];
}
