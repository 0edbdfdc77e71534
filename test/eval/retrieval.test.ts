import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import type { ItemTensor, TaskDataset } from '../../src/data/dataset.js';
import { BertForMultiModalPreTraining, VILBertForVLTasks } from '../../src/model/vilbert.js';
import { descendingOrder, rankOf, retrievalMetrics } from '../../src/eval/metrics.js';
import { evaluateRetrieval } from '../../src/eval/retrieval.js';
import { openKit, tinyConfig, tinyModel } from './tiny.js';

/** vil_logit of caption c with image j, from a plain one-pair forward (no fast mode, no chunking). */
function pairScore(model: VILBertForVLTasks, dataset: TaskDataset, caption: number, image: number): number {
  const { values } = dataset.item(2 * caption + Math.floor(image / 500));
  const row = image % 500;
  const tensor = (name: string, rows: [number, number] | null) => {
    const { data, dtype, shape } = values[name] as ItemTensor;
    if (rows === null) return torch.tensor(data, { dtype, shape: [1, ...shape] });
    const width = shape.slice(1).reduce((a, b) => a * b, 1);
    return torch.tensor(data.subarray(rows[0] * width, rows[1] * width), { dtype, shape: [1, ...shape.slice(1)] });
  };
  model.eval();
  const score = torch.scope(() =>
    torch.inferenceMode(() =>
      model
        .call(
          {
            inputIds: tensor('caption', null),
            attentionMask: tensor('input_mask', null),
            tokenTypeIds: tensor('segment_ids', null),
            imageFeatures: tensor('features_all', [row, row + 1]),
            imageLocations: tensor('spatials_all', [row, row + 1]),
            imageAttentionMask: tensor('image_mask_all', [row, row + 1]),
            taskIds: torch.full([1, 1], 7, { dtype: 'int64' }),
          },
          { heads: ['vil_logit'] },
        )
        .vil_logit!.item(),
    ),
  );
  model.train();
  return score;
}

describe("evaluateRetrieval on the kit's COCO test set (3 images, 6 captions)", () => {
  let dataset: TaskDataset;
  let closeDataset: () => void;
  let model: VILBertForVLTasks;
  before(() => {
    ({ dataset, close: closeDataset } = openKit('RetreivalDatasetVal', 'TASK7', 'val'));
    model = tinyModel(7, { fast_mode: true });
  });
  after(() => {
    model.dispose();
    closeDataset();
  });

  it("scores every caption against the filled image slots only, ranks the caption's own image", () => {
    const progress: number[] = [];
    const evaluation = evaluateRetrieval(model, dataset, { taskNumber: 7, onProgress: (done) => progress.push(done) });
    assert.equal(evaluation.numCaptions, 6);
    assert.equal(evaluation.numImages, 3);
    assert.equal(evaluation.scores.length, 18);
    assert.deepEqual(
      progress,
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    // Captions come two per image, in file order: caption c belongs to image floor(c / 2).
    const rows = Array.from({ length: 6 }, (_, c) => evaluation.scores.subarray(3 * c, 3 * c + 3));
    assert.deepEqual(
      evaluation.ranks,
      rows.map((row, c) => rankOf(row, Math.floor(c / 2))),
    );
    assert.deepEqual(
      evaluation.results,
      rows.map((row) => descendingOrder(row)),
    );
    assert.deepEqual(evaluation.metrics, retrievalMetrics(evaluation.ranks));
    assert.ok(new Set(evaluation.scores).size > 1, 'scores differ between pairs');
  });

  it('fast mode, chunking and a one-pair forward give the same scores', () => {
    const fast = evaluateRetrieval(model, dataset, { taskNumber: 7 });
    const chunked = evaluateRetrieval(model, dataset, { taskNumber: 7, chunkSize: 2 });
    const plainModel = new VILBertForVLTasks(tinyConfig());
    try {
      plainModel.loadStateDict(model.stateDict());
      const plain = evaluateRetrieval(plainModel, dataset, { taskNumber: 7 });
      for (let i = 0; i < fast.scores.length; i++) {
        assert.ok(Math.abs(chunked.scores[i]! - fast.scores[i]!) < 1e-5, `chunked [${i}]`);
        assert.ok(
          Math.abs(plain.scores[i]! - fast.scores[i]!) < 1e-5,
          `plain [${i}] ${plain.scores[i]} vs ${fast.scores[i]}`,
        );
      }
      for (const [caption, image] of [
        [0, 0],
        [3, 2],
        [5, 1],
      ] as const) {
        const score = pairScore(plainModel, dataset, caption, image);
        assert.ok(Math.abs(score - fast.scores[3 * caption + image]!) < 1e-5, `pair (${caption}, ${image})`);
      }
    } finally {
      plainModel.dispose();
    }
  });

  it('zero-shot: the pre-training model\'s probability of "matched"', () => {
    torch.manualSeed(11);
    const pretrained = new BertForMultiModalPreTraining(tinyConfig({ task_specific_tokens: false, fast_mode: true }));
    try {
      const evaluation = evaluateRetrieval(pretrained, dataset, { taskNumber: 7 });
      assert.equal(evaluation.numImages, 3);
      for (const score of evaluation.scores) assert.ok(score > 0 && score < 1, `${score}`);
      assert.equal(evaluation.ranks.length, 6);
    } finally {
      pretrained.dispose();
    }
  });
});
