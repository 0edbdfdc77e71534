// A small protocol-2 pickler: enough to write a torch state dict that torch.load (including
// its weights_only unpickler) reads. Values: null, boolean, number, bigint, string,
// Array (written as a tuple), and the three node classes below.

/** A reference to a Python global, e.g. ('torch', 'FloatStorage'). */
export class PickleGlobalRef {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
}

/** `callee(*args)`, then `result[key] = value` for each item (how OrderedDict pickles). */
export class PickleCall {
  constructor(
    readonly callee: PickleGlobalRef,
    readonly args: unknown[],
    readonly items: Array<[unknown, unknown]> = [],
  ) {}
}

/** A persistent id, resolved by the reader's `persistent_load`. */
export class PicklePersistentId {
  constructor(readonly pid: unknown) {}
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
  EMPTY_TUPLE: 0x29,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  TUPLE: 0x74,
  GLOBAL: 0x63,
  REDUCE: 0x52,
  SETITEMS: 0x75,
  BINPERSID: 0x51,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
} as const;

/** Python's batch size for SETITEMS. */
const BATCH = 1000;

export function pickle(value: unknown): Buffer {
  const writer = new PickleWriter();
  writer.bytes(OP.PROTO, 2);
  writer.value(value);
  writer.bytes(OP.STOP);
  return writer.finish();
}

class PickleWriter {
  private readonly chunks: Buffer[] = [];
  private readonly globals = new Map<string, number>();

  finish(): Buffer {
    return Buffer.concat(this.chunks);
  }

  bytes(...values: number[]): void {
    this.chunks.push(Buffer.from(values));
  }

  value(value: unknown): void {
    if (value === null) this.bytes(OP.NONE);
    else if (value === true) this.bytes(OP.NEWTRUE);
    else if (value === false) this.bytes(OP.NEWFALSE);
    else if (typeof value === 'number') this.number(value);
    else if (typeof value === 'bigint') this.integer(value);
    else if (typeof value === 'string') this.string(value);
    else if (Array.isArray(value)) this.tuple(value);
    else if (value instanceof PickleGlobalRef) this.global(value);
    else if (value instanceof PicklePersistentId) {
      this.value(value.pid);
      this.bytes(OP.BINPERSID);
    } else if (value instanceof PickleCall) this.call(value);
    else throw new TypeError(`cannot pickle a ${typeof value === 'object' ? value.constructor.name : typeof value}`);
  }

  private number(value: number): void {
    if (Number.isInteger(value)) {
      this.integer(BigInt(value));
      return;
    }
    const chunk = Buffer.alloc(9);
    chunk[0] = OP.BINFLOAT;
    chunk.writeDoubleBE(value, 1);
    this.chunks.push(chunk);
  }

  private integer(value: bigint): void {
    if (value >= 0n && value < 0x100n) this.bytes(OP.BININT1, Number(value));
    else if (value >= 0n && value < 0x10000n) this.bytes(OP.BININT2, Number(value & 0xffn), Number(value >> 8n));
    else if (value >= -(2n ** 31n) && value < 2n ** 31n) {
      const chunk = Buffer.alloc(5);
      chunk[0] = OP.BININT;
      chunk.writeInt32LE(Number(value), 1);
      this.chunks.push(chunk);
    } else {
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
      this.bytes(OP.LONG1, digits.length, ...digits);
    }
  }

  private string(value: string): void {
    const encoded = Buffer.from(value, 'utf8');
    const header = Buffer.alloc(5);
    header[0] = OP.BINUNICODE;
    header.writeUInt32LE(encoded.length, 1);
    this.chunks.push(header, encoded);
  }

  private tuple(items: unknown[]): void {
    const short = [OP.EMPTY_TUPLE, OP.TUPLE1, OP.TUPLE2, OP.TUPLE3][items.length];
    if (short === undefined) this.bytes(OP.MARK);
    for (const item of items) this.value(item);
    this.bytes(short ?? OP.TUPLE);
  }

  /** Globals are memoised: the first use writes GLOBAL + PUT, later ones a GET. */
  private global(ref: PickleGlobalRef): void {
    const key = `${ref.module}\n${ref.name}\n`;
    const index = this.globals.get(key);
    if (index !== undefined) {
      this.memoOp(index, OP.BINGET, OP.LONG_BINGET);
      return;
    }
    this.bytes(OP.GLOBAL);
    this.chunks.push(Buffer.from(key, 'utf8'));
    const newIndex = this.globals.size;
    this.globals.set(key, newIndex);
    this.memoOp(newIndex, OP.BINPUT, OP.LONG_BINPUT);
  }

  private memoOp(index: number, short: number, long: number): void {
    if (index < 256) {
      this.bytes(short, index);
      return;
    }
    const chunk = Buffer.alloc(5);
    chunk[0] = long;
    chunk.writeUInt32LE(index, 1);
    this.chunks.push(chunk);
  }

  private call(call: PickleCall): void {
    this.global(call.callee);
    this.tuple(call.args);
    this.bytes(OP.REDUCE);
    for (let start = 0; start < call.items.length; start += BATCH) {
      this.bytes(OP.MARK);
      for (const [key, item] of call.items.slice(start, start + BATCH)) {
        this.value(key);
        this.value(item);
      }
      this.bytes(OP.SETITEMS);
    }
  }
}
