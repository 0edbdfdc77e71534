// What the per-task writers share: where the world is written, its options, and what each
// writer reports back for vilbert_tasks.yml and world.json.
import type { TaskConfig } from '../data/task-registry.js';
import type { BertTokenizer } from '../text/index.js';
import type { FeatureModel } from './features.js';

/** Sizes and knobs of a world (all defaulted by resolveWorldOptions). */
export interface WorldOptions {
  seed: number;
  /** Train images per image pool (COCO, Visual Genome, Flickr30k; NLVR2 has twice as many, in pairs). */
  images: number;
  /** Val images per pool. */
  valImages: number;
  /** Per pool, images listed in its *_test_ids.npy that train annotations also use (dropped by cleaning). At least 1 (GenomeQA's val tail needs them). */
  heldOutImages: number;
  /** Train / val images of the pointing pools (Visual7w, GuessWhat), which carry 100 detector boxes each. */
  pointingImages: number;
  pointingValImages: number;
  /** Detector boxes per image outside the pointing pools; max_region_num is this + 1. */
  boxes: number;
  minObjects: number;
  maxObjects: number;
  /** Questions (VQA, GenomeQA, GQA, Visual7w, SNLI-VE hypotheses) per image. */
  questionsPerImage: number;
  /** Retrieval captions per image. */
  captionsPerImage: number;
  /** NLVR2 statements per image pair. */
  statementsPerPair: number;
  /** Standard deviation of the detector noise added to every feature. */
  noise: number;
  /** Conceptual Captions train / val images (36 regions each). */
  conceptCaptionsImages: number;
  conceptCaptionsValImages: number;
}

export interface WorldContext {
  /** The folder being written; the registry's paths are relative to it. */
  root: string;
  options: WorldOptions;
  tokenizer: BertTokenizer;
  model: FeatureModel;
}

/** What a task writer reports. */
export interface TaskSummary {
  /** vilbert_tasks.yml key, e.g. 'TASK1'. */
  key: string;
  name: string;
  /** The registry fields the world decides (paths, max_seq_length, max_region_num, splits). */
  registry: Partial<TaskConfig>;
  /** Items of the train and val splits as the loaders yield them (cleaning on). */
  train: number;
  val: number;
  /** What chance refers to. */
  metric: string;
  /** The score of a model that sees neither text nor image, on val. */
  chance: number;
  /** Best score seeing only the text (fitted on train) / only the image (in-sample on val). */
  textOnly?: number;
  imageOnly?: number;
  /** Best score seeing only the question's type (the majority answer per type, fitted on train; QA tasks). */
  questionType?: number;
  /** Answer classes (classification tasks). */
  answers?: number;
  /** Candidates per item: 4 (Visual7w), the mean objects per image (GuessWhat), the val images ranked (retrieval). */
  candidates?: number;
}

/** Longest text in word pieces, [CLS] and [SEP] included: the task's max_seq_length. */
export function sequenceLength(context: WorldContext, texts: Iterable<string>): number {
  let longest = 0;
  for (const text of texts) longest = Math.max(longest, context.tokenizer.tokenize(text).length);
  return longest + 2;
}
