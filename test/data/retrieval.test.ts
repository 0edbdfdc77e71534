import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ItemTensor, TaskDataset } from '../../src/data/dataset.js';
import { ImageFeatureReader } from '../../src/data/features.js';
import {
  type LoggedDraw,
  type RandomSource,
  ReferenceRandomSource,
  ReplayRandomSource,
} from '../../src/data/random-source.js';
import { type RetrievalOptions, retrievalDataset, retrievalEvalDataset } from '../../src/data/datasets/retrieval.js';
import { verifyDatasetSplit } from '../../src/parity/verify-data.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { rawValues } from '../../src/parity/compare.js';
import { loadTaskRegistry } from '../../src/data/task-registry.js';
import { BertTokenizer } from '../../src/text/index.js';
import { fixture } from '../io/fixtures.js';
import { scratchKit } from './kit.js';

const EXPECTED = fixture('datasets', 'expected');

const TASKS = [
  {
    key: 'TASK7',
    folder: 'TASK7_RetrievalCOCO',
    directories: ['datasets/cocoRetreival', 'datasets/coco/features_100'],
  },
  { key: 'TASK8', folder: 'TASK8_RetrievalFlickr30k', directories: ['datasets/flickr30k'] },
];

interface Meta {
  len: number;
  saved_indices: number[];
  image_id_list: number[];
  items: Record<string, { rng_log: LoggedDraw[]; non_tensor: Record<string, number> }>;
}

function readMeta(folder: string): Meta {
  return JSON.parse(readFileSync(join(EXPECTED, folder, 'meta.json'), 'utf8')) as Meta;
}

function options(taskKey: string, split: string, phase: RetrievalOptions['phase'], root: string): RetrievalOptions {
  const task = loadTaskRegistry().get(taskKey)!;
  return {
    task,
    split,
    phase,
    root,
    cleanDatasets: true,
    tokenizer: BertTokenizer.bundled(),
    features: ImageFeatureReader.open(resolve(root, task.features_h5path1)),
    gtFeatures: null,
  };
}

/** Builds the train/val dataset on the draws the reference logged for the saved items, in saved order. */
function replayed(
  taskKey: string,
  folder: string,
  split: string,
  phase: 'train' | 'val',
  root: string,
): { dataset: TaskDataset; replay: ReplayRandomSource } {
  const meta = readMeta(folder);
  const replay = new ReplayRandomSource(
    meta.saved_indices.flatMap((index) => meta.items[String(index)]!.rng_log),
    `${folder} rng_log`,
  );
  return { dataset: retrievalDataset({ ...options(taskKey, split, phase, root), random: replay }), replay };
}

/** Whether every element from `from` on has all bits zero (read as 32-bit words: fast over [500, 101, 2048]). */
function allZero(tensor: ItemTensor, from: number): boolean {
  const { buffer, byteOffset, byteLength, BYTES_PER_ELEMENT } = tensor.data;
  const words = new Int32Array(
    buffer,
    byteOffset + from * BYTES_PER_ELEMENT,
    (byteLength - from * BYTES_PER_ELEMENT) / 4,
  );
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  return true;
}

function values(tensor: ItemTensor): number[] {
  return Array.from(tensor.data as ArrayLike<number | bigint>, Number);
}

