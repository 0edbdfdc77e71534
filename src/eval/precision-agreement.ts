// What a lower precision costs on a task: its score beside fp32's, and how often it makes
// the same prediction (the same answer, region, choice, candidate or verdict) as fp32.
import type { Precision } from '../model/precision.js';
import type { TaskEvaluation } from './evaluate.js';

export interface PrecisionRow {
  task: string;
  samples: number;
  metric: string;
  /** The task's score in each precision compared (0..1). */
  scores: Partial<Record<Precision, number>>;
  /** The share of samples predicted as in the baseline precision (0..1; 1 for the baseline itself). */
  agreement: Partial<Record<Precision, number>>;
}

/** The share of positions where two prediction lists agree; refuses lists of different lengths. */
export function agreement(baseline: readonly number[], other: readonly number[]): number {
  if (baseline.length !== other.length)
    throw new RangeError(`cannot compare ${other.length} predictions with ${baseline.length}`);
  if (baseline.length === 0) return 1;
  let same = 0;
  for (let i = 0; i < baseline.length; i++) if (baseline[i] === other[i]) same += 1;
  return same / baseline.length;
}

/**
 * One row per task from its evaluations in several precisions (each map task -> evaluation,
 * the tasks in the baseline's order); agreement is counted against `baseline` (default fp32).
 */
export function comparePrecisions(
  evaluations: ReadonlyMap<Precision, ReadonlyMap<string, TaskEvaluation>>,
  baseline: Precision = 'fp32',
): PrecisionRow[] {
  const base = evaluations.get(baseline);
  if (base === undefined) throw new Error(`no ${baseline} evaluation to compare with`);
  return [...base].map(([task, reference]) => {
    const row: PrecisionRow = {
      task,
      samples: reference.count,
      metric: Object.keys(reference.metrics)[0] ?? 'score',
      scores: {},
      agreement: {},
    };
    for (const [precision, byTask] of evaluations) {
      const evaluation = byTask.get(task);
      if (evaluation === undefined) throw new Error(`${task} was not evaluated in ${precision}`);
      row.scores[precision] = evaluation.score;
      row.agreement[precision] = agreement(reference.predictions, evaluation.predictions);
    }
    return row;
  });
}
