import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { descendingOrder, rankOf, retrievalMetrics, sampleOutcomes } from '../../src/eval/metrics.js';
import { taskLoss, type PreparedBatch } from '../../src/task-step/step.js';
import type { VLTaskOutputs } from '../../src/model/vilbert.js';

const close = (actual: number[], expected: number[], tolerance = 1e-6) => {
  assert.equal(actual.length, expected.length);
  actual.forEach((value, i) =>
    assert.ok(Math.abs(value - expected[i]!) < tolerance, `[${i}] ${value} vs ${expected[i]}`),
  );
};

describe('sampleOutcomes', () => {
  it('VQA: the soft score of the arg-max answer, per question', () => {
    torch.scope(() => {
      const logits = torch.tensor([
        [0.1, 2.0, -1.0, 0.5],
        [3.0, 0.0, 0.0, 0.0],
        [-1.0, -2.0, 0.7, 0.6],
      ]);
      const target = torch.tensor([
        [0, 0.9, 0.3, 0],
        [0, 1.0, 0, 0],
        [0.6, 0, 0.3, 1.0],
      ]);
      const outcomes = sampleOutcomes('VL-classifier', logits, target);
      assert.deepEqual(outcomes.predicted, [1, 0, 2]);
      close(outcomes.score, [0.9, 0, 0.3]); // Σ = 1.2, VQA accuracy 0.4
    });
  });

  it('a label map smaller than the head: taskLoss pads the target with zeros, so predictions past it score 0', () => {
    torch.scope(() => {
      const logits = torch.tensor([
        [0, 1, 5, 0],
        [0, 2, 0, 0],
      ]);
      const prepared = {
        target: torch.tensor([
          [0.3, 1.0],
          [0, 0.6],
        ]),
        batchSize: 2,
        numOptions: 1,
        inputs: {} as PreparedBatch['inputs'],
      };
      const loss = taskLoss('VL-classifier', { vil_prediction: logits } as VLTaskOutputs, prepared);
      assert.deepEqual(loss.target.shape, [2, 4]);
      const outcomes = sampleOutcomes('VL-classifier', loss.logits, loss.target);
      assert.deepEqual(outcomes.predicted, [2, 1]);
      close(outcomes.score, [0, 0.6]);
      assert.equal(loss.score, Math.fround(0.6));
      const wide = { ...prepared, target: torch.zeros([2, 5]) };
      assert.throws(
        () => taskLoss('VL-classifier', { vil_prediction: logits } as VLTaskOutputs, wide),
        /the dataset has 5 answers, the head has 4 outputs/,
      );
    });
  });

  it('NLVR2 / SNLI-VE: one-hot targets give 1 for a right verdict; an unlabelled sample (all zeros) gives 0', () => {
    torch.scope(() => {
      const binary = sampleOutcomes(
        'VL-binary-classifier',
        torch.tensor([
          [0.2, 0.1],
          [0.0, 1.0],
        ]),
        torch.tensor([
          [1, 0],
          [1, 0],
        ]),
      );
      assert.deepEqual(binary.score, [1, 0]);
      const tri = sampleOutcomes(
        'VL-tri-classifier',
        torch.tensor([
          [0, 0, 5],
          [1, 0, 0],
        ]),
        torch.tensor([
          [0, 0, 1],
          [0, 0, 0],
        ]),
      );
      assert.deepEqual(tri.predicted, [2, 0]);
      assert.deepEqual(tri.score, [1, 0]);
    });
  });

  it("grounding: right when the chosen region's IoU is strictly above 0.5; the IoU is reported", () => {
    torch.scope(() => {
      const logits = torch.tensor([
        [[0.0], [2.0], [-10000]],
        [[1.0], [0.0], [0.5]],
        [[0.0], [0.0], [3.0]],
      ]); // [3, R=3, 1]
      const iou = torch.tensor([
        [[0.2], [0.75], [0]],
        [[0.5], [0.9], [0.1]],
        [[0.6], [0.0], [0.51]],
      ]);
      const outcomes = sampleOutcomes('V-logit', logits, iou);
      assert.deepEqual(outcomes.predicted, [1, 0, 2]);
      assert.deepEqual(outcomes.score, [1, 0, 1]);
      close(outcomes.iou!, [0.75, 0.5, 0.51]);
    });
  });

  it('pointing: arg-max candidate against arg-max target, ties to the first candidate', () => {
    torch.scope(() => {
      const logits = torch.tensor([
        [[0.1], [0.9], [0.3], [0.2]],
        [[1.0], [1.0], [0.0], [0.0]],
      ]); // [2, C=4, 1]
      const target = torch.tensor([
        [[0], [0.8], [0], [0]],
        [[0], [0.7], [0], [0]],
      ]);
      const outcomes = sampleOutcomes('V-logit-mc', logits, target);
      assert.deepEqual(outcomes.predicted, [1, 0]);
      assert.deepEqual(outcomes.score, [1, 0]);
    });
  });

  it('multiple choice (VL-logit): the chosen option and the softmax over the options', () => {
    torch.scope(() => {
      const logits = torch.tensor([
        [0, Math.log(3), 0, 0],
        [2, 0, 0, 0],
      ]);
      const outcomes = sampleOutcomes('VL-logit', logits, torch.tensor([1, 3], { dtype: 'int64' }));
      assert.deepEqual(outcomes.predicted, [1, 0]);
      assert.deepEqual(outcomes.score, [1, 0]);
      close(outcomes.probabilities![0]!, [1 / 6, 3 / 6, 1 / 6, 1 / 6]);
    });
  });
});

describe('retrieval ranking', () => {
  // Five captions against four images; row c is caption c's scores, its image is images[c].
  const scores = [
    [0.9, 0.1, 0.2, 0.3], // image 0 first: rank 0
    [0.5, 0.4, 0.6, 0.1], // image 1 third: rank 2
    [0.1, 0.2, 0.3, 0.4], // image 2 second: rank 1
    [0.7, 0.7, 0.7, 0.7], // all tied: image 3 last in index order, rank 3
    [0.0, 0.3, 0.2, 0.1], // image 0 last: rank 3
  ];
  const images = [0, 1, 2, 3, 0];

  it('ranks are 0-based positions by descending score, ties in index order', () => {
    assert.deepEqual(
      scores.map((row, c) => rankOf(row, images[c]!)),
      [0, 2, 1, 3, 3],
    );
    assert.deepEqual(descendingOrder(scores[1]!), [2, 0, 1, 3]);
    assert.deepEqual(descendingOrder(scores[3]!), [0, 1, 2, 3]);
    scores.forEach((row, c) => assert.equal(descendingOrder(row).indexOf(images[c]!), rankOf(row, images[c]!)));
  });

  it('R@K in percent, medr = floor(median + 1), meanr = mean + 1', () => {
    const { meanr, ...rest } = retrievalMetrics([0, 2, 1, 3, 3]);
    assert.deepEqual(rest, { r1: 20, r5: 100, r10: 100, medr: 3 });
    close([meanr], [2.8], 1e-12);
    assert.deepEqual(retrievalMetrics([0, 0, 3, 7, 12]), { r1: 40, r5: 60, r10: 80, medr: 4, meanr: 5.4 });
    // An even count takes the mean of the two middle ranks, as numpy.median.
    assert.deepEqual(retrievalMetrics([0, 1, 2, 5]), { r1: 25, r5: 75, r10: 100, medr: 2, meanr: 3 });
    assert.throws(() => retrievalMetrics([]), /no ranks/);
  });
});
