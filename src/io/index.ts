// `vilbert-ts/io`: checkpoint and data files on bytes (docs/API.md). Weight files in any
// supported format as engine tensors or as raw bytes; safetensors and PyTorch .bin/.pt (zip
// and legacy) read and written; the allow-listed unpickler; LMDB stores; .npy arrays.
//
//   const weights = readWeights('multi_task_model.bin');   // Map<string, Tensor>, kept: dispose them
//   convertWeights('multi_task_model.bin', 'multi_task_model.safetensors');

// Weight files, any format.
export {
  /** A weights file (safetensors or torch .bin/.pt, told by content) as kept engine tensors; the caller disposes them. */
  readWeights,
  /** A weights file as RawTensors (bytes, dtype, shape): no engine tensors, for inspecting or converting. */
  readRawWeights,
  /** Writes engine tensors as safetensors (with metadata) or a torch zip .bin. */
  writeWeights,
  /** Converts a weights file between the formats; the output's extension names the format. */
  convertWeights,
  /** The format a file name asks for (.safetensors, or .bin/.pt/.pth). */
  weightFormatOfPath,
  /** A file's format from its first bytes. */
  detectFormat,
  /** A RawTensor as an engine tensor (a copy). */
  rawToTensor,
  /** An engine tensor as a RawTensor (a copy). */
  tensorToRaw,
  /** 'safetensors' or 'torch'. */
  type WeightFormat,
} from './weights.js';

// A tensor as files hold it.
export {
  /** dtype, shape and little-endian C-order bytes of one tensor, independent of the engine. */
  type RawTensor,
  /** The element types RawTensor supports. */
  type RawDType,
  /** Bytes per element of each RawDType. */
  RAW_DTYPE_SIZE,
  /** Type guard for RawTensor. */
  isRawTensor,
  /** Element count of a shape (checked against corrupt sizes). */
  elementCount,
} from './raw-tensor.js';

// safetensors.
export {
  /** A .safetensors file: its tensors (views into the file's bytes) and metadata. */
  readSafetensors,
  /** The same from bytes in memory. */
  parseSafetensors,
  /** Writes a .safetensors file as the reference writer lays it out. */
  writeSafetensors,
  /** The bytes of a .safetensors file. */
  serializeSafetensors,
  /** What readSafetensors returns. */
  type SafetensorsContent,
} from './safetensors.js';

// PyTorch checkpoints.
export {
  /** A torch .bin/.pt file (zip or legacy format) unpickled through the allow list: plain data with RawTensors. */
  readTorchCheckpoint,
  /** The same from bytes in memory. */
  parseTorchCheckpoint,
  /** The state dict of a torch checkpoint file (also found under state_dict/model/... in training checkpoints). */
  readTorchStateDict,
  /** The state dict inside an unpickled checkpoint object. */
  findStateDict,
  /** Writes a state dict in torch's zip format (torch.load reads it). */
  writeTorchStateDict,
  /** The bytes of such a file. */
  serializeTorchStateDict,
  /** What readTorchCheckpoint returns. */
  type TorchCheckpoint,
  /** Extra allowed globals, e.g. opaqueClass('argparse.Namespace'). */
  type TorchCheckpointOptions,
} from './torch-checkpoint.js';
export {
  /** The reference's from_pretrained key renames (gamma/beta, the `bert.` prefix) on any state dict. */
  applyFromPretrainedRenames,
  /** One rename applyFromPretrainedRenames made. */
  type KeyRename,
  /** Its result. */
  type RenamedStateDict,
  /** Its options. */
  type RenameOptions,
  /** The kinds of rename. */
  type RenameRule,
} from './key-renames.js';

// Pickles (the reference's annotation and cache files), through an allow list of globals.
export {
  /** Unpickles bytes, refusing every global not in `options.allow` (ForbiddenGlobalError). */
  unpickle,
  /** Merges allow lists. */
  combineAllowLists,
  /** An allow-list entry for a class whose instances are kept as opaque PyObjects. */
  opaqueClass,
  /** An allowed global as a value. */
  PyGlobal,
  /** An instance of an opaque class: its class name and state. */
  PyObject,
  /** An allow list: qualified name -> how to build it. */
  type AllowList,
  /** One allow-list entry. */
  type PickleGlobal,
  /** unpickle's options. */
  type UnpickleOptions,
} from './pickle.js';
export {
  /** The allow list of Python's plain data types (collections, bytes, ...). */
  PYTHON_DATA_GLOBALS,
} from './pickle-builtins.js';
export {
  /** The allow list for numpy arrays and scalars (read as RawTensors and numbers). */
  NUMPY_GLOBALS,
  /** A numpy dtype as the unpickler sees it. */
  NumpyDType,
} from './pickle-numpy.js';

// LMDB stores and .npy arrays.
export {
  /** A read-only LMDB environment (a directory with data.mdb, or a single file). */
  LmdbReader,
  /** Writes a new LMDB store in one transaction. */
  writeLmdb,
  /** writeLmdb's options. */
  type LmdbWriteOptions,
} from './lmdb.js';
export {
  /** A .npy file as a RawTensor. */
  readNpy,
  /** The same from bytes. */
  parseNpy,
} from './npy.js';

// Errors.
export {
  /** A checkpoint or data file that is not what it claims; names the file and, where known, the tensor. */
  CheckpointFormatError,
} from './format-error.js';
export {
  /** A pickle that names a global outside the allow list. */
  ForbiddenGlobalError,
} from './pickle.js';
export {
  /** An LMDB store that cannot be opened or read. */
  LmdbError,
} from './lmdb.js';
