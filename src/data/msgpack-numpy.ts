// msgpack values as Python's msgpack 0.5+ decodes them with `raw=False`, and the numpy
// arrays msgpack-numpy stores in them (tensorpack 0.9's LMDBSerializer format).
//
// Our own decoder rather than an npm one: msgpack-numpy writes arrays as maps whose keys are
// msgpack *bin* values (b"nd", b"type", ...), and the JavaScript decoders turn map keys into
// strings, which loses the bin/str distinction msgpack-numpy relies on. Here maps are `Map`s
// whose keys keep their decoded type (bin keys are Uint8Arrays).
import { CheckpointFormatError } from '../io/format-error.js';
import { RAW_DTYPE_SIZE, elementCount, type RawDType, type RawTensor } from '../io/raw-tensor.js';

/** An ext value (type code and payload); Python's msgpack returns `ExtType(code, data)`. */
export class MsgpackExt {
  constructor(
    readonly type: number,
    readonly data: Uint8Array,
  ) {}
}

export type MsgpackValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | MsgpackExt
  | RawTensor
  | MsgpackValue[]
  | Map<MsgpackValue, MsgpackValue>;

const utf8 = new TextDecoder('utf-8', { fatal: true });

class MsgpackDecoder {
  private position = 0;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly source: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  decodeAll(): MsgpackValue {
    const value = this.value();
    if (this.position !== this.bytes.length) this.fail(`${this.bytes.length - this.position} bytes after the value`);
    return value;
  }

  private fail(problem: string): never {
    throw new CheckpointFormatError(this.source, `msgpack at byte ${this.position}: ${problem}`);
  }

  private take(length: number): Uint8Array {
    if (this.position + length > this.bytes.length)
      this.fail(`needs ${length} bytes, ${this.bytes.length - this.position} left`);
    const slice = this.bytes.subarray(this.position, this.position + length);
    this.position += length;
    return slice;
  }

  /** The view offset of the next `size` bytes, which are consumed (the view starts where `bytes` does). */
  private skip(size: number): number {
    const at = this.position;
    this.take(size);
    return at;
  }

  private uint(size: 1 | 2 | 4): number {
    const at = this.skip(size);
    return size === 1 ? this.view.getUint8(at) : size === 2 ? this.view.getUint16(at) : this.view.getUint32(at);
  }

  /** A 64-bit integer: a number when it is exactly representable, else a bigint (Python int). */
  private int64(signed: boolean): number | bigint {
    const at = this.skip(8);
    const value = signed ? this.view.getBigInt64(at) : this.view.getBigUint64(at);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }

  private text(length: number): string {
    const at = this.position;
    try {
      return utf8.decode(this.take(length));
    } catch (error) {
      if (error instanceof CheckpointFormatError) throw error;
      this.position = at;
      return this.fail('str is not valid UTF-8');
    }
  }

  private array(length: number): MsgpackValue[] {
    const items: MsgpackValue[] = [];
    for (let i = 0; i < length; i++) items.push(this.value());
    return items;
  }

  private map(length: number): Map<MsgpackValue, MsgpackValue> {
    const entries = new Map<MsgpackValue, MsgpackValue>();
    for (let i = 0; i < length; i++) {
      const key = this.value();
      entries.set(key, this.value());
    }
    return entries;
  }

  private ext(length: number): MsgpackExt {
    const type = this.view.getInt8(this.skip(1));
    return new MsgpackExt(type, this.take(length));
  }

  private value(): MsgpackValue {
    const code = this.uint(1);
    if (code <= 0x7f) return code;
    if (code >= 0xe0) return code - 0x100;
    if (code <= 0x8f) return this.map(code & 0x0f);
    if (code <= 0x9f) return this.array(code & 0x0f);
    if (code <= 0xbf) return this.text(code & 0x1f);
    switch (code) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.take(this.uint(1));
      case 0xc5:
        return this.take(this.uint(2));
      case 0xc6:
        return this.take(this.uint(4));
      case 0xc7:
        return this.ext(this.uint(1));
      case 0xc8:
        return this.ext(this.uint(2));
      case 0xc9:
        return this.ext(this.uint(4));
      case 0xca:
        return this.view.getFloat32(this.skip(4));
      case 0xcb:
        return this.view.getFloat64(this.skip(8));
      case 0xcc:
        return this.uint(1);
      case 0xcd:
        return this.uint(2);
      case 0xce:
        return this.uint(4);
      case 0xcf:
        return this.int64(false);
      case 0xd0:
        return this.view.getInt8(this.skip(1));
      case 0xd1:
        return this.view.getInt16(this.skip(2));
      case 0xd2:
        return this.view.getInt32(this.skip(4));
      case 0xd3:
        return this.int64(true);
      case 0xd4:
        return this.ext(1);
      case 0xd5:
        return this.ext(2);
      case 0xd6:
        return this.ext(4);
      case 0xd7:
        return this.ext(8);
      case 0xd8:
        return this.ext(16);
      case 0xd9:
        return this.text(this.uint(1));
      case 0xda:
        return this.text(this.uint(2));
      case 0xdb:
        return this.text(this.uint(4));
      case 0xdc:
        return this.array(this.uint(2));
      case 0xdd:
        return this.array(this.uint(4));
      case 0xde:
        return this.map(this.uint(2));
      case 0xdf:
        return this.map(this.uint(4));
      default:
        return this.fail(`reserved type byte 0x${code.toString(16)}`);
    }
  }
}

