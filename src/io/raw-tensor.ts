// A tensor as checkpoint files hold it: element type, shape and little-endian C-order bytes.
// Independent of the tensor engine so that file formats can be read, checked and converted
// without libtorch.

export type RawDType =
  'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export interface RawTensor {
  dtype: RawDType;
  /** Sizes of each dimension; `[]` is a scalar (one element). */
  shape: number[];
  /**
   * Little-endian, C-contiguous element bytes (product(shape) * element size of them).
   * Readers may hand out views into the file buffer or into storage shared with another
   * tensor: copy before writing into it.
   */
  data: Uint8Array;
}

export const RAW_DTYPE_SIZE: Readonly<Record<RawDType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function isRawDType(value: unknown): value is RawDType {
  return typeof value === 'string' && Object.hasOwn(RAW_DTYPE_SIZE, value);
}

export function isRawTensor(value: unknown): value is RawTensor {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<RawTensor>;
  return isRawDType(candidate.dtype) && Array.isArray(candidate.shape) && candidate.data instanceof Uint8Array;
}

/**
 * Number of elements of a shape, or throws when a size is not a non-negative integer or the
 * count passes 2^53 (a corrupt header, never a real tensor).
 */
export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const size of shape) {
    if (!Number.isSafeInteger(size) || size < 0)
      throw new RangeError(`invalid dimension size ${String(size)} in shape [${shape.join(', ')}]`);
    count *= size;
    if (!Number.isSafeInteger(count)) throw new RangeError(`shape [${shape.join(', ')}] has more than 2^53 elements`);
  }
  return count;
}

/** Byte length a tensor of this dtype and shape must have. */
export function byteLength(dtype: RawDType, shape: readonly number[]): number {
  const bytes = elementCount(shape) * RAW_DTYPE_SIZE[dtype];
  if (!Number.isSafeInteger(bytes))
    throw new RangeError(`shape [${shape.join(', ')}] of ${dtype} has more than 2^53 bytes`);
  return bytes;
}

/** A copy with every element's bytes reversed (big-endian <-> little-endian). */
export function byteSwapped(data: Uint8Array, elementSize: number): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let start = 0; start < data.length; start += elementSize) {
    for (let i = 0; i < elementSize; i++) out[start + i] = data[start + elementSize - 1 - i]!;
  }
  return out;
}

/** Element strides of a C-contiguous tensor of this shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let dim = shape.length - 1; dim >= 0; dim--) {
    strides[dim] = stride;
    stride *= shape[dim]!;
  }
  return strides;
}

/**
 * The C-contiguous bytes of a strided view (`offset`, `strides` in elements) of `storage`.
 * Contiguous views are returned without copying. The caller has checked that the view lies
 * inside the storage (see `viewExtent`).
 */
export function gatherStrided(
  storage: Uint8Array,
  elementSize: number,
  offset: number,
  shape: readonly number[],
  strides: readonly number[],
): Uint8Array {
  const count = elementCount(shape);
  const expected = contiguousStrides(shape);
  const contiguous = shape.every((size, dim) => size === 1 || strides[dim] === expected[dim]);
  if (contiguous || count === 0) return storage.subarray(offset * elementSize, (offset + count) * elementSize);

  // Copy runs along the innermost dimension; the index counter walks the outer ones.
  const rank = shape.length;
  const innerSize = shape[rank - 1]!;
  const innerStride = strides[rank - 1]!;
  const out = new Uint8Array(count * elementSize);
  const index = new Array<number>(rank - 1).fill(0);
  let source = offset;
  for (let written = 0; written < out.length; written += innerSize * elementSize) {
    if (innerStride === 1) {
      out.set(storage.subarray(source * elementSize, (source + innerSize) * elementSize), written);
    } else {
      for (let i = 0; i < innerSize; i++) {
        const from = (source + i * innerStride) * elementSize;
        out.set(storage.subarray(from, from + elementSize), written + i * elementSize);
      }
    }
    for (let dim = rank - 2; dim >= 0; dim--) {
      source += strides[dim]!;
      if (++index[dim]! < shape[dim]!) break;
      source -= strides[dim]! * shape[dim]!;
      index[dim] = 0;
    }
  }
  return out;
}

/** One past the last element a strided view touches (0 for an empty view). */
export function viewExtent(offset: number, shape: readonly number[], strides: readonly number[]): number {
  if (shape.some((size) => size === 0)) return 0;
  return shape.reduce((end, size, dim) => end + (size - 1) * strides[dim]!, offset + 1);
}

/** A plain Uint8Array view of the same bytes (a Buffer from fs becomes one, without copying). */
export function plainBytes(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
