import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ItemTensor } from '../../src/data/dataset.js';
import { ImageFeatureReader } from '../../src/data/features.js';
import {
  genomeQaDataset,
  gqaDataset,
  readAnswerVocabulary,
  vqaDataset,
  type ClassificationDataset,
  type ClassificationDatasetFactory,
} from '../../src/data/datasets/vqa.js';
import { readTokenCacheEntries } from '../../src/data/token-cache.js';
import { verifyDatasetSplit } from '../../src/parity/verify-data.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { loadTaskRegistry } from '../../src/data/task-registry.js';
import { BertTokenizer } from '../../src/text/index.js';
import { fixture } from '../io/fixtures.js';
import { scratchKitForFile } from './kit.js';

const EXPECTED = fixture('datasets', 'expected');

interface SplitCase {
  factory: ClassificationDatasetFactory;
  taskKey: string;
  split: string;
  phase: 'train' | 'val';
  folder: string;
  /** Kit directories the task reads: its dataroot and feature LMDB. */
  directories: string[];
  /** Annotation files the reference ignores once a token cache exists. */
  annotations: string[];
}

const VQA_DIRS = ['datasets/VQA', 'datasets/coco/features_100'];
const VQA_ANNOTATIONS = [
  'datasets/VQA/v2_OpenEnded_mscoco_train2014_questions.json',
  'datasets/VQA/v2_OpenEnded_mscoco_val2014_questions.json',
  'datasets/VQA/cache/train_target.pkl',
  'datasets/VQA/cache/val_target.pkl',
];
const CASES: SplitCase[] = [
  {
    factory: vqaDataset,
    taskKey: 'TASK1',
    split: 'trainval',
    phase: 'train',
    folder: 'TASK1_VQA/trainval__train__VQAClassificationDataset',
    directories: VQA_DIRS,
    annotations: VQA_ANNOTATIONS,
  },
  {
    factory: vqaDataset,
    taskKey: 'TASK1',
    split: 'minval',
    phase: 'val',
    folder: 'TASK1_VQA/minval__val__VQAClassificationDataset',
    directories: VQA_DIRS,
    annotations: VQA_ANNOTATIONS,
  },
  {
    factory: genomeQaDataset,
    taskKey: 'TASK2',
    split: 'train',
    phase: 'train',
    folder: 'TASK2_GenomeQA/train__train__GenomeQAClassificationDataset',
    directories: ['datasets/visual_genome'],
    annotations: ['datasets/visual_genome/cache/trainval_target.pkl'],
  },
  {
    factory: genomeQaDataset,
    taskKey: 'TASK2',
    split: 'val',
    phase: 'val',
    folder: 'TASK2_GenomeQA/val__val__GenomeQAClassificationDataset',
    directories: ['datasets/visual_genome'],
    annotations: ['datasets/visual_genome/cache/trainval_target.pkl'],
  },
  {
    factory: gqaDataset,
    taskKey: 'TASK15',
    split: 'trainval',
    phase: 'train',
    folder: 'TASK15_GQA/trainval__train__GQAClassificationDataset',
    directories: ['datasets/gqa'],
    annotations: ['datasets/gqa/cache/trainval_target.pkl'],
  },
  {
    factory: gqaDataset,
    taskKey: 'TASK15',
    split: 'minval',
    phase: 'val',
    folder: 'TASK15_GQA/minval__val__GQAClassificationDataset',
    directories: ['datasets/gqa'],
    annotations: ['datasets/gqa/cache/trainval_target.pkl'],
  },
];

function build(testCase: SplitCase, root: string, cleanDatasets = true, writeCache = true): ClassificationDataset {
  const task = loadTaskRegistry().get(testCase.taskKey)!;
  return testCase.factory({
    task,
    split: testCase.split,
    phase: testCase.phase,
    root,
    cleanDatasets,
    writeCache,
    tokenizer: BertTokenizer.bundled(),
    features: ImageFeatureReader.open(resolve(root, task.features_h5path1)),
    gtFeatures: null,
  });
}

interface Meta {
  len: number;
  num_labels: number;
  saved_indices: number[];
  cache_files_written: string[];
}
const metaOf = (folder: string): Meta => JSON.parse(readFileSync(join(EXPECTED, folder, 'meta.json'), 'utf8')) as Meta;

/** verifyDatasetSplit, plus bit-exact targets and tokens (the shared check allows 1e-6 on floats). */
function expectMatchesReference(dataset: ClassificationDataset, folder: string): void {
  const check = verifyDatasetSplit(dataset, join(EXPECTED, folder));
  assert.deepEqual(check.problems, [], folder);
  const meta = metaOf(folder);
  assert.equal(check.itemsChecked, meta.saved_indices.length);
  assert.equal(dataset.numLabels, meta.num_labels);
  for (const index of meta.saved_indices) {
    const { tensors } = readSafetensors(join(EXPECTED, folder, `item_${String(index).padStart(4, '0')}.safetensors`));
    const item = dataset.item(index);
    for (const name of ['target', 'question', 'input_mask', 'segment_ids', 'spatials', 'image_mask']) {
      const actual = item.values[name] as ItemTensor;
      const bytes = Buffer.from(actual.data.buffer, actual.data.byteOffset, actual.data.byteLength);
      assert.ok(
        bytes.equals(Buffer.from(tensors.get(name)!.data)),
        `${folder} item ${index} ${name} differs in its bits`,
      );
    }
  }
}

