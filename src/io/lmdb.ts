// Read-only LMDB stores (the region-feature LMDBs) through the native addon's liblmdb
// binding. Values and keys come back as copies, so they stay valid after close().
import { native, type LmdbHandle } from '../torch/native.js';

/** An LMDB failure: the store's path, the key concerned (if any) and liblmdb's reason. */
export class LmdbError extends Error {
  override readonly name = 'LmdbError';

  constructor(readonly path: string, readonly problem: string, readonly key?: string) {
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

  private constructor(readonly path: string, handle: LmdbHandle) {
    this.handle = handle;
  }

  static open(path: string): LmdbReader {
    return new LmdbReader(path, LmdbReader.call(path, undefined, () => native.lmdbOpen(path)));
  }

  /** The value stored under `key` (a copy), or null when there is none. */
  get(key: string | Uint8Array): Uint8Array | null {
    const env = this.env(key);
    return LmdbReader.call(this.path, key, () => native.lmdbGet(env, keyBytes(key)));
  }

  /** Every key in LMDB order (bytewise ascending), as copies. */
  keys(): Uint8Array[] {
    const env = this.env();
    return LmdbReader.call(this.path, undefined, () => native.lmdbKeys(env));
  }

  /** Number of entries in the store. */
  get size(): number {
    const env = this.env();
    return LmdbReader.call(this.path, undefined, () => native.lmdbCount(env));
  }

  get closed(): boolean {
    return this.handle === null;
  }

  /** Releases the environment (also done by the handle's finaliser). Idempotent. */
  close(): void {
    if (this.handle === null) return;
    native.lmdbClose(this.handle);
    this.handle = null;
  }

  private env(key?: string | Uint8Array): LmdbHandle {
    if (this.handle === null) throw new LmdbError(this.path, 'the store was used after close()', key === undefined ? undefined : keyLabel(key));
    return this.handle;
  }

  /** Runs a native call; its errors (which already name the path) become LmdbErrors. */
  private static call<T>(path: string, key: string | Uint8Array | undefined, run: () => T): T {
    try {
      return run();
    } catch (error) {
      const message = (error as Error).message;
      const problem = message.startsWith(`LMDB ${path}: `) ? message.slice(`LMDB ${path}: `.length) : message;
      throw new LmdbError(path, problem, key === undefined ? undefined : keyLabel(key));
    }
  }
}
