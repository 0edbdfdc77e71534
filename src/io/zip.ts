// The subset of ZIP that torch checkpoints use: members stored without compression, read
// through the central directory (ZIP64 records included), CRC-32 checked as libtorch's
// reader does; and a writer that aligns each member's data to 64 bytes as torch.save does
// (padding in the local header's extra field), so the archive can be memory-mapped.
import * as zlib from 'node:zlib';
import { native } from '../torch/native.js';
import { ByteReader } from './byte-reader.js';
import { CheckpointFormatError } from './format-error.js';

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const ZIP64_END = 0x06064b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EXTRA = 0x0001;
const MAX_COMMENT = 0xffff;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 in plain JavaScript (~350 MB/s), for Node versions without zlib.crc32. */
export function portableCrc32(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = CRC_TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// zlib.crc32 (Node >= 20.15) is about ten times faster: seconds saved on a 1 GB checkpoint.
const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
const smallCrc32: (data: Uint8Array) => number =
  zlibCrc32 === undefined ? portableCrc32 : (data) => zlibCrc32(data) >>> 0;

/** CRC-32 (ISO-HDLC, as zip uses); large members (tensor storages) on every thread, in the addon. */
export function crc32(data: Uint8Array): number {
  return data.byteLength >= 1 << 20 ? native.crc32(data) : smallCrc32(data);
}

/** A central-directory entry, before its data is looked at. */
interface DirectoryEntry {
  name: string;
  /** The name's bytes as stored, compared with the local header's. */
  rawName: Uint8Array;
  size: number;
  localOffset: number;
  crc: number;
}

/**
 * Member name -> its bytes (views into the archive), in central-directory order. Every
 * member must lie inside one root folder, as torch writes them (`archive/data.pkl`,
 * `archive/data/0`, ...; libtorch takes the root from the first member). The whole
 * directory is checked before any member's data is read: a name that could escape a
 * folder when extracted (absolute, `..`, a backslash or drive letter) or a second root is
 * refused, naming the member.
 */
export function readZipMembers(archive: Uint8Array, source: string): Map<string, Uint8Array> {
  const entries = readDirectory(archive, source);
  const root = entries.length === 0 ? '' : entries[0]!.name.split('/')[0]!;
  const names = new Set<string>();
  for (const entry of entries) {
    checkMemberName(entry.name, root, source);
    if (names.has(entry.name))
      throw new CheckpointFormatError(source, 'appears twice in the zip archive', printable(entry.name));
    names.add(entry.name);
  }
  return new Map(entries.map((entry) => [entry.name, memberData(archive, source, entry)]));
}

function readDirectory(archive: Uint8Array, source: string): DirectoryEntry[] {
  const reader = new ByteReader(archive, source, 'zip archive');
  const eocd = findEndOfCentralDirectory(archive, source);
  reader.position = eocd + 10;
  let count = reader.u16();
  reader.position += 4;
  let directoryOffset = reader.u32();

  if (count === 0xffff || directoryOffset === 0xffffffff) {
    // ZIP64: the locator just before the end record points at the ZIP64 end record.
    reader.position = eocd - 20;
    if (eocd < 20 || reader.u32() !== ZIP64_LOCATOR)
      reader.fail('ZIP64 sizes without a ZIP64 end-of-central-directory locator');
    reader.position += 4;
    reader.position = reader.u64();
    if (reader.u32() !== ZIP64_END) reader.fail('ZIP64 locator does not point at a ZIP64 end record');
    reader.position += 20;
    count = reader.u64();
    reader.position += 16;
    directoryOffset = reader.u64();
  }

  const entries: DirectoryEntry[] = [];
  reader.position = directoryOffset;
  for (let index = 0; index < count; index++) {
    if (reader.u32() !== CENTRAL_HEADER) reader.fail(`central directory entry ${index} has a bad signature`);
    reader.position += 4;
    const flags = reader.u16();
    const method = reader.u16();
    reader.position += 4;
    const crc = reader.u32();
    let compressedSize = reader.u32();
    let size = reader.u32();
    const nameLength = reader.u16();
    const extraLength = reader.u16();
    const commentLength = reader.u16();
    reader.position += 8;
    let localOffset = reader.u32();
    const rawName = reader.take(nameLength);
    const name = new TextDecoder().decode(rawName);
    const extra = new ByteReader(reader.take(extraLength), source, `zip extra field of '${printable(name)}'`);
    reader.take(commentLength);

    while (extra.remaining >= 4) {
      const id = extra.u16();
      const fieldEnd = extra.u16() + extra.position;
      if (id === ZIP64_EXTRA) {
        // Only the fields whose 32-bit slot holds 0xffffffff are present, in this order.
        if (size === 0xffffffff) size = extra.u64();
        if (compressedSize === 0xffffffff) compressedSize = extra.u64();
        if (localOffset === 0xffffffff) localOffset = extra.u64();
      }
      extra.position = fieldEnd;
    }
    const member = printable(name);
    if (flags & 1) throw new CheckpointFormatError(source, 'is encrypted', member);
    if (method !== 0)
      throw new CheckpointFormatError(
        source,
        `uses zip compression method ${method}; torch checkpoints store members uncompressed`,
        member,
      );
    if (compressedSize !== size)
      throw new CheckpointFormatError(
        source,
        `stored member has compressed size ${compressedSize} != size ${size}`,
        member,
      );
    entries.push({ name, rawName, size, localOffset, crc });
  }
  return entries;
}

/**
 * Refuses a member name that an extractor could place outside the root folder, or that
 * lies in another folder than the first member's (the root libtorch takes). A trailing '/'
 * (a folder entry, which zip tools add) is allowed.
 */
function checkMemberName(name: string, root: string, source: string): void {
  const refuse = (problem: string): never => {
    throw new CheckpointFormatError(
      source,
      `${problem}: a torch checkpoint keeps its members inside one root folder`,
      printable(name),
    );
  };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) refuse('has a control character in its name');
  if (name.startsWith('/')) refuse('is an absolute path');
  if (name.includes('\\')) refuse('has a backslash in its name (a folder separator on Windows)');
  if (/^[A-Za-z]:/.test(name)) refuse('starts with a drive letter');
  const parts = name.split('/');
  if (parts.length === 1) refuse('is not inside a folder');
  if (parts.at(-1) === '') parts.pop();
  if (parts.includes('..')) refuse("has a '..' component");
  if (parts.some((part) => part === '' || part === '.')) refuse("has an empty or '.' component");
  if (parts[0] !== root) refuse(`lies outside '${printable(root)}/', the first member's folder (a second root)`);
}

