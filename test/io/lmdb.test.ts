import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LmdbError, LmdbReader } from '../../src/io/lmdb.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { fixture, toHex } from './fixtures.js';

// Written by test/fixtures/data/make_data_fixtures.py with python-lmdb.
const plain = JSON.parse(readSafetensors(fixture('data', 'reader_expected.safetensors')).metadata.plain!) as {
  entries: number;
  keysHex: string[];
  sha256: Record<string, string>;
};
const PLAIN = fixture('data', 'plain.lmdb');
const VG = fixture('data', 'vg_resnext152_faster_rcnn_genome.lmdb');

/** `text` as a pattern matching it literally (paths hold dots). */
const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

function lmdbError(path: string, pattern: RegExp): (error: unknown) => boolean {
  return (error: unknown) =>
    error instanceof LmdbError &&
    error.path === path &&
    error.message.startsWith(`${path}: `) &&
    pattern.test(error.message);
}

describe('LmdbReader', () => {
  it('reads a single-file store (subdir=False): size, keys in LMDB order, every value', () => {
    const store = LmdbReader.open(PLAIN);
    try {
      assert.equal(store.size, plain.entries);
      const keys = store.keys();
      assert.deepEqual(keys.map(toHex), plain.keysHex);
      for (const key of keys) assert.equal(sha256(store.get(key)!), plain.sha256[toHex(key)], toHex(key));
      assert.equal(store.get('beta')!.length, 0);
      assert.equal(new TextDecoder().decode(store.get('alpha')!), 'first value');
      assert.equal(store.get(Uint8Array.of(0, 255, 0x62, 0x69, 0x6e))!.length, 256);
      assert.equal(store.get('large')!.length, 20000);
    } finally {
      store.close();
    }
  });

  it('reads an environment directory (data.mdb, no lock file)', () => {
    const store = LmdbReader.open(VG);
    try {
      assert.equal(store.size, 5);
      assert.deepEqual(
        store.keys().map((key) => Buffer.from(key).toString()),
        ['1', '2', '3', '4', 'keys'],
      );
      // Python pickle protocol 4 starts with PROTO 4.
      assert.deepEqual([...store.get('keys')!.subarray(0, 2)], [0x80, 4]);
    } finally {
      store.close();
    }
  });

  it("returns null for a missing key; an empty key is liblmdb's MDB_BAD_VALSIZE, as in python-lmdb", () => {
    const store = LmdbReader.open(PLAIN);
    try {
      assert.equal(store.get('gamma'), null);
      assert.throws(() => store.get(''), lmdbError(PLAIN, /^\S+: key '': mdb_get: MDB_BAD_VALSIZE/));
    } finally {
      store.close();
    }
  });

  it('hands out copies that outlive close(); close is idempotent; use after close throws', () => {
    const store = LmdbReader.open(PLAIN);
    const value = store.get('large')!;
    store.close();
    store.close();
    assert.equal(store.closed, true);
    assert.equal(sha256(value), plain.sha256[Buffer.from('large').toString('hex')]);
    assert.throws(() => store.get('alpha'), lmdbError(PLAIN, /key 'alpha': the store was used after close\(\)/));
    assert.throws(() => store.size, lmdbError(PLAIN, /used after close/));
    assert.throws(() => store.keys(), lmdbError(PLAIN, /used after close/));
  });

  it('withValue reads values in place: the same bytes as get(), null for a missing key, the view detached afterwards', () => {
    const store = LmdbReader.open(PLAIN);
    try {
      for (const key of store.keys()) {
        assert.equal(
          store.withValue(key, (bytes) => sha256(bytes)),
          plain.sha256[toHex(key)],
          toHex(key),
        );
      }
      assert.equal(
        store.withValue('beta', (bytes) => bytes.length),
        0,
      );
      assert.equal(
        store.withValue('gamma', () => 'called'),
        null,
      );
      let kept: Uint8Array | undefined;
      assert.equal(
        store.withValue('large', (bytes) => ((kept = bytes), bytes.length)),
        20000,
      );
      // An escaped view is detached: it reads as empty, never as memory that may be unmapped.
      assert.equal(kept!.length, 0);
      assert.equal(kept!.buffer.byteLength, 0);
      // An error thrown by the callback propagates, and the view is still detached.
      assert.throws(
        () => store.withValue('large', (bytes) => ((kept = bytes), assert.fail('from the callback'))),
        /from the callback/,
      );
      assert.equal(kept!.length, 0);
    } finally {
      store.close();
    }
  });

  it('a close() inside withValue waits for the callback to finish reading', () => {
    const store = LmdbReader.open(PLAIN);
    const digest = store.withValue('large', (bytes) => {
      store.close();
      assert.equal(store.closed, false);
      return sha256(bytes);
    });
    assert.equal(digest, plain.sha256[Buffer.from('large').toString('hex')]);
    assert.equal(store.closed, true);
    assert.throws(
      () => store.withValue('large', () => 0),
      lmdbError(PLAIN, /key 'large': the store was used after close\(\)/),
    );
  });

  it("names the path and liblmdb's reason for a missing or non-LMDB file", () => {
    const missing = fixture('data', 'no-such-store.lmdb');
    assert.throws(() => LmdbReader.open(missing), lmdbError(missing, /No such file or directory/));
    const notLmdb = fixture('data', 'make_data_fixtures.py');
    assert.throws(
      () => LmdbReader.open(notLmdb),
      lmdbError(notLmdb, /mdb_env_open: MDB_INVALID: File is not an LMDB file/),
    );
    const emptyDirectory = fixture('data');
    assert.throws(
      () => LmdbReader.open(emptyDirectory),
      lmdbError(
        emptyDirectory,
        new RegExp(`: ${literal(join(emptyDirectory, 'data.mdb'))}: No such file or directory$`),
      ),
    );
  });

  it('refuses an empty or truncated data file, naming it, where reading its missing pages would raise SIGBUS', () => {
    // The kit's COCO store as an environment directory; plain.lmdb as a single file.
    const coco = readFileSync(
      fixture(
        'datasets',
        'kit',
        'datasets',
        'coco',
        'features_100',
        'COCO_trainval_resnext152_faster_rcnn_genome.lmdb',
        'data.mdb',
      ),
    );
    const single = readFileSync(PLAIN);
    const dir = mkdtempSync(join(tmpdir(), 'vilbert-lmdb-'));
    try {
      const copy = (name: string, bytes: Uint8Array, asDirectory: boolean): { path: string; file: string } => {
        const path = join(dir, name);
        const file = asDirectory ? join(path, 'data.mdb') : path;
        if (asDirectory) mkdirSync(path);
        writeFileSync(file, bytes);
        return { path, file };
      };
      for (const [name, bytes, asDirectory] of [
        ['coco.lmdb', coco, true],
        ['plain.lmdb', single, false],
      ] as const) {
        const whole = copy(`whole-${name}`, bytes, asDirectory);
        const store = LmdbReader.open(whole.path);
        assert.ok(store.keys().every((key) => store.get(key) !== null));
        store.close();

        const empty = copy(`empty-${name}`, new Uint8Array(0), asDirectory);
        assert.throws(
          () => LmdbReader.open(empty.path),
          lmdbError(empty.path, new RegExp(`^\\S+: ${literal(empty.file)} is empty \\(0 bytes\\), not an LMDB file$`)),
        );
        // Both meta pages (2 x 4096 bytes) intact, data pages cut off: liblmdb itself would map them.
        for (const cut of [8192, 8193, Math.floor(bytes.length / 2), bytes.length - 4096, bytes.length - 1]) {
          const cutCopy = copy(`cut${cut}-${name}`, bytes.subarray(0, cut), asDirectory);
          assert.throws(
            () => LmdbReader.open(cutCopy.path),
            lmdbError(
              cutCopy.path,
              new RegExp(
                `^\\S+: ${literal(cutCopy.file)} is truncated: ${cut} bytes, but its pages run to byte ${bytes.length} `,
              ),
            ),
            `cut at ${cut}`,
          );
        }
        // Without both meta pages liblmdb refuses it itself.
        for (const cut of [1, 4096, 8191]) {
          const cutCopy = copy(`cut${cut}-${name}`, bytes.subarray(0, cut), asDirectory);
          assert.throws(
            () => LmdbReader.open(cutCopy.path),
            lmdbError(cutCopy.path, /mdb_env_open: MDB_INVALID|is truncated/),
            `cut at ${cut}`,
          );
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('releases environments that were never closed when they are garbage-collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const openFiles = (): number => readdirSync('/proc/self/fd').length;
    const before = openFiles();
    for (let i = 0; i < 200; i++) LmdbReader.open(PLAIN).get('alpha');
    assert.ok(openFiles() >= before + 200, 'each open store holds its file open');
    for (let round = 0; round < 10 && openFiles() > before + 10; round++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(openFiles() <= before + 10, `${openFiles() - before} stores are still open after GC`);
  });
});