describe('VQA / GenomeQA / GQA classification datasets', () => {
  for (const testCase of CASES) {
    it(`${testCase.folder}: every saved item equals the reference, built from the annotations`, () => {
      const root = scratchKitForFile(testCase.directories);
      const dataset = build(testCase, root);
      expectMatchesReference(dataset, testCase.folder);
      // The cache the reference writes, at the same path.
      for (const written of metaOf(testCase.folder).cache_files_written)
        assert.ok(existsSync(join(root, written)), written);

      // A second load takes that cache and no longer needs the annotations.
      for (const file of testCase.annotations) rmSync(join(root, file));
      expectMatchesReference(build(testCase, root), testCase.folder);
    });
  }

  const referenceCaches = CASES.filter((testCase) =>
    metaOf(testCase.folder).cache_files_written.every((written) =>
      existsSync(fixture('datasets', 'generated_caches', written)),
    ),
  );

  it('reads the token caches the reference wrote (annotations removed)', () => {
    assert.equal(referenceCaches.length, 4); // VQA trainval, GenomeQA train/val, GQA trainval: the minval ones are > 200 KB
    for (const testCase of referenceCaches) {
      const root = scratchKitForFile(testCase.directories);
      for (const written of metaOf(testCase.folder).cache_files_written)
        cpSync(fixture('datasets', 'generated_caches', written), join(root, written));
      for (const file of testCase.annotations) rmSync(join(root, file));
      expectMatchesReference(build(testCase, root), testCase.folder);
    }
  });

  it('our caches hold the reference entries: same keys, ids and tokens', () => {
    for (const testCase of referenceCaches) {
      const root = scratchKitForFile(testCase.directories);
      build(testCase, root);
      for (const written of metaOf(testCase.folder).cache_files_written) {
        const ours = readTokenCacheEntries(join(root, written));
        const theirs = readTokenCacheEntries(fixture('datasets', 'generated_caches', written));
        assert.equal(ours.length, theirs.length);
        ours.forEach((entry, index) => {
          const reference = theirs[index]!;
          assert.deepEqual([...entry.keys()], [...reference.keys()]);
          assert.deepEqual(
            [...(entry.get('answer') as Map<string, unknown>).keys()],
            [...(reference.get('answer') as Map<string, unknown>).keys()],
          );
          for (const key of ['question_id', 'image_id', 'question', 'q_token', 'q_input_mask', 'q_segment_ids']) {
            assert.deepEqual(entry.get(key), reference.get(key), `${written} entry ${index} ${key}`);
          }
        });
      }
    }
  });

  it('loads the answer vocabularies of labels.json', () => {
    for (const testCase of CASES) {
      const labels = JSON.parse(readFileSync(join(EXPECTED, testCase.folder, 'labels.json'), 'utf8')) as {
        ans2label: Record<string, number>;
        label2ans: string[];
      };
      const dataroot = fixture('datasets', 'kit', loadTaskRegistry().get(testCase.taskKey)!.dataroot);
      const vocabulary = readAnswerVocabulary(dataroot);
      assert.deepEqual(Object.fromEntries(vocabulary.ans2label), labels.ans2label);
      assert.deepEqual(vocabulary.label2ans, labels.label2ans);
    }
    const gqa = build(CASES[4]!, scratchKitForFile(CASES[4]!.directories));
    assert.deepEqual(gqa.label2ans, readAnswerVocabulary(fixture('datasets', 'kit', 'datasets', 'gqa')).label2ans);
    assert.equal(gqa.ans2label.get('left'), 2);
  });

  it('without cleaning keeps the test-image items, in caches named without _cleaned', () => {
    const vqa = CASES[0]!;
    const root = scratchKitForFile(vqa.directories);
    const dataset = build(vqa, root, false);
    // Both trainval parts are cleaned: qid 42000 (train, test image 42) and 5000 (val part, image 5) stay.
    assert.equal(dataset.length, 11);
    // (the kit has no features for those test images: read the ids from the cache written)
    const ids = readTokenCacheEntries(join(root, 'datasets/VQA/cache/VQA_trainval_23.pkl')).map((entry) =>
      entry.get('question_id'),
    );
    assert.ok(ids.includes(42000) && ids.includes(5000));
    assert.ok(!existsSync(join(root, 'datasets/VQA/cache/VQA_trainval_23_cleaned.pkl')));
    // GenomeQA cleans both splits: its val keeps the 4996 fillers on image 10 only without cleaning.
    const genomeVal = CASES[3]!;
    const genomeRoot = scratchKitForFile(genomeVal.directories);
    assert.equal(build(genomeVal, genomeRoot, false, false).length, 5000);
    assert.ok(
      !existsSync(join(genomeRoot, 'datasets/visual_genome/cache/GenomeQA_val_26.pkl')),
      'writeCache: false writes nothing',
    );
  });

  it('GQA cuts its splits after sorting the question ids as strings', () => {
    const gqa = CASES[4]!;
    const dataset = build(gqa, scratchKitForFile(gqa.directories));
    const ids = Array.from({ length: dataset.length }, (_, index) => dataset.item(index).values.question_id);
    assert.deepEqual(ids, [5451384, 1003, 2, 201307251, 20968379]); // "05451384" < "1003" < "2" < ...
  });

  it('names the split it does not know', () => {
    const vqa = CASES[0]!;
    assert.throws(
      () => build({ ...vqa, split: 'testdev' }, scratchKitForFile(vqa.directories)),
      /VQA: data split 'testdev' is not recognized \(supported: train, val, trainval, minval, test, mteval\)/,
    );
    const genome = CASES[2]!;
    assert.throws(
      () => build({ ...genome, split: 'trainval' }, scratchKitForFile(genome.directories)),
      /GenomeQA: data split 'trainval' is not recognized/,
    );
  });

  it("VQA 'test': the test2015 questions sorted by id, all-zero targets, a cache without answers", () => {
    const vqa = CASES[0]!;
    const root = scratchKitForFile(vqa.directories);
    const questions = [
      { image_id: 30, question: 'What is on the table?', question_id: 300002 },
      { image_id: 9, question: 'Is it sunny?', question_id: 90001 },
    ];
    writeFileSync(
      join(root, 'datasets/VQA/v2_OpenEnded_mscoco_test2015_questions.json'),
      JSON.stringify({ info: {}, questions }),
    );
    const dataset = build({ ...vqa, split: 'test' }, root);
    assert.equal(dataset.length, 2);
    const tokenizer = BertTokenizer.bundled();
    [questions[1]!, questions[0]!].forEach((question, index) => {
      const item = dataset.item(index);
      assert.equal(item.values.question_id, question.question_id);
      const target = item.values.target as ItemTensor;
      assert.ok((target.data as Float32Array).every((value) => value === 0));
      const expected = tokenizer.encodeSingleSentence(question.question, 23).inputIds;
      assert.deepEqual(
        Array.from((item.values.question as ItemTensor).data as BigInt64Array, Number),
        Array.from(expected),
      );
    });
    const cached = readTokenCacheEntries(join(root, 'datasets/VQA/cache/VQA_test_23_cleaned.pkl'));
    assert.deepEqual(
      [...cached[0]!.keys()],
      ['image_id', 'question', 'question_id', 'q_token', 'q_input_mask', 'q_segment_ids'],
    );
    // Read back from the cache it wrote.
    assert.equal(build({ ...vqa, split: 'test' }, root).item(1).values.question_id, 300002);
  });

  it("VQA 'mteval': the training questions on the cleaning list's images, with their answers, cleaning flag or not", () => {
    const vqa = CASES[0]!;
    for (const clean of [true, false]) {
      const root = scratchKitForFile(vqa.directories);
      const dataset = build({ ...vqa, split: 'mteval' }, root, clean);
      assert.equal(dataset.length, 1, 'the kit has one training question on a coco_test_ids image (42)');
      // Image 42 has no features in the kit's store, so the entry is checked in the token cache.
      const [entry] = readTokenCacheEntries(
        join(root, `datasets/VQA/cache/VQA_mteval_23${clean ? '_cleaned' : ''}.pkl`),
      );
      assert.equal(entry!.get('question_id'), 42000);
      const labels = (entry!.get('answer') as Map<string, { data: Uint8Array }>).get('labels')!;
      assert.deepEqual(Array.from(new BigInt64Array(labels.data.slice().buffer), Number), [9]);
    }
  });

  it("GQA 'test': testdev_balanced_questions.json in file order, int question ids, string image ids", () => {
    const gqa = CASES[4]!;
    const root = scratchKitForFile(gqa.directories);
    writeFileSync(
      join(root, 'datasets/gqa/testdev_balanced_questions.json'),
      JSON.stringify({
        20968558: { imageId: '2354786', question: 'Is the sky blue?', types: {} },
        201307251: { imageId: '2368326', question: 'What color is the car?' },
      }),
    );
    const dataset = build({ ...gqa, split: 'test' }, root);
    assert.equal(dataset.length, 2);
    assert.deepEqual(
      [0, 1].map((index) => dataset.item(index).values.question_id),
      [20968558, 201307251],
    );
    assert.ok(((dataset.item(1).values.target as ItemTensor).data as Float32Array).every((value) => value === 0));
    const cached = readTokenCacheEntries(join(root, 'datasets/gqa/cache/GQA_test_26_cleaned.pkl'));
    assert.deepEqual([...cached[0]!.entries()].slice(0, 3), [
      ['question_id', 20968558],
      ['image_id', '2354786'],
      ['question', 'Is the sky blue?'],
    ]);
  });
});
