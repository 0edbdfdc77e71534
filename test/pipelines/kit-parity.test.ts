// A pipeline's scores equal the model's output on the inputs the reference's dataset loaders
// build for the same text and image (kit items, loader -> collate -> prepareBatch -> model).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { ImageFeatureReader } from '../../src/data/features.js';
import { collate } from '../../src/data/loader.js';
import type { DatasetFactory, DatasetItem } from '../../src/data/dataset.js';
import { gqaDataset, vqaDataset } from '../../src/data/datasets/vqa.js';
import { referExpressionDataset } from '../../src/data/datasets/grounding.js';
import { retrievalDataset } from '../../src/data/datasets/retrieval.js';
import { nlvr2Dataset, visualEntailmentDataset } from '../../src/data/datasets/pairs.js';
import { readTokenCacheEntries } from '../../src/data/token-cache.js';
import { NUMPY_GLOBALS, PYTHON_DATA_GLOBALS, combineAllowLists, unpickle } from '../../src/io/index.js';
import { toTaskBatch } from '../../src/task-step/batch.js';
import { loadTaskRegistry, type TaskConfig } from '../../src/data/task-registry.js';
import type { TaskProcess } from '../../src/data/task-registry.js';
import { prepareBatch } from '../../src/task-step/step.js';
import type { VLHead } from '../../src/model/vilbert.js';
import { BertTokenizer } from '../../src/text/index.js';
import { ENTAILMENT_CLASSES, createPipeline, loadModelFolder } from '../../src/pipelines/index.js';
import { KIT, LABELS, NLVR2_KIT_REGIONS, kitPath, tinyFolder } from './helpers.js';
import { fixture } from '../io/fixtures.js';

const saved = tinyFolder(11);
const folder = loadModelFolder(saved.dir);
const registry = loadTaskRegistry();
const readers: ImageFeatureReader[] = [];
after(() => {
  folder.model.dispose();
  saved.dispose();
  for (const reader of readers) reader.close();
});

const sigmoid = (logit: number) => 1 / (1 + Math.exp(-logit));

function open(path: string): ImageFeatureReader | null {
  if (path === '') return null;
  const reader = ImageFeatureReader.open(join(KIT, path));
  readers.push(reader);
  return reader;
}

/** The kit's dataset of a task (built from its annotations, nothing written). */
function kitDataset(factory: DatasetFactory, task: TaskConfig, split: string) {
  const features = open(task.features_h5path1);
  const dataset = factory({
    task,
    split,
    phase: 'val',
    root: KIT,
    tokenizer: BertTokenizer.bundled(),
    features,
    gtFeatures: open(task.features_h5path2),
    cleanDatasets: true,
    writeCache: false,
  });
  return { dataset, features: features! };
}

/** The head's output for one loader item, as the training/evaluation step computes it. */
function loaderOutput(item: DatasetItem, process: TaskProcess, task: TaskConfig, head: VLHead): Float32Array {
  return torch.inferenceMode(() =>
    torch.scope(() => {
      const prepared = prepareBatch(toTaskBatch(collate([item], [0])), process, task.task_id);
      return folder.model.call(prepared.inputs, { heads: [head] })[head]!.toArray() as Float32Array;
    }),
  );
}

/** Within float32 rounding of values of this size (the loader's batch may hold other rows than the pipeline's). */
// Relative 2e-6: the pipelines batch items differently from the one-item forward, and
// OpenBLAS's blocking then changes float32 sums (1.3e-6 relative measured on an AMD EPYC).
const near = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= 2e-6 * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);

