// The writers behind the world's files: the pickler (Python data + numpy), msgpack-numpy and .npy.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeMsgpackNumpy } from '../../src/data/msgpack-numpy.js';
import { LmdbReader } from '../../src/io/lmdb.js';
import { readNpy, readNpyIntegers } from '../../src/io/npy.js';
import { NUMPY_GLOBALS, PYTHON_DATA_GLOBALS, combineAllowLists, unpickle } from '../../src/io/index.js';
import { pickleData, pyFloat, pyTuple } from '../../src/io/pickle-numpy-writer.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { writeNpyInt64 } from '../../src/synthetic/files.js';
import { encodeMsgpackNumpy } from '../../src/synthetic/msgpack-writer.js';
import { fixture } from '../io/fixtures.js';

const ALLOW = combineAllowLists(PYTHON_DATA_GLOBALS, NUMPY_GLOBALS);
const load = (bytes: Uint8Array, python2Strings?: 'bytes') =>
  unpickle(bytes, { allow: ALLOW, ...(python2Strings ? { python2Strings } : {}) });
const raw = (dtype: RawTensor['dtype'], shape: number[], data: ArrayBufferView): RawTensor => ({
  dtype,
  shape,
  data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
});
const plain = (tensor: RawTensor) => ({
  dtype: tensor.dtype,
  shape: tensor.shape,
  data: Buffer.from(tensor.data).toString('hex'),
});

const scratch = mkdtempSync(join(tmpdir(), 'vilbert-formats-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('pickleData', () => {
  it('writes dicts, lists, tuples, ints of every width, floats, str, bytes and None as the unpickler reads them', () => {
    const value = new Map<unknown, unknown>([
      ['ints', [0, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31, 2 ** 53 - 1, -(2 ** 40), 2n ** 70n]],
      ['floats', [0.5, pyFloat(1), -2.25e-9]],
      ['text', 'naïve — ok'],
      ['bytes', Uint8Array.of(0, 1, 2, 255)],
      ['tuple', pyTuple(1, 'two', null)],
      ['flags', [true, false, null]],
      [7, { nested: [{}] }],
      ['long', Array.from({ length: 2500 }, (_, i) => i)],
    ]);
    const back = load(pickleData(value)) as Map<unknown, unknown>;
    assert.deepEqual([...back.keys()], [...value.keys()]);
    assert.deepEqual(back.get('ints'), [
      0,
      255,
      256,
      65535,
      65536,
      -1,
      -(2 ** 31),
      2 ** 31,
      2 ** 53 - 1,
      -(2 ** 40),
      2n ** 70n,
    ]);
    assert.deepEqual(back.get('floats'), [0.5, 1, -2.25e-9]);
    assert.equal(back.get('text'), 'naïve — ok');
    assert.deepEqual(new Uint8Array(back.get('bytes') as Uint8Array), Uint8Array.of(0, 1, 2, 255));
    assert.deepEqual(back.get('tuple'), [1, 'two', null]);
    assert.deepEqual(back.get(7), new Map([['nested', [new Map()]]]));
    assert.deepEqual(
      back.get('long'),
      Array.from({ length: 2500 }, (_, i) => i),
    );
  });

  it('marks a forced float as BINFLOAT and integral numbers as ints', () => {
    assert.equal(pickleData(pyFloat(1))[2], 0x47);
    assert.equal(pickleData(1)[2], 0x4b);
  });

  it('writes numpy arrays (numpy.core.multiarray._reconstruct + dtype) that NUMPY_GLOBALS rebuilds', () => {
    const arrays = [
      raw('float32', [2, 3], Float32Array.of(1, -2, 3.5, 0, 1e-7, 6)),
      raw('float64', [3], Float64Array.of(0.1, 2, -3)),
      raw('int64', [2, 1], BigInt64Array.of(5n, -9n)),
      raw('uint8', [4], Uint8Array.of(1, 2, 3, 250)),
      raw('float32', [0, 2048], new Float32Array(0)),
    ];
    const back = load(pickleData({ arrays })) as Map<string, RawTensor[]>;
    assert.deepEqual(back.get('arrays')!.map(plain), arrays.map(plain));
  });

  it('re-pickles a kit feature LMDB value into one the reader decodes to the same fields', () => {
    const store = LmdbReader.open(
      fixture(
        'datasets',
        'kit',
        'datasets',
        'coco',
        'features_100',
        'COCO_trainval_resnext152_faster_rcnn_genome.lmdb',
      ),
    );
    try {
      const original = load(store.get('30')!) as Map<string, unknown>;
      const again = load(pickleData(original)) as Map<string, unknown>;
      assert.deepEqual([...again.keys()], ['image_id', 'image_h', 'image_w', 'num_boxes', 'boxes', 'features']);
      for (const [key, value] of original) {
        const copy = again.get(key);
        if (typeof value === 'object') assert.deepEqual(plain(copy as RawTensor), plain(value as RawTensor), key);
        else assert.equal(copy, value, key);
      }
    } finally {
      store.close();
    }
  });

  it('writes Python-2 strings in protocol 2 (the REFER refs files), read back as bytes', () => {
    const bytes = pickleData([{ raw: 'red ball', sent_id: 3 }], { protocol: 2, python2Strings: true });
    assert.deepEqual([...bytes.subarray(0, 2)], [0x80, 2]);
    const [ref] = load(bytes, 'bytes') as Map<unknown, unknown>[];
    const keys = [...ref!.keys()].map((key) => Buffer.from(key as Uint8Array).toString());
    assert.deepEqual(keys, ['raw', 'sent_id']);
    assert.equal(Buffer.from([...ref!.values()][0] as Uint8Array).toString(), 'red ball');
    assert.throws(() => pickleData(Uint8Array.of(1), { protocol: 2 }), /bytes need pickle protocol 3/);
    assert.throws(() => pickleData(new Date()), /cannot pickle a Date/);
  });
});

