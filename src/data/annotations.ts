// What the task loaders (datasets/*.ts) share besides their DatasetError: the readers of
// their annotation files (JSON lines, pickles, the test-set image ids), the checks of a
// record's fields and Python's `int()` of an id, and the token-cache step of the
// sentence-based loaders.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CheckpointFormatError } from '../io/format-error.js';
import { readFileBytes } from '../io/file-io.js';
import { readNpyIntegers } from '../io/npy.js';
import { PYTHON_DATA_GLOBALS } from '../io/pickle-builtins.js';
import { NUMPY_GLOBALS } from '../io/pickle-numpy.js';
import { combineAllowLists, describe, unpickle } from '../io/pickle.js';
import { type RawTensor, isRawTensor } from '../io/raw-tensor.js';
import type { EncodedSentence } from '../text/index.js';
import type { DatasetOptions } from './dataset.js';
import { DatasetError } from './dataset-error.js';
import { VilbertError } from '../vilbert-error.js';
import type { ImageFeatureReader } from './features.js';
import { rawTensor1d, readTokenCacheEntries, writeTokenCache } from './token-cache.js';

// ---------------------------------------------------------------- files

/** A whole text file; one that cannot be read is a DatasetError naming it. */
export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new DatasetError(path, `cannot be read (${(error as Error).message})`);
  }
}

/** One JSON object per line (the `jsonlines` reader: an empty line is an error, a final newline is not). */
export function readJsonLines(path: string): { line: number; value: Record<string, unknown> }[] {
  const lines = readText(path).split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((text, index) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new DatasetError(path, `not a JSON line (${(error as Error).message})`, index + 1);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new DatasetError(path, 'expected a JSON object', index + 1);
    return { line: index + 1, value: value as Record<string, unknown> };
  });
}

/**
 * A whole file, read natively as the checkpoint readers read (fast for large answer
 * pickles); one that cannot be read is a DatasetError naming it.
 */
export function readBytes(path: string): Uint8Array {
  try {
    return readFileBytes(path);
  } catch (error) {
    throw error instanceof CheckpointFormatError ? new DatasetError(path, error.problem) : error;
  }
}

const PICKLE_GLOBALS = { plain: PYTHON_DATA_GLOBALS, numpy: combineAllowLists(PYTHON_DATA_GLOBALS, NUMPY_GLOBALS) };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Python 2 `str` values of a Python-2 pickle as text: UTF-8 when the bytes are UTF-8, else
 * latin-1 (code point = byte). The reference (Python 3, default ASCII decoding) loads ASCII
 * and raises on anything else; both choices agree on ASCII.
 */
function python2Text(value: unknown): unknown {
  if (value instanceof Uint8Array) {
    try {
      return utf8.decode(value);
    } catch {
      return String.fromCharCode(...value);
    }
  }
  if (Array.isArray(value)) return value.map(python2Text);
  if (value instanceof Map) return new Map([...value].map(([key, item]) => [python2Text(key), python2Text(item)]));
  return value;
}

export interface ReadPickleOptions {
  /** Also allow numpy arrays and scalars (answer targets, hard-negative pools); plain Python data otherwise. */
  numpy?: boolean;
  /** A Python 2 pickle (refcoco's refs): its `str` values come back as text (see python2Text). */
  python2?: boolean;
}

/**
 * An annotation pickle, unpickled with only the globals its data needs. A file that cannot
 * be read is a DatasetError; a pickle that cannot be parsed, or names another global, is the
 * unpickler's CheckpointFormatError.
 */
export function readPickle(path: string, options: ReadPickleOptions = {}): unknown {
  const bytes = readBytes(path);
  const allow = options.numpy === true ? PICKLE_GLOBALS.numpy : PICKLE_GLOBALS.plain;
  const value = unpickle(bytes, {
    allow,
    source: path,
    ...(options.python2 === true ? { python2Strings: 'bytes' as const } : {}),
  });
  return options.python2 === true ? python2Text(value) : value;
}

/**
 * The `clean_datasets` list of test-set image ids (`<dataroot>/cache/<file>`, e.g.
 * coco_test_ids.npy). A file that cannot be read is a DatasetError; one that is not an
 * integer .npy array is the reader's CheckpointFormatError.
 */
export function readTestImageIds(dataroot: string, file: string): Set<number> {
  const path = join(dataroot, 'cache', file);
  try {
    return new Set(readNpyIntegers(path));
  } catch (error) {
    throw error instanceof VilbertError
      ? error
      : new DatasetError(path, `cannot be read (${(error as Error).message})`);
  }
}

/** `readTestImageIds` when `load` (the loader cleans this split, or needs the list otherwise), else no ids. */
export function removedImageIds(dataroot: string, file: string, load: boolean): Set<number> {
  return load ? readTestImageIds(dataroot, file) : new Set();
}

// ---------------------------------------------------------------- fields

