// Where image indexes are shared: the naming, the S3 store, the indexer's marker.
export { imageKeyOf } from './image-key.js';
export { S3IndexStore, type S3IndexSettings } from './s3-index-store.js';
export {
  MARKER_REFRESH_MS,
  MARKER_STALE_MS,
  isMarkerFresh,
  newMarker,
  parseMarker,
  refreshedMarker,
  type IndexingMarker,
} from './marker.js';
