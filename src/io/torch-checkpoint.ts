// PyTorch checkpoints (.bin / .pt) as torch.save writes them:
//  * zip (torch >= 1.6): <name>/data.pkl, <name>/data/<storage key>, <name>/version,
//    optionally <name>/byteorder; members stored uncompressed.
//  * legacy (torch < 1.6, the released ViLBERT checkpoints): five things back to back: the
//    pickled magic number, the pickled protocol version 1001, a pickled sys_info dict, the
//    pickled object (storages as persistent ids), the pickled list of storage keys, then per
//    key an 8-byte little-endian element count and the raw storage bytes.
import { basename, extname } from 'node:path';
import { ByteReader } from './byte-reader.js';
import { CheckpointFormatError } from './format-error.js';
import { unpickle, unpickleFrom, type AllowList } from './pickle.js';
import { PickleCall, PickleGlobalRef, PicklePersistentId, pickle } from './pickle-writer.js';
import {
  RAW_DTYPE_SIZE,
  byteLength,
  contiguousStrides,
  elementCount,
  isRawTensor,
  plainBytes,
  type RawTensor,
} from './raw-tensor.js';
import { STORAGE_DTYPES, TorchUnpickling } from './torch-pickle.js';
import { readFileBytes, writeChunks } from './file-io.js';
import { readZipMembers, writeZip, zipChunks, type ZipMember } from './zip.js';

export interface TorchCheckpoint {
  format: 'zip' | 'legacy';
  /** The unpickled object (Maps, arrays, primitives), its tensors as RawTensor. */
  object: unknown;
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
/** Keys under which training checkpoints nest the model's state dict, in lookup order. */
const NESTED_STATE_DICT_KEYS = ['state_dict', 'model_state_dict', 'model', 'module', 'network'];

export interface TorchCheckpointOptions {
  /**
   * Globals to allow besides the tensor, storage and plain-data ones, e.g.
   * `opaqueClass('argparse.Namespace')` for a training checkpoint that pickles its arguments.
   */
  allow?: AllowList;
}

export function readTorchCheckpoint(path: string, options: TorchCheckpointOptions = {}): TorchCheckpoint {
  return parseTorchCheckpoint(readFileBytes(path), path, options);
}

/** @param source names the data in errors (a file path, or '<buffer>') */
export function parseTorchCheckpoint(
  input: Uint8Array,
  source = '<buffer>',
  options: TorchCheckpointOptions = {},
): TorchCheckpoint {
  const bytes = plainBytes(input);
  const session = new TorchUnpickling(source, options.allow);
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) {
    return { format: 'zip', object: parseZipCheckpoint(bytes, source, session) };
  }
  if (bytes.length >= 2 && bytes[0] === 0x80)
    return { format: 'legacy', object: parseLegacyCheckpoint(bytes, source, session) };
  if (bytes.length >= 262 && new TextDecoder().decode(bytes.subarray(257, 262)) === 'ustar') {
    throw new CheckpointFormatError(source, 'tar-format torch checkpoints (torch < 0.4) are not supported');
  }
  throw new CheckpointFormatError(source, 'not a torch checkpoint: neither a zip archive nor a legacy pickle stream');
}

/** The state dict of a torch checkpoint file (see `findStateDict`). */
export function readTorchStateDict(path: string, options: TorchCheckpointOptions = {}): Map<string, RawTensor> {
  return findStateDict(readTorchCheckpoint(path, options).object, path);
}

function parseZipCheckpoint(bytes: Uint8Array, source: string, session: TorchUnpickling): unknown {
  const members = readZipMembers(bytes, source);
  const first = members.keys().next();
  // libtorch takes the archive's folder name from its first member, as this does.
  const prefix = first.done === true ? '' : first.value.slice(0, first.value.indexOf('/') + 1);
  const dataPickle = members.get(`${prefix}data.pkl`);
  if (dataPickle === undefined)
    throw new CheckpointFormatError(source, `zip archive has no ${prefix}data.pkl: not a torch checkpoint`);
  const byteOrder = members.get(`${prefix}byteorder`);
  const order = byteOrder === undefined ? 'little' : new TextDecoder().decode(byteOrder).trim();
  if (order !== 'little' && order !== 'big')
    throw new CheckpointFormatError(source, `unknown byte order '${order}'`, `${prefix}byteorder`);

  const object = unpickle(dataPickle, {
    allow: session.allow,
    persistentLoad: session.persistentLoad,
    source: `${source} (${prefix}data.pkl)`,
  });
  for (const [key, root] of session.roots) {
    const member = `${prefix}data/${key}`;
    const data = members.get(member);
    if (data === undefined) throw new CheckpointFormatError(source, 'storage is missing from the archive', member);
    const expected = root.numel * RAW_DTYPE_SIZE[root.dtype];
    if (data.length !== expected)
      throw new CheckpointFormatError(
        source,
        `storage of ${root.numel} x ${root.dtype} needs ${expected} bytes, found ${data.length}`,
        member,
      );
    root.bytes = data;
  }
  session.materialize(object, order === 'big');
  return object;
}

