// A pickler for plain Python data and numpy arrays, as CPython 3 writes the files the
// reference reads: feature-LMDB values (dicts with numpy arrays), answer targets and label
// maps, hard-negative pools (protocol 3), and the REFER API's Python-2 `refs(*).p` files
// (protocol 2 with Python 2 `str`). src/io/pickle.ts with NUMPY_GLOBALS reads them back.
//
// Separate from pickle-writer.ts, whose tree (globals, calls, persistent ids; no dict, list,
// bytes or BUILD) is made for torch state dicts: the loaders' allow-lists have no
// `builtins.dict`, so their dicts must be real EMPTY_DICT/SETITEMS dicts.
//
// Values: null -> None, boolean -> bool, number -> int when integral else float (PyFloat
// forces a float), bigint -> int, string -> str, Uint8Array -> bytes, Array -> list,
// PyTuple -> tuple, Map or plain object -> dict (insertion order), RawTensor -> numpy array
// (`numpy.core.multiarray._reconstruct` + BUILD with (1, shape, dtype, False, raw bytes)).
// Only globals are memoised (Python memoises every container; readers do not care).
import { isRawTensor, type RawDType, type RawTensor } from './raw-tensor.js';

/** A Python tuple (JavaScript arrays pickle as lists). */
export class PyTuple {
  constructor(readonly items: readonly unknown[]) {}
}

/** A Python float even when the value is integral (`1.0`, not `1`). */
export class PyFloat {
  constructor(readonly value: number) {}
}

export const pyTuple = (...items: unknown[]): PyTuple => new PyTuple(items);
export const pyFloat = (value: number): PyFloat => new PyFloat(value);

export interface PickleDataOptions {
  /** 3 (default): Python 3's default protocol up to 3.7; 2: what Python 2 wrote. */
  protocol?: 2 | 3;
  /** Write `str` as Python 2 byte strings (BINSTRING, UTF-8 bytes): a Python-2 pickle. Protocol 2 only. */
  python2Strings?: boolean;
}

const OP = {
  PROTO: 0x80,
  STOP: 0x2e,
  MARK: 0x28,
  NONE: 0x4e,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  BININT1: 0x4b,
  BININT2: 0x4d,
  BININT: 0x4a,
  LONG1: 0x8a,
  BINFLOAT: 0x47,
  BINUNICODE: 0x58,
  SHORT_BINSTRING: 0x55,
  BINSTRING: 0x54,
  SHORT_BINBYTES: 0x43,
  BINBYTES: 0x42,
  EMPTY_TUPLE: 0x29,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  TUPLE: 0x74,
  EMPTY_LIST: 0x5d,
  APPEND: 0x61,
  APPENDS: 0x65,
  EMPTY_DICT: 0x7d,
  SETITEM: 0x73,
  SETITEMS: 0x75,
  GLOBAL: 0x63,
  REDUCE: 0x52,
  BUILD: 0x62,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
} as const;

/** CPython's batch size for APPENDS / SETITEMS. */
const BATCH = 1000;

/** numpy's type code and byte-order character of each RawTensor dtype. */
const NUMPY_DTYPES: Readonly<Partial<Record<RawDType, readonly [string, string]>>> = {
  float16: ['f2', '<'],
  float32: ['f4', '<'],
  float64: ['f8', '<'],
  int8: ['i1', '|'],
  int16: ['i2', '<'],
  int32: ['i4', '<'],
  int64: ['i8', '<'],
  uint8: ['u1', '|'],
  bool: ['b1', '|'],
};

/** The pickle of `value` (see the file comment for the mapping). */
export function pickleData(value: unknown, options: PickleDataOptions = {}): Buffer {
  const protocol = options.protocol ?? 3;
  if (options.python2Strings === true && protocol !== 2) throw new RangeError('Python 2 strings need protocol 2');
  const writer = new DataPickler(protocol, options.python2Strings === true);
  writer.op(OP.PROTO, protocol);
  writer.value(value, 'value');
  writer.op(OP.STOP);
  return writer.finish();
}

/** A growing output buffer (one allocation per doubling, not one per opcode). */
class ByteSink {
  private buffer = Buffer.allocUnsafe(1 << 12);
  length = 0;