describe("pipelines score the kit's items as the model scores the loaders' inputs", () => {
  it('vqa: VQA minval questions (images with 38 and 101 regions)', async () => {
    const task = registry.get('TASK1')!;
    const { dataset, features } = kitDataset(vqaDataset, task, 'minval');
    const questions = new Map(
      (
        JSON.parse(readFileSync(kitPath('datasets', 'VQA', 'v2_OpenEnded_mscoco_val2014_questions.json'), 'utf8')) as {
          questions: { question_id: number; image_id: number; question: string }[];
        }
      ).questions.map((question) => [question.question_id, question]),
    );
    const vqa = await createPipeline('vqa', folder);
    const imagesSeen = new Set<number>();
    for (const index of [0, 1, dataset.length - 1]) {
      const item = dataset.item(index);
      const question = questions.get(item.values.question_id as number)!;
      imagesSeen.add(features.get(question.image_id).numBoxes);
      const logits = loaderOutput(item, 'normal', task, 'vil_prediction'); // [1, 3129]
      const answers = await vqa(question.question, { store: features, imageId: question.image_id }, { topk: 3129 });
      for (const { answer, score } of answers)
        near(score, sigmoid(logits[LABELS.vil_prediction!.indexOf(answer)]!), `${question.question} ${answer}`);
    }
    assert.ok(imagesSeen.size >= 2, `images of ${[...imagesSeen].join(', ')} regions`);
    vqa.dispose();
  });

  it('gqa: GQA minval questions', async () => {
    const task = registry.get('TASK15')!;
    const { dataset, features } = kitDataset(gqaDataset, task, 'minval');
    const targetsPath = kitPath('datasets', 'gqa', 'cache', 'trainval_target.pkl');
    const targets = unpickle(readFileSync(targetsPath), {
      allow: combineAllowLists(PYTHON_DATA_GLOBALS, NUMPY_GLOBALS),
      source: targetsPath,
    }) as Map<string, string>[];
    const byId = new Map(targets.map((target) => [Number(target.get('question_id')), target]));
    const gqa = await createPipeline('gqa', folder);
    for (const index of [0, dataset.length - 1]) {
      const item = dataset.item(index);
      const target = byId.get(item.values.question_id as number)!;
      const logits = loaderOutput(item, 'normal', task, 'vil_prediction_gqa'); // [1, 1533]
      const answers = await gqa(
        target.get('question')!,
        { store: features, imageId: target.get('image_id')! },
        { topk: 1533 },
      );
      for (const { answer, score } of answers)
        near(score, sigmoid(logits[LABELS.vil_prediction_gqa!.indexOf(answer)]!), answer);
    }
    gqa.dispose();
  });

  it('ground: refcoco val expressions, every real region', async () => {
    const task = registry.get('TASK9')!;
    const { dataset, features } = kitDataset(referExpressionDataset, task, 'val');
    // The reference's token cache of this split holds each item's expression.
    const entries = readTokenCacheEntries(
      fixture('datasets', 'generated_caches', 'datasets', 'refcoco', 'cache', 'refcoco_val_20_101_cleaned.pkl'),
    );
    assert.equal(entries.length, dataset.length);
    const ground = await createPipeline('ground', folder);
    for (let index = 0; index < dataset.length; index++) {
      const item = dataset.item(index);
      const entry = entries[index]!;
      const logits = loaderOutput(item, 'normal', task, 'vision_logit'); // [1, R, 1]
      const regions = await ground(
        entry.get('caption') as string,
        { store: features, imageId: entry.get('image_id') as number },
        { topk: task.max_region_num },
      );
      const mask = (item.values.image_mask as { data: BigInt64Array }).data;
      assert.equal(regions.length, mask.filter((bit) => bit === 1n).length);
      for (const { regionIndex, score } of regions)
        near(score, sigmoid(logits[regionIndex]!), `${String(entry.get('caption'))} region ${regionIndex}`);
    }
    ground.dispose();
  });

  it('retrieve: COCO captions against their own image (row 0 of a retrieval item)', async () => {
    const task = registry.get('TASK7')!;
    const { dataset, features } = kitDataset(retrievalDataset, task, 'val');
    const lines = readFileSync(join(KIT, task.val_annotations_jsonpath), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: number; sentences: string[] });
    const captions = lines.flatMap(({ id, sentences }) => sentences.map((text) => ({ id, text })));
    assert.equal(captions.length, dataset.length);
    const retrieve = await createPipeline('retrieve', folder);
    const images = lines.map(({ id }) => ({ store: features, imageId: id }));
    for (let index = 0; index < dataset.length; index++) {
      const { id, text } = captions[index]!;
      const logits = loaderOutput(dataset.item(index), 'retrieval', task, 'vil_logit'); // [4, 1], row 0 the positive pair
      const ranked = await retrieve(text, images);
      const own = ranked.find((result) => result.imageId === String(id))!;
      near(own.score, logits[0]!, text);
    }
    retrieve.dispose();
  });

  it('verify: NLVR2 dev statements on their image pair', async () => {
    const task = { ...registry.get('TASK12')!, max_region_num: NLVR2_KIT_REGIONS };
    const { dataset, features } = kitDataset(nlvr2Dataset, task, 'dev');
    const lines = readFileSync(kitPath('datasets', 'nlvr2', 'dev.json'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { sentence: string; identifier: string; label: string });
    const verify = await createPipeline('verify', folder);
    for (let index = 0; index < dataset.length; index++) {
      const { sentence, identifier, label } = lines[index]!;
      const pair = identifier.split('-').slice(0, -1).join('-');
      const item = dataset.item(index);
      const logits = loaderOutput(item, 'nlvr', task, 'vil_binary_prediction'); // [1, 2]
      // Class 1 is the statement's label "True" in the loader's target, the pipeline's `true`.
      assert.equal((item.values.target as { data: Float32Array }).data[1], label === 'True' ? 1 : 0);
      const verdict = await verify(
        sentence,
        { store: features, imageId: `${pair}-img0` },
        { store: features, imageId: `${pair}-img1` },
      );
      assert.equal(verdict.label, logits[1]! > logits[0]!);
      near(verdict.score, sigmoid(Math.max(logits[0]!, logits[1]!)), sentence);
    }
    verify.dispose();
  });

  it("entail: SNLI-VE dev hypotheses, classes in the reference's order", async () => {
    const task = registry.get('TASK13')!;
    const { dataset, features } = kitDataset(visualEntailmentDataset, task, 'dev');
    const lines = readFileSync(kitPath('datasets', 'visual_entailment', 'snli_ve_dev.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { sentence2: string; Flikr30kID: string; gold_label: string });
    assert.equal(lines.length, dataset.length);
    const entail = await createPipeline('entail', folder);
    const REFERENCE_ORDER = ['contradiction', 'neutral', 'entailment'] as const;
    assert.deepEqual(ENTAILMENT_CLASSES, REFERENCE_ORDER);
    for (let index = 0; index < dataset.length; index++) {
      const { sentence2, Flikr30kID, gold_label } = lines[index]!;
      const item = dataset.item(index);
      const logits = loaderOutput(item, 'normal', task, 'vil_tri_prediction'); // [1, 3]
      const result = await entail(sentence2, { store: features, imageId: Flikr30kID.split('.')[0]! });
      REFERENCE_ORDER.forEach((label, column) =>
        near(result.scores[label], sigmoid(logits[column]!), `${sentence2} ${label}`),
      );
      // The loader's one-hot target puts the gold label in the same column.
      const target = (item.values.target as { data: Float32Array }).data;
      if (gold_label !== '-') assert.equal(REFERENCE_ORDER[target.indexOf(1)], gold_label);
    }
    entail.dispose();
  });
});