for (const { key, folder, directories } of TASKS) {
  describe(`${folder} RetreivalDataset`, () => {
    const kit = scratchKit(directories);

    const withCaches = scratchKit(directories, [directories[0]!]);
    for (const [split, phase] of [
      ['train', 'train'],
      ['val', 'val'],
    ] as const) {
      for (const [source, root] of [
        ['annotations', kit.root],
        ["reference's token cache", withCaches.root],
      ] as const) {
        it(`matches every saved ${split} item on the reference's logged draws (captions from the ${source})`, () => {
          const expected = `${folder}/${split}__${phase}__RetreivalDataset`;
          const { dataset, replay } = replayed(key, expected, split, phase, root);
          assert.equal(dataset.numLabels, 1);
          const check = verifyDatasetSplit(dataset, join(EXPECTED, expected));
          assert.deepEqual(check.problems, []);
          assert.equal(check.itemsChecked, readMeta(expected).saved_indices.length);
          assert.equal(replay.remaining, 0, 'every logged draw is used');
        });
      }
    }

    it('draws what the reference drew after random.seed(S); np.random.seed(S), S = 1000 + index', () => {
      for (const [split, phase] of [
        ['train', 'train'],
        ['val', 'val'],
      ] as const) {
        const meta = readMeta(`${folder}/${split}__${phase}__RetreivalDataset`);
        const log: LoggedDraw[] = [];
        let seeded: RandomSource = new ReferenceRandomSource(0);
        const recording: RandomSource = {
          choice: (items) => {
            const value = seeded.choice(items);
            log.push(['random.choice', items.length, value]);
            return value;
          },
          randint: (low, high) => {
            const value = seeded.randint(low, high);
            log.push(['np.random.randint', [low, high], value]);
            return value;
          },
        };
        const dataset = retrievalDataset({ ...options(key, split, phase, kit.root), random: recording });
        for (const index of meta.saved_indices) {
          seeded = new ReferenceRandomSource(1000 + index);
          log.length = 0;
          dataset.item(index);
          assert.deepEqual(log, meta.items[String(index)]!.rng_log, `${split} item ${index}`);
        }
      }
    });

    it('writes a token cache it reads back', () => {
      const cache = join(
        kit.root,
        directories[0]!,
        'cache',
        `${loadTaskRegistry().get(key)!.name}_train_30_cleaned.pkl`,
      );
      assert.ok(existsSync(cache), `${cache} written by the first build`);
      const { dataset } = replayed(key, `${folder}/train__train__RetreivalDataset`, 'train', 'train', kit.root);
      assert.deepEqual(
        verifyDatasetSplit(dataset, join(EXPECTED, `${folder}/train__train__RetreivalDataset`)).problems,
        [],
      );
    });

    it('fails on a replayed draw the reference did not make', () => {
      const dataset = retrievalDataset({
        ...options(key, 'train', 'train', kit.root),
        random: new ReplayRandomSource([['np.random.randint', [1, 3], 1]], 'log'),
      });
      assert.throws(() => dataset.item(0), /log\[0\]: random.choice requested, logged np.random.randint/);
    });

    it('samples valid negatives from a seeded stream', () => {
      const dataset = retrievalDataset({
        ...options(key, 'train', 'train', kit.root),
        random: new ReferenceRandomSource(7),
      });
      const again = retrievalDataset({
        ...options(key, 'train', 'train', kit.root),
        random: new ReferenceRandomSource(7),
      });
      for (let index = 0; index < dataset.length; index++) {
        const item = dataset.item(index);
        assert.deepEqual(
          values(item.values.caption as ItemTensor),
          values(again.item(index).values.caption as ItemTensor),
        );
        const captions = values(item.values.caption as ItemTensor);
        const L = captions.length / 4;
        // Slot 2 pairs the own caption with another image: its features differ from slot 0's.
        assert.deepEqual(captions.slice(2 * L, 3 * L), captions.slice(0, L));
        const features = item.values.features as ItemTensor;
        const slot = features.data.length / 4;
        assert.notDeepEqual(features.data.subarray(2 * slot, 2 * slot + 2048), features.data.subarray(0, 2048));
      }
    });

    it('cleans up', () => {
      kit.dispose();
      withCaches.dispose();
    });
  });

  describe(`${folder} RetreivalDatasetVal`, () => {
    const kit = scratchKit(directories);
    const expected = `${folder}/val__eval__RetreivalDatasetVal`;

    // verifyDatasetSplit copies each tensor into a JS array: too slow for [500, 101, 2048].
    it('matches every saved item of the reference (the 500-row halves and their zero tails)', () => {
      const dataset = retrievalEvalDataset(options(key, 'val', 'eval', kit.root));
      const meta = readMeta(expected);
      assert.equal(dataset.length, meta.len);
      for (const index of meta.saved_indices) {
        const { tensors, metadata } = readSafetensors(
          join(EXPECTED, expected, `item_${String(index).padStart(4, '0')}.safetensors`),
        );
        const item = dataset.item(index);
        assert.deepEqual(item.order.join(','), metadata.return_order);
        for (const name of item.order) {
          const value = item.values[name]!;
          if (typeof value !== 'object') {
            assert.equal(value, rawValues(tensors.get(name)!)[0], `item ${index} ${name}`);
            assert.equal(value, meta.items[String(index)]!.non_tensor[name]);
            continue;
          }
          assert.deepEqual(value.shape, JSON.parse(metadata[`${name}.shape`]!), `item ${index} ${name} shape`);
          assert.equal(value.dtype, metadata[`${name}.dtype`]);
          const width = value.shape[value.shape.length - 1]!;
          const perRow = value.shape.slice(1).reduce((a, b) => a * b, 1);
          const tailFrom = metadata[`${name}.zero_tail_from`];
          const rows = tailFrom === undefined ? value.shape[0]! : Number(tailFrom);
          assert.ok(allZero(value, rows * perRow), `item ${index} ${name}: an element past row ${rows} is not zero`);
          const kept = Array.from(value.data.subarray(0, rows * perRow) as ArrayLike<number | bigint>, Number);
          const plain = tensors.get(name);
          if (plain !== undefined) {
            assert.deepEqual(kept, rawValues(plain), `item ${index} ${name}`);
            continue;
          }
          const head8: number[] = [];
          const rowsums: number[] = [];
          for (let start = 0; start < kept.length; start += width) {
            head8.push(...kept.slice(start, start + 8));
            rowsums.push(kept.slice(start, start + width).reduce((a, b) => a + b, 0));
          }
          assert.deepEqual(head8, rawValues(tensors.get(`${name}.head8`)!), `item ${index} ${name}.head8`);
          rawValues(tensors.get(`${name}.rowsum`)!).forEach((sum, row) => {
            assert.ok(
              Math.abs(rowsums[row]! - sum) <= 1e-6 * Math.max(1, Math.abs(sum)),
              `item ${index} ${name}.rowsum[${row}]: ${rowsums[row]} vs ${sum}`,
            );
          });
        }
      }
    });

    it('cleans up', () => kit.dispose());
  });
}