  reserve(count: number): Buffer {
    if (this.length + count > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.buffer.length, this.length + count));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    return this.buffer;
  }

  u8(value: number): void {
    this.reserve(1)[this.length++] = value;
  }

  /** An opcode, then the UTF-8 bytes of text after a length written by `header`. */
  text(value: string, header: (length: number) => void): void {
    const length = Buffer.byteLength(value, 'utf8');
    header(length);
    this.reserve(length).write(value, this.length, 'utf8');
    this.length += length;
  }

  bytes(values: ArrayLike<number>): void {
    const buffer = this.reserve(values.length);
    buffer.set(values, this.length);
    this.length += values.length;
  }

  /** An opcode followed by a little-endian length or index of 4 bytes. */
  opU32(opcode: number, value: number): void {
    const buffer = this.reserve(5);
    buffer[this.length] = opcode;
    buffer.writeUInt32LE(value, this.length + 1);
    this.length += 5;
  }

  opI32(opcode: number, value: number): void {
    const buffer = this.reserve(5);
    buffer[this.length] = opcode;
    buffer.writeInt32LE(value, this.length + 1);
    this.length += 5;
  }

  opF64(opcode: number, value: number): void {
    const buffer = this.reserve(9);
    buffer[this.length] = opcode;
    buffer.writeDoubleBE(value, this.length + 1);
    this.length += 9;
  }

  finish(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.length));
  }
}

class DataPickler {
  private readonly out = new ByteSink();
  private readonly memo = new Map<string, number>();

  constructor(
    private readonly protocol: 2 | 3,
    private readonly python2Strings: boolean,
  ) {}

  finish(): Buffer {
    return this.out.finish();
  }

  op(...bytes: number[]): void {
    for (const byte of bytes) this.out.u8(byte);
  }