describe('encodeMsgpackNumpy', () => {
  it('re-encodes every kit Conceptual Captions record and key list byte for byte', () => {
    for (const file of ['training_feat_all.lmdb', 'validation_feat_all.lmdb']) {
      const store = LmdbReader.open(fixture('datasets', 'kit', 'data', 'conceptual_caption', file));
      try {
        for (const key of store.keys()) {
          const bytes = store.get(key)!;
          assert.ok(
            encodeMsgpackNumpy(decodeMsgpackNumpy(bytes)).equals(bytes),
            `${file} ${Buffer.from(key).toString()}`,
          );
        }
      } finally {
        store.close();
      }
    }
  });

  it('round-trips numbers of every width, strings, bins, maps and arrays', () => {
    const value = [
      0,
      127,
      128,
      255,
      256,
      65535,
      65536,
      2 ** 32,
      -1,
      -32,
      -33,
      -128,
      -129,
      -32768,
      -32769,
      -(2 ** 31),
      -(2 ** 31) - 1,
      0.5,
      'x'.repeat(40),
      'y'.repeat(300),
      new Uint8Array(70000),
      new Map([['k', [null, true, false]]]),
      Array.from({ length: 20 }, (_, i) => i),
    ];
    const back = decodeMsgpackNumpy(encodeMsgpackNumpy(value)) as unknown[];
    assert.deepEqual(back.slice(0, 18), value.slice(0, 18));
    assert.equal(back[18], 'x'.repeat(40));
    assert.equal(back[19], 'y'.repeat(300));
    assert.equal((back[20] as Uint8Array).length, 70000);
    assert.deepEqual(back[21], value[21]);
    assert.deepEqual(back[22], value[22]);
  });
});

describe('writeNpyInt64', () => {
  it('writes np.save format 1.0 int64 arrays with a 64-byte aligned header', () => {
    for (const ids of [[], [42, 61, 2 ** 40], Array.from({ length: 100 }, (_, i) => i * 7)]) {
      const path = join(scratch, `ids-${ids.length}.npy`);
      writeNpyInt64(path, ids);
      assert.deepEqual(readNpyIntegers(path), ids);
      const tensor = readNpy(path);
      assert.deepEqual([tensor.dtype, tensor.shape], ['int64', [ids.length]]);
      assert.equal((10 + readFileSync(path).readUInt16LE(8)) % 64, 0);
    }
  });
});
