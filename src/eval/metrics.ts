// Per-sample outcomes of each task type (what the reference's EvaluatingModel
// writes into <split>_result.json) and the ranking metrics of eval_retrieval.py.
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import type { TaskType } from '../data/task-registry.js';

const { F } = torch;

/** One batch's predictions, one entry per (original, unflattened) sample. */
export interface SampleOutcomes {
  /** Arg-max over the answers, options, regions or candidates (first index on ties, as torch.max). */
  predicted: number[];
  /**
   * What the sample adds to the batch score: the soft target at the prediction for the
   * classifiers (VQA soft score, 0/1 for one-hot targets), 1/0 for a right/wrong choice,
   * and for V-logit 1 when the chosen region's IoU is > 0.5 (strict).
   */
  score: number[];
  /** V-logit: the target (the IoU in val/test splits) of the chosen region. */
  iou?: number[];
  /** VL-logit: softmax over the K options. */
  probabilities?: number[][];
}

/**
 * The per-sample view of taskLoss's batch score, from the same `logits` and target
 * taskLoss uses (TaskLoss.logits, TaskLoss.target): Σ score equals its score.
 * Ties go to the first index (torch.max).
 */
export function sampleOutcomes(type: TaskType, logits: Tensor, target: Tensor): SampleOutcomes {
  return torch.scope(() => {
    switch (type) {
      case 'VL-classifier':
      case 'VL-classifier-GQA':
      case 'VL-binary-classifier':
      case 'VL-tri-classifier': {
        // logits [B, C], target [B, C] (taskLoss's, padded to the head)
        const predicted = logits.argmax(1, true); // [B, 1]
        return { predicted: predicted.toNumbers(), score: target.gather(1, predicted).toNumbers() };
      }
      case 'VL-logit': {
        // logits [B, K], target [B] option index
        const predicted = logits.argmax(1); // [B]
        const K = logits.size(1);
        const flat = F.softmax(logits, 1).toNumbers();
        const probabilities = Array.from({ length: logits.size(0) }, (_, b) => flat.slice(b * K, (b + 1) * K));
        return { predicted: predicted.toNumbers(), score: predicted.eq(target).toNumbers(), probabilities };
      }
      case 'V-logit': {
        // logits, target [B, R, 1]
        const predicted = logits.argmax(1); // [B, 1]
        const iou = target.squeeze(2).gather(1, predicted); // [B, 1]
        return { predicted: predicted.toNumbers(), score: iou.gt(0.5).toNumbers(), iou: iou.toNumbers() };
      }
      case 'V-logit-mc': {
        // logits, target [B, C, 1] over the candidates
        const predicted = logits.argmax(1); // [B, 1]
        return { predicted: predicted.toNumbers(), score: predicted.eq(target.argmax(1)).toNumbers() };
      }
      default:
        throw new Error(`unknown task type '${String(type)}'`);
    }
  });
}

/** The name under which each type's epoch score (Σ score / Σ B) is reported. */
export const METRIC_OF_TYPE: Readonly<Record<TaskType, string>> = {
  'VL-classifier': 'vqa_score',
  'VL-classifier-GQA': 'accuracy',
  'VL-logit': 'accuracy',
  'V-logit': 'accuracy_iou>0.5',
  'V-logit-mc': 'accuracy',
  'VL-binary-classifier': 'accuracy',
  'VL-tri-classifier': 'accuracy',
};

// ---- retrieval ----------------------------------------------------------------------

/**
 * Image indices by descending score: numpy's argsort(-scores). Equal scores keep index
 * order (numpy's default quicksort leaves their order unspecified).
 */
export function descendingOrder(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
}

/** 0-based position of `image` in descendingOrder(scores). */
export function rankOf(scores: ArrayLike<number>, image: number): number {
  const own = scores[image];
  if (own === undefined) throw new RangeError(`image ${image} outside the ${scores.length} scored images`);
  let rank = 0;
  for (let i = 0; i < scores.length; i++) {
    if (scores[i]! > own || (scores[i] === own && i < image)) rank += 1;
  }
  return rank;
}

export interface RetrievalMetrics {
  /** Percent of captions whose image ranks first, in the top 5, in the top 10. */
  r1: number;
  r5: number;
  r10: number;
  /** floor(median(rank) + 1), ranks 0-based. */
  medr: number;
  /** mean(rank) + 1. */
  meanr: number;
}

/** eval_retrieval.py's summary of 0-based ranks. */
export function retrievalMetrics(ranks: readonly number[]): RetrievalMetrics {
  const n = ranks.length;
  if (n === 0) throw new RangeError('no ranks to summarise');
  const within = (k: number) => (100 * ranks.filter((rank) => rank < k).length) / n;
  const sorted = [...ranks].sort((a, b) => a - b);
  const median = n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return {
    r1: within(1),
    r5: within(5),
    r10: within(10),
    medr: Math.floor(median + 1),
    meanr: ranks.reduce((total, rank) => total + rank, 0) / n + 1,
  };
}