  value(value: unknown, where: string): void {
    if (value === null) this.op(OP.NONE);
    else if (typeof value === 'boolean') this.op(value ? OP.NEWTRUE : OP.NEWFALSE);
    else if (typeof value === 'number') {
      if (Number.isSafeInteger(value)) this.smallInteger(value);
      else this.float(value);
    } else if (value instanceof PyFloat) this.float(value.value);
    else if (typeof value === 'bigint') this.integer(value);
    else if (typeof value === 'string') this.string(value);
    else if (isRawTensor(value)) this.array(value, where);
    else if (value instanceof Uint8Array) this.bytes(value, where);
    else if (Array.isArray(value)) this.list(value, where);
    else if (value instanceof PyTuple) this.tuple(value.items, where);
    else if (value instanceof Map) this.dict([...value], where);
    else if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)
      this.dict(Object.entries(value), where);
    else
      throw new TypeError(
        `${where}: cannot pickle a ${typeof value === 'object' ? value.constructor.name : typeof value}`,
      );
  }

  /** A safe integer without going through BigInt when it fits the 1-, 2- and 4-byte forms. */
  private smallInteger(value: number): void {
    if (value >= 0 && value < 0x100) this.op(OP.BININT1, value);
    else if (value >= 0 && value < 0x10000) this.op(OP.BININT2, value & 0xff, value >> 8);
    else if (value >= -(2 ** 31) && value < 2 ** 31) this.out.opI32(OP.BININT, value);
    else this.integer(BigInt(value));
  }

  private integer(value: bigint): void {
    if (value >= 0n && value < 0x100n) this.op(OP.BININT1, Number(value));
    else if (value >= 0n && value < 0x10000n) this.op(OP.BININT2, Number(value & 0xffn), Number(value >> 8n));
    else if (value >= -(2n ** 31n) && value < 2n ** 31n) this.out.opI32(OP.BININT, Number(value));
    else {
      // LONG1: little-endian two's complement, as short as keeps the sign bit right.
      const digits: number[] = [];
      let rest = value;
      for (;;) {
        const byte = Number(rest & 0xffn);
        digits.push(byte);
        rest >>= 8n;
        const signBit = (byte & 0x80) !== 0;
        if ((rest === 0n && !signBit) || (rest === -1n && signBit)) break;
      }
      this.op(OP.LONG1, digits.length, ...digits);
    }
  }

  private float(value: number): void {
    this.out.opF64(OP.BINFLOAT, value);
  }

  private string(value: string): void {
    this.out.text(value, (length) => {
      if (this.python2Strings && length < 256) this.op(OP.SHORT_BINSTRING, length);
      else this.out.opU32(this.python2Strings ? OP.BINSTRING : OP.BINUNICODE, length);
    });
  }

  private bytes(value: Uint8Array, where: string): void {
    if (this.protocol < 3) throw new TypeError(`${where}: bytes need pickle protocol 3`);
    if (value.byteLength < 256) this.op(OP.SHORT_BINBYTES, value.byteLength);
    else this.out.opU32(OP.BINBYTES, value.byteLength);
    this.out.bytes(value);
  }

  private tuple(items: readonly unknown[], where: string): void {
    const short = [OP.EMPTY_TUPLE, OP.TUPLE1, OP.TUPLE2, OP.TUPLE3][items.length];
    if (short === undefined) this.op(OP.MARK);
    items.forEach((item, i) => this.value(item, `${where}[${i}]`));
    this.op(short ?? OP.TUPLE);
  }

  private list(items: readonly unknown[], where: string): void {
    this.op(OP.EMPTY_LIST);
    this.batched(items.length, OP.APPEND, OP.APPENDS, (i) => this.value(items[i], `${where}[${i}]`));
  }

  private dict(entries: readonly (readonly [unknown, unknown])[], where: string): void {
    this.op(OP.EMPTY_DICT);
    this.batched(entries.length, OP.SETITEM, OP.SETITEMS, (i) => {
      const [key, item] = entries[i]!;
      this.value(key, `${where} key`);
      this.value(item, `${where}.${String(key)}`);
    });
  }

  /** CPython's _batch_appends / _batch_setitems: MARK ... APPENDS per 1000 items, a lone item with APPEND. */
  private batched(count: number, single: number, many: number, write: (index: number) => void): void {
    for (let start = 0; start < count; start += BATCH) {
      const end = Math.min(count, start + BATCH);
      if (end - start === 1) {
        write(start);
        this.op(single);
        continue;
      }
      this.op(OP.MARK);
      for (let i = start; i < end; i++) write(i);
      this.op(many);
    }
  }

  /** GLOBAL `module name`, memoised: later uses are a GET. */
  private global(module: string, name: string): void {
    const key = `${module}\n${name}\n`;
    const index = this.memo.get(key);
    if (index !== undefined) {
      this.memoOp(index, OP.BINGET, OP.LONG_BINGET);
      return;
    }
    this.op(OP.GLOBAL);
    this.out.bytes(Buffer.from(key, 'utf8'));
    this.memo.set(key, this.memo.size);
    this.memoOp(this.memo.size - 1, OP.BINPUT, OP.LONG_BINPUT);
  }

  private memoOp(index: number, short: number, long: number): void {
    if (index < 256) this.op(short, index);
    else this.out.opU32(long, index);
  }

  /** numpy 1.x's ndarray.__reduce__ and dtype.__reduce__, with C-order little-endian data. */
  private array(tensor: RawTensor, where: string): void {
    const dtype = NUMPY_DTYPES[tensor.dtype];
    if (dtype === undefined) throw new TypeError(`${where}: numpy has no dtype for ${tensor.dtype}`);
    this.global('numpy.core.multiarray', '_reconstruct');
    this.global('numpy', 'ndarray');
    this.tuple([0], where);
    this.bytes(Uint8Array.of(0x62), where); // b'b'
    this.op(OP.TUPLE3, OP.REDUCE, OP.MARK);
    this.integer(1n);
    this.tuple(tensor.shape, `${where} shape`);
    this.global('numpy', 'dtype');
    this.string(dtype[0]);
    this.op(OP.NEWFALSE, OP.NEWTRUE, OP.TUPLE3, OP.REDUCE);
    this.tuple([3, dtype[1], null, null, null, -1, -1, 0], `${where} dtype`);
    this.op(OP.BUILD, OP.NEWFALSE);
    this.bytes(tensor.data, where);
    this.op(OP.TUPLE, OP.BUILD);
  }
}
