import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LmdbError, LmdbReader, writeLmdb } from '../../src/io/lmdb.js';
import { native } from '../../src/torch/native.js';

const scratch = mkdtempSync(join(tmpdir(), 'vilbert-lmdb-write-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const large = Uint8Array.from({ length: 20000 }, (_, i) => (i * 31) % 251);
const ENTRIES: [string | Uint8Array, Uint8Array][] = [
  ['keys', new TextEncoder().encode('listed last, sorted in the middle')],
  ['alpha', new TextEncoder().encode('first value')],
  ['beta', new Uint8Array(0)],
  [Uint8Array.of(0, 255, 0x62), Uint8Array.from({ length: 256 }, (_, i) => i)],
  ['large', large],
];

function readAll(path: string): { size: number; keys: string[]; values: Map<string, Uint8Array> } {
  const store = LmdbReader.open(path);
  try {
    const keys = store.keys();
    return {
      size: store.size,
      keys: keys.map((key) => Buffer.from(key).toString('hex')),
      values: new Map(keys.map((key) => [Buffer.from(key).toString('hex'), new Uint8Array(store.get(key)!)])),
    };
  } finally {
    store.close();
  }
}

const hex = (key: string | Uint8Array) =>
  Buffer.from(typeof key === 'string' ? new TextEncoder().encode(key) : key).toString('hex');

function lmdbError(path: string, pattern: RegExp): (error: unknown) => boolean {
  return (error: unknown) =>
    error instanceof LmdbError &&
    error.path === path &&
    error.message.startsWith(`${path}: `) &&
    pattern.test(error.message);
}

describe('writeLmdb', () => {
  it('writes an environment directory holding only data.mdb that LmdbReader reads back, keys in LMDB order', () => {
    const path = join(scratch, 'store.lmdb');
    writeLmdb(path, ENTRIES);
    assert.deepEqual(readdirSync(path), ['data.mdb']);
    const read = readAll(path);
    assert.equal(read.size, ENTRIES.length);
    assert.deepEqual(read.keys, ENTRIES.map(([key]) => hex(key)).sort());
    for (const [key, value] of ENTRIES) assert.deepEqual(read.values.get(hex(key)), value, hex(key));
  });

  it('writes a single-file store (subdir: false) without a lock file, creating the parent folder', () => {
    const path = join(scratch, 'nested', 'single.lmdb');
    writeLmdb(path, ENTRIES, { subdir: false });
    assert.ok(statSync(path).isFile());
    assert.deepEqual(readdirSync(join(scratch, 'nested')), ['single.lmdb']);
    assert.deepEqual(readAll(path).values.get(hex('large')), large);
  });

  it('gives byte-identical files for the same entries in the same order', () => {
    writeLmdb(join(scratch, 'a.lmdb'), ENTRIES);
    writeLmdb(join(scratch, 'b.lmdb'), ENTRIES);
    assert.ok(
      readFileSync(join(scratch, 'a.lmdb', 'data.mdb')).equals(readFileSync(join(scratch, 'b.lmdb', 'data.mdb'))),
    );
  });

  it('holds many large values (the map is sized from the entries)', () => {
    const path = join(scratch, 'many.lmdb');
    const entries = Array.from({ length: 64 }, (_, i): [string, Uint8Array] => [
      String(i),
      new Uint8Array(100_000).fill(i),
    ]);
    writeLmdb(path, entries);
    const read = readAll(path);
    assert.equal(read.size, 64);
    assert.deepEqual(read.values.get(hex('63')), new Uint8Array(100_000).fill(63));
  });

  it('refuses an existing path, a repeated key and a non-bytes value, naming the path and key', () => {
    const existing = join(scratch, 'store-exists.lmdb');
    writeLmdb(existing, [['k', Uint8Array.of(1)]]);
    assert.throws(() => writeLmdb(existing, [['k', Uint8Array.of(1)]]), lmdbError(existing, /already exists/));
    const twice = join(scratch, 'twice.lmdb');
    assert.throws(
      () =>
        writeLmdb(twice, [
          ['k', Uint8Array.of(1)],
          ['k', Uint8Array.of(2)],
        ]),
      lmdbError(twice, /key 'k': the key is given twice/),
    );
    assert.throws(
      () => writeLmdb(twice, [['k', 'text' as unknown as Uint8Array]]),
      lmdbError(twice, /key 'k': the value is not a Uint8Array/),
    );
  });

  it('turns liblmdb failures into LmdbErrors naming the path (an empty key, an unwritable place)', () => {
    const emptyKey = join(scratch, 'empty-key.lmdb');
    assert.throws(() => writeLmdb(emptyKey, [['', Uint8Array.of(1)]]), lmdbError(emptyKey, /mdb_put: MDB_BAD_VALSIZE/));
    assert.equal(existsSync(emptyKey), false, 'no half-written store is left');
    const blocked = join(scratch, 'a-file');
    writeLmdb(blocked, [['k', Uint8Array.of(1)]], { subdir: false });
    const inside = join(blocked, 'store.lmdb');
    assert.throws(
      () => writeLmdb(inside, [['k', Uint8Array.of(1)]], { subdir: false }),
      (error: unknown) => error instanceof Error && error.message.includes(blocked),
    );
  });

  it('checks the native arguments instead of crashing', () => {
    const path = join(scratch, 'native.lmdb');
    assert.throws(() => native.lmdbWrite(path, [Uint8Array.of(1)], [], 1 << 20, true), /as many values as keys/);
    assert.throws(
      () => native.lmdbWrite(path, ['k' as unknown as Uint8Array], [Uint8Array.of(1)], 1 << 20, true),
      /key must be a Uint8Array/,
    );
    assert.throws(() => native.lmdbWrite(path, [Uint8Array.of(1)], [Uint8Array.of(1)], 0, true), /mapSize/);
    assert.throws(
      () => native.lmdbWrite(path, [Uint8Array.of(1)], [Uint8Array.of(1)], 1 << 20, 1 as unknown as boolean),
      /subdir/,
    );
  });
});
