// The reference loaders' token caches, `<dataroot>/cache/<Task>_<split>_<L>[_<R>][_cleaned].pkl`:
// `cPickle.dump(self.entries)` of a list of dicts whose tokens (and some targets) are torch
// tensors. A plain pickle of a torch tensor is
//   torch._utils._rebuild_tensor_v2(torch.storage._load_from_bytes(b), offset, size, stride, requires_grad, hooks)
// where `b` is the storage saved alone in torch's legacy stream format (magic, protocol,
// sys_info, the storage's persistent id, the key list, then element count + raw bytes).
//
// `readTokenCache` turns such a file into Maps (dicts), arrays (lists and tuples), RawTensors
// and primitives; `writeTokenCache` writes the same shapes back in the same format, so that
// the reference (and this reader) can load what we write.
import { join } from 'node:path';
import { CheckpointFormatError } from '../io/format-error.js';
import { readFileBytes, writeChunks } from '../io/file-io.js';
import { PYTHON_DATA_GLOBALS } from '../io/pickle-builtins.js';
import { combineAllowLists, describe, unpickle, type AllowList, type PickleGlobal } from '../io/pickle.js';
import { PickleCall, PickleGlobalRef, PicklePersistentId, pickle } from '../io/pickle-writer.js';
import {
  RAW_DTYPE_SIZE,
  contiguousStrides,
  elementCount,
  gatherStrided,
  isRawTensor,
  viewExtent,
  type RawDType,
  type RawTensor,
} from '../io/raw-tensor.js';
import { STORAGE_DTYPES, StorageRef } from '../io/torch-pickle.js';
import { parseTorchCheckpoint } from '../io/torch-checkpoint.js';
import type { ItemTensor } from './dataset.js';
import { DatasetError } from './dataset-error.js';

export interface TokenCacheName {
  /** The yml task name (`VQA`, `GQA`, `refcoco`, ...): the loaders' `task` argument. */
  task: string;
  split: string;
  maxSeqLength: number;
  /** Only in the names of the loaders that put it there (refcoco*, Visual7w, GuessWhatPointing). */
  maxRegionNum?: number;
  /** `_cleaned` is appended whenever clean_datasets is on, even for splits that are not cleaned. */
  cleaned: boolean;
}

/** `<dataroot>/cache/<Task>_<split>_<L>[_<R>][_cleaned].pkl` */
export function tokenCachePath(dataroot: string, name: TokenCacheName): string {
  const region = name.maxRegionNum === undefined ? '' : `_${name.maxRegionNum}`;
  return join(
    dataroot,
    'cache',
    `${name.task}_${name.split}_${name.maxSeqLength}${region}${name.cleaned ? '_cleaned' : ''}.pkl`,
  );
}

/** A storage as `_load_from_bytes` gives it: element type and little-endian bytes. */
class LoadedStorage {
  constructor(
    readonly dtype: RawDType,
    readonly bytes: Uint8Array,
  ) {}

  get numel(): number {
    return this.bytes.length / RAW_DTYPE_SIZE[this.dtype];
  }
}

/**
 * `torch.storage._load_from_bytes(b)`: b is a legacy torch.save stream of one storage. The
 * checkpoint parser validates the stream (including the element count before the data);
 * a single-storage stream ends with that storage's bytes.
 */
function loadStorageFromBytes(args: unknown[]): LoadedStorage {
  const [bytes] = args;
  if (!(bytes instanceof Uint8Array)) throw new Error(`expects bytes, got a ${describe(bytes)}`);
  const { format, object } = parseTorchCheckpoint(bytes, '<storage bytes>');
  if (format !== 'legacy' || !(object instanceof StorageRef) || object.elementOffset !== 0) {
    throw new Error(
      `expects a legacy torch stream of one whole storage, found a ${format} stream of a ${describe(object)}`,
    );
  }
  const length = object.numel * RAW_DTYPE_SIZE[object.dtype];
  const countAt = bytes.length - length - 8;
  const count = countAt >= 0 ? new DataView(bytes.buffer, bytes.byteOffset + countAt, 8).getBigUint64(0, true) : -1n;
  if (count !== BigInt(object.numel)) throw new Error(`storage stream does not end with its ${object.numel} elements`);
  return new LoadedStorage(object.dtype, bytes.slice(bytes.length - length));
}

