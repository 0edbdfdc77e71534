// One task's batch through the model: the reference's per-`process` input
// reshaping, the task token, and the per-`type` loss and batch score
// (vilbert/task_utils.py ForwardModelsTrain / ForwardModelsVal).
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import type { BertInputs } from '../model/bert-model.js';
import type { VILBertForVLTasks, VLHead, VLTaskOutputs } from '../model/vilbert.js';
import type { TaskProcess, TaskType } from '../data/task-registry.js';

const { F } = torch;

/** A collated batch, in the reference's tuple slots. */
export interface TaskBatch {
  features: Tensor;
  spatials: Tensor;
  image_mask: Tensor;
  question: Tensor;
  target: Tensor;
  input_mask: Tensor;
  segment_ids: Tensor;
  co_attention_mask?: Tensor;
  question_id?: Tensor;
  /** Visual7w and GuessWhatPointing only: the candidate boxes, as indices after the first 101 regions. */
  multiple_choice_ids?: Tensor;
}

export interface PreparedBatch {
  inputs: BertInputs;
  /** Samples in the original batch (before any flattening). */
  batchSize: number;
  /** Options per sample for VL-logit tasks. */
  numOptions: number;
  target: Tensor;
}

const HEAD_OF_TYPE: Record<TaskType, VLHead> = {
  'VL-classifier': 'vil_prediction',
  'VL-classifier-GQA': 'vil_prediction_gqa',
  'VL-logit': 'vil_logit',
  'V-logit': 'vision_logit',
  'V-logit-mc': 'vision_logit',
  'VL-binary-classifier': 'vil_binary_prediction',
  'VL-tri-classifier': 'vil_tri_prediction',
};

export function headOf(type: TaskType): VLHead {
  const head = HEAD_OF_TYPE[type];
  if (!head) throw new Error(`unknown task type '${String(type)}'`);
  return head;
}

/** [B, ...rest] -> [B*K, ...rest], each sample repeated K times in a row. */
function repeatEach(x: Tensor, K: number): Tensor {
  const [B, ...rest] = x.shape as [number, ...number[]];
  return x
    .unsqueeze(1)
    .expand([B, K, ...rest])
    .contiguous()
    .view([B * K, ...rest]);
}

/** Merges the first two dimensions: [B, K, ...rest] -> [B*K, ...rest]. */
function mergeLeading(x: Tensor): Tensor {
  const [B, K, ...rest] = x.shape as [number, number, ...number[]];
  return x.reshape([B * K, ...rest]);
}

/** The reshaping of one `process` and the [B', 1] task-token column. */
export function prepareBatch(batch: TaskBatch, process: TaskProcess, taskNumber: number): PreparedBatch {
  const batchSize = batch.features.size(0);
  let { features, spatials, image_mask: imageMask, question, input_mask: inputMask, segment_ids: segmentIds } = batch;
  let target = batch.target;
  let numOptions = question.ndim > 2 ? question.size(1) : 1;
  switch (process) {
    case 'normal':
      break;
    case 'expand': // VCR: one image, K (question, answer) texts
      features = repeatEach(features, numOptions);
      spatials = repeatEach(spatials, numOptions);
      imageMask = repeatEach(imageMask, numOptions);
      question = mergeLeading(question);
      inputMask = mergeLeading(inputMask);
      segmentIds = mergeLeading(segmentIds);
      break;
    case 'retrieval': // [B, 4, ...] candidates -> 4B rows
      features = mergeLeading(features);
      spatials = mergeLeading(spatials);
      imageMask = mergeLeading(imageMask);
      question = mergeLeading(question);
      inputMask = mergeLeading(inputMask);
      segmentIds = mergeLeading(segmentIds);
      break;
    case 'nlvr': {
      // [B, 2R] packed image pair -> rows 2b (left) and 2b+1 (right), the text twice
      const R = features.size(1) / 2;
      const L = question.size(1);
      features = features.view(2 * batchSize, R, features.size(2));
      spatials = spatials.view(2 * batchSize, R, spatials.size(2));
      imageMask = imageMask.view(2 * batchSize, R);
      question = question.repeat(1, 2).view(2 * batchSize, L);
      inputMask = inputMask.repeat(1, 2).view(2 * batchSize, L);
      segmentIds = segmentIds.repeat(1, 2).view(2 * batchSize, L);
      numOptions = L;
      break;
    }
    case 'dialog': {
      // VisDial: [B, rounds, options, L] texts, the image for every (round, option)
      const rounds = question.size(1);
      const options = question.size(2);
      const L = question.size(3);
      const expandImage = (x: Tensor) => {
        const [B, ...rest] = x.shape as [number, ...number[]];
        return x
          .unsqueeze(1)
          .unsqueeze(1)
          .expand([B, rounds, options, ...rest])
          .contiguous()
          .view([B * rounds * options, ...rest]);
      };
      features = expandImage(features);
      spatials = expandImage(spatials);
      imageMask = expandImage(imageMask);
      question = question.reshape(-1, L);
      inputMask = inputMask.reshape(-1, L);
      segmentIds = segmentIds.reshape(-1, L);
      target = target.reshape(-1);
      numOptions = options;
      return {
        inputs: {
          inputIds: question,
          imageFeatures: features,
          imageLocations: spatials,
          tokenTypeIds: segmentIds,
          attentionMask: inputMask,
          imageAttentionMask: imageMask,
          taskIds: torch.full([question.size(0), 1], taskNumber, { dtype: 'int64' }),
        },
        batchSize: batchSize * rounds,
        numOptions,
        target,
      };
    }
    default:
      throw new Error(`unknown task process '${String(process)}'`);
  }
  const taskIds = torch.full([question.size(0), 1], taskNumber, { dtype: 'int64', device: question.device });
  return {
    inputs: {
      inputIds: question,
      imageFeatures: features,
      imageLocations: spatials,
      tokenTypeIds: segmentIds,
      attentionMask: inputMask,
      imageAttentionMask: imageMask,
      taskIds,
    },
    batchSize,
    numOptions,
    target,
  };
}

