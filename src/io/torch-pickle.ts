// What torch.save pickles inside both checkpoint formats: tensors as
// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` whose storages are
// persistent ids ('storage', torch.FloatStorage, key, location, numel[, view_metadata]).
// Storage bytes are only known after the pickle (the legacy format stores them behind it),
// so rebuilt tensors start empty and are filled by `materialize` once the bytes are read.
import { CheckpointFormatError } from './format-error.js';
import { PYTHON_DATA_GLOBALS } from './pickle-builtins.js';
import { combineAllowLists, PyGlobal, type AllowList, type PickleGlobal } from './pickle.js';
import {
  RAW_DTYPE_SIZE,
  byteSwapped,
  elementCount,
  gatherStrided,
  isRawTensor,
  viewExtent,
  type RawDType,
  type RawTensor,
} from './raw-tensor.js';

/** torch's legacy typed storage classes and their element types. */
export const STORAGE_DTYPES: Readonly<Record<string, RawDType>> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** Largest C-contiguous copy made of a view with more elements than its storage. */
const MAX_EXPANDED_BYTES = 1 << 28;

/** A storage as a persistent id names it: a whole root storage or a view into one (legacy). */
export class StorageRef {
  constructor(
    readonly rootKey: string,
    readonly dtype: RawDType,
    /** Offset of this storage's element 0 inside the root storage, in elements. */
    readonly elementOffset: number,
    readonly numel: number,
  ) {}
}

/** A root storage: element type and count from its persistent id, bytes once read. */
export interface RootStorage {
  dtype: RawDType;
  numel: number;
  bytes?: Uint8Array;
}

interface PendingTensor {
  tensor: RawTensor;
  storage: StorageRef;
  offset: number;
  stride: number[];
}

const isIndex = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

function indexTuple(value: unknown, what: string): number[] {
  if (!Array.isArray(value) || !value.every(isIndex))
    throw new Error(`${what} ${JSON.stringify(value)} is not a tuple of non-negative integers`);
  return [...value];
}

/** One checkpoint's unpickling: its allow-list, persistent-id loader and pending tensors. */
export class TorchUnpickling {
  readonly roots = new Map<string, RootStorage>();
  private readonly pending: PendingTensor[] = [];
  readonly allow: AllowList;

  /** @param extra globals allowed on top of the torch ones */
  constructor(
    private readonly source: string,
    extra: AllowList = new Map(),
  ) {
    const rebuildTensor = (args: unknown[]): RawTensor => this.rebuildTensor(args);
    const firstArgument = (args: unknown[]): unknown => args[0];
    const storageTypes = Object.keys(STORAGE_DTYPES).map((name): [string, PickleGlobal] => [`torch.${name}`, {}]);
    this.allow = combineAllowLists(
      PYTHON_DATA_GLOBALS,
      new Map<string, PickleGlobal>([
        ...storageTypes,
        ['torch._utils._rebuild_tensor', { call: rebuildTensor }],
        ['torch._utils._rebuild_tensor_v2', { call: rebuildTensor }],
        // Parameters load as their data; requires_grad and hooks do not travel.
        ['torch._utils._rebuild_parameter', { call: firstArgument }],
        ['torch._utils._rebuild_parameter_with_state', { call: firstArgument }],
        // (func, type, args, state): tensors that carried Python attributes; rebuild, drop the rest.
        ['torch._tensor._rebuild_from_type_v2', { call: (args) => rebuildFromType(args) }],
        ['torch.Tensor', {}],
        ['torch.nn.parameter.Parameter', {}],
        ['torch.Size', { call: (args) => indexTuple(args[0], 'torch.Size') }],
      ]),
      extra,
    );
  }

