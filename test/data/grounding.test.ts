import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DatasetFactory, DatasetOptions, ItemTensor, TaskDataset } from '../../src/data/dataset.js';
import { ImageFeatureReader } from '../../src/data/features.js';
import { iou } from '../../src/data/iou.js';
import {
  guessWhatPointingDataset,
  referExpressionDataset,
  visual7wDataset,
} from '../../src/data/datasets/grounding.js';
import { DatasetError } from '../../src/data/dataset-error.js';
import { verifyDatasetSplit } from '../../src/parity/verify-data.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { loadTaskRegistry } from '../../src/data/task-registry.js';
import { BertTokenizer } from '../../src/text/index.js';
import { fixture } from '../io/fixtures.js';
import { scratchKitForFile } from './kit.js';

// The data kit and the reference loaders' outputs: test/fixtures/datasets/MANIFEST.md.
const EXPECTED = fixture('datasets', 'expected');
const REFERENCE_CACHES = fixture('datasets', 'generated_caches');
/** What these tasks read under kit/: their datasets, and the COCO features GuessWhat uses. */
const KIT_PARTS = ['datasets/refcoco', 'datasets/visual7w', 'datasets/guesswhat', 'datasets/coco'];

const registry = loadTaskRegistry();
const tokenizer = BertTokenizer.bundled();

interface TaskCase {
  key: string;
  expected: string;
  factory: DatasetFactory;
}
const TASKS: TaskCase[] = [
  { key: 'TASK9', expected: 'TASK9_refcoco', factory: referExpressionDataset },
  { key: 'TASK10', expected: 'TASK10_refcoco+', factory: referExpressionDataset },
  { key: 'TASK11', expected: 'TASK11_refcocog', factory: referExpressionDataset },
  { key: 'TASK4', expected: 'TASK4_Visual7w', factory: visual7wDataset },
  { key: 'TASK17', expected: 'TASK17_GuessWhatPointing', factory: guessWhatPointingDataset },
];

/** The readers of the latest build: each test is done with a dataset before it builds the next one. */
const openReaders: ImageFeatureReader[] = [];
const closeReaders = (): void => openReaders.splice(0).forEach((reader) => reader.close());
after(closeReaders);

function build(task: TaskCase, root: string, split: string, overrides: Partial<DatasetOptions> = {}): TaskDataset {
  closeReaders(); // LMDB environments are a scarce resource (each maps its file)
  const config = registry.get(task.key)!;
  const open = (path: string): ImageFeatureReader => {
    const reader = ImageFeatureReader.open(join(root, path));
    openReaders.push(reader);
    return reader;
  };
  return task.factory({
    task: config,
    split,
    phase: 'train',
    root,
    tokenizer,
    cleanDatasets: true,
    features: open(config.features_h5path1),
    gtFeatures: open(config.features_h5path2),
    ...overrides,
  });
}

/** `<split>__<phase>__<Class>` folders of a task's goldens. */
function expectedSplits(task: TaskCase): { dir: string; split: string }[] {
  const taskDir = join(EXPECTED, task.expected);
  return readdirSync(taskDir).map((name) => ({ dir: join(taskDir, name), split: name.split('__')[0]! }));
}

function values(data: ItemTensor['data'] | ArrayLike<number>): number[] {
  return Array.from(data as ArrayLike<number | bigint>, Number);
}

function goldenValues(tensor: RawTensor): number[] {
  const buffer = tensor.data.slice().buffer;
  switch (tensor.dtype) {
    case 'float32':
      return values(new Float32Array(buffer));
    case 'float64':
      return values(new Float64Array(buffer));
    case 'int64':
      return values(new BigInt64Array(buffer));
    default:
      throw new Error(`unexpected golden dtype ${tensor.dtype}`);
  }
}

