// Caption -> image retrieval over a test set (eval_retrieval.py): every
// caption of RetreivalDatasetVal is scored against every image, the rank of its own
// image gives R@1/5/10, median and mean rank. Fine-tuned models score a pair by
// vil_logit; pre-trained ones (zero-shot) by the probability of "matched" from the
// alignment head.
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import type { ItemTensor, ItemValue, TaskDataset } from '../data/dataset.js';
import type { BertInputs } from '../model/bert-model.js';
import { BertForMultiModalPreTraining, type VILBertForVLTasks } from '../model/vilbert.js';
import { type RetrievalMetrics, descendingOrder, rankOf, retrievalMetrics } from './metrics.js';

const { F } = torch;

/** Image indices kept per caption in <split>_result.json. */
export const TOP_IMAGES_KEPT = 20;

export interface RetrievalOptions {
  /** The task number (7 RetrievalCOCO, 8 RetrievalFlickr30k): the task token of fine-tuned models. */
  taskNumber: number;
  /** Images per forward pass (default 500, the dataset's half of the image buffer). */
  chunkSize?: number;
  /** After each dataset item (one caption against one half of the images). */
  onProgress?: (done: number, total: number) => void;
}

export interface RetrievalEvaluation {
  numCaptions: number;
  numImages: number;
  /** [numCaptions * numImages] row-major: score of (caption, image). */
  scores: Float64Array;
  /** Per caption: the 0-based rank of its image among all images. */
  ranks: number[];
  metrics: RetrievalMetrics;
  /** <split>_result.json: per caption the top-20 image indices, best first. */
  results: number[][];
}

function tensorElement(value: ItemValue | undefined, name: string): ItemTensor {
  if (typeof value !== 'object') throw new Error(`retrieval item: '${name}' is not a tensor`);
  return value;
}

function intElement(value: ItemValue | undefined, name: string): number {
  if (typeof value !== 'number') throw new Error(`retrieval item: '${name}' is not an int`);
  return value;
}

/** Rows [start, start + n) of a [rows, ...rest] item tensor, without copying the typed array. */
function rowsOf(value: ItemTensor, start: number, n: number): Tensor {
  const [, ...rest] = value.shape;
  const width = rest.reduce((a, b) => a * b, 1);
  return torch.tensor(value.data.subarray(start * width, (start + n) * width), {
    dtype: value.dtype,
    shape: [n, ...rest],
  });
}

/** Leading image slots of a half that hold an image (unused slots of the 1000-slot buffer have an all-zero mask). */
function filledSlots(imageMask: ItemTensor): number {
  const [slots, R] = imageMask.shape as [number, number];
  const mask = imageMask.data as BigInt64Array;
  for (let slot = 0; slot < slots; slot++) {
    if (!mask.subarray(slot * R, (slot + 1) * R).some((bit) => bit !== 0n)) return slot;
  }
  return slots;
}

/** Scores of one caption against n images: [n]. */
function scoreImages(model: VILBertForVLTasks | BertForMultiModalPreTraining, inputs: BertInputs): Tensor {
  if (model instanceof BertForMultiModalPreTraining) {
    const bert = model.bert.call({ ...inputs, taskIds: null });
    return F.softmax(model.cls.alignment(bert.pooledText, bert.pooledImage), 1).select(1, 0); // P(matched)
  }
  return model.call(inputs, { heads: ['vil_logit'] }).vil_logit!.view(-1);
}

/**
 * Ranks every caption of a RetreivalDatasetVal against its images. Deviations from
 * eval_retrieval.py, which assumes exactly 1000 images and 5000 captions: the image count
 * is the number of filled buffer slots and the caption count the dataset's, so unused
 * slots are neither scored nor ranked. With config.fast_mode (set by the CLI, as the
 * reference) the caption's text stream runs once and is broadcast over the images;
 * without it the caption is repeated per image (same numbers, more work).
 */
