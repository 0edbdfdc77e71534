import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import type { ItemTensor, TaskDataset } from '../../src/data/dataset.js';
import type { ClassificationDataset } from '../../src/data/datasets/vqa.js';
import { TaskLoader } from '../../src/data/loader.js';
import type { VILBertForVLTasks } from '../../src/model/vilbert.js';
import { toTaskBatch } from '../../src/task-step/batch.js';
import { forwardTask } from '../../src/task-step/step.js';
import { type EvaluatedTask, evaluateTask } from '../../src/eval/evaluate.js';
import { sampleOutcomes } from '../../src/eval/metrics.js';
import { kitTask, openKit, placeholderAnswers, tinyModel } from './tiny.js';

function evaluatedTask(key: string): EvaluatedTask {
  const task = kitTask(key);
  return { name: task.name, type: task.type, process: task.process, number: Number(key.slice(4)) };
}

/** ForwardModelsVal batch by batch, straight from forwardTask: Σ loss·B, Σ score, Σ B, and Σ of the per-sample scores. */
async function direct(model: VILBertForVLTasks, dataset: TaskDataset, task: EvaluatedTask, batchSize: number) {
  const loader = TaskLoader.inProcess(dataset, { batchSize, shuffle: false, seed: 0 });
  model.eval();
  let lossSum = 0;
  let score = 0;
  let count = 0;
  let sampleScore = 0;
  for (let i = 0; i < loader.length; i++) {
    const batch = await loader.next();
    torch.scope(() =>
      torch.inferenceMode(() => {
        const step = forwardTask(model, toTaskBatch(batch), task);
        lossSum += step.loss.item() * step.prepared.batchSize;
        score += step.score;
        count += step.prepared.batchSize;
        sampleScore += sampleOutcomes(task.type, step.logits, step.target).score.reduce((a, b) => a + b, 0);
      }),
    );
  }
  model.train();
  return { loss: lossSum / count, score: score / count, count, sampleScore: sampleScore / count };
}