describe('ReferenceRandomSource', () => {
  // Values from CPython 3.11 `random.seed(12345)` and numpy 1.24 `np.random.seed(12345)`.
  it("equals CPython's random.choice and numpy's legacy randint for the same seed", () => {
    const python = new ReferenceRandomSource(12345);
    const thousand = Array.from({ length: 1000 }, (_, i) => i);
    assert.deepEqual(
      Array.from({ length: 5 }, () => python.choice(thousand)),
      [426, 750, 10, 839, 845],
    );
    assert.deepEqual(
      Array.from({ length: 5 }, () => python.choice([1, 2, 3, 4, 5, 6, 7])),
      [7, 3, 7, 3, 2],
    );
    const numpy = new ReferenceRandomSource(12345);
    assert.deepEqual(
      Array.from({ length: 5 }, () => numpy.randint(0, 1000)),
      [482, 485, 285, 129, 420],
    );
    assert.deepEqual(
      Array.from({ length: 3 }, () => numpy.randint(5, 2 ** 31 + 7)),
      [170765742, 878579715, 1983958390],
    );
  });

  it('rejects seeds and ranges it cannot reproduce', () => {
    assert.throws(() => new ReferenceRandomSource(-1), /seed must be an integer in \[0, 2\^32\)/);
    assert.throws(() => new ReferenceRandomSource(0).randint(3, 3), /low < high/);
    assert.throws(() => new ReferenceRandomSource(0).choice([]), /empty list/);
  });
});