/** A member name as errors print it: control characters escaped. */
function printable(name: string): string {
  // eslint-disable-next-line no-control-regex
  const control = /[\u0000-\u001f\u007f]/g;
  return name.replace(control, (character) => `\\x${character.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function findEndOfCentralDirectory(archive: Uint8Array, source: string): number {
  const view = new DataView(archive.buffer, archive.byteOffset, archive.byteLength);
  const lowest = Math.max(0, archive.length - 22 - MAX_COMMENT);
  for (let offset = archive.length - 22; offset >= lowest; offset--) {
    if (view.getUint32(offset, true) === END_OF_CENTRAL_DIRECTORY) return offset;
  }
  throw new CheckpointFormatError(source, 'no zip end-of-central-directory record (not a zip archive, or truncated)');
}

function memberData(
  archive: Uint8Array,
  source: string,
  { name, rawName, size, localOffset, crc }: DirectoryEntry,
): Uint8Array {
  const member = printable(name);
  const local = new ByteReader(archive, source, `zip local header of '${member}'`);
  local.position = localOffset;
  if (local.u32() !== LOCAL_HEADER) local.fail('bad local header signature', member);
  local.position += 22;
  const nameLength = local.u16();
  const extraLength = local.u16();
  // The local header must name the member as the directory does (a mismatch is the classic
  // way to show one name to a checker and another to an extractor).
  if (Buffer.compare(local.take(nameLength), rawName) !== 0)
    throw new CheckpointFormatError(
      source,
      'its local header names another member than the central directory does',
      member,
    );
  local.take(extraLength);
  if (size > local.remaining) {
    throw new CheckpointFormatError(
      source,
      `member data (${size} bytes at offset ${local.position}) runs past the end of the archive: truncated?`,
      member,
    );
  }
  const data = local.take(size);
  const actualCrc = crc32(data);
  if (actualCrc !== crc) {
    throw new CheckpointFormatError(
      source,
      `CRC-32 mismatch (stored ${crc.toString(16)}, computed ${actualCrc.toString(16)}): the file is corrupt`,
      member,
    );
  }
  return data;
}

export interface ZipMember {
  name: string;
  data: Uint8Array;
}

/** A stored (uncompressed) zip archive with every member's data aligned to `alignment` bytes. */
export function writeZip(members: readonly ZipMember[], alignment = 64): Buffer {
  return Buffer.concat(zipChunks(members, alignment));
}

/** The archive of `writeZip` as chunks (headers and the members' own data), to write without joining. */
export function zipChunks(members: readonly ZipMember[], alignment = 64): Uint8Array[] {
  const encoder = new TextEncoder();
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const member of members) {
    const name = encoder.encode(member.name);
    const crc = crc32(member.data);
    // The extra field ('FB' + length + 'Z' padding, as libtorch writes) moves data to the alignment.
    const unpadded = offset + 30 + name.length + 4;
    const padding = (alignment - (unpadded % alignment)) % alignment;
    const local = Buffer.alloc(30 + name.length + 4 + padding, 0x5a);
    writeCommonFields(local, LOCAL_HEADER, 4, crc, member.data.length, name.length, 4 + padding);
    local.set(name, 30);
    local.writeUInt16LE(0x4246, 30 + name.length);
    local.writeUInt16LE(padding, 32 + name.length);

    const entry = Buffer.alloc(46 + name.length);
    entry.writeUInt32LE(CENTRAL_HEADER, 0);
    entry.writeUInt16LE(20, 4); // version made by
    writeCommonFields(entry, -1, 6, crc, member.data.length, name.length, 0);
    entry.writeUInt32LE(checkedU32(offset, 'archive offset'), 42);
    entry.set(name, 46);

    chunks.push(local, member.data);
    central.push(entry);
    offset += local.length + member.data.length;
  }
  const directorySize = central.reduce((total, entry) => total + entry.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(END_OF_CENTRAL_DIRECTORY, 0);
  end.writeUInt16LE(checkedU16(members.length), 8);
  end.writeUInt16LE(checkedU16(members.length), 10);
  end.writeUInt32LE(checkedU32(directorySize, 'central directory size'), 12);
  end.writeUInt32LE(checkedU32(offset, 'central directory offset'), 16);
  return [...chunks, ...central, end];
}

/**
 * The fields local and central headers share, from `at` (version needed onward); a
 * negative signature skips writing one. Date and time stay zero, as in torch's files.
 */
function writeCommonFields(
  header: Buffer,
  signature: number,
  at: number,
  crc: number,
  size: number,
  nameLength: number,
  extraLength: number,
): void {
  if (signature >= 0) header.writeUInt32LE(signature, 0);
  header.writeUInt16LE(20, at); // version needed to extract
  header.writeUInt16LE(0, at + 2); // flags
  header.writeUInt16LE(0, at + 4); // method: stored
  header.writeUInt32LE(0, at + 6); // time, date
  header.writeUInt32LE(crc, at + 10);
  header.writeUInt32LE(checkedU32(size, 'member size'), at + 14);
  header.writeUInt32LE(size, at + 18);
  header.writeUInt16LE(nameLength, at + 22);
  header.writeUInt16LE(extraLength, at + 24);
}

function checkedU32(value: number, what: string): number {
  if (value > 0xffffffff)
    throw new RangeError(`${what} ${value} needs ZIP64, which this writer does not produce (archives up to 4 GiB)`);
  return value;
}

function checkedU16(count: number): number {
  if (count >= 0xffff) throw new RangeError(`${count} zip members need ZIP64, which this writer does not produce`);
  return count;
}
