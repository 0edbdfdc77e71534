// The allow-list entries for plain Python data that every reader needs: OrderedDict, set,
// frozenset, bytes, bytearray and `_codecs.encode` (how protocols 0-2 carry bytes).
import { describe, type AllowList, type PickleGlobal } from './pickle.js';

function bytesFromLatin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) throw new Error(`character U+${code.toString(16)} is not latin-1`);
    out[i] = code;
  }
  return out;
}

/**
 * Bytes from a value that holds binary data: bytes, or a str that stands for bytes (a
 * Python 2 string, or the latin-1 text protocol 2 uses to carry bytes).
 */
export function binaryValue(value: unknown, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return bytesFromLatin1(value);
  throw new Error(`${what} is a ${describe(value)}, expected bytes`);
}

/** `_codecs.encode(text, encoding)`: how protocols 0-2 pickle Python 3 bytes. */
function codecsEncode(args: unknown[]): Uint8Array {
  const [text, encoding = 'utf-8'] = args;
  if (typeof text !== 'string' || typeof encoding !== 'string') throw new Error('expects (str, str)');
  const normalized = encoding.toLowerCase().replace(/_/g, '-');
  if (['latin1', 'latin-1', 'iso-8859-1', 'l1'].includes(normalized)) return bytesFromLatin1(text);
  if (['utf-8', 'utf8'].includes(normalized)) return new TextEncoder().encode(text);
  throw new Error(`encoding '${encoding}' is not supported`);
}

/** `bytes(...)` / `bytearray(...)` as pickles use them: (), (bytes,), (str, encoding), ([ints]). */
function makeBytes(args: unknown[]): Uint8Array {
  if (args.length === 0) return new Uint8Array(0);
  const [first] = args;
  if (args.length === 2) return codecsEncode(args);
  if (first instanceof Uint8Array) return first.slice();
  if (Array.isArray(first) && first.every((byte) => Number.isInteger(byte) && byte >= 0 && byte < 256))
    return Uint8Array.from(first as number[]);
  throw new Error('unsupported arguments');
}

function makeSet(args: unknown[]): Set<unknown> {
  const [items = []] = args;
  if (!Array.isArray(items) && !(items instanceof Set)) throw new Error('expects a list of items');
  return new Set(items);
}

/** Plain Python data; every reader's allow-list starts from these. */
export const PYTHON_DATA_GLOBALS: AllowList = new Map<string, PickleGlobal>([
  [
    'collections.OrderedDict',
    {
      call: (args) => {
        const dict = new Map<unknown, unknown>();
        for (const pair of (args[0] ?? []) as unknown[]) {
          if (!Array.isArray(pair) || pair.length !== 2) throw new Error('expects (key, value) pairs');
          dict.set(pair[0], pair[1]);
        }
        return dict;
      },
      // The state is the instance __dict__; torch puts per-module version numbers there
      // (`_metadata`), which a Map cannot carry and loading does not need.
      setState: () => undefined,
    },
  ],
  ['builtins.set', { call: makeSet }],
  ['builtins.frozenset', { call: makeSet }],
  ['builtins.bytes', { call: makeBytes }],
  ['builtins.bytearray', { call: makeBytes }],
  ['_codecs.encode', { call: codecsEncode }],
]);
