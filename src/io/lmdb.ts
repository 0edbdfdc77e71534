// LMDB stores (the region-feature LMDBs) through the native addon's liblmdb binding: read
// through LmdbReader (get() and keys() return copies, which stay valid after close();
// withValue() lends the mapped bytes for the length of one call), written once, whole, by
// writeLmdb.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { native, type LmdbHandle } from '../torch/native.js';
import { VilbertError } from '../vilbert-error.js';

/** An LMDB failure: the store's path, the key concerned (if any) and liblmdb's reason. */
export class LmdbError extends VilbertError {
  override readonly name = 'LmdbError';
  override readonly code = 'E_LMDB';

  constructor(
    readonly path: string,
    readonly problem: string,
    readonly key?: string,
  ) {
    super(`${path}: ${key === undefined ? '' : `key '${key}': `}${problem}`);
  }
}

const utf8 = new TextEncoder();

/** A key as LMDB stores it: strings are UTF-8 (Python's `str.encode()`). */
function keyBytes(key: string | Uint8Array): Uint8Array {
  return typeof key === 'string' ? utf8.encode(key) : key;
}

/** Printable form of a key for error messages. */
function keyLabel(key: string | Uint8Array): string {
  return typeof key === 'string' ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

/**
 * One read-only LMDB environment: a directory holding `data.mdb`, or a single file (written
 * with `subdir=False`). Opened without a lock file and without readahead, as the
 * reference's readers open them.
 */
export class LmdbReader {
  private handle: LmdbHandle | null;

  private constructor(
    readonly path: string,
    handle: LmdbHandle,
  ) {
    this.handle = handle;
  }

  static open(path: string): LmdbReader {
    return new LmdbReader(
      path,
      nativeCall(path, undefined, () => native.lmdbOpen(path)),
    );
  }

  /** The value stored under `key` (a copy), or null when there is none. */
  get(key: string | Uint8Array): Uint8Array | null {
    const env = this.env(key);
    return nativeCall(this.path, key, () => native.lmdbGet(env, keyBytes(key)));
  }

  /**
   * Runs `use` on the value under `key` read in place from the memory map (no copy), or
   * returns null when there is none. The bytes are valid only during the call and are
   * read-only memory: `use` must copy out what it keeps and never write into them. After
   * the call the view is detached (every array over it reads as empty), and a close()
   * requested meanwhile takes effect.
   */
  withValue<T>(key: string | Uint8Array, use: (value: Uint8Array) => T): T | null {
    const env = this.env(key);
    const buffer = nativeCall(this.path, key, () => native.lmdbView(env, keyBytes(key)));
    if (buffer === null) return null;
    this.views++;
    try {
      return use(new Uint8Array(buffer));
    } finally {
      native.detachView(buffer);
      this.views--;
      if (this.views === 0 && this.closeRequested) this.close();
    }
  }

  private views = 0;
  private closeRequested = false;

  /** Every key in LMDB order (bytewise ascending), as copies. */
  keys(): Uint8Array[] {
    const env = this.env();
    return nativeCall(this.path, undefined, () => native.lmdbKeys(env));
  }

  /** Number of entries in the store. */
  get size(): number {
    const env = this.env();
    return nativeCall(this.path, undefined, () => native.lmdbCount(env));
  }

  get closed(): boolean {
    return this.handle === null;
  }

  /** Releases the environment (also done by the handle's finaliser). Idempotent. */
  close(): void {
    if (this.handle === null) return;
    // A withValue call still reading the map closes the store when it ends.
    if (this.views > 0) {
      this.closeRequested = true;
      return;
    }
    native.lmdbClose(this.handle);
    this.handle = null;
  }

  private env(key?: string | Uint8Array): LmdbHandle {
    if (this.handle === null)
      throw new LmdbError(this.path, 'the store was used after close()', key === undefined ? undefined : keyLabel(key));
    return this.handle;
  }
}

/** Runs a native call; its errors (which already name the path) become LmdbErrors. */
function nativeCall<T>(path: string, key: string | Uint8Array | undefined, run: () => T): T {
  try {
    return run();
  } catch (error) {
    const message = (error as Error).message;
    const problem = message.startsWith(`LMDB ${path}: `) ? message.slice(`LMDB ${path}: `.length) : message;
    throw new LmdbError(path, problem, key === undefined ? undefined : keyLabel(key));
  }
}

export interface LmdbWriteOptions {
  /**
   * true (default): `path` is a directory holding `data.mdb`, as the reference's feature LMDBs;
   * false: `path` is the data file itself (tensorpack's `subdir=False` stores).
   */
  subdir?: boolean;
}

/** liblmdb's page size on the platforms we build for; only used to size the map. */
const PAGE = 4096;

/**
 * A map large enough for the entries: every value on its own overflow pages (what large
 * values get), plus room for the leaf and branch pages and the copy-on-write of one commit.
 */
function mapSizeFor(keys: readonly Uint8Array[], values: readonly Uint8Array[]): number {
  let pages = 0;
  values.forEach((value, i) => {
    pages += Math.ceil((value.byteLength + keys[i]!.byteLength + 64) / PAGE) + 1;
  });
  return (2 * pages + 64) * PAGE;
}

/**
 * Writes a new LMDB store at `path` holding `entries` (string keys are UTF-8), in one write
 * transaction and without a lock file, as the reference's converters leave their stores;
 * LmdbReader.open reads it. `path` must not exist yet, and does not after a failure. The
 * file's bytes depend only on the entries and their order.
 */
export function writeLmdb(
  path: string,
  entries: Iterable<readonly [string | Uint8Array, Uint8Array]>,
  options: LmdbWriteOptions = {},
): void {
  const subdir = options.subdir ?? true;
  if (existsSync(path)) throw new LmdbError(path, 'already exists: writeLmdb creates a new store');
  const keys: Uint8Array[] = [];
  const values: Uint8Array[] = [];
  const seen = new Set<string>();
  for (const [key, value] of entries) {
    const bytes = keyBytes(key);
    const label = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
    if (seen.has(label)) throw new LmdbError(path, 'the key is given twice', keyLabel(key));
    if (!(value instanceof Uint8Array)) throw new LmdbError(path, 'the value is not a Uint8Array', keyLabel(key));
    seen.add(label);
    keys.push(bytes);
    values.push(value);
  }
  mkdirSync(subdir ? path : dirname(path), { recursive: true });
  try {
    nativeCall(path, undefined, () => native.lmdbWrite(path, keys, values, mapSizeFor(keys, values), subdir));
  } catch (error) {
    // No half-written store is left behind (the path did not exist before).
    rmSync(path, { recursive: true, force: true });
    throw error;
  }
}
