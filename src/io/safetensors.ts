// safetensors: 8-byte little-endian header length N, N bytes of UTF-8 JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
// then the data section; offsets are relative to byte 8 + N. The reader enforces the rules
// of the reference implementation (huggingface/safetensors, Rust): header at most 100 MB,
// tensors covering the data section exactly, without gaps or overlaps, each as long as its
// shape and dtype say. The writer orders tensors as that library does, so files match it.
import { ByteReader } from './byte-reader.js';
import { CheckpointFormatError } from './format-error.js';
import { readFileBytes, writeChunks } from './file-io.js';
import { byteLength, plainBytes, type RawDType, type RawTensor } from './raw-tensor.js';

/** The reference's cap on the JSON header (MAX_HEADER_SIZE). */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

/** File dtype names, in the reference's `Dtype` enum order (its ordering of the writer). */
const FILE_DTYPES: ReadonlyArray<[string, RawDType]> = [
  ['BOOL', 'bool'],
  ['U8', 'uint8'],
  ['I8', 'int8'],
  ['I16', 'int16'],
  ['F16', 'float16'],
  ['BF16', 'bfloat16'],
  ['I32', 'int32'],
  ['F32', 'float32'],
  ['F64', 'float64'],
  ['I64', 'int64'],
];
const FROM_FILE = new Map(FILE_DTYPES);
const TO_FILE = new Map(FILE_DTYPES.map(([name, dtype]) => [dtype, name]));
const WRITE_RANK = new Map(FILE_DTYPES.map(([, dtype], rank) => [dtype, rank]));
/** Valid safetensors dtypes that RawTensor has no element type for. */
const UNSUPPORTED_FILE_DTYPES = new Set([
  'U16',
  'U32',
  'U64',
  'F8_E4M3',
  'F8_E5M2',
  'F8_E8M0',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'C64',
]);

export interface SafetensorsContent {
  /** Tensors in data-offset order; each `data` is a view into the parsed buffer. */
  tensors: Map<string, RawTensor>;
  /** The `__metadata__` string map (empty when the file has none). */
  metadata: Record<string, string>;
}

export function readSafetensors(path: string): SafetensorsContent {
  return parseSafetensors(readFileBytes(path), path);
}

/** @param source names the data in errors (a file path, or '<buffer>') */
export function parseSafetensors(input: Uint8Array, source = '<buffer>'): SafetensorsContent {
  const bytes = plainBytes(input);
  const reader = new ByteReader(bytes, source, 'safetensors header');
  const headerLength = reader.u64();
  if (headerLength > MAX_HEADER_BYTES) {
    throw new CheckpointFormatError(
      source,
      `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`,
    );
  }
  if (headerLength > reader.remaining) {
    throw new CheckpointFormatError(
      source,
      `header length ${headerLength} runs past the end of the file (${bytes.length} bytes): truncated?`,
    );
  }
  const header = parseHeaderJson(reader.take(headerLength), source);
  const data = bytes.subarray(reader.position);

  const metadata = readMetadata(header[METADATA_KEY], source);
  const entries = Object.entries(header)
    .filter(([name]) => name !== METADATA_KEY)
    .map(([name, info]) => readEntry(name, info, source));
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);

  let expectedBegin = 0;
  const tensors = new Map<string, RawTensor>();
  for (const entry of entries) {
    if (entry.begin !== expectedBegin) {
      const problem =
        entry.begin > expectedBegin
          ? `leaves a gap: it starts at ${entry.begin}, the previous tensor ends at ${expectedBegin}`
          : `overlaps the previous tensor (starts at ${entry.begin}, previous ends at ${expectedBegin})`;
      throw new CheckpointFormatError(source, `data_offsets ${problem}`, entry.name);
    }
    if (entry.end > data.length) {
      throw new CheckpointFormatError(
        source,
        `data_offsets [${entry.begin}, ${entry.end}] run past the data section (${data.length} bytes): truncated?`,
        entry.name,
      );
    }
    tensors.set(entry.name, { dtype: entry.dtype, shape: entry.shape, data: data.subarray(entry.begin, entry.end) });
    expectedBegin = entry.end;
  }
  if (expectedBegin !== data.length) {
    throw new CheckpointFormatError(
      source,
      `tensors cover ${expectedBegin} bytes but the data section has ${data.length}`,
    );
  }
  return { tensors, metadata };
}

