// .npy files as np.save writes them (format versions 1.0-3.0): the header dict, then the raw
// C-order element bytes. The loaders read `cache/*_test_ids.npy` (int64, 1-D) with it.
import { readFileSync } from 'node:fs';
import { CheckpointFormatError } from './format-error.js';
import { type RawDType, type RawTensor, byteLength, plainBytes } from './raw-tensor.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const DESCR_DTYPES: Readonly<Record<string, RawDType>> = {
  '<f4': 'float32',
  '<f8': 'float64',
  '<f2': 'float16',
  '<i8': 'int64',
  '<i4': 'int32',
  '<i2': 'int16',
  '|i1': 'int8',
  '|u1': 'uint8',
  '|b1': 'bool',
};

export function parseNpy(bytes: Uint8Array, source = '<buffer>'): RawTensor {
  if (bytes.length < 10 || MAGIC.some((byte, i) => bytes[i] !== byte))
    throw new CheckpointFormatError(source, 'not a .npy file (no \\x93NUMPY magic)');
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerStart = 10;
    headerLength = view.getUint16(8, true);
  } else if (major === 2 || major === 3) {
    headerStart = 12;
    headerLength = view.getUint32(8, true);
  } else {
    throw new CheckpointFormatError(source, `.npy format version ${major}.${bytes[7]!} is not supported (1.0-3.0)`);
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length)
    throw new CheckpointFormatError(source, `header of ${headerLength} bytes runs past the end of the file`);
  const header = new TextDecoder().decode(bytes.subarray(headerStart, dataStart));
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw new CheckpointFormatError(source, `unreadable .npy header ${JSON.stringify(header.trim())}`);
  const dtype = DESCR_DTYPES[descr];
  if (dtype === undefined)
    throw new CheckpointFormatError(source, `.npy dtype '${descr}' is not supported (little-endian numbers only)`);
  const shape = shapeText
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map(Number);
  if (fortran === 'True' && shape.filter((size) => size > 1).length > 1)
    throw new CheckpointFormatError(source, 'Fortran-order arrays are not supported');
  const length = byteLength(dtype, shape);
  if (dataStart + length > bytes.length)
    throw new CheckpointFormatError(
      source,
      `expected ${length} data bytes for ${descr} [${shape.join(', ')}], found ${bytes.length - dataStart}`,
    );
  return { dtype, shape, data: bytes.subarray(dataStart, dataStart + length) };
}

export function readNpy(path: string): RawTensor {
  // A plain Uint8Array: a Buffer's slice() is a view into Node's shared pool, not a copy.
  return parseNpy(plainBytes(readFileSync(path)), path);
}

/** The elements of an integer .npy array as numbers (ids), e.g. `[int(x) for x in np.load(path)]`. */
export function readNpyIntegers(path: string): number[] {
  const tensor = readNpy(path);
  const bytes = tensor.data.slice();
  switch (tensor.dtype) {
    case 'int64':
      return Array.from(new BigInt64Array(bytes.buffer), Number);
    case 'int32':
      return Array.from(new Int32Array(bytes.buffer));
    case 'int16':
      return Array.from(new Int16Array(bytes.buffer));
    case 'int8':
      return Array.from(new Int8Array(bytes.buffer));
    case 'uint8':
      return Array.from(bytes);
    default:
      throw new CheckpointFormatError(path, `expected an integer array, found ${tensor.dtype}`);
  }
}
