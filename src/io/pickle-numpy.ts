// numpy arrays and scalars inside pickles (the image-feature LMDB values). An array comes
// back as a RawTensor: byte order normalised to little-endian, Fortran order to C order.
//
// numpy pickles an array as `_reconstruct(ndarray, (0,), b'b')` followed by BUILD with
// (version, shape, dtype, is_fortran, raw bytes); a dtype as `dtype('f4', False, True)`
// followed by BUILD with (version, byte order, ...); a scalar as `scalar(dtype, bytes)`;
// with protocol 5, a contiguous array as `_frombuffer(buffer, dtype, shape, order)`.
import { binaryValue } from './pickle-builtins.js';
import { PyGlobal, type AllowList, type PickleGlobal } from './pickle.js';
import { RAW_DTYPE_SIZE, byteLength, byteSwapped, gatherStrided, type RawDType, type RawTensor } from './raw-tensor.js';

/** A numpy dtype object: its type code ('f4', 'i8', ...) and byte order. */
export class NumpyDType {
  byteOrder = '=';
  structured = false;
  constructor(readonly typeCode: string) {}

  /** The RawTensor dtype, or throws for types RawTensor cannot hold. */
  rawDType(): RawDType {
    const dtype = NUMPY_TYPE_CODES.get(this.typeCode);
    if (dtype === undefined || this.structured)
      throw new Error(`numpy dtype '${this.typeCode}' has no RawTensor dtype`);
    return dtype;
  }

  /** Whether the element bytes must be reversed to become little-endian. */
  get bigEndian(): boolean {
    return this.byteOrder === '>';
  }
}

const NUMPY_TYPE_CODES = new Map<string, RawDType>([
  ['f2', 'float16'],
  ['f4', 'float32'],
  ['f8', 'float64'],
  ['i1', 'int8'],
  ['i2', 'int16'],
  ['i4', 'int32'],
  ['i8', 'int64'],
  ['u1', 'uint8'],
  ['b1', 'bool'],
]);

function numpyDType(value: unknown, what: string): NumpyDType {
  if (!(value instanceof NumpyDType)) throw new Error(`${what} is not a numpy dtype`);
  return value;
}

function shapeOf(value: unknown): number[] {
  if (!Array.isArray(value) || !value.every((size) => Number.isSafeInteger(size) && size >= 0)) {
    throw new Error(`shape ${JSON.stringify(value)} is not a tuple of non-negative integers`);
  }
  return value as number[];
}

/** C-order little-endian bytes of a numpy buffer. */
function toRawTensor(dtype: NumpyDType, shape: number[], fortranOrder: boolean, buffer: unknown): RawTensor {
  const raw = dtype.rawDType();
  const size = RAW_DTYPE_SIZE[raw];
  let data = binaryValue(buffer, 'array data');
  const expected = byteLength(raw, shape);
  if (data.length !== expected) {
    throw new Error(
      `array of shape [${shape.join(', ')}] and dtype '${dtype.typeCode}' needs ${expected} bytes, found ${data.length}`,
    );
  }
  if (dtype.bigEndian && size > 1) data = byteSwapped(data, size);
  if (fortranOrder && shape.length > 1) {
    const strides: number[] = [];
    shape.reduce((stride, dimSize) => {
      strides.push(stride);
      return stride * dimSize;
    }, 1);
    data = gatherStrided(data, size, 0, shape, strides);
  }
  return { dtype: raw, shape: [...shape], data };
}