export interface TaskLoss {
  loss: Tensor; // [] scalar
  /** Summed score of the batch (divide by batchSize for the training log). */
  score: number;
  /** The head output the loss used, as the model returned it. */
  output: Tensor;
  /** That output as the loss saw it (options as columns for VL-logit, the candidates for V-logit-mc). */
  logits: Tensor;
  /** The target as the loss saw it (classifier targets padded to the head's width). */
  target: Tensor;
}

/** Target value at the arg-max class, summed over the batch (compute_score_with_logits). */
function scoreAtArgmax(logits: Tensor, target: Tensor): number {
  return target.gather(1, logits.argmax(1, true)).sum().item();
}

/**
 * Soft targets of a label map smaller than the head (the heads have the
 * reference's fixed 3129 / 1533 outputs; a dataset with fewer answers, as the
 * data kit or the synthetic world, would crash the reference): the missing
 * answers get target 0. A larger label map cannot be trained and is refused.
 */
function padLabels(target: Tensor, width: number, type: TaskType): Tensor {
  const labels = target.size(1);
  if (labels === width) return target;
  if (labels > width) throw new Error(`${type}: the dataset has ${labels} answers, the head has ${width} outputs`);
  return torch.cat(
    [target, torch.zeros([target.size(0), width - labels], { dtype: target.dtype, device: target.device })],
    1,
  );
}

/** The loss and batch score of one task type from the model outputs, as the reference computes them. */
export function taskLoss(
  type: TaskType,
  outputs: VLTaskOutputs,
  prepared: PreparedBatch,
  multipleChoiceIds?: Tensor,
): TaskLoss {
  const target = prepared.target;
  const head = outputs[headOf(type)];
  if (!head) throw new Error(`the forward did not compute ${headOf(type)}, needed by ${type}`);
  return { target, ...lossOfType(type, head, target, prepared, multipleChoiceIds), output: head };
}

function lossOfType(
  type: TaskType,
  head: Tensor,
  target: Tensor,
  prepared: PreparedBatch,
  multipleChoiceIds?: Tensor,
): Omit<TaskLoss, 'output' | 'target'> & { target?: Tensor } {
  switch (type) {
    case 'VL-classifier':
    case 'VL-classifier-GQA': {
      // mean over all elements, times the classes: a per-sample sum
      const padded = padLabels(target, head.size(1), type);
      return {
        loss: F.binaryCrossEntropyWithLogits(head, padded).mul(padded.size(1)),
        score: scoreAtArgmax(head, padded),
        logits: head,
        target: padded,
      };
    }
    case 'VL-logit': {
      const logits = head.view(prepared.batchSize, prepared.numOptions); // [B, K]
      return { loss: F.crossEntropy(logits, target), score: logits.argmax(1).eq(target).sum().item(), logits };
    }
    case 'V-logit': {
      // [B, R, 1] against IoU-based targets
      const chosen = head.argmax(1); // [B, 1]
      const score = target.squeeze(2).gather(1, chosen).gt(0.5).sum().item();
      return { loss: F.binaryCrossEntropyWithLogits(head, target).mul(target.size(1)), score, logits: head };
    }
    case 'V-logit-mc': {
      // the candidates sit after the first 101 regions
      if (!multipleChoiceIds) throw new Error("V-logit-mc needs the batch's multiple_choice_ids");
      const regions = head.size(1);
      const logits = head
        .narrow(1, 101, regions - 101)
        .squeeze(2)
        .gather(1, multipleChoiceIds)
        .unsqueeze(2); // [B, C, 1]
      const score = logits.argmax(1).eq(target.argmax(1)).sum().item();
      return { loss: F.binaryCrossEntropyWithLogits(logits, target).mul(target.size(1)), score, logits };
    }
    case 'VL-binary-classifier':
    case 'VL-tri-classifier': // no multiplication by the class count, as the reference
      return { loss: F.binaryCrossEntropyWithLogits(head, target), score: scoreAtArgmax(head, target), logits: head };
  }
}

/** Forward one batch of a task and return its loss (not yet scaled) and score. */
export function forwardTask(
  model: VILBertForVLTasks,
  batch: TaskBatch,
  task: { type: TaskType; process: TaskProcess; number: number },
): TaskLoss & { prepared: PreparedBatch } {
  const prepared = prepareBatch(batch, task.process, task.number);
  const outputs = model.call(prepared.inputs, { heads: [headOf(task.type)] });
  return { ...taskLoss(task.type, outputs, prepared, batch.multiple_choice_ids), prepared };
}
