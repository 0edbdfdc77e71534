// Creating tensors: from JavaScript data, filled, ranges and random draws.
import { native } from './native.js';
import { type AnyTypedArray, type DType, BYTES_PER_ELEMENT, dtypeCode, dtypeOfArray } from './dtype.js';
import { Tensor, op } from './tensor.js';

export interface CreateOptions {
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

let defaultDevice: string | null = null;

/**
 * Runs fn with factory functions (zeros, empty, randn, ...) creating on `device`
 * unless told otherwise. With 'meta' a model can be built without allocating
 * memory, to read its parameter names and shapes.
 */
export function withDefaultDevice<T>(device: string, fn: () => T): T {
  const previous = defaultDevice;
  defaultDevice = device;
  try {
    return fn();
  } finally {
    defaultDevice = previous;
  }
}

type NestedNumbers = number | boolean | bigint | NestedNumbers[];

function inferShape(data: NestedNumbers): number[] {
  const shape: number[] = [];
  let level: NestedNumbers = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0] as NestedNumbers;
  }
  return shape;
}

function flatten(data: NestedNumbers, shape: number[], depth: number, out: (number | boolean | bigint)[]): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new TypeError('tensor(): ragged nested array');
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw new TypeError(`tensor(): ragged nested array at depth ${depth} (expected length ${shape[depth]})`);
  }
  for (const item of data) flatten(item, shape, depth + 1, out);
}

function typedArrayOf(values: (number | boolean | bigint)[], dtype: DType): AnyTypedArray {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values, Number);
    case 'float64':
      return Float64Array.from(values, Number);
    case 'int64':
      return BigInt64Array.from(values, (value) => BigInt(typeof value === 'boolean' ? Number(value) : value));
    case 'int32':
      return Int32Array.from(values, Number);
    case 'int16':
      return Int16Array.from(values, Number);
    case 'int8':
      return Int8Array.from(values, Number);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(values, (value) => (dtype === 'bool' ? Number(Boolean(value)) : Number(value)));
    default:
      throw new TypeError(`tensor(): cannot build ${dtype} from JavaScript numbers`);
  }
}

function finish(tensor: Tensor, options: CreateOptions): Tensor {
  let result = tensor;
  if (options.device !== undefined && options.device !== 'cpu') {
    result = tensor.to(options.device);
    tensor.dispose();
  }
  if (options.requiresGrad) result.requiresGrad_(true);
  return result;
}

/**
 * A tensor from nested arrays or a TypedArray (copied). Numbers default to
 * float32, booleans to bool, bigints to int64; a TypedArray keeps its type
 * unless dtype says how to read its bytes.
 */
export function tensor(
  data: NestedNumbers | AnyTypedArray,
  options: CreateOptions & { shape?: number[] } = {},
): Tensor {
  if (ArrayBuffer.isView(data)) {
    const dtype = options.dtype ?? dtypeOfArray(data);
    const shape = options.shape ?? [data.byteLength / BYTES_PER_ELEMENT[dtype]];
    return finish(new Tensor(native.fromBuffer(data, shape, dtypeCode(dtype))), options);
  }
  const shape = options.shape ?? inferShape(data);
  const values: (number | boolean | bigint)[] = [];
  if (options.shape) {
    flatten(data, inferShape(data), 0, values);
  } else {
    flatten(data, shape, 0, values);
  }
  const first = values[0];
  const dtype =
    options.dtype ?? (typeof first === 'boolean' ? 'bool' : typeof first === 'bigint' ? 'int64' : 'float32');
  return finish(new Tensor(native.fromBuffer(typedArrayOf(values, dtype), shape, dtypeCode(dtype))), options);
}

/** Calls an ATen factory `name(...before, size, ...after, dtype, layout, device)`. */
function factory(
  name: string,
  shape: number[],
  options: CreateOptions,
  before: unknown[] = [],
  after: unknown[] = [],
): Tensor {
  const dtype = options.dtype === undefined ? null : dtypeCode(options.dtype);
  const created = op(name, ...before, shape, ...after, dtype, null, options.device ?? defaultDevice);
  if (options.requiresGrad) created.requiresGrad_(true);
  return created;
}

/**
 * A tensor over bytes from `readFileBytes` (the checkpoint readers): shares their memory,
 * without a copy, when they are aligned for the dtype, so that writing into one writes into
 * the other; any other bytes are copied, as by `tensor`.
 */
export function tensorOverFileBytes(data: Uint8Array, dtype: DType, shape: number[]): Tensor {
  const handle = native.tensorFromFileBytes(data, shape, dtypeCode(dtype));
  return handle === null ? tensor(data, { dtype, shape }) : new Tensor(handle);
}

export function zeros(shape: number[], options: CreateOptions = {}): Tensor {
  return factory('zeros', shape, options);
}

export function ones(shape: number[], options: CreateOptions = {}): Tensor {
  return factory('ones', shape, options);
}

export function full(shape: number[], value: number | boolean, options: CreateOptions = {}): Tensor {
  return factory('full', shape, options, [], [value]);
}

export function empty(shape: number[], options: CreateOptions = {}): Tensor {
  return factory('empty.memory_format', shape, options);
}

/** Uniform on [0, 1), from the global generator. */
export function rand(shape: number[], options: CreateOptions = {}): Tensor {
  return factory('rand', shape, options);
}

/** Standard normal, from the global generator. */
export function randn(shape: number[], options: CreateOptions = {}): Tensor {
  return factory('randn', shape, options);
}

/** Integers uniform on [low, high), int64 unless dtype says otherwise. */
export function randint(low: number, high: number, shape: number[], options: CreateOptions = {}): Tensor {
  return factory('randint.low', shape, { dtype: 'int64', ...options }, [low, high]);
}

export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  const [from, to] = end === undefined ? [0, start] : [start, end];
  const dtype = options.dtype === undefined ? null : dtypeCode(options.dtype);
  return op('arange.start_step', from, to, step, dtype, null, options.device ?? defaultDevice);
}

export function zerosLike(other: Tensor, options: CreateOptions = {}): Tensor {
  return op('zeros_like', other, options.dtype === undefined ? null : dtypeCode(options.dtype));
}

export function onesLike(other: Tensor, options: CreateOptions = {}): Tensor {
  return op('ones_like', other, options.dtype === undefined ? null : dtypeCode(options.dtype));
}

export function cat(tensors: Tensor[], dim = 0): Tensor {
  return op('cat', tensors, dim);
}

export function stack(tensors: Tensor[], dim = 0): Tensor {
  return op('stack', tensors, dim);
}

/** Elementwise choice: condition ? self : other. */
export function where(condition: Tensor, self: Tensor | number, other: Tensor | number): Tensor {
  if (self instanceof Tensor && other instanceof Tensor) return op('where.self', condition, self, other);
  if (self instanceof Tensor) return op('where.ScalarOther', condition, self, other);
  if (other instanceof Tensor) return op('where.ScalarSelf', condition, self, other);
  return op('where.Scalar', condition, self, other);
}
