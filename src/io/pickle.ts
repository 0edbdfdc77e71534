// An allow-listed unpickler for Python pickle protocols 0-5.
//
// Python values map to JavaScript as: None -> null, bool -> boolean, int -> number (bigint
// beyond 2^53), float -> number, str -> string, bytes/bytearray -> Uint8Array (a copy),
// tuple and list -> Array, dict -> Map, set/frozenset -> Set. Every global (class or
// function) the pickle names must be on the caller's allow-list, which says what calling it
// (REDUCE, NEWOBJ, INST, OBJ) and BUILD on its result do; anything else is refused with an
// error naming module.name, so a file can never run code. Persistent ids go to a callback.
import { ByteReader } from './byte-reader.js';
import { CheckpointFormatError } from './format-error.js';

/** What an allow-listed global does. A global with no `call` may only be passed as a value. */
export interface PickleGlobal {
  /** REDUCE, NEWOBJ(_EX), INST and OBJ: the value of calling the global with these arguments. */
  call?(args: unknown[], kwargs?: Map<unknown, unknown>): unknown;
  /** BUILD on an object this global's `call` returned (Python's `__setstate__`). */
  setState?(target: object, state: unknown): void;
}

/** Allowed globals by qualified name, e.g. 'collections.OrderedDict'. */
export type AllowList = ReadonlyMap<string, PickleGlobal>;

/** A global as a value on the stack (e.g. a storage type inside a torch persistent id). */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly handler: PickleGlobal,
  ) {}

  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An instance of an allowed class with no richer JavaScript form: its arguments and state. */
export class PyObject {
  state: unknown = undefined;
  constructor(
    readonly qualifiedName: string,
    readonly args: unknown[],
  ) {}
}

/** A global whose instances are kept as opaque `PyObject`s (allow a harmless class by name). */
export function opaqueClass(qualifiedName: string): PickleGlobal {
  return {
    call: (args) => new PyObject(qualifiedName, args),
    setState: (target, state) => {
      (target as PyObject).state = state;
    },
  };
}

/** Thrown for a global that is not on the allow-list. */
export class ForbiddenGlobalError extends CheckpointFormatError {
  override readonly name = 'ForbiddenGlobalError';
  override readonly code = 'E_FORBIDDEN_GLOBAL';

  constructor(
    source: string,
    readonly qualifiedName: string,
  ) {
    super(source, `refusing to load global '${qualifiedName}': it is not on this reader's allow-list`);
  }
}

export interface UnpickleOptions {
  allow: AllowList;
  /** Names the data in errors (file path, archive member). */
  source?: string;
  /** Python's `persistent_load`; a pickle with persistent ids is refused without it. */
  persistentLoad?: (pid: unknown) => unknown;
  /**
   * How Python 2 `str` values (opcodes STRING, BINSTRING, SHORT_BINSTRING) come back:
   * 'latin1' (the default, what numpy needs for Python 2 array data; equal to UTF-8 for
   * ASCII), 'utf8', or 'bytes' (Uint8Array).
   */
  python2Strings?: 'latin1' | 'utf8' | 'bytes';
}

/** Python 3 names of Python 2 modules (subset of Python's `_compat_pickle`). */
const PYTHON2_MODULES = new Map([
  ['__builtin__', 'builtins'],
  ['copy_reg', 'copyreg'],
]);

export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  const reader = new ByteReader(bytes, options.source ?? '<buffer>', 'pickle');
  const value = unpickleFrom(reader, options);
  if (reader.remaining !== 0) reader.fail(`${reader.remaining} bytes follow the STOP opcode`);
  return value;
}

