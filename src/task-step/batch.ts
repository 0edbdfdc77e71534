// A collated loader batch (typed arrays) as engine tensors in the slots the
// reference's ForwardModelsTrain/Val unpack by position:
//   features, spatials, image_mask, question, target, input_mask, segment_ids,
//   [multiple_choice_ids,] co_attention_mask, question_id
// (multiple_choice_ids only for the Visual7w / GuessWhatPointing datasets).
import * as torch from '../torch/index.js';
import type { Batch } from '../data/loader.js';
import { QUESTION_ITEM_ORDER, type ItemTensor } from '../data/dataset.js';
import type { TaskBatch } from './step.js';

const POINTING_SLOTS = [
  'features',
  'spatials',
  'image_mask',
  'question',
  'target',
  'input_mask',
  'segment_ids',
  'multiple_choice_ids',
  'co_attention_mask',
  'question_id',
] as const;

function isItemTensor(value: ItemTensor | string[] | undefined): value is ItemTensor {
  return value !== undefined && !Array.isArray(value);
}

/** One collated element as a tensor (copied into engine memory). */
export function itemToTensor(value: ItemTensor): torch.Tensor {
  return torch.tensor(value.data, { dtype: value.dtype, shape: value.shape });
}

/**
 * The batch's elements in the reference's positional slots. The element names
 * of a dataset's tuple differ (retrieval says `caption` where VQA says
 * `question`), so slots are matched by position, not name.
 */
export function toTaskBatch(batch: Batch): TaskBatch {
  const pointing = batch.order.includes('multiple_choice_idx') || batch.order.includes('multiple_choice_ids');
  const slots = pointing ? POINTING_SLOTS : QUESTION_ITEM_ORDER;
  if (batch.order.length < slots.length - 1) {
    throw new Error(
      `a task batch needs at least ${slots.length - 1} elements (${slots.join(', ')}), got ${batch.order.join(', ')}`,
    );
  }
  const result: Record<string, torch.Tensor> = {};
  slots.forEach((slot, position) => {
    const name = batch.order[position];
    if (name === undefined) return; // a tuple without the trailing id
    const value = batch.values[name];
    if (!isItemTensor(value)) return; // string ids (GQA question ids) stay on the JS side
    result[slot] = itemToTensor(value);
  });
  slots.slice(0, 7).forEach((slot, position) => {
    if (!result[slot]) throw new Error(`batch element '${slot}' (position ${position}) is missing or not a tensor`);
  });
  return result as unknown as TaskBatch;
}