/** `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])` on a loaded storage. */
function rebuildTensor(args: unknown[]): RawTensor {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof LoadedStorage))
    throw new Error(`first argument is a ${describe(storage)}, expected a storage from _load_from_bytes`);
  const isIndexList = (value: unknown): value is number[] =>
    Array.isArray(value) && value.every((n) => Number.isSafeInteger(n) && n >= 0);
  if (
    !Number.isSafeInteger(offset) ||
    (offset as number) < 0 ||
    !isIndexList(size) ||
    !isIndexList(stride) ||
    size.length !== stride.length
  ) {
    throw new Error(
      `bad tensor view: offset ${String(offset)}, size ${JSON.stringify(size)}, stride ${JSON.stringify(stride)}`,
    );
  }
  const shape = [...size];
  const extent = viewExtent(offset as number, shape, stride);
  if (extent > storage.numel)
    throw new Error(`view [${shape.join(', ')}] reaches element ${extent} of a ${storage.numel}-element storage`);
  // A copy: views into the pickle buffer are unaligned for typed arrays.
  const data = gatherStrided(storage.bytes, RAW_DTYPE_SIZE[storage.dtype], offset as number, shape, stride).slice();
  return { dtype: storage.dtype, shape, data };
}

/** What token caches may name: torch tensors and plain Python data (dict and list included, as the writer uses them). */
export const TOKEN_CACHE_GLOBALS: AllowList = combineAllowLists(
  PYTHON_DATA_GLOBALS,
  new Map<string, PickleGlobal>([
    ['torch.storage._load_from_bytes', { call: loadStorageFromBytes }],
    ['torch._utils._rebuild_tensor_v2', { call: rebuildTensor }],
    ['builtins.dict', { call: () => new Map() }],
    ['builtins.list', { call: (args) => [...((args[0] ?? []) as unknown[])] }],
  ]),
);

/** The unpickled cache: dicts as Maps, lists as arrays, tensors as RawTensor (own, aligned bytes). */
export function readTokenCache(path: string): unknown {
  return unpickle(readFileBytes(path), { allow: TOKEN_CACHE_GLOBALS, source: path });
}

/** The cache's entries: a list of dicts with string keys (what every loader pickles). */
export function readTokenCacheEntries(path: string): Map<string, unknown>[] {
  const value = readTokenCache(path);
  if (!Array.isArray(value))
    throw new CheckpointFormatError(path, `token cache holds a ${describe(value)}, expected a list of entries`);
  value.forEach((entry, index) => {
    if (!(entry instanceof Map))
      throw new CheckpointFormatError(path, `entry ${index} is a ${describe(entry)}, expected a dict`);
  });
  return value as Map<string, unknown>[];
}

const GLOBAL = {
  dict: new PickleGlobalRef('builtins', 'dict'),
  list: new PickleGlobalRef('builtins', 'list'),
  encode: new PickleGlobalRef('_codecs', 'encode'),
  orderedDict: new PickleGlobalRef('collections', 'OrderedDict'),
  rebuild: new PickleGlobalRef('torch._utils', '_rebuild_tensor_v2'),
  loadFromBytes: new PickleGlobalRef('torch.storage', '_load_from_bytes'),
};
const STORAGE_NAMES = new Map(Object.entries(STORAGE_DTYPES).map(([name, dtype]) => [dtype, name]));

/** Protocol 2 carries bytes as `_codecs.encode(latin-1 text, 'latin1')`, as Python 3 pickles them. */
function bytesNode(bytes: Uint8Array): PickleCall {
  return new PickleCall(GLOBAL.encode, [
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'),
    'latin1',
  ]);
}

/**
 * The first three pickles of a legacy torch.save stream, byte for byte as torch writes them:
 * the magic number, protocol version 1001 and sys_info
 * `{'protocol_version': 1001, 'little_endian': True, 'type_sizes': {'short': 2, 'int': 4, 'long': 4}}`.
 */
const LEGACY_HEADER = Buffer.from(
  '80028a0a6cfc9c46f9206aa850192e80024de9032e80027d710028581000000070726f746f636f6c5f76657273696f6e71014de903580d0000006c6974746c655f656e6469616e710288580a000000747970655f73697a657371037d710428580500000073686f727471054b025803000000696e7471064b0458040000006c6f6e6771074b0475752e',
  'hex',
);