/** Bit-exact checks beyond verifyDatasetSplit's tolerance: every plain golden tensor, and head8 of the features. */
function assertExact(dataset: TaskDataset, dir: string): void {
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { saved_indices: number[] };
  for (const index of meta.saved_indices) {
    const { tensors } = readSafetensors(join(dir, `item_${String(index).padStart(4, '0')}.safetensors`));
    const item = dataset.item(index);
    for (const [name, golden] of tensors) {
      const [base, reduction] = name.split('.') as [string, string | undefined];
      const value = item.values[base];
      if (reduction === 'rowsum') continue;
      let actual: number[];
      if (typeof value !== 'object') {
        actual = [Number(value)];
      } else if (reduction === 'head8') {
        const width = value.shape[value.shape.length - 1]!;
        actual = values(value.data).filter((_, i) => i % width < 8);
      } else {
        actual = values(value.data);
      }
      assert.deepEqual(actual, goldenValues(golden), `${dir} item ${index} ${name}`);
    }
  }
}

/**
 * A protocol-2 pickle as Python 2's cPickle writes one: `str` keys and values as
 * SHORT_BINSTRING bytes (Uint8Array values stay raw bytes), ints BININT, floats BINFLOAT.
 */
function python2Pickle(value: unknown): Buffer {
  const parts: Buffer[] = [Buffer.from([0x80, 2])];
  const binstring = (bytes: Uint8Array): void => {
    parts.push(Buffer.from([0x55, bytes.length]), Buffer.from(bytes));
  };
  const write = (item: unknown): void => {
    if (typeof item === 'string') {
      binstring(Buffer.from(item, 'utf8'));
    } else if (item instanceof Uint8Array) {
      binstring(item);
    } else if (typeof item === 'number' && Number.isInteger(item)) {
      const int = Buffer.alloc(5);
      int[0] = 0x4a; // BININT
      int.writeInt32LE(item, 1);
      parts.push(int);
    } else if (typeof item === 'number') {
      const float = Buffer.alloc(9);
      float[0] = 0x47; // BINFLOAT
      float.writeDoubleBE(item, 1);
      parts.push(float);
    } else if (Array.isArray(item)) {
      parts.push(Buffer.from([0x5d, 0x28])); // EMPTY_LIST MARK
      item.forEach(write);
      parts.push(Buffer.from([0x65])); // APPENDS
    } else {
      parts.push(Buffer.from([0x7d, 0x28])); // EMPTY_DICT MARK
      for (const [key, entry] of Object.entries(item as object)) {
        write(key);
        write(entry);
      }
      parts.push(Buffer.from([0x75])); // SETITEMS
    }
  };
  write(value);
  parts.push(Buffer.from([0x2e])); // STOP
  return Buffer.concat(parts);
}

function assertMatchesGoldens(dataset: TaskDataset, dir: string): void {
  const check = verifyDatasetSplit(dataset, dir);
  assert.deepEqual(check.problems, [], dir);
  assert.ok(check.ok);
  assertExact(dataset, dir);
}

describe('iou', () => {
  it('counts pixels with the +1 convention', () => {
    // [0,0,9,9] covers 10x10 pixels, [0,0,4,9] 5x10: IoU 50/100.
    assert.deepEqual(Array.from(iou([0, 0, 9, 9], [0, 0, 4, 9])), [0.5]);
    // Touching boxes share one pixel column; boxes further apart share nothing.
    assert.deepEqual(Array.from(iou([0, 0, 9, 9, 0, 0, 10, 10, 9, 0, 18, 9], [9, 0, 18, 9, 20, 20, 30, 30])), [
      Math.fround(10 / 190),
      0,
      Math.fround(20 / 201),
      0, // [0,0,10,10] is 11x11 and overlaps [9,0,18,9] in 2x10 pixels
      1,
      0,
    ]);
  });

  it('reads x1y1x2y2 from wider rows and rounds every step to float32', () => {
    const anchors = [103.9, 60.2, 254.4, 360.3, 0.25]; // a boxes_ori row: box + area column
    const got = iou(anchors, [103.9, 60.2, 103.9 + 150.5, 60.2 + 300.1], 5)[0]!;
    assert.equal(got, 1);
    assert.throws(() => iou([0, 0, 1], [0, 0, 1, 1]), RangeError);
  });
});

