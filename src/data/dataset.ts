// What a task dataset returns: per item the reference's `return (...)` tuple,
// by name and in its order, as typed arrays (no engine tensors: batching
// turns them into tensors).
import type { ImageFeatureReader } from './features.js';
import type { BertTokenizer } from '../text/index.js';
import type { TaskConfig } from './task-registry.js';

export interface ItemTensor {
  dtype: 'float32' | 'float64' | 'int64';
  shape: number[];
  data: Float32Array | Float64Array | BigInt64Array;
}

/** An int64 item tensor: a BigInt64Array is taken as it is, numbers are converted. */
export function int64Tensor(shape: number[], values: ArrayLike<number> | BigInt64Array): ItemTensor {
  return {
    dtype: 'int64',
    shape,
    data: values instanceof BigInt64Array ? values : BigInt64Array.from(Array.from(values), BigInt),
  };
}

export function float32Tensor(shape: number[], data: Float32Array): ItemTensor {
  return { dtype: 'float32', shape, data };
}

/** The all-zero co_attention_mask every downstream dataset returns. */
export function zeroCoAttentionMask(shape: number[]): ItemTensor {
  return float32Tensor(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
}

/**
 * The reference's return order of a question-style item (VQA, GQA, GenomeQA, NLVR2,
 * SNLI-VE, ...): the tuple ForwardModelsTrain unpacks by position. The pointing tasks add
 * `multiple_choice_ids` before `co_attention_mask`; retrieval names its slots otherwise.
 */
export const QUESTION_ITEM_ORDER = [
  'features',
  'spatials',
  'image_mask',
  'question',
  'target',
  'input_mask',
  'segment_ids',
  'co_attention_mask',
  'question_id',
] as const;

/** A tensor element, or a Python scalar the reference returns (question_id, image_id, target). */
export type ItemValue = ItemTensor | number | string;

export interface DatasetItem {
  /** Element names in the reference's return order, e.g. features, spatials, image_mask, question, ... */
  readonly order: readonly string[];
  readonly values: Readonly<Record<string, ItemValue>>;
}

export interface TaskDataset {
  readonly length: number;
  /** Label count of classification tasks (len(label2ans)); 0 elsewhere. */
  readonly numLabels: number;
  /**
   * The item at `index`. With `transient`, its tensors may share memory with the next
   * transient item's (the dataset reuses one set of arrays): the caller copies what it
   * keeps before asking again, as collation does. Datasets without such arrays ignore it.
   */
  item(index: number, transient?: boolean): DatasetItem;
  /**
   * Restarts the dataset's random draws (retrieval negatives) from a seed. The
   * loader calls it before each batch when asked to, so that a batch's draws
   * depend on its sampler position alone and a resumed run draws the same.
   */
  reseed?(seed: number): void;
}

export interface DatasetOptions {
  task: TaskConfig;
  /** Which split ('trainval', 'minval', 'train', 'val', 'dev', ...). */
  split: string;
  /** 'train' / 'val' build DatasetMapTrain classes; 'eval' the DatasetMapEval ones (retrieval ranking). */
  phase: 'train' | 'val' | 'eval';
  /** Working directory the registry's relative paths are resolved against (the reference's cwd). */
  root: string;
  tokenizer: BertTokenizer;
  /** features_h5path1 (detector) and features_h5path2 (GT boxes) readers, null where the registry has ''. */
  features: ImageFeatureReader | null;
  gtFeatures: ImageFeatureReader | null;
  /** --clean_train_sets (default true): drop items on test-set images where the reference does. */
  cleanDatasets: boolean;
  /** Write token caches into dataroot/cache as the reference does (default true). */
  writeCache?: boolean;
}

export type DatasetFactory = (options: DatasetOptions) => TaskDataset;