describe('evaluateTask on the data kit with a tiny random model', () => {
  let model: VILBertForVLTasks;
  before(() => {
    model = tinyModel();
  });
  after(() => model.dispose());

  it('VQA (trainval, 9 questions, batches of 4): loss and soft score as ForwardModelsVal, one answer record per question', async () => {
    const { dataset: kit, close } = openKit('VQAClassificationDataset', 'TASK1', 'trainval');
    try {
      const dataset = kit as ClassificationDataset;
      const label2ans = placeholderAnswers(dataset.label2ans, 3129);
      const task = evaluatedTask('TASK1');
      const progress: [number, number][] = [];
      const loader = TaskLoader.inProcess(dataset, { batchSize: 4, shuffle: false, seed: 0 });
      const evaluation = await evaluateTask(model, loader, task, {
        label2ans,
        onProgress: (done, total) => progress.push([done, total]),
      });
      const expected = await direct(model, dataset, task, 4);
      assert.equal(evaluation.count, 9);
      assert.ok(Math.abs(evaluation.loss - expected.loss) < 1e-6, `${evaluation.loss} vs ${expected.loss}`);
      assert.equal(evaluation.score, expected.score);
      assert.ok(Math.abs(expected.sampleScore - expected.score) < 1e-6);
      assert.deepEqual(evaluation.metrics, { vqa_score: evaluation.score });
      assert.deepEqual(progress, [
        [1, 3],
        [2, 3],
        [3, 3],
      ]);
      assert.equal(evaluation.results.length, 9);
      assert.deepEqual(evaluation.others, []);
      const ids = Array.from({ length: 9 }, (_, i) => dataset.item(i).values.question_id);
      evaluation.results.forEach((record, i) => {
        assert.deepEqual(Object.keys(record as object), ['question_id', 'answer']);
        const { question_id: id, answer } = record as { question_id: number; answer: string };
        assert.equal(id, ids[i]);
        assert.ok(label2ans.includes(answer));
      });
      assert.equal(model.training, true, 'the training flag is restored');
    } finally {
      close();
    }
  });

  it('VQA without the label list fails naming the task; collectResults: false needs none; labels past the list are null', async () => {
    const { dataset: kit, close } = openKit('VQAClassificationDataset', 'TASK1', 'trainval');
    try {
      const dataset = kit as ClassificationDataset;
      const loader = () => TaskLoader.inProcess(dataset, { batchSize: 9, shuffle: false, seed: 0 });
      await assert.rejects(
        evaluateTask(model, loader(), evaluatedTask('TASK1')),
        /^Error: VQA: naming the predicted answers needs the dataset's label2ans/,
      );
      const quiet = await evaluateTask(model, loader(), evaluatedTask('TASK1'), { collectResults: false });
      assert.deepEqual(quiet.results, []);
      assert.equal(quiet.count, 9);
      const named = await evaluateTask(model, loader(), evaluatedTask('TASK1'), { label2ans: dataset.label2ans });
      const answers = named.results.map((record) => (record as { answer: string | null }).answer);
      assert.ok(answers.every((answer) => answer === null || dataset.label2ans.includes(answer)));
      assert.ok(answers.includes(null), "a random 3129-way head mostly predicts labels past the kit's 24");
    } finally {
      close();
    }
  });

  it('GQA records its string question ids and predictions', async () => {
    const { dataset: kit, close } = openKit('GQAClassificationDataset', 'TASK15', 'trainval');
    try {
      const dataset = kit as ClassificationDataset;
      const task = evaluatedTask('TASK15');
      const loader = TaskLoader.inProcess(dataset, { batchSize: 2, shuffle: false, seed: 0 });
      const evaluation = await evaluateTask(model, loader, task, {
        label2ans: placeholderAnswers(dataset.label2ans, 1533),
      });
      const expected = await direct(model, dataset, task, 2);
      assert.equal(evaluation.score, expected.score);
      assert.ok(Math.abs(expected.sampleScore - expected.score) < 1e-6);
      assert.equal(evaluation.results.length, dataset.length);
      const first = evaluation.results[0] as { questionId: string; prediction: string };
      assert.deepEqual(Object.keys(first), ['questionId', 'prediction']);
      assert.equal(first.questionId, String(dataset.item(0).values.question_id));
      assert.deepEqual(Object.keys(evaluation.metrics), ['accuracy']);
    } finally {
      close();
    }
  });

  it('refcoco (V-logit, val): accuracy of IoU > 0.5 as ForwardModelsVal, {id, target, IOU} records keyed by image id', async () => {
    const { dataset, close } = openKit('ReferExpressionDataset', 'TASK9', 'val');
    try {
      const task = evaluatedTask('TASK9');
      const evaluation = await evaluateTask(
        model,
        TaskLoader.inProcess(dataset, { batchSize: 2, shuffle: false, seed: 0 }),
        task,
      );
      const expected = await direct(model, dataset, task, 2);
      assert.equal(evaluation.count, dataset.length);
      assert.ok(Math.abs(evaluation.loss - expected.loss) < 1e-6);
      assert.equal(evaluation.score, expected.score);
      assert.equal(expected.sampleScore, expected.score);
      assert.equal(evaluation.results.length, dataset.length);
      let iouSum = 0;
      evaluation.results.forEach((record, i) => {
        assert.deepEqual(Object.keys(record as object), ['id', 'target', 'IOU']);
        const { id, target, IOU } = record as { id: number; target: number; IOU: number };
        const item = dataset.item(i);
        assert.equal(id, item.values.image_id);
        const targets = (item.values.target as ItemTensor).data as Float32Array; // [R, 1] IoU with the reference box
        assert.equal(IOU, targets[target]);
        iouSum += IOU;
      });
      assert.equal(evaluation.metrics['accuracy_iou>0.5'], evaluation.score);
      assert.ok(Math.abs(evaluation.metrics.mean_iou! - iouSum / dataset.length) < 1e-9);
    } finally {
      close();
    }
  });

  it('Visual7w (V-logit-mc): the chosen candidate per question, keyed by image id', async () => {
    const { dataset, close } = openKit('Visual7wPointingDataset', 'TASK4', 'val');
    try {
      const task = evaluatedTask('TASK4');
      const evaluation = await evaluateTask(
        model,
        TaskLoader.inProcess(dataset, { batchSize: 2, shuffle: false, seed: 0 }),
        task,
      );
      const expected = await direct(model, dataset, task, 2);
      assert.equal(evaluation.score, expected.score);
      assert.equal(expected.sampleScore, expected.score);
      assert.ok(Math.abs(evaluation.loss - expected.loss) < 1e-6);
      for (const record of evaluation.results) {
        assert.deepEqual(Object.keys(record as object), ['id', 'target']);
        assert.ok([0, 1, 2, 3].includes((record as { target: number }).target));
      }
    } finally {
      close();
    }
  });

  it('NLVR2 (pairs of images, dev): accuracy as ForwardModelsVal and no records', async () => {
    const { dataset, close } = openKit('NLVR2Dataset', 'TASK12', 'dev');
    try {
      const task = evaluatedTask('TASK12');
      const evaluation = await evaluateTask(
        model,
        TaskLoader.inProcess(dataset, { batchSize: 2, shuffle: false, seed: 0 }),
        task,
      );
      const expected = await direct(model, dataset, task, 2);
      assert.equal(evaluation.count, 2);
      assert.ok(Math.abs(evaluation.loss - expected.loss) < 1e-6);
      assert.equal(evaluation.score, expected.score);
      assert.equal(expected.sampleScore, expected.score);
      assert.ok([0, 0.5, 1].includes(evaluation.score));
      assert.deepEqual(evaluation.results, []);
      assert.deepEqual(evaluation.metrics, { accuracy: evaluation.score });
    } finally {
      close();
    }
  });
});
