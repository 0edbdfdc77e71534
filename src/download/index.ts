// vilbert-ts's downloads: the reference's published checkpoints, detector and task data.
//
//   const summary = await downloadPublished(['multi-task', 'annotations', 'vqa'], { dir: '/data/vilbert' });
//   const weights = await fetchPretrained('multi-task');   // the cache file, fetched once
//   const { model, config } = await resolveDetectorFiles({ dir: '/data/vilbert', fetch: true });
export { catalogue, selectFiles, fileUrl, CHECKPOINT_NAMES, REFERENCE_BASE, BERT_BASE } from './catalogue.js';
export type { CatalogueEntry, PublishedFile } from './catalogue.js';
export { downloadPublished } from './download.js';
export type { DownloadEvent, DownloadOptions, DownloadSummary, DownloadedEntry } from './download.js';
export { downloadFile, freeBytes, remoteSize } from './http-file.js';
export type { DownloadFileOptions, DownloadedFile, FileProgress } from './http-file.js';
export { checkTarGz, unpackTarGz } from './archive.js';
export { cachedPretrained, fetchPretrained, resolveDetectorFiles } from './pretrained.js';
export type { DetectorFiles, DetectorOptions, ResolveOptions } from './pretrained.js';
export { cacheFolder, localPath, urlCachePath } from './places.js';
export { DownloadError, UnsafeArchiveError } from './download-error.js';
export type { DownloadFailure } from './download-error.js';
