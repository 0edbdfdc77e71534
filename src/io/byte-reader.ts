// Bounds-checked little-endian reads over a byte buffer. Every length is checked against the
// bytes that remain before anything is sliced or allocated, so a corrupt length field gives
// an error instead of a huge allocation.
import { CheckpointFormatError } from './format-error.js';
import { plainBytes } from './raw-tensor.js';

export class ByteReader {
  position = 0;
  private readonly view: DataView;

  /** @param what names the structure in errors, e.g. 'pickle' or 'zip central directory' */
  readonly bytes: Uint8Array;

  constructor(
    bytes: Uint8Array,
    readonly source: string,
    readonly what: string,
  ) {
    // A Buffer's slice() is a view, not a copy: work on a plain Uint8Array.
    this.bytes = plainBytes(bytes);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.position;
  }

  /** Throws unless `count` more bytes are available. */
  need(count: number): void {
    if (!Number.isSafeInteger(count) || count < 0 || count > this.remaining) {
      throw new CheckpointFormatError(
        this.source,
        `truncated ${this.what}: needs ${count} bytes at offset ${this.position}, only ${this.remaining} left`,
      );
    }
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.position++]!;
  }

  u16(): number {
    this.need(2);
    const value = this.view.getUint16(this.position, true);
    this.position += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.view.getUint32(this.position, true);
    this.position += 4;
    return value;
  }

  i32(): number {
    this.need(4);
    const value = this.view.getInt32(this.position, true);
    this.position += 4;
    return value;
  }

  /** An unsigned 64-bit length or offset; values past 2^53 cannot be real and are refused. */
  u64(): number {
    this.need(8);
    const value = this.view.getBigUint64(this.position, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new CheckpointFormatError(
        this.source,
        `${this.what}: 64-bit length ${value} at offset ${this.position} is impossibly large`,
      );
    }
    this.position += 8;
    return Number(value);
  }

  f64BigEndian(): number {
    this.need(8);
    const value = this.view.getFloat64(this.position, false);
    this.position += 8;
    return value;
  }

  /** The next `count` bytes, as a view (no copy). */
  take(count: number): Uint8Array {
    this.need(count);
    const out = this.bytes.subarray(this.position, this.position + count);
    this.position += count;
    return out;
  }

  /** Bytes up to (not including) the next '\n', which is consumed. */
  line(): Uint8Array {
    const end = this.bytes.indexOf(0x0a, this.position);
    if (end < 0)
      throw new CheckpointFormatError(
        this.source,
        `truncated ${this.what}: unterminated line at offset ${this.position}`,
      );
    const out = this.bytes.subarray(this.position, end);
    this.position = end + 1;
    return out;
  }

  fail(problem: string, key?: string): never {
    throw new CheckpointFormatError(this.source, `${this.what} at offset ${this.position}: ${problem}`, key);
  }
}