function parseLegacyCheckpoint(bytes: Uint8Array, source: string, session: TorchUnpickling): unknown {
  const reader = new ByteReader(bytes, source, 'legacy torch checkpoint');
  const plain = { allow: new Map(), source };
  if (unpickleFrom(reader, plain) !== LEGACY_MAGIC)
    throw new CheckpointFormatError(source, 'bad magic number: not a legacy torch checkpoint');
  const protocol = unpickleFrom(reader, plain);
  if (protocol !== LEGACY_PROTOCOL)
    throw new CheckpointFormatError(source, `legacy protocol version ${String(protocol)}, expected ${LEGACY_PROTOCOL}`);
  const sysInfo = unpickleFrom(reader, plain);
  if (!(sysInfo instanceof Map)) throw new CheckpointFormatError(source, 'sys_info is not a dict');
  const littleEndian = sysInfo.get('little_endian') !== false;

  const object = unpickleFrom(reader, { allow: session.allow, persistentLoad: session.persistentLoad, source });
  const keys = unpickleFrom(reader, plain);
  if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string')) {
    throw new CheckpointFormatError(source, 'storage key list is not a list of strings');
  }
  for (const key of keys as string[]) {
    const root = session.roots.get(key);
    if (root === undefined)
      throw new CheckpointFormatError(source, 'storage is listed but no tensor uses it', `storage ${key}`);
    // The count is written in the saving machine's byte order.
    const count = littleEndian
      ? reader.u64()
      : Number(new DataView(reader.take(8).slice().reverse().buffer).getBigUint64(0, true));
    if (count !== root.numel)
      throw new CheckpointFormatError(
        source,
        `storage holds ${count} elements, its persistent id says ${root.numel}`,
        `storage ${key}`,
      );
    root.bytes = reader.take(count * RAW_DTYPE_SIZE[root.dtype]);
  }
  session.materialize(object, !littleEndian);
  return object;
}

function isTensorMap(value: unknown): value is Map<string, RawTensor> {
  return value instanceof Map && [...value].every(([key, item]) => typeof key === 'string' && isRawTensor(item));
}

/**
 * The name -> tensor dict in an unpickled checkpoint: the object itself, or a dict under
 * one of 'state_dict', 'model_state_dict', 'model', 'module', 'network' (training
 * checkpoints).
 */
export function findStateDict(object: unknown, source = '<buffer>'): Map<string, RawTensor> {
  if (isTensorMap(object)) return object;
  if (object instanceof Map) {
    for (const key of NESTED_STATE_DICT_KEYS) {
      const nested = object.get(key);
      if (isTensorMap(nested)) return nested;
    }
    const keys = [...object.keys()].slice(0, 10).map(String).join(', ');
    throw new CheckpointFormatError(
      source,
      `no state dict: the top-level dict (keys ${keys}) is neither name -> tensor nor holds one under ${NESTED_STATE_DICT_KEYS.join('/')}`,
    );
  }
  const kind = object === null ? 'None' : Array.isArray(object) ? 'a list' : `a ${typeof object}`;
  throw new CheckpointFormatError(source, `no state dict: the checkpoint holds ${kind}, not a dict`);
}

const STORAGE_NAMES = new Map(Object.entries(STORAGE_DTYPES).map(([name, dtype]) => [dtype, name]));

/**
 * A zip-format torch checkpoint of a state dict, as torch.save(state_dict) writes it
 * (protocol-2 pickle, one storage per tensor, data aligned to 64 bytes); torch.load reads
 * it, weights_only included.
 */
export function serializeTorchStateDict(
  tensors: Iterable<readonly [string, RawTensor]>,
  archiveName = 'archive',
): Buffer {
  return writeZip(stateDictMembers(tensors, archiveName));
}

/** Writes a zip-format torch checkpoint; the archive folder is the file name without extension, as torch names it. */
export function writeTorchStateDict(path: string, tensors: Iterable<readonly [string, RawTensor]>): void {
  writeChunks(path, zipChunks(stateDictMembers(tensors, basename(path, extname(path)) || 'archive')));
}

function stateDictMembers(tensors: Iterable<readonly [string, RawTensor]>, archiveName: string): ZipMember[] {
  const orderedDict = new PickleGlobalRef('collections', 'OrderedDict');
  const rebuild = new PickleGlobalRef('torch._utils', '_rebuild_tensor_v2');
  const storages: Array<{ name: string; data: Uint8Array }> = [];
  const items: Array<[unknown, unknown]> = [];
  for (const [name, tensor] of tensors) {
    const expected = byteLength(tensor.dtype, tensor.shape);
    if (tensor.data.length !== expected) {
      throw new CheckpointFormatError(
        '<torch writer>',
        `shape [${tensor.shape.join(', ')}] of ${tensor.dtype} needs ${expected} bytes, data has ${tensor.data.length}`,
        name,
      );
    }
    const key = String(storages.length);
    storages.push({ name: `${archiveName}/data/${key}`, data: tensor.data });
    const storageType = new PickleGlobalRef('torch', STORAGE_NAMES.get(tensor.dtype)!);
    const storage = new PicklePersistentId(['storage', storageType, key, 'cpu', elementCount(tensor.shape)]);
    const args = [storage, 0, tensor.shape, contiguousStrides(tensor.shape), false, new PickleCall(orderedDict, [])];
    items.push([name, new PickleCall(rebuild, args)]);
  }
  const encoder = new TextEncoder();
  return [
    { name: `${archiveName}/data.pkl`, data: pickle(new PickleCall(orderedDict, [], items)) },
    { name: `${archiveName}/byteorder`, data: encoder.encode('little') },
    ...storages,
    { name: `${archiveName}/version`, data: encoder.encode('3\n') },
  ];
}
