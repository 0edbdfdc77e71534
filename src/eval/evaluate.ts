// One task's evaluation over a whole loader: the reference's in-training
// validation (train_tasks.py evaluate + ForwardModelsVal) and the records of
// eval_tasks.py (EvaluatingModel) for <split>_result.json.
import * as torch from '../torch/index.js';
import type { Batch, TaskLoader } from '../data/loader.js';
import type { VILBertForVLTasks } from '../model/vilbert.js';
import { toTaskBatch } from '../task-step/batch.js';
import type { TaskConfig } from '../data/task-registry.js';
import type { TaskType } from '../data/task-registry.js';
import { type TaskBatch, forwardTask } from '../task-step/step.js';
import { METRIC_OF_TYPE, type SampleOutcomes, sampleOutcomes } from './metrics.js';

/** A registry entry with its number (the n of 'TASK<n>', also the task token). */
export type EvaluatedTask = Pick<TaskConfig, 'name' | 'type' | 'process'> & { number: number };

export interface EvaluateOptions {
  /** The dataset's answer list (VQA, GenomeQA, GQA: ClassificationDataset.label2ans), to name the predicted answers. */
  label2ans?: readonly string[];
  /** Build `results` (default true). In-training validation needs only loss and score. */
  collectResults?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface TaskEvaluation {
  /** Σ (batch loss · B) / Σ B. */
  loss: number;
  /** Σ batch score / Σ B: VQA soft accuracy, accuracy, or the rate of chosen regions with IoU > 0.5. */
  score: number;
  /** Σ B: samples seen (VisDial: rounds). */
  count: number;
  /** The score under its metric's name (METRIC_OF_TYPE); V-logit adds mean_iou of the chosen regions. */
  metrics: Record<string, number>;
  /** The records of EvaluatingModel, in loader order (batchRecords below gives their shape per type). */
  results: unknown[];
  /** <split>_others.json: the reference never fills it. */
  others: unknown[];
  /** Each sample's predicted class, region, choice or pair verdict (the argmax the score counts), in loader order. */
  predictions: number[];
}

/** Types whose records name the predicted answer (label2ans[argmax]). */
const NAMES_ANSWERS: ReadonlySet<TaskType> = new Set(['VL-classifier', 'VL-classifier-GQA']);

/** The ids the reference reads from the tuple's last element (question id, or the image id for grounding). */
function sampleIds(batch: Batch): (number | string)[] {
  const name = batch.order[batch.order.length - 1];
  const value = name === undefined ? undefined : batch.values[name];
  if (value === undefined) throw new Error('the batch has no id element');
  return Array.isArray(value) ? value : Array.from(value.data as ArrayLike<number | bigint>, Number);
}

function onDevice(batch: TaskBatch, device: string): TaskBatch {
  if (device === 'cpu') return batch;
  return Object.fromEntries(
    Object.entries(batch).map(([slot, tensor]) => [slot, (tensor as torch.Tensor).to(device)]),
  ) as unknown as TaskBatch;
}

/** The records EvaluatingModel appends for one batch (none for the binary / tri classifiers). */
function batchRecords(
  task: EvaluatedTask,
  outcomes: SampleOutcomes,
  ids: (number | string)[],
  label2ans: readonly string[] | undefined,
): unknown[] {
  const idOf = (row: number): number | string => {
    const id = ids[row];
    if (id === undefined)
      throw new Error(`${task.name}: prediction row ${row} has no id (the batch has ${ids.length})`);
    return id;
  };
  // A head wider than the dataset's label map (the data kit, small synthetic label sets) can
  // predict a label with no answer; the reference would fail, it is recorded as null here.
  const answerOf = (label: number): string | null => label2ans![label] ?? null;
  const { predicted } = outcomes;
  switch (task.type) {
    case 'VL-classifier':
      return predicted.map((label, row) => ({ question_id: idOf(row), answer: answerOf(label) }));
    case 'VL-classifier-GQA':
      return predicted.map((label, row) => ({ questionId: String(idOf(row)), prediction: answerOf(label) }));
    case 'VL-logit':
      return predicted.map((_, row) => ({ question_id: idOf(row), answer: outcomes.probabilities![row]! }));
    case 'V-logit':
      return predicted.map((region, row) => ({ id: idOf(row), target: region, IOU: outcomes.iou![row]! }));
    case 'V-logit-mc':
      return predicted.map((choice, row) => ({ id: idOf(row), target: choice }));
    case 'VL-binary-classifier':
    case 'VL-tri-classifier':
      return [];
  }
}

/**
 * Runs one pass over `loader` (loader.length batches from its current position; with
 * shuffle off, every item once) in eval mode and inference mode, and restores the
 * model's training flag afterwards. Loss and score are ForwardModelsVal's for every type;
 * deviation: eval_tasks.py reports loss 0 and score 0 for the answer classifiers (VQA,
 * GenomeQA, GQA), here they carry the real loss and soft score.
 */
export async function evaluateTask(
  model: VILBertForVLTasks,
  loader: TaskLoader,
  task: EvaluatedTask,
  options: EvaluateOptions = {},
): Promise<TaskEvaluation> {
  const collect = options.collectResults ?? true;
  if (collect && NAMES_ANSWERS.has(task.type) && !options.label2ans) {
    throw new Error(
      `${task.name}: naming the predicted answers needs the dataset's label2ans (or collectResults: false)`,
    );
  }
  const device = model.parameters()[0]?.device ?? 'cpu';
  const total = loader.length;
  const results: unknown[] = [];
  const predictions: number[] = [];
  let lossSum = 0;
  let scoreSum = 0;
  let iouSum = 0;
  let count = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let index = 0; index < total; index++) {
      const batch = await loader.next();
      const step = torch.scope(() =>
        torch.inferenceMode(() => {
          try {
            const forwarded = forwardTask(model, onDevice(toTaskBatch(batch), device), task);
            return {
              loss: forwarded.loss.item(),
              score: forwarded.score,
              batchSize: forwarded.prepared.batchSize,
              outcomes: sampleOutcomes(task.type, forwarded.logits, forwarded.target),
            };
          } catch (error) {
            throw new Error(
              `${task.name} batch ${index} (items ${batch.indices[0]}..${batch.indices[batch.indices.length - 1]}): ${error instanceof Error ? error.message : String(error)}`,
              { cause: error },
            );
          }
        }),
      );
      lossSum += step.loss * step.batchSize;
      scoreSum += step.score;
      count += step.batchSize;
      if (step.outcomes.iou) iouSum += step.outcomes.iou.reduce((sum, iou) => sum + iou, 0);
      if (collect) results.push(...batchRecords(task, step.outcomes, sampleIds(batch), options.label2ans));
      predictions.push(...step.outcomes.predicted);
      options.onProgress?.(index + 1, total);
    }
  } finally {
    model.train(wasTraining);
  }
  if (count === 0) throw new Error(`${task.name}: the loader gave no samples`);
  const score = scoreSum / count;
  const metrics: Record<string, number> = { [METRIC_OF_TYPE[task.type]]: score };
  if (task.type === 'V-logit') metrics.mean_iou = iouSum / count;
  return { loss: lossSum / count, score, count, metrics, results, others: [], predictions };
}