for (const task of TASKS) {
  describe(`${task.expected} (${task.factory === referExpressionDataset ? 'ReferExpressionDataset' : task.factory.name})`, () => {
    for (const { dir, split } of expectedSplits(task)) {
      const name = dir.split('/').pop()!;
      it(`${name}: every saved item equals the reference's, and the token cache is written where the reference writes it`, () => {
        const root = scratchKitForFile(KIT_PARTS);
        assertMatchesGoldens(build(task, root, split), dir);
        const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { cache_files_written: string[] };
        for (const path of meta.cache_files_written) assert.ok(existsSync(join(root, path)), `${path} written`);
        // A second build reads that cache.
        assertMatchesGoldens(build(task, root, split), dir);
      });

      it(`${name}: reads the reference's own token cache instead of the annotations`, () => {
        const root = scratchKitForFile(KIT_PARTS);
        const config = registry.get(task.key)!;
        const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { cache_files_written: string[] };
        for (const path of meta.cache_files_written) cpSync(join(REFERENCE_CACHES, path), join(root, path));
        // Without annotations only the cache can supply the entries.
        const annotationFiles: Record<string, string[]> = {
          TASK4: ['dataset_v7w_pointing.json'],
          TASK17: ['guesswhat.train.jsonl', 'guesswhat.valid.jsonl'],
        };
        for (const file of annotationFiles[task.key] ?? [join(config.name, 'instances.json')])
          rmSync(join(root, config.dataroot, file));
        assertMatchesGoldens(build(task, root, split, { writeCache: false }), dir);
      });
    }
  });
}

describe('ReferExpressionDataset inputs', () => {
  it('keeps test-set images without cleaning, and names the cache without _cleaned', () => {
    const root = scratchKitForFile(KIT_PARTS);
    const refcoco = TASKS[0]!;
    assert.equal(build(refcoco, root, 'train', { cleanDatasets: false }).length, 9); // + the sentence on removed image 61
    assert.ok(existsSync(join(root, 'datasets/refcoco/cache/refcoco_train_20_101.pkl')));
  });

  it('selects the REFER API splits: test takes every test* ref', () => {
    const root = scratchKitForFile(KIT_PARTS);
    assert.equal(build(TASKS[2]!, root, 'test', { writeCache: false }).length, 1); // refcocog's one 'test' ref
    assert.equal(build(TASKS[0]!, root, 'testA', { writeCache: false }).length, 1);
  });

  it('reads Python 2 pickles: str as UTF-8 bytes, or latin-1 where they are not UTF-8', () => {
    const root = scratchKitForFile(KIT_PARTS);
    const ref = (refId: number, raw: string | Uint8Array) => ({
      image_id: 579818,
      split: 'val',
      sentences: [{ tokens: ['cafe'], raw, sent_id: refId, sent: 'cafe' }],
      file_name: 'x.jpg',
      category_id: 3,
      ann_id: 1706400,
      sent_ids: [refId],
      ref_id: refId,
    });
    const refs = [
      ref(1, 'Caf\u00e9 sign'),
      ref(2, Uint8Array.from([0x43, 0x61, 0x66, 0xe9, 0x20, 0x73, 0x69, 0x67, 0x6e])),
    ];
    writeFileSync(join(root, 'datasets/refcoco/refcoco/refs(unc).p'), python2Pickle(refs));
    const dataset = build(TASKS[0]!, root, 'val', { writeCache: false });
    assert.equal(dataset.length, 2);
    const expected = tokenizer.encodeSingleSentence('Caf\u00e9 sign', 20).inputIds;
    for (const index of [0, 1])
      assert.deepEqual(values((dataset.item(index).values.caption as ItemTensor).data), expected);
  });

  it('mteval takes the train refs on test-set images only', () => {
    assert.equal(build(TASKS[0]!, scratchKitForFile(KIT_PARTS), 'mteval', { writeCache: false }).length, 1); // image 61's one sentence
  });

  it('rejects an unknown split and missing feature readers, naming the file or task', () => {
    const root = scratchKitForFile(KIT_PARTS);
    assert.throws(
      () => build(TASKS[0]!, root, 'dev', { writeCache: false }),
      (error: unknown) => error instanceof DatasetError && /refs\(unc\)\.p.*no such split 'dev'/.test(error.message),
    );
    assert.throws(
      () => build(TASKS[0]!, root, 'val', { gtFeatures: null }),
      (error: unknown) => error instanceof DatasetError && /TASK9.*features_h5path2/.test(error.message),
    );
  });
});
