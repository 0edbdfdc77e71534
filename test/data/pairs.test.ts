import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DatasetFactory, ItemTensor, TaskDataset } from '../../src/data/dataset.js';
import { ImageFeatureReader } from '../../src/data/features.js';
import { nlvr2Dataset, visualEntailmentDataset } from '../../src/data/datasets/pairs.js';
import { verifyDatasetSplit } from '../../src/parity/verify-data.js';
import { loadTaskRegistry } from '../../src/data/task-registry.js';
import { BertTokenizer } from '../../src/text/index.js';
import { fixture } from '../io/fixtures.js';
import { scratchKit } from './kit.js';

const EXPECTED = fixture('datasets', 'expected');

function build(
  factory: DatasetFactory,
  taskKey: string,
  split: string,
  phase: 'train' | 'val',
  root: string,
  cleanDatasets = true,
): TaskDataset {
  const task = loadTaskRegistry().get(taskKey)!;
  return factory({
    task,
    split,
    phase,
    root,
    cleanDatasets,
    tokenizer: BertTokenizer.bundled(),
    features: ImageFeatureReader.open(resolve(root, task.features_h5path1)),
    gtFeatures: null,
  });
}

function expectSplitMatches(dataset: TaskDataset, folder: string): void {
  const check = verifyDatasetSplit(dataset, join(EXPECTED, folder));
  assert.deepEqual(check.problems, []);
  assert.ok(check.ok && check.itemsChecked > 0);
}

function values(tensor: ItemTensor): number[] {
  return Array.from(tensor.data as ArrayLike<number | bigint>, Number);
}

describe('NLVR2Dataset', () => {
  const kit = scratchKit(['datasets/nlvr2']);

  it('matches every saved train and dev item of the reference', () => {
    const train = build(nlvr2Dataset, 'TASK12', 'train', 'train', kit.root);
    assert.equal(train.numLabels, 2);
    expectSplitMatches(train, 'TASK12_NLVR2/train__train__NLVR2Dataset');
    expectSplitMatches(build(nlvr2Dataset, 'TASK12', 'dev', 'val', kit.root), 'TASK12_NLVR2/dev__val__NLVR2Dataset');
  });

  it('packs image 1 right after the real rows of image 0 and one-hot encodes the label', () => {
    const dataset = build(nlvr2Dataset, 'TASK12', 'train', 'train', kit.root);
    const features = ImageFeatureReader.open(join(kit.root, 'datasets/nlvr2/nlvr2_resnext152_faster_rcnn_genome.lmdb'));
    const item = dataset.item(0);
    const image0 = features.get('train-10171-0-img0');
    const image1 = features.get('train-10171-0-img1');
    const spatials = item.values.spatials as ItemTensor;
    // Row n0 (after image 0's mean row and boxes) is image 1's whole-image row [0, 0, 1, 1, 1].
    assert.deepEqual(values(spatials).slice(image0.numBoxes * 5, image0.numBoxes * 5 + 5), [0, 0, 1, 1, 1]);
    const mask = values(item.values.image_mask as ItemTensor);
    assert.equal(
      mask.reduce((a, b) => a + b, 0),
      Math.min(image0.numBoxes + image1.numBoxes, 202),
    );
    const target = values(item.values.target as ItemTensor);
    assert.equal(
      target.reduce((a, b) => a + b, 0),
      1,
    );
    features.close();
  });

  it("reads the reference's own token caches (and then not the annotations)", () => {
    const withCaches = scratchKit(['datasets/nlvr2'], ['datasets/nlvr2']);
    rmSync(join(withCaches.root, 'datasets/nlvr2/train.json'));
    rmSync(join(withCaches.root, 'datasets/nlvr2/dev.json'));
    expectSplitMatches(
      build(nlvr2Dataset, 'TASK12', 'train', 'train', withCaches.root),
      'TASK12_NLVR2/train__train__NLVR2Dataset',
    );
    expectSplitMatches(
      build(nlvr2Dataset, 'TASK12', 'dev', 'val', withCaches.root),
      'TASK12_NLVR2/dev__val__NLVR2Dataset',
    );
    withCaches.dispose();
  });

  it('creates the missing cache/ directory the reference crashes on, and reads back the cache it wrote', () => {
    const bare = scratchKit(['datasets/nlvr2']);
    rmSync(join(bare.root, 'datasets/nlvr2/cache'), { recursive: true });
    build(nlvr2Dataset, 'TASK12', 'dev', 'val', bare.root);
    assert.ok(existsSync(join(bare.root, 'datasets/nlvr2/cache/NLVR2_dev_40.pkl')));
    rmSync(join(bare.root, 'datasets/nlvr2/dev.json'));
    expectSplitMatches(build(nlvr2Dataset, 'TASK12', 'dev', 'val', bare.root), 'TASK12_NLVR2/dev__val__NLVR2Dataset');
    bare.dispose();
  });

  it('rejects a split the reference does not know', () => {
    assert.throws(
      () => build(nlvr2Dataset, 'TASK12', 'minval', 'val', kit.root),
      /data split 'minval' is not recognized/,
    );
  });

  it('names the file and line of a broken annotation', () => {
    const broken = scratchKit(['datasets/nlvr2']);
    writeFileSync(
      join(broken.root, 'datasets/nlvr2/dev.json'),
      '{"identifier": "dev-1-0-0", "sentence": "x", "label": "True"}\n{oops\n',
    );
    assert.throws(() => build(nlvr2Dataset, 'TASK12', 'dev', 'val', broken.root), /dev\.json:2: not a JSON line/);
    broken.dispose();
  });

  it('cleans up', () => kit.dispose());
});

