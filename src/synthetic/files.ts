// Writing the world's annotation files in the reference's formats: JSON (ASCII, `\u`
// escapes, as Python's json.dump), JSON lines, pickles and `np.save` int64 id lists.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { pickleData, type PickleDataOptions } from '../io/pickle-numpy-writer.js';

function ensureParent(path: string): void {
  mkdirSync(dirname(path), { recursive: true });
}

/** JSON with every non-ASCII character escaped (Python's ensure_ascii). */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u0080-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export function writeJson(path: string, value: unknown): void {
  ensureParent(path);
  writeFileSync(path, asciiJson(value));
}

/** A JSON object with its keys in the given order (a JavaScript object would put integer-like keys first). */
export function writeJsonObject(path: string, entries: readonly (readonly [string, unknown])[]): void {
  ensureParent(path);
  writeFileSync(path, `{${entries.map(([key, value]) => `${asciiJson(key)}: ${asciiJson(value)}`).join(', ')}}`);
}

/** One JSON object per line, each line ending in a newline. */
export function writeJsonLines(path: string, rows: readonly unknown[]): void {
  ensureParent(path);
  writeFileSync(path, rows.map((row) => `${JSON.stringify(row)}\n`).join(''));
}

export function writePickle(path: string, value: unknown, options?: PickleDataOptions): void {
  ensureParent(path);
  writeFileSync(path, pickleData(value, options));
}

/** `np.save(path, np.array(ids, dtype=np.int64))`: format 1.0, header padded to 64 bytes. */
export function writeNpyInt64(path: string, ids: readonly number[]): void {
  ensureParent(path);
  let header = `{'descr': '<i8', 'fortran_order': False, 'shape': (${ids.length},), }`;
  header = header.padEnd(64 * Math.ceil((10 + header.length + 1) / 64) - 10 - 1, ' ') + '\n';
  const preamble = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(preamble);
  preamble.writeUInt16LE(header.length, 8);
  const data = BigInt64Array.from(ids, (id) => BigInt(id));
  writeFileSync(path, Buffer.concat([preamble, Buffer.from(header, 'latin1'), new Uint8Array(data.buffer)]));
}

/** An empty file, e.g. `cache/.keep` so that a folder the reference needs exists. */
export function touch(path: string): void {
  ensureParent(path);
  writeFileSync(path, '');
}