/** Reads one pickle starting at `reader.position` and leaves the reader just after its STOP. */
export function unpickleFrom(reader: ByteReader, options: UnpickleOptions): unknown {
  return new Unpickler(reader, options).run();
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

function toInteger(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

class Unpickler {
  private stack: unknown[] = [];
  private readonly marks: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  /** Which global made each object, so BUILD can find its `setState`. */
  private readonly creators = new WeakMap<object, PyGlobal>();
  private readonly source: string;

  constructor(
    private readonly reader: ByteReader,
    private readonly options: UnpickleOptions,
  ) {
    this.source = reader.source;
  }

  run(): unknown {
    const r: ByteReader = this.reader;
    for (;;) {
      const opcode = r.u8();
      switch (opcode) {
        case 0x80: {
          // PROTO
          const protocol = r.u8();
          if (protocol > 5) r.fail(`unsupported pickle protocol ${protocol}`);
          break;
        }
        case 0x95:
          r.need(r.u64());
          break; // FRAME: framing is transparent, only check its length
        case 0x2e:
          return this.pop(); // STOP

        case 0x28:
          this.marks.push(this.stack);
          this.stack = [];
          break; // MARK
        case 0x30:
          if (this.stack.length > 0) this.stack.pop();
          else this.popMark();
          break; // POP
        case 0x31:
          this.popMark();
          break; // POP_MARK
        case 0x32:
          this.push(this.top());
          break; // DUP

        case 0x4e:
          this.push(null);
          break; // NONE
        case 0x88:
          this.push(true);
          break; // NEWTRUE
        case 0x89:
          this.push(false);
          break; // NEWFALSE
        case 0x4b:
          this.push(r.u8());
          break; // BININT1
        case 0x4d:
          this.push(r.u16());
          break; // BININT2
        case 0x4a:
          this.push(r.i32());
          break; // BININT
        case 0x8a:
          this.push(this.readLong(r.u8()));
          break; // LONG1
        case 0x8b:
          this.push(this.readLong(r.i32()));
          break; // LONG4
        case 0x47:
          this.push(r.f64BigEndian());
          break; // BINFLOAT
        case 0x49:
          this.push(this.parseTextInt(this.textLine(), true));
          break; // INT
        case 0x4c:
          this.push(this.parseTextInt(this.textLine().replace(/L$/, ''), false));
          break; // LONG
        case 0x46:
          this.push(this.parseTextFloat(this.textLine()));
          break; // FLOAT

        case 0x58:
          this.push(this.utf8(r.take(r.u32())));
          break; // BINUNICODE
        case 0x8c:
          this.push(this.utf8(r.take(r.u8())));
          break; // SHORT_BINUNICODE
        case 0x8d:
          this.push(this.utf8(r.take(r.u64())));
          break; // BINUNICODE8
        case 0x56:
          this.push(this.rawUnicodeEscape(r.line()));
          break; // UNICODE
        // Python bytes are immutable: a view into the stream serves (numpy arrays of
        // feature stores are ~1 MB each; a copy here was a measurable share of a read).
        case 0x42:
          this.push(r.take(r.u32()));
          break; // BINBYTES
        case 0x43:
          this.push(r.take(r.u8()));
          break; // SHORT_BINBYTES
        case 0x8e:
          this.push(r.take(r.u64()));
          break; // BINBYTES8
        case 0x96:
          this.push(r.take(r.u64()).slice());
          break; // BYTEARRAY8
        case 0x54:
          this.push(this.python2String(r.take(r.i32())));
          break; // BINSTRING
        case 0x55:
          this.push(this.python2String(r.take(r.u8())));
          break; // SHORT_BINSTRING
        case 0x53:
          this.push(this.python2String(this.parseStringLiteral(r.line())));
          break; // STRING

        case 0x29:
          this.push([]);
          break; // EMPTY_TUPLE
        case 0x85:
          this.push(this.popN(1));
          break; // TUPLE1
        case 0x86:
          this.push(this.popN(2));
          break; // TUPLE2
        case 0x87:
          this.push(this.popN(3));
          break; // TUPLE3
        case 0x74:
          this.push(this.popMark());
          break; // TUPLE
        case 0x5d:
          this.push([]);
          break; // EMPTY_LIST
        case 0x6c:
          this.push(this.popMark());
          break; // LIST
        case 0x61:
          this.append([this.pop()]);
          break; // APPEND
        case 0x65:
          this.append(this.popMark());
          break; // APPENDS
        case 0x7d:
          this.push(new Map());
          break; // EMPTY_DICT
        case 0x64: {
          // DICT
          const dict = new Map<unknown, unknown>();
          this.setItems(dict, this.popMark());
          this.push(dict);
          break;
        }
        case 0x73: {
          // SETITEM
          const pair = this.popN(2);
          this.setItems(this.top(), pair);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark();
          this.setItems(this.top(), items);
          break;
        }
        case 0x8f:
          this.push(new Set());
          break; // EMPTY_SET
        case 0x90: {
          // ADDITEMS
          const items = this.popMark();
          const set = this.top();
          if (!(set instanceof Set)) r.fail('ADDITEMS on something that is not a set');
          for (const item of items) set.add(item);
          break;
        }
        case 0x91:
          this.push(new Set(this.popMark()));
          break; // FROZENSET

        case 0x70:
          this.memo.set(this.memoIndex(this.textLine()), this.top());
          break; // PUT
        case 0x71:
          this.memo.set(r.u8(), this.top());
          break; // BINPUT
        case 0x72:
          this.memo.set(r.u32(), this.top());
          break; // LONG_BINPUT
        case 0x94:
          this.memo.set(this.memo.size, this.top());
          break; // MEMOIZE
        case 0x67:
          this.push(this.memoGet(this.memoIndex(this.textLine())));
          break; // GET
        case 0x68:
          this.push(this.memoGet(r.u8()));
          break; // BINGET
        case 0x6a:
          this.push(this.memoGet(r.u32()));
          break; // LONG_BINGET

        case 0x63: {
          // GLOBAL
          const module = this.textLine();
          this.push(this.resolveGlobal(module, this.textLine()));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const [module, name] = this.popN(2);
          if (typeof module !== 'string' || typeof name !== 'string') r.fail('STACK_GLOBAL needs two strings');
          this.push(this.resolveGlobal(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const [callable, args] = this.popN(2);
          this.push(this.call(callable, this.tuple(args, 'REDUCE arguments')));
          break;
        }
        case 0x81: {
          // NEWOBJ
          const [cls, args] = this.popN(2);
          this.push(this.call(cls, this.tuple(args, 'NEWOBJ arguments')));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX
          const [cls, args, kwargs] = this.popN(3);
          if (!(kwargs instanceof Map)) r.fail('NEWOBJ_EX keyword arguments are not a dict');
          this.push(this.call(cls, this.tuple(args, 'NEWOBJ_EX arguments'), kwargs));
          break;
        }
        case 0x69: {
          // INST
          const module = this.textLine();
          const cls = this.resolveGlobal(module, this.textLine());
          this.push(this.call(cls, this.popMark()));
          break;
        }
        case 0x6f: {
          // OBJ
          const [cls, ...args] = this.popMark();
          this.push(this.call(cls, args));
          break;
        }
        case 0x62:
          this.build(this.pop());
          break; // BUILD

        case 0x50:
          this.push(this.persistentLoad(this.textLine()));
          break; // PERSID
        case 0x51:
          this.push(this.persistentLoad(this.pop()));
          break; // BINPERSID
        case 0x82:
        case 0x83:
        case 0x84:
          r.fail('extension-registry opcodes (EXT1/2/4) are not supported');
          break;
        case 0x97:
          r.fail('out-of-band buffers (NEXT_BUFFER) are not supported');
          break;
        case 0x98:
          break; // READONLY_BUFFER: a no-op for in-band data
        default:
          r.position--;
          r.fail(`unknown opcode 0x${opcode.toString(16).padStart(2, '0')} (not a pickle, or corrupt)`);
      }
    }
  }

  private push(value: unknown): void {
    this.stack.push(value);
  }

  private pop(): unknown {
    if (this.stack.length === 0) this.reader.fail('stack underflow');
    return this.stack.pop();
  }

  private top(): unknown {
    if (this.stack.length === 0) this.reader.fail('stack underflow');
    return this.stack[this.stack.length - 1];
  }

  private popN(count: number): unknown[] {
    if (this.stack.length < count) this.reader.fail('stack underflow');
    return this.stack.splice(this.stack.length - count, count);
  }

  private popMark(): unknown[] {
    const items = this.stack;
    const previous = this.marks.pop();
    if (previous === undefined) this.reader.fail('no MARK on the stack');
    this.stack = previous;
    return items;
  }

  private tuple(value: unknown, what: string): unknown[] {
    if (!Array.isArray(value)) this.reader.fail(`${what} are not a tuple`);
    return value;
  }

  private append(items: unknown[]): void {
    const list = this.top();
    if (!Array.isArray(list)) this.reader.fail('APPEND to something that is not a list');
    for (const item of items) list.push(item);
  }

  private setItems(dict: unknown, flat: unknown[]): void {
    if (!(dict instanceof Map)) this.reader.fail('SETITEM on something that is not a dict');
    if (flat.length % 2 !== 0) this.reader.fail('SETITEMS with an odd number of items');
    for (let i = 0; i < flat.length; i += 2) dict.set(flat[i], flat[i + 1]);
  }

  private memoIndex(text: string): number {
    const index = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(index)) this.reader.fail(`bad memo index '${text}'`);
    return index;
  }

  private memoGet(index: number): unknown {
    if (!this.memo.has(index)) this.reader.fail(`memo entry ${index} was never stored`);
    return this.memo.get(index);
  }

  private textLine(): string {
    return this.utf8(this.reader.line());
  }

  private utf8(bytes: Uint8Array): string {
    // Dict keys and dtype codes are short ASCII strings, for which TextDecoder's call
    // overhead (~1 us) is most of a feature value's decoding.
    if (bytes.length <= 32) {
      let text = '';
      let index = 0;
      for (; index < bytes.length && bytes[index]! < 0x80; index++) text += String.fromCharCode(bytes[index]!);
      if (index === bytes.length) return text;
    }
    try {
      return utf8.decode(bytes);
    } catch {
      return this.reader.fail('string is not valid UTF-8');
    }
  }

  /** Python's raw-unicode-escape: latin-1 bytes with \uXXXX and \UXXXXXXXX escapes. */
  private rawUnicodeEscape(bytes: Uint8Array): string {
    return latin1
      .decode(bytes)
      .replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_match, short?: string, long?: string) => {
        const code = parseInt(short ?? long!, 16);
        if (code > 0x10ffff) this.reader.fail(`\\U${long} is beyond U+10FFFF`);
        return String.fromCodePoint(code);
      });
  }

  private python2String(bytes: Uint8Array): string | Uint8Array {
    switch (this.options.python2Strings ?? 'latin1') {
      case 'latin1':
        return latin1.decode(bytes);
      case 'utf8':
        return this.utf8(bytes);
      case 'bytes':
        return bytes.slice();
    }
  }

  private readLong(length: number): number | bigint {
    if (length < 0) this.reader.fail(`negative LONG4 length ${length}`);
    const bytes = this.reader.take(length);
    let value = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
    // Two's complement: the top bit of the last byte is the sign.
    if (length > 0 && (bytes[length - 1]! & 0x80) !== 0) value -= 1n << BigInt(8 * length);
    return toInteger(value);
  }

  private parseTextInt(text: string, boolAllowed: boolean): number | bigint | boolean {
    if (boolAllowed && text === '00') return false;
    if (boolAllowed && text === '01') return true;
    if (!/^[+-]?\d+$/.test(text)) this.reader.fail(`bad integer literal '${text}'`);
    return toInteger(BigInt(text));
  }

  private parseTextFloat(text: string): number {
    const special: Record<string, number> = { inf: Infinity, '-inf': -Infinity, nan: NaN };
    const value = special[text] ?? Number(text);
    if (Number.isNaN(value) && text !== 'nan') this.reader.fail(`bad float literal '${text}'`);
    return value;
  }

  /** A protocol-0 STRING argument: a Python 2 repr literal, quotes included. */
  private parseStringLiteral(line: Uint8Array): Uint8Array {
    const quote = line[0];
    if (line.length < 2 || (quote !== 0x27 && quote !== 0x22) || line[line.length - 1] !== quote) {
      this.reader.fail('STRING argument is not a quoted literal');
    }
    const simple: Record<number, number> = {
      0x6e: 10,
      0x72: 13,
      0x74: 9,
      0x5c: 0x5c,
      0x27: 0x27,
      0x22: 0x22,
      0x61: 7,
      0x62: 8,
      0x66: 12,
      0x76: 11,
    };
    const out: number[] = [];
    for (let i = 1; i < line.length - 1; i++) {
      const byte = line[i]!;
      if (byte !== 0x5c) {
        out.push(byte);
        continue;
      }
      const next = line[++i];
      if (next === undefined) this.reader.fail('STRING literal ends in a backslash');
      const hex = next === 0x78 ? latin1.decode(line.subarray(i + 1, i + 3)) : '';
      if (simple[next] !== undefined) {
        out.push(simple[next]);
      } else if (next === 0x78 && /^[0-9a-fA-F]{2}$/.test(hex)) {
        out.push(parseInt(hex, 16));
        i += 2;
      } else if (next >= 0x30 && next <= 0x37) {
        const octal = /^[0-7]{1,3}/.exec(latin1.decode(line.subarray(i, i + 3)))![0];
        out.push(parseInt(octal, 8) & 0xff);
        i += octal.length - 1;
      } else {
        out.push(0x5c, next);
      }
    }
    return Uint8Array.from(out);
  }

  private resolveGlobal(module: string, name: string): PyGlobal {
    const resolvedModule = PYTHON2_MODULES.get(module) ?? module;
    const qualifiedName = `${resolvedModule}.${name}`;
    const handler = this.options.allow.get(qualifiedName);
    if (handler === undefined) throw new ForbiddenGlobalError(this.source, qualifiedName);
    return new PyGlobal(resolvedModule, name, handler);
  }

  private call(callable: unknown, args: unknown[], kwargs?: Map<unknown, unknown>): unknown {
    if (!(callable instanceof PyGlobal))
      this.reader.fail(`call of a ${describe(callable)}, expected an allowed global`);
    const call = callable.handler.call;
    if (call === undefined) this.reader.fail(`'${callable.qualifiedName}' is allowed as a value but not callable`);
    const result = this.inHandler(callable, () => call.call(callable.handler, args, kwargs));
    if (typeof result === 'object' && result !== null) this.creators.set(result, callable);
    return result;
  }

  private build(state: unknown): void {
    const target = this.top();
    const creator = typeof target === 'object' && target !== null ? this.creators.get(target) : undefined;
    const setState = creator?.handler.setState;
    if (creator === undefined || setState === undefined) {
      this.reader.fail(
        `BUILD on a ${creator === undefined ? describe(target) : `'${creator.qualifiedName}' object`} is not supported`,
      );
    }
    this.inHandler(creator, () => setState.call(creator.handler, target as object, state));
  }

  /** Runs an allow-list handler; its plain errors get the source and the global's name. */
  private inHandler<T>(global: PyGlobal, run: () => T): T {
    try {
      return run();
    } catch (error) {
      if (error instanceof CheckpointFormatError) throw error;
      return this.reader.fail(`${global.qualifiedName}: ${(error as Error).message}`);
    }
  }

  private persistentLoad(pid: unknown): unknown {
    const load = this.options.persistentLoad;
    if (load === undefined) this.reader.fail('persistent id found, but this reader takes none');
    try {
      return load(pid);
    } catch (error) {
      if (error instanceof CheckpointFormatError) throw error;
      return this.reader.fail(`persistent id: ${(error as Error).message}`);
    }
  }
}

/** The Python kind of an unpickled value, for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'None';
  if (Array.isArray(value)) return 'tuple/list';
  if (value instanceof Map) return 'dict';
  if (value instanceof Uint8Array) return 'bytes';
  if (typeof value !== 'object') return typeof value;
  return (value as { constructor?: { name?: string } }).constructor?.name ?? 'object';
}

/** Several allow-lists as one (later entries win). */
export function combineAllowLists(...lists: AllowList[]): AllowList {
  return new Map(lists.flatMap((list) => [...list]));
}