describe('VisualEntailmentDataset', () => {
  const kit = scratchKit(['datasets/visual_entailment', 'datasets/flickr30k']);

  it('matches every saved train and dev item of the reference', () => {
    const train = build(visualEntailmentDataset, 'TASK13', 'train', 'train', kit.root);
    assert.equal(train.numLabels, 3);
    expectSplitMatches(train, 'TASK13_VisualEntailment/train__train__VisualEntailmentDataset');
    expectSplitMatches(
      build(visualEntailmentDataset, 'TASK13', 'dev', 'val', kit.root),
      'TASK13_VisualEntailment/dev__val__VisualEntailmentDataset',
    );
  });

  it("gives gold label '-' an all-zero target and counts question ids over kept lines", () => {
    const train = build(visualEntailmentDataset, 'TASK13', 'train', 'train', kit.root);
    assert.deepEqual(values(train.item(3).values.target as ItemTensor), [0, 0, 0]);
    assert.deepEqual(
      Array.from({ length: train.length }, (_, index) => train.item(index).values.question_id),
      [0, 1, 2, 3, 4],
    );
  });

  it("reads the reference's own token caches (and then not the annotations)", () => {
    const withCaches = scratchKit(['datasets/visual_entailment', 'datasets/flickr30k'], ['datasets/visual_entailment']);
    rmSync(join(withCaches.root, 'datasets/visual_entailment/snli_ve_train.jsonl'));
    rmSync(join(withCaches.root, 'datasets/visual_entailment/snli_ve_dev.jsonl'));
    expectSplitMatches(
      build(visualEntailmentDataset, 'TASK13', 'train', 'train', withCaches.root),
      'TASK13_VisualEntailment/train__train__VisualEntailmentDataset',
    );
    expectSplitMatches(
      build(visualEntailmentDataset, 'TASK13', 'dev', 'val', withCaches.root),
      'TASK13_VisualEntailment/dev__val__VisualEntailmentDataset',
    );
    withCaches.dispose();
  });

  it('keeps the test-set images when cleaning is off', () => {
    const cleaned = build(visualEntailmentDataset, 'TASK13', 'train', 'train', kit.root);
    const uncleaned = build(visualEntailmentDataset, 'TASK13', 'train', 'train', kit.root, false);
    assert.ok(uncleaned.length > cleaned.length, `${uncleaned.length} lines uncleaned vs ${cleaned.length} cleaned`);
  });

  it('cleans up', () => kit.dispose());
});