  /** Python's persistent_load for torch storages. */
  readonly persistentLoad = (pid: unknown): StorageRef => {
    if (!Array.isArray(pid) || pid.length < 5)
      throw new Error(`persistent id ${describePid(pid)} is not a storage tuple`);
    const [typename, storageType, key, , numel, viewMetadata] = pid as unknown[];
    if (typename === 'module')
      throw new Error('the file pickles a whole nn.Module; only state dicts (model.state_dict()) can be read');
    if (typename !== 'storage') throw new Error(`persistent id of kind '${String(typename)}', expected 'storage'`);
    if (
      !(storageType instanceof PyGlobal) ||
      storageType.module !== 'torch' ||
      STORAGE_DTYPES[storageType.name] === undefined
    ) {
      throw new Error(
        `storage type ${storageType instanceof PyGlobal ? storageType.qualifiedName : typeof storageType} is not a torch typed storage`,
      );
    }
    if (typeof key !== 'string' || !isIndex(numel))
      throw new Error('storage key is not a string, or its size not an integer');
    const dtype = STORAGE_DTYPES[storageType.name]!;
    const root = this.roots.get(key);
    if (root === undefined) this.roots.set(key, { dtype, numel });
    else if (root.dtype !== dtype || root.numel !== numel) {
      throw new CheckpointFormatError(
        this.source,
        `storage is used as ${numel} x ${dtype} and as ${root.numel} x ${root.dtype}`,
        `storage ${key}`,
      );
    }
    if (viewMetadata === undefined || viewMetadata === null) return new StorageRef(key, dtype, 0, numel);
    // Legacy storage views: (view_key, offset, size) in elements of the root storage.
    const [, viewOffset, viewSize] = Array.isArray(viewMetadata) ? viewMetadata : [];
    if (!isIndex(viewOffset) || !isIndex(viewSize) || viewOffset + viewSize > numel) {
      throw new CheckpointFormatError(
        this.source,
        `storage view ${JSON.stringify(viewMetadata)} does not fit its ${numel}-element root storage`,
        `storage ${key}`,
      );
    }
    return new StorageRef(key, dtype, viewOffset, viewSize);
  };

  private rebuildTensor(args: unknown[]): RawTensor {
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof StorageRef)) throw new Error('first argument is not a storage');
    if (!isIndex(offset)) throw new Error(`storage offset ${String(offset)} is not a non-negative integer`);
    const shape = indexTuple(size, 'size');
    const strides = indexTuple(stride, 'stride');
    if (strides.length !== shape.length)
      throw new Error(`size [${shape.join(', ')}] and stride [${strides.join(', ')}] differ in length`);
    elementCount(shape);
    const tensor: RawTensor = { dtype: storage.dtype, shape, data: new Uint8Array(0) };
    this.pending.push({ tensor, storage, offset, stride: strides });
    return tensor;
  }

  /**
   * Gives every rebuilt tensor its C-contiguous little-endian bytes, once every root
   * storage has its `bytes`. `root` (the unpickled object) only serves to name tensors in errors.
   */
  materialize(root: unknown, bigEndian: boolean): void {
    for (const { tensor, storage, offset, stride } of this.pending) {
      const fail = (problem: string): never => {
        throw new CheckpointFormatError(
          this.source,
          problem,
          tensorPath(root, tensor) ?? `tensor on storage ${storage.rootKey}`,
        );
      };
      const bytes = this.roots.get(storage.rootKey)?.bytes;
      if (bytes === undefined) return fail(`storage ${storage.rootKey} has no data in the file`);
      const extent = viewExtent(offset, tensor.shape, stride);
      if (extent > storage.numel) {
        fail(
          `view (offset ${offset}, size [${tensor.shape.join(', ')}], stride [${stride.join(', ')}]) reaches element ${extent} of a ${storage.numel}-element storage`,
        );
      }
      const elementSize = RAW_DTYPE_SIZE[tensor.dtype];
      const count = elementCount(tensor.shape);
      // Only a view that overlaps itself (stride 0, expand()) has more elements than its
      // storage; copying one out is capped so that a corrupt size cannot exhaust memory.
      if (count > storage.numel && count * elementSize > MAX_EXPANDED_BYTES) {
        fail(
          `self-overlapping view of ${count} elements on a ${storage.numel}-element storage would need ${count * elementSize} bytes`,
        );
      }
      const data = gatherStrided(bytes, elementSize, storage.elementOffset + offset, tensor.shape, stride);
      tensor.data = bigEndian && elementSize > 1 ? byteSwapped(data, elementSize) : data;
    }
  }
}

function rebuildFromType(args: unknown[]): unknown {
  const [func, , funcArgs] = args;
  if (!(func instanceof PyGlobal) || func.handler.call === undefined || !Array.isArray(funcArgs)) {
    throw new Error('expects (allowed function, type, args tuple, state)');
  }
  return func.handler.call(funcArgs);
}

function describePid(pid: unknown): string {
  return Array.isArray(pid) ? `of ${pid.length} items` : typeof pid;
}

/** 'model_state_dict/bert.x.weight'-style path of a tensor inside the unpickled object. */
export function tensorPath(root: unknown, target: RawTensor): string | undefined {
  const seen = new Set<unknown>();
  const search = (value: unknown, path: string[], depth: number): string | undefined => {
    if (value === target) return path.join('/');
    if (depth === 0 || typeof value !== 'object' || value === null || seen.has(value) || isRawTensor(value))
      return undefined;
    seen.add(value);
    const entries =
      value instanceof Map
        ? [...value]
        : Array.isArray(value)
          ? value.map((item, index) => [index, item] as const)
          : [];
    for (const [key, item] of entries) {
      const found = search(item, [...path, String(key)], depth - 1);
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return search(root, [], 6);
}
