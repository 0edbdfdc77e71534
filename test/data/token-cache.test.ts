import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  itemTensorFromRaw,
  rawTensor1d,
  readTokenCache,
  readTokenCacheEntries,
  tokenCachePath,
  writeTokenCache,
} from '../../src/data/token-cache.js';
import { ForbiddenGlobalError } from '../../src/io/pickle.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { fixture } from '../io/fixtures.js';

const GQA_CACHE = fixture('datasets', 'generated_caches', 'datasets', 'gqa', 'cache', 'GQA_trainval_26_cleaned.pkl');

const scratch = mkdtempSync(join(tmpdir(), 'vilbert-token-cache-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('token caches', () => {
  it('names caches as the loaders do', () => {
    assert.equal(
      tokenCachePath('datasets/VQA/', { task: 'VQA', split: 'minval', maxSeqLength: 23, cleaned: true }),
      'datasets/VQA/cache/VQA_minval_23_cleaned.pkl',
    );
    assert.equal(
      tokenCachePath('d', { task: 'refcoco+', split: 'train', maxSeqLength: 20, maxRegionNum: 101, cleaned: false }),
      'd/cache/refcoco+_train_20_101.pkl',
    );
  });

  it('reads a cache the reference pickled (torch tensors through _load_from_bytes)', () => {
    const entries = readTokenCacheEntries(GQA_CACHE);
    assert.equal(entries.length, 5);
    const first = entries[0]!;
    assert.deepEqual(
      [...first.keys()],
      ['question_id', 'image_id', 'question', 'answer', 'q_token', 'q_input_mask', 'q_segment_ids'],
    );
    assert.equal(first.get('question_id'), 5451384);
    assert.equal(first.get('image_id'), '2354786');
    const answer = first.get('answer') as Map<string, unknown>;
    assert.equal(answer.get('question_id'), '05451384');
    const labels = itemTensorFromRaw(answer.get('labels') as RawTensor, 'labels');
    const scores = itemTensorFromRaw(answer.get('scores') as RawTensor, 'scores');
    assert.deepEqual([labels.dtype, labels.shape, [...labels.data]], ['int64', [1], [2n]]);
    assert.deepEqual([scores.dtype, scores.shape, [...scores.data]], ['float32', [1], [1]]);
    const tokens = itemTensorFromRaw(first.get('q_token') as RawTensor, 'q_token');
    assert.deepEqual([tokens.dtype, tokens.shape], ['int64', [26]]);
    // [CLS] is the man to the left or to the right of the bicycle ? [SEP]
    assert.deepEqual(
      [...tokens.data].slice(0, 16).map(Number),
      [101, 2003, 1996, 2158, 2000, 1996, 2187, 2030, 2000, 1996, 2157, 1997, 1996, 10165, 1029, 102],
    );
    assert.ok([...tokens.data].slice(16).every((id) => id === 0n));
  });

  it('writes what it reads back: dicts, lists, None, strings, bytes and tensors', () => {
    const path = join(scratch, 'roundtrip.pkl');
    const matrix: RawTensor = {
      dtype: 'float64',
      shape: [2, 3],
      data: new Uint8Array(new Float64Array([1, 2.5, -3, 4, 5, 1e-300]).buffer),
    };
    const value = [
      new Map<string, unknown>([
        ['question_id', 12],
        ['image_id', 'v7w_2344'],
        ['question', 'Où est le chat — “ici”?'],
        ['none', null],
        ['flag', true],
        ['big', 2 ** 40],
        ['score', 0.3],
        ['raw', Uint8Array.of(0, 255, 128)],
        ['q_token', rawTensor1d('int64', [101, 2003, -1, 102])],
        ['scores', rawTensor1d('float32', [0.3, 1])],
        ['item_tensor', { dtype: 'float32', shape: [1, 2], data: Float32Array.of(0.5, -2) }],
        [
          'nested',
          new Map<string, unknown>([
            ['matrix', matrix],
            ['empty', rawTensor1d('int64', [])],
            ['list', [1, 'two', [3]]],
          ]),
        ],
      ]),
    ];
    writeTokenCache(path, value);
    const back = readTokenCache(path) as Map<string, unknown>[];
    assert.equal(back.length, 1);
    const entry = back[0]!;
    assert.deepEqual([...entry.keys()], [...value[0]!.keys()]);
    assert.equal(entry.get('question'), 'Où est le chat — “ici”?');
    assert.deepEqual(entry.get('raw'), Uint8Array.of(0, 255, 128));
    assert.deepEqual(entry.get('q_token'), rawTensor1d('int64', [101, 2003, -1, 102]));
    assert.deepEqual(entry.get('scores'), rawTensor1d('float32', [0.3, 1]));
    assert.deepEqual(itemTensorFromRaw(entry.get('item_tensor') as RawTensor, 'item_tensor'), {
      dtype: 'float32',
      shape: [1, 2],
      data: Float32Array.of(0.5, -2),
    });
    const nested = entry.get('nested') as Map<string, unknown>;
    assert.deepEqual(nested.get('matrix'), matrix);
    assert.deepEqual(nested.get('empty'), rawTensor1d('int64', []));
    assert.deepEqual(nested.get('list'), [1, 'two', [3]]);
    for (const key of ['question_id', 'image_id', 'none', 'flag', 'big', 'score'])
      assert.equal(entry.get(key), value[0]!.get(key));
  });

  it('gives each tensor its own aligned bytes', () => {
    const tensors = readTokenCacheEntries(GQA_CACHE).map((entry) => entry.get('q_input_mask') as RawTensor);
    assert.ok(tensors.every((tensor) => tensor.data.byteOffset === 0 && tensor.data.byteLength === 26 * 8));
    assert.notEqual(tensors[0]!.data.buffer, tensors[1]!.data.buffer);
  });

  it('refuses other globals and names the file', () => {
    const bytes = readFileSync(GQA_CACHE);
    const path = join(scratch, 'evil.pkl');
    writeFileSync(
      path,
      Buffer.from(bytes.toString('latin1').replace('_rebuild_tensor_v2', '_rebuild_tensor_vX'), 'latin1'),
    );
    assert.throws(
      () => readTokenCache(path),
      (error: unknown) => error instanceof ForbiddenGlobalError && error.message.includes(path),
    );
    const notAList = join(scratch, 'dict.pkl');
    writeTokenCache(notAList, new Map([['a', 1]]));
    assert.throws(
      () => readTokenCacheEntries(notAList),
      new RegExp(`${notAList}: token cache holds a dict, expected a list of entries`),
    );
  });
});