/** One msgpack value filling `bytes` (`msgpack.loads(bytes, raw=False)`). */
export function decodeMsgpack(bytes: Uint8Array, source = '<buffer>'): MsgpackValue {
  return new MsgpackDecoder(bytes, source).decodeAll();
}

const NUMPY_DTYPES: Readonly<Record<string, RawDType>> = {
  '<f2': 'float16',
  '<f4': 'float32',
  '<f8': 'float64',
  '<i8': 'int64',
  '<i4': 'int32',
  '<i2': 'int16',
  '|i1': 'int8',
  '|u1': 'uint8',
  '|b1': 'bool',
};

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((byte, i) => byte === b[i]);
const ascii = (text: string): Uint8Array => Uint8Array.from(text, (char) => char.charCodeAt(0));

/** The value under the bin key `name` (msgpack-numpy's b"..." keys), if present. */
function binKeyed(map: Map<MsgpackValue, MsgpackValue>, name: string): MsgpackValue | undefined {
  const wanted = ascii(name);
  for (const [key, value] of map) if (key instanceof Uint8Array && sameBytes(key, wanted)) return value;
  return undefined;
}

/**
 * msgpack-numpy's `decode` object hook on one map: an ndarray map (`b"nd": True`) becomes a
 * RawTensor viewing the map's `b"data"` bytes; anything else is returned as it is. Only the
 * little-endian plain dtypes are supported (structured `kind b"V"` and numpy scalars throw).
 */
function numpyObject(map: Map<MsgpackValue, MsgpackValue>, source: string): MsgpackValue {
  const nd = binKeyed(map, 'nd');
  if (nd === undefined) return map;
  const fail = (problem: string): never => {
    throw new CheckpointFormatError(source, `msgpack-numpy array: ${problem}`);
  };
  if (nd !== true) fail('numpy scalars (b"nd": False) are not supported');
  const kind = binKeyed(map, 'kind');
  if (kind instanceof Uint8Array && sameBytes(kind, ascii('V')))
    fail('structured dtypes (kind b"V") are not supported');
  const type = binKeyed(map, 'type');
  const descr = type instanceof Uint8Array ? new TextDecoder().decode(type) : type;
  const dtype = typeof descr === 'string' ? NUMPY_DTYPES[descr] : undefined;
  if (dtype === undefined)
    return fail(
      `dtype ${JSON.stringify(descr)} is not supported (expected one of ${Object.keys(NUMPY_DTYPES).join(' ')})`,
    );
  const shape = binKeyed(map, 'shape');
  if (
    !Array.isArray(shape) ||
    !shape.every((size) => typeof size === 'number' && Number.isSafeInteger(size) && size >= 0)
  ) {
    return fail(`shape ${String(shape)} is not a list of sizes`);
  }
  const data = binKeyed(map, 'data');
  if (!(data instanceof Uint8Array)) return fail('b"data" is not bytes');
  const byteLength = elementCount(shape as number[]) * RAW_DTYPE_SIZE[dtype];
  // np.ndarray(buffer=...) accepts a longer buffer and reads its start.
  if (data.length < byteLength)
    fail(`${data.length} data bytes for shape [${shape.join(', ')}] ${descr}, need ${byteLength}`);
  return { dtype, shape: shape as number[], data: data.subarray(0, byteLength) };
}

function applyNumpyHook(value: MsgpackValue, source: string): MsgpackValue {
  if (Array.isArray(value)) return value.map((item) => applyNumpyHook(item, source));
  if (!(value instanceof Map)) return value;
  const converted = new Map<MsgpackValue, MsgpackValue>();
  for (const [key, item] of value) converted.set(key, applyNumpyHook(item, source));
  return numpyObject(converted, source);
}

/** `msgpack.loads(bytes, raw=False, object_hook=msgpack_numpy.decode)`: arrays come back as RawTensors. */
export function decodeMsgpackNumpy(bytes: Uint8Array, source = '<buffer>'): MsgpackValue {
  return applyNumpyHook(decodeMsgpack(bytes, source), source);
}