const reconstruct: PickleGlobal = {
  call: (args) => {
    const [subtype] = args;
    if (!(subtype instanceof PyGlobal) || subtype.qualifiedName !== 'numpy.ndarray') {
      throw new Error('only plain numpy.ndarray can be reconstructed');
    }
    // Filled in by BUILD; the same object may already be in the memo, so it is mutated.
    const placeholder: RawTensor = { dtype: 'uint8', shape: [0], data: new Uint8Array(0) };
    return placeholder;
  },
  setState: (target, state) => {
    if (!Array.isArray(state) || (state.length !== 4 && state.length !== 5))
      throw new Error('array state is not (version, shape, dtype, is_fortran, data)');
    const [shape, dtype, fortranOrder, data] = state.length === 5 ? state.slice(1) : state;
    if (Array.isArray(data)) throw new Error('object arrays (dtype O) are not supported');
    Object.assign(target, toRawTensor(numpyDType(dtype, 'array dtype'), shapeOf(shape), fortranOrder === true, data));
  },
};

const dtypeGlobal: PickleGlobal = {
  call: (args) => {
    const [typeCode] = args;
    if (typeof typeCode !== 'string') throw new Error('dtype type code is not a string');
    return new NumpyDType(typeCode);
  },
  setState: (target, state) => {
    if (!Array.isArray(state) || state.length < 5 || typeof state[1] !== 'string')
      throw new Error('dtype state is not (version, byte order, ...)');
    const dtype = target as NumpyDType;
    dtype.byteOrder = state[1];
    // names (index 3) and fields (index 4) are set for structured dtypes.
    dtype.structured = state[3] !== null || state[4] !== null;
  },
};

function decodeScalar(dtype: NumpyDType, bytes: Uint8Array): number | bigint | boolean {
  const raw = dtype.rawDType();
  const size = RAW_DTYPE_SIZE[raw];
  if (bytes.length !== size)
    throw new Error(`scalar of dtype '${dtype.typeCode}' needs ${size} bytes, found ${bytes.length}`);
  const little = dtype.bigEndian ? byteSwapped(bytes, size) : bytes;
  const view = new DataView(little.buffer, little.byteOffset, size);
  switch (raw) {
    case 'bool':
      return view.getUint8(0) !== 0;
    case 'uint8':
      return view.getUint8(0);
    case 'int8':
      return view.getInt8(0);
    case 'int16':
      return view.getInt16(0, true);
    case 'int32':
      return view.getInt32(0, true);
    case 'int64': {
      const value = view.getBigInt64(0, true);
      return Number.isSafeInteger(Number(value)) ? Number(value) : value;
    }
    case 'float32':
      return view.getFloat32(0, true);
    case 'float64':
      return view.getFloat64(0, true);
    case 'float16':
      return halfToNumber(view.getUint16(0, true));
    case 'bfloat16':
      return new Float32Array(new Uint32Array([view.getUint16(0, true) << 16]).buffer)[0]!;
  }
}

function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const scalar: PickleGlobal = {
  call: (args) => decodeScalar(numpyDType(args[0], 'scalar dtype'), binaryValue(args[1], 'scalar data')),
};

const fromBuffer: PickleGlobal = {
  call: (args) => {
    const [buffer, dtype, shape, order] = args;
    if (order !== 'C' && order !== 'F') throw new Error(`array order ${JSON.stringify(order)} is not 'C' or 'F'`);
    return toRawTensor(numpyDType(dtype, 'array dtype'), shapeOf(shape), order === 'F', buffer);
  },
};

/**
 * numpy arrays, dtypes and scalars, under both module paths (numpy 1.x `numpy.core`,
 * numpy 2.x `numpy._core`). Combine with PYTHON_DATA_GLOBALS for `_codecs.encode`.
 */
export const NUMPY_GLOBALS: AllowList = new Map<string, PickleGlobal>(
  ['numpy.core', 'numpy._core']
    .flatMap((core): Array<[string, PickleGlobal]> => [
      [`${core}.multiarray._reconstruct`, reconstruct],
      [`${core}.multiarray.scalar`, scalar],
      [`${core}.numeric._frombuffer`, fromBuffer],
    ])
    .concat([
      ['numpy.ndarray', {}],
      ['numpy.dtype', dtypeGlobal],
    ]),
);