/** The legacy torch.save stream of one storage holding the tensor's (contiguous) elements. */
function storageStream(tensor: RawTensor, where: string): Uint8Array {
  const storageType = STORAGE_NAMES.get(tensor.dtype);
  if (storageType === undefined) throw new DatasetError(where, `no torch storage type for ${tensor.dtype}`);
  const numel = elementCount(tensor.shape);
  const key = '0';
  const count = Buffer.alloc(8);
  count.writeBigUInt64LE(BigInt(numel));
  return Buffer.concat([
    LEGACY_HEADER,
    pickle(new PicklePersistentId(['storage', new PickleGlobalRef('torch', storageType), key, 'cpu', numel, null])),
    pickle([key]),
    count,
    tensor.data,
  ]);
}

/** The pickle-writer tree of a value: Map / plain object -> dict, array -> list, RawTensor or ItemTensor -> torch tensor. */
function cacheNode(value: unknown, where: string): unknown {
  if (
    value === null ||
    typeof value === 'boolean' ||
    typeof value === 'number' ||
    typeof value === 'bigint' ||
    typeof value === 'string'
  )
    return value;
  if (value === undefined) return null;
  if (isRawTensor(value)) {
    const storage = new PickleCall(GLOBAL.loadFromBytes, [bytesNode(storageStream(value, where))]);
    return new PickleCall(GLOBAL.rebuild, [
      storage,
      0,
      value.shape,
      contiguousStrides(value.shape),
      false,
      new PickleCall(GLOBAL.orderedDict, []),
    ]);
  }
  if (isItemTensor(value)) return cacheNode(rawFromItemTensor(value), where);
  if (value instanceof Uint8Array) return bytesNode(value);
  if (Array.isArray(value))
    return new PickleCall(GLOBAL.list, [value.map((item, index) => cacheNode(item, `${where}[${index}]`))]);
  const entries = value instanceof Map ? [...value] : Object.entries(value as object);
  return new PickleCall(
    GLOBAL.dict,
    [],
    entries.map(([key, item]): [unknown, unknown] => [
      cacheNode(key, where),
      cacheNode(item, `${where}.${String(key)}`),
    ]),
  );
}

/** Writes a cache the reference's `cPickle.load` (with torch importable) and `readTokenCache` both read. */
export function writeTokenCache(path: string, value: unknown): void {
  writeChunks(path, [pickle(cacheNode(value, 'cache'))]);
}

function isItemTensor(value: unknown): value is ItemTensor {
  const data = (value as Partial<ItemTensor> | null)?.data;
  return data instanceof Float32Array || data instanceof Float64Array || data instanceof BigInt64Array;
}

/** The bytes of an item tensor as a RawTensor (a view, no copy). */
export function rawFromItemTensor(tensor: ItemTensor): RawTensor {
  const { buffer, byteOffset, byteLength } = tensor.data;
  return { dtype: tensor.dtype, shape: [...tensor.shape], data: new Uint8Array(buffer, byteOffset, byteLength) };
}

/** A RawTensor of a cache as an item tensor (float32, float64 or int64), copying its bytes. */
export function itemTensorFromRaw(tensor: RawTensor, where: string): ItemTensor {
  const data = tensor.data.slice();
  const count = elementCount(tensor.shape);
  switch (tensor.dtype) {
    case 'float32':
      return { dtype: 'float32', shape: [...tensor.shape], data: new Float32Array(data.buffer, 0, count) };
    case 'float64':
      return { dtype: 'float64', shape: [...tensor.shape], data: new Float64Array(data.buffer, 0, count) };
    case 'int64':
      return { dtype: 'int64', shape: [...tensor.shape], data: new BigInt64Array(data.buffer, 0, count) };
    default:
      throw new DatasetError(where, `tensor of ${tensor.dtype}, expected float32, float64 or int64`);
  }
}

/**
 * A 1-D tensor of numbers as the loaders tensorize lists: `torch.from_numpy(np.array(ints))`
 * is int64, `np.array(floats, dtype=np.float32)` float32.
 */
export function rawTensor1d(dtype: 'int64' | 'float32', values: readonly number[]): RawTensor {
  const typed = dtype === 'int64' ? BigInt64Array.from(values, (value) => BigInt(value)) : Float32Array.from(values);
  return { dtype, shape: [values.length], data: new Uint8Array(typed.buffer) };
}
