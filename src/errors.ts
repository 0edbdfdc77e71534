// The library's typed errors in one place: every one extends VilbertError and carries a
// stable `code` (docs/ERRORS.md says when each is thrown).
//
//   try { ... } catch (error) {
//     if (error instanceof VilbertError) console.error(error.code, error.message);
//     else throw error;
//   }
//
// Each class is defined beside the code that throws it; this module only re-exports them.
export { VilbertError } from './vilbert-error.js';
export { ConfigError } from './model/config.js';
export { VocabFormatError } from './text/vocab.js';
export { CheckpointFormatError } from './io/format-error.js';
export { ForbiddenGlobalError } from './io/pickle.js';
export { LmdbError } from './io/lmdb.js';
export { StateDictError } from './torch/module.js';
export { FeatureStoreError } from './data/features.js';
export { DatasetError } from './data/dataset-error.js';
export { ConceptCaptionsError } from './data/concept-captions.js';
export { TrainingDivergedError } from './train/run-log.js';
export { ModelFolderError } from './pipelines/model-folder.js';
export { ImageInputError } from './pipelines/image-input.js';
export { MetricsFormatError } from './report/metrics-log.js';
export { ReportInputError } from './report/run-files.js';
export { DownloadError, UnsafeArchiveError } from './download/download-error.js';
export { ServeRequestError, ServeSetupError } from './serve/serve-error.js';