export function evaluateRetrieval(
  model: VILBertForVLTasks | BertForMultiModalPreTraining,
  dataset: TaskDataset,
  options: RetrievalOptions,
): RetrievalEvaluation {
  const chunkSize = options.chunkSize ?? 500;
  if (!Number.isInteger(chunkSize) || chunkSize < 1)
    throw new RangeError(`chunk size must be a positive integer, got ${chunkSize}`);
  const numCaptions = dataset.length / 2;
  if (!Number.isInteger(numCaptions) || numCaptions < 1)
    throw new Error(`a retrieval ranking dataset has two items per caption, got length ${dataset.length}`);
  const device = model.parameters()[0]?.device ?? 'cpu';
  const fast = model.config.fast_mode;
  // Scores by caption and buffer slot; slots past the last filled one are cut at the end.
  const slotScores: Float64Array[] = Array.from({ length: numCaptions }, () => new Float64Array(0));
  const ownImage = new Array<number>(numCaptions).fill(-1);
  let numImages = 0;

  const wasTraining = model.training;
  model.eval();
  try {
    for (let index = 0; index < dataset.length; index++) {
      const { values } = dataset.item(index);
      const caption = intElement(values.caption_idx, 'caption_idx');
      const half = intElement(values.image_idx, 'image_idx');
      const features = tensorElement(values.features_all, 'features_all');
      const spatials = tensorElement(values.spatials_all, 'spatials_all');
      const imageMask = tensorElement(values.image_mask_all, 'image_mask_all');
      const target = tensorElement(values.target_all, 'target_all').data as Float32Array;
      const slotsPerHalf = features.shape[0]!;
      const offset = half * slotsPerHalf;
      const filled = filledSlots(imageMask);
      if (filled > 0) numImages = Math.max(numImages, offset + filled);
      if (slotScores[caption]!.length === 0) slotScores[caption] = new Float64Array(2 * slotsPerHalf);
      const own = target.subarray(0, filled).indexOf(1);
      if (own >= 0 && ownImage[caption]! < 0) ownImage[caption] = offset + own;

      for (let start = 0; start < filled; start += chunkSize) {
        const n = Math.min(chunkSize, filled - start);
        const chunk = torch.scope(() =>
          torch.inferenceMode(() => {
            const text = (name: string) => {
              const { data, dtype, shape } = tensorElement(values[name], name);
              const row = torch.tensor(data, { dtype, shape: [1, ...shape] }).to(device); // [1, L]
              return fast ? row : row.expand(n, row.size(1));
            };
            const inputIds = text('caption');
            const inputs: BertInputs = {
              inputIds,
              attentionMask: text('input_mask'),
              tokenTypeIds: text('segment_ids'),
              imageFeatures: rowsOf(features, start, n).to(device), // [n, R, 2048]
              imageLocations: rowsOf(spatials, start, n).to(device), // [n, R, 5]
              imageAttentionMask: rowsOf(imageMask, start, n).to(device), // [n, R]
              taskIds: torch.full([inputIds.size(0), 1], options.taskNumber, { dtype: 'int64', device }),
            };
            return scoreImages(model, inputs).to('cpu').toNumbers();
          }),
        );
        slotScores[caption]!.set(chunk, offset + start);
      }
      options.onProgress?.(index + 1, dataset.length);
    }
  } finally {
    model.train(wasTraining);
  }

  const scores = new Float64Array(numCaptions * numImages);
  const ranks: number[] = [];
  const results: number[][] = [];
  slotScores.forEach((row, caption) => {
    const image = ownImage[caption]!;
    if (image < 0)
      throw new Error(`caption ${caption}: none of the ${numImages} images is marked as its image (target_all)`);
    const own = row.subarray(0, numImages);
    scores.set(own, caption * numImages);
    ranks.push(rankOf(own, image));
    results.push(descendingOrder(own).slice(0, TOP_IMAGES_KEPT));
  });
  return { numCaptions, numImages, scores, ranks, metrics: retrievalMetrics(ranks), results };
}
