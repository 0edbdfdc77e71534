// Checkpoint file formats on bytes: safetensors, torch .bin/.pt (zip and legacy), pickles.
export * from './raw-tensor.js';
export { CheckpointFormatError } from './format-error.js';
export * from './safetensors.js';
export * from './torch-checkpoint.js';
export { PYTHON_DATA_GLOBALS, binaryValue } from './pickle-builtins.js';
export {
  unpickle, combineAllowLists, opaqueClass, PyGlobal, PyObject, ForbiddenGlobalError, type AllowList, type PickleGlobal, type UnpickleOptions,
} from './pickle.js';
export { NUMPY_GLOBALS, NumpyDType } from './pickle-numpy.js';
export { applyFromPretrainedRenames, type KeyRename, type RenamedStateDict, type RenameOptions, type RenameRule } from './key-renames.js';