function parseHeaderJson(headerBytes: Uint8Array, source: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw new CheckpointFormatError(source, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{'))
    throw new CheckpointFormatError(source, `header must start with '{', found ${JSON.stringify(text.slice(0, 16))}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw new CheckpointFormatError(source, `header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new CheckpointFormatError(source, 'header is not a JSON object');
  }
  return header as Record<string, unknown>;
}

function readMetadata(value: unknown, source: string): Record<string, string> {
  const metadata: Record<string, string> = {};
  if (value === undefined) return metadata;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CheckpointFormatError(source, 'must be an object of strings', METADATA_KEY);
  }
  for (const [name, entry] of Object.entries(value)) {
    if (typeof entry !== 'string')
      throw new CheckpointFormatError(source, `entry '${name}' is ${typeof entry}, expected a string`, METADATA_KEY);
    // defineProperty: a key named '__proto__' must stay a plain entry.
    Object.defineProperty(metadata, name, { value: entry, enumerable: true, writable: true, configurable: true });
  }
  return metadata;
}

interface HeaderEntry {
  name: string;
  dtype: RawDType;
  shape: number[];
  begin: number;
  end: number;
}

function readEntry(name: string, info: unknown, source: string): HeaderEntry {
  const fail = (problem: string): never => {
    throw new CheckpointFormatError(source, problem, name);
  };
  if (typeof info !== 'object' || info === null || Array.isArray(info)) return fail('header entry is not an object');
  const { dtype: fileDtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (typeof fileDtype !== 'string') return fail('dtype is missing or not a string');
  const dtype = FROM_FILE.get(fileDtype);
  if (dtype === undefined) {
    return fail(
      UNSUPPORTED_FILE_DTYPES.has(fileDtype) ? `dtype ${fileDtype} is not supported` : `unknown dtype '${fileDtype}'`,
    );
  }
  const isIndex = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;
  if (!Array.isArray(shape) || !shape.every(isIndex))
    return fail(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
    return fail(`data_offsets ${JSON.stringify(offsets)} is not [begin, end] of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) return fail(`data_offsets [${begin}, ${end}] end before they begin`);
  let expected: number;
  try {
    expected = byteLength(dtype, shape);
  } catch (error) {
    return fail((error as Error).message);
  }
  if (end - begin !== expected) {
    return fail(
      `shape [${shape.join(', ')}] of ${fileDtype} needs ${expected} bytes, data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  }
  return { name, dtype, shape: [...shape], begin, end };
}

/**
 * The bytes of a safetensors file. Tensors are laid out as the reference writer does
 * (largest dtype first, then by name), the header is padded with spaces to a multiple of
 * 8 bytes, so every tensor starts at an offset aligned to its element size.
 */
export function serializeSafetensors(
  tensors: Iterable<readonly [string, RawTensor]>,
  metadata?: Readonly<Record<string, string>>,
): Buffer {
  return Buffer.concat(safetensorsChunks(tensors, metadata));
}

/** Writes `serializeSafetensors(tensors, metadata)` to a file, streaming the tensor data. */
export function writeSafetensors(
  path: string,
  tensors: Iterable<readonly [string, RawTensor]>,
  metadata?: Readonly<Record<string, string>>,
): void {
  writeChunks(path, safetensorsChunks(tensors, metadata));
}

/** The file as chunks: length and header, then each tensor's data. */
function safetensorsChunks(
  tensors: Iterable<readonly [string, RawTensor]>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array[] {
  const ordered = [...tensors];
  for (const [name, tensor] of ordered) {
    if (name === METADATA_KEY)
      throw new CheckpointFormatError('<safetensors writer>', 'is reserved for the metadata map', name);
    const expected = byteLength(tensor.dtype, tensor.shape);
    if (tensor.data.length !== expected) {
      throw new CheckpointFormatError(
        '<safetensors writer>',
        `shape [${tensor.shape.join(', ')}] of ${tensor.dtype} needs ${expected} bytes, data has ${tensor.data.length}`,
        name,
      );
    }
  }
  ordered.sort(
    ([nameA, a], [nameB, b]) =>
      WRITE_RANK.get(b.dtype)! - WRITE_RANK.get(a.dtype)! || Buffer.compare(Buffer.from(nameA), Buffer.from(nameB)),
  );

  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (metadata !== undefined) header[METADATA_KEY] = { ...metadata };
  let offset = 0;
  for (const [name, tensor] of ordered) {
    header[name] = {
      dtype: TO_FILE.get(tensor.dtype),
      shape: tensor.shape,
      data_offsets: [offset, offset + tensor.data.length],
    };
    offset += tensor.data.length;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padding = (8 - (json.length % 8)) % 8;
  const head = Buffer.alloc(8 + json.length + padding, 0x20);
  head.writeBigUInt64LE(BigInt(json.length + padding), 0);
  json.copy(head, 8);
  return [head, ...ordered.map(([, tensor]) => tensor.data)];
}