/** A JSON object's field that must be a string; errors name the file and line. */
export function stringField(record: Record<string, unknown>, field: string, path: string, line: number): string {
  const value = record[field];
  if (typeof value !== 'string')
    throw new DatasetError(
      path,
      `'${field}' is ${value === undefined ? 'missing' : JSON.stringify(value)}, expected a string`,
      line,
    );
  return value;
}

/** A field of a JSON object or pickled dict, checked against a predicate; errors name the file (or entry) and key. */
export function field<T>(
  record: unknown,
  key: string,
  check: (value: unknown) => value is T,
  expected: string,
  where: string,
): T {
  const value =
    record instanceof Map
      ? record.get(key)
      : typeof record === 'object' && record !== null
        ? (record as Record<string, unknown>)[key]
        : undefined;
  if (!check(value)) {
    const found =
      value === undefined
        ? 'missing'
        : typeof value === 'string' || typeof value === 'number'
          ? JSON.stringify(value)
          : `a ${describe(value)}`;
    throw new DatasetError(where, `'${key}' is ${found}, expected ${expected}`);
  }
  return value;
}

/** A key of a dict (a pickled entry, a question), whatever its value; throws naming the entry and key when it is missing. */
export function dictField(record: ReadonlyMap<string, unknown>, key: string, where: string): unknown {
  if (!record.has(key)) throw new DatasetError(where, `no '${key}'`);
  return record.get(key);
}

/**
 * Python's `int(x)` of an id: an int, or a decimal string ("1000092795" of
 * "1000092795.jpg", GQA's "05451384"). Errors name `where` and, for line-based files, the line.
 */
export function pythonInt(value: unknown, where: string, line?: number): number {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  if (typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value)) {
    const parsed = Number(value.trim());
    if (Number.isSafeInteger(parsed)) return parsed;
  }
  throw new DatasetError(where, `${JSON.stringify(value)} is not an integer id`, line);
}

/** `features_h5path1` of the task, which the single-store loaders need. */
export function requireFeatures(options: DatasetOptions): ImageFeatureReader {
  if (options.features === null)
    throw new DatasetError(`${options.task.key} ${options.task.name}`, 'features_h5path1 is required');
  return options.features;
}

// ---------------------------------------------------------------- token caches of the sentence loaders

/** A token-cache entry as the loaders pickle it: a dict with string keys. */
export type CacheRecord = Map<string, unknown>;

/**
 * The reference's token-cache step: when `path` exists its entries are used and the
 * annotations are not read; otherwise the entries are built and (unless options.writeCache is
 * false) written there. The reference does not create `cache/` and crashes without it
 * (NLVR2's kit has none); it is created here.
 */
export function cachedEntries<T>(
  options: DatasetOptions,
  path: string,
  build: () => T[],
  codec: { toCache: (entry: T) => Record<string, unknown>; fromCache: (record: CacheRecord, where: string) => T },
): T[] {
  if (existsSync(path))
    return readTokenCacheEntries(path).map((record, index) => codec.fromCache(record, `${path}: entry ${index}`));
  const entries = build();
  if (options.writeCache !== false) {
    mkdirSync(dirname(path), { recursive: true });
    writeTokenCache(path, entries.map(codec.toCache));
  }
  return entries;
}

/** A 1-D tensor field of a cache entry as numbers. */
export function cacheNumbers(record: CacheRecord, key: string, where: string): number[] {
  const value = dictField(record, key, where);
  if (!isRawTensor(value) || value.shape.length !== 1) throw new DatasetError(where, `'${key}' is not a 1-d tensor`);
  return tensorNumbers(value, `${where}: '${key}'`);
}

function tensorNumbers(tensor: RawTensor, where: string): number[] {
  const bytes = tensor.data.slice();
  switch (tensor.dtype) {
    case 'int64':
      return Array.from(new BigInt64Array(bytes.buffer), Number);
    case 'float32':
      return Array.from(new Float32Array(bytes.buffer));
    case 'float64':
      return Array.from(new Float64Array(bytes.buffer));
    default:
      throw new DatasetError(where, `tensor of ${tensor.dtype}, expected int64, float32 or float64`);
  }
}

/** The three token tensors of a cache entry, under the loader's key names. */
export function cachedSentence(
  record: CacheRecord,
  keys: readonly [string, string, string],
  where: string,
): EncodedSentence {
  return {
    inputIds: cacheNumbers(record, keys[0], where),
    inputMask: cacheNumbers(record, keys[1], where),
    segmentIds: cacheNumbers(record, keys[2], where),
  };
}

/** The same three as cache tensors (int64, as `torch.from_numpy(np.array(ints))`). */
export function sentenceForCache(
  sentence: EncodedSentence,
  keys: readonly [string, string, string],
): Record<string, RawTensor> {
  return {
    [keys[0]]: rawTensor1d('int64', sentence.inputIds),
    [keys[1]]: rawTensor1d('int64', sentence.inputMask),
    [keys[2]]: rawTensor1d('int64', sentence.segmentIds),
  };
}
