// S3: archives stored in S3, s3-mode data objects, uploads.
export { S3Connection, needsPathStyle, resolveEndpoint, type ResolvedS3Settings, type S3Options } from './config.js';
export { S3ByteSource } from './byte-source.js';
export { formatS3Url, isS3Url, parseS3Url, type S3Location } from './location.js';
export { openArchiveSource } from './open-source.js';
export { openS3Content } from './s3-content.js';
export { StreamingUpload, uploadFileToS3, type UploadFileResult, type UploadTuning } from './upload.js';
export {
  createAndUploadArchive,
  type CreateAndUploadArchiveOptions,
  type CreateAndUploadArchiveResult,
  type CreateAndUploadProgress,
} from './create-s3-archive.js';
export {
  createAndUploadOCIArchive,
  type CreateAndUploadOCIArchiveOptions,
  type CreateAndUploadOCIArchiveResult,
} from './create-oci-upload.js';
