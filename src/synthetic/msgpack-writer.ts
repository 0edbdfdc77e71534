// msgpack as Python's msgpack packs with `use_bin_type=True` and msgpack-numpy's `encode`
// hook (tensorpack 0.9's LMDBSerializer format): the inverse of
// src/data/msgpack-numpy.ts. A numpy array becomes the map {b"nd": True, b"type": "<f4",
// b"kind": b"", b"shape": [...], b"data": raw bytes}, keys as bin.
//
// Values: null, boolean, number (int when integral, else float64), string (str), Uint8Array
// (bin), RawTensor (ndarray map), Array (array), Map (map).
import { isRawTensor, type RawDType, type RawTensor } from '../io/raw-tensor.js';

const DESCR: Readonly<Partial<Record<RawDType, string>>> = {
  float16: '<f2',
  float32: '<f4',
  float64: '<f8',
  int8: '|i1',
  int16: '<i2',
  int32: '<i4',
  int64: '<i8',
  uint8: '|u1',
  bool: '|b1',
};

const bin = (text: string): Uint8Array => Buffer.from(text, 'latin1');

class MsgpackWriter {
  private readonly chunks: Uint8Array[] = [];

  finish(): Buffer {
    return Buffer.concat(this.chunks);
  }

  private head(code: number, length: number, bytes: 0 | 1 | 2 | 4): void {
    const chunk = Buffer.alloc(1 + bytes);
    chunk[0] = code;
    if (bytes === 1) chunk.writeUInt8(length, 1);
    else if (bytes === 2) chunk.writeUInt16BE(length, 1);
    else if (bytes === 4) chunk.writeUInt32BE(length, 1);
    this.chunks.push(chunk);
  }

  /** A length-prefixed family: fix form below `fixLimit`, then 8-, 16-, 32-bit lengths. */
  private sized(length: number, fix: number | null, fixLimit: number, codes: [number | null, number, number]): void {
    if (fix !== null && length < fixLimit) this.head(fix | length, 0, 0);
    else if (codes[0] !== null && length < 0x100) this.head(codes[0], length, 1);
    else if (length < 0x10000) this.head(codes[1], length, 2);
    else this.head(codes[2], length, 4);
  }

  value(value: unknown): void {
    if (value === null) this.chunks.push(Uint8Array.of(0xc0));
    else if (typeof value === 'boolean') this.chunks.push(Uint8Array.of(value ? 0xc3 : 0xc2));
    else if (typeof value === 'number') this.number(value);
    else if (typeof value === 'string') {
      const bytes = Buffer.from(value, 'utf8');
      this.sized(bytes.length, 0xa0, 32, [0xd9, 0xda, 0xdb]);
      this.chunks.push(bytes);
    } else if (isRawTensor(value)) this.ndarray(value);
    else if (value instanceof Uint8Array) {
      this.sized(value.byteLength, null, 0, [0xc4, 0xc5, 0xc6]);
      this.chunks.push(value);
    } else if (Array.isArray(value)) {
      this.sized(value.length, 0x90, 16, [null, 0xdc, 0xdd]);
      for (const item of value) this.value(item);
    } else if (value instanceof Map) {
      this.sized(value.size, 0x80, 16, [null, 0xde, 0xdf]);
      for (const [key, item] of value) {
        this.value(key);
        this.value(item);
      }
    } else throw new TypeError(`cannot msgpack a ${typeof value === 'object' ? value.constructor.name : typeof value}`);
  }

  private number(value: number): void {
    if (!Number.isSafeInteger(value)) {
      const chunk = Buffer.alloc(9);
      chunk[0] = 0xcb;
      chunk.writeDoubleBE(value, 1);
      this.chunks.push(chunk);
      return;
    }
    if (value >= 0 && value < 0x80) this.chunks.push(Uint8Array.of(value));
    else if (value < 0 && value >= -32) this.chunks.push(Uint8Array.of(value + 0x100));
    else if (value >= 0) {
      if (value < 0x100) this.head(0xcc, value, 1);
      else if (value < 0x10000) this.head(0xcd, value, 2);
      else if (value < 0x100000000) this.head(0xce, value, 4);
      else this.int64(0xcf, BigInt(value));
    } else if (value >= -0x80) this.chunks.push(Uint8Array.of(0xd0, value & 0xff));
    else if (value >= -0x8000) {
      const chunk = Buffer.alloc(3);
      chunk[0] = 0xd1;
      chunk.writeInt16BE(value, 1);
      this.chunks.push(chunk);
    } else if (value >= -0x80000000) {
      const chunk = Buffer.alloc(5);
      chunk[0] = 0xd2;
      chunk.writeInt32BE(value, 1);
      this.chunks.push(chunk);
    } else this.int64(0xd3, BigInt(value));
  }

  private int64(code: number, value: bigint): void {
    const chunk = Buffer.alloc(9);
    chunk[0] = code;
    if (code === 0xcf) chunk.writeBigUInt64BE(value, 1);
    else chunk.writeBigInt64BE(value, 1);
    this.chunks.push(chunk);
  }

  private ndarray(tensor: RawTensor): void {
    const descr = DESCR[tensor.dtype];
    if (descr === undefined) throw new TypeError(`msgpack-numpy has no dtype for ${tensor.dtype}`);
    this.value(
      new Map<unknown, unknown>([
        [bin('nd'), true],
        [bin('type'), descr],
        [bin('kind'), new Uint8Array(0)],
        [bin('shape'), tensor.shape],
        [bin('data'), tensor.data],
      ]),
    );
  }
}

/** `msgpack.dumps(value, use_bin_type=True, default=msgpack_numpy.encode)`. */
export function encodeMsgpackNumpy(value: unknown): Buffer {
  const writer = new MsgpackWriter();
  writer.value(value);
  return writer.finish();
}
