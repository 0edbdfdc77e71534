// `vilbert-ts/eval`: evaluation as eval_tasks.py and eval_retrieval.py do it (docs/API.md;
// the result files in docs/TRAINING.md).
//
//   const result = await evaluateTask(model, loader, { name: 'VQA', type: 'VL-classifier', process: 'normal', number: 1 }, { label2ans });
//   console.log(result.metrics, result.results.length);

export {
  /** One task over a whole loader, in eval and inference mode: loss, score, metrics and the reference's result records. */
  evaluateTask,
  /** evaluateTask's options (label2ans to name answers, collectResults, onProgress). */
  type EvaluateOptions,
  /** What evaluateTask returns. */
  type TaskEvaluation,
  /** The task as evaluateTask needs it: name, type, process and number. */
  type EvaluatedTask,
} from './evaluate.js';
export {
  /** Caption-to-image retrieval over a RetreivalDatasetVal: scores, ranks, R@1/5/10, median and mean rank. */
  evaluateRetrieval,
  /** evaluateRetrieval's options (task number, chunk size, onProgress). */
  type RetrievalOptions,
  /** What evaluateRetrieval returns. */
  type RetrievalEvaluation,
} from './retrieval.js';
export {
  /** The per-sample predictions and scores of one batch, from taskLoss's logits and target. */
  sampleOutcomes,
  /** What sampleOutcomes returns. */
  type SampleOutcomes,
  /** The metric name each task type's score is reported under. */
  METRIC_OF_TYPE,
  /** eval_retrieval.py's summary of 0-based ranks. */
  retrievalMetrics,
  /** R@1/5/10, median and mean rank. */
  type RetrievalMetrics,
} from './metrics.js';
export {
  /** Per-task scores in several precisions with each one's agreement with fp32 (eval-tasks --compare_precisions). */
  comparePrecisions,
  /** The share of samples two prediction lists agree on. */
  agreement,
  /** One task's row of comparePrecisions. */
  type PrecisionRow,
} from './precision-agreement.js';
