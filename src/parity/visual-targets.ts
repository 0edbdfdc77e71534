// Pre-training with visual_target 1 (feature regression) and 2 (NCE over
// negatives drawn inside forward) against the reference's outputs in
// pretrain_visual_targets.safetensors (fixtures/parity MANIFEST section 9a):
// how the model is built, seeded and compared. Shared by `vilbert
// verify-parity` and test/model/pretraining-visual-targets.test.ts, so the CLI
// runs exactly the comparison the unit test pins.
import * as torch from '../torch/index.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { rawToTensor } from '../io/weights.js';
import { loadConfig } from '../model/config.js';
import type { BertInputs } from '../model/bert-model.js';
import { BertForMultiModalPreTraining, type PreTrainingLabels } from '../model/vilbert.js';
import { type Tolerance, TOLERANCES } from './compare.js';

export const VISUAL_TARGETS_FILE = 'pretrain_visual_targets.safetensors';
export const VISUAL_TARGETS = [1, 2] as const;
export type VisualTarget = (typeof VISUAL_TARGETS)[number];

/** The 2048-way image decoder the fixture generator drew (it replaces the weights files' 1601-way one). */
export const VISUAL_TARGET_DECODER = [
  'cls.imagePredictions.decoder.weight',
  'cls.imagePredictions.decoder.bias',
] as const;

/**
 * Tensors of the file that are inputs of the comparison, not outputs to check:
 * the regression/NCE targets, the decoder, and `vt2.neg_index`, the
 * reference's NCE draw (observation only). Our draw stays inside
 * BertForMultiModalPreTraining.nceLoss; it is pinned by the vt2 loss
 * instead, which another seed moves ~500x the loss tolerance.
 */
export const VISUAL_TARGET_INPUTS: readonly string[] = ['image_target', ...VISUAL_TARGET_DECODER, 'vt2.neg_index'];

export const VISUAL_TARGET_SCORES = {
  'scores.prediction_scores_t': 'predictionScoresText',
  'scores.prediction_scores_v': 'predictionScoresImage',
  'scores.seq_relationship_score': 'seqRelationshipScore',
} as const;

export const VISUAL_TARGET_LOSSES = ['masked_lm_loss', 'masked_img_loss', 'next_sentence_loss', 'loss'] as const;
export type VisualTargetLosses = Record<(typeof VISUAL_TARGET_LOSSES)[number], torch.Tensor>;

/** Receives each computed output under its fixture name; undefined = the model produced nothing for it. */
export type VisualTargetCheck = (name: string, got: torch.Tensor | undefined, tolerance: Tolerance) => void;

/** The file's NCE seed (`__metadata__.nce_seed`), or undefined when absent or not an integer. */
export function visualTargetSeed(metadata: Readonly<Record<string, string>>): number | undefined {
  const text = metadata.nce_seed;
  const seed = text === undefined || text.trim() === '' ? Number.NaN : Number(text);
  return Number.isSafeInteger(seed) && seed >= 0 ? seed : undefined;
}

/**
 * train_concap's model for `--visual_target k`: config.json with
 * v_target_size 2048 (num_negative stays the BertConfig default, 128: the
 * script never copies --num_negative), the given weights with the image
 * decoder replaced by the fixture's, eval mode. `weights` stay the caller's.
 */
export function visualTargetModel(
  configPath: string,
  weights: ReadonlyMap<string, torch.Tensor>,
  decoder: ReadonlyMap<string, RawTensor>,
  visualTarget: VisualTarget,
): { model: BertForMultiModalPreTraining; missingKeys: string[] } {
  const { config } = loadConfig(configPath, { visual_target: visualTarget, v_target_size: 2048 });
  const replaced = new Map<string, torch.Tensor>();
  try {
    for (const key of VISUAL_TARGET_DECODER) {
      const raw = decoder.get(key);
      if (!raw) throw new Error(`no ${key} for the visual_target ${visualTarget} image decoder`);
      replaced.set(key, rawToTensor(raw).keep());
    }
    const model = new BertForMultiModalPreTraining(config);
    try {
      const { missingKeys } = model.loadStateDict(new Map([...weights, ...replaced]), { strict: false });
      model.eval();
      return { model, missingKeys };
    } catch (error) {
      model.dispose();
      throw error;
    }
  } finally {
    for (const tensor of replaced.values()) tensor.dispose();
  }
}

/** The pre-training batch of inputs.safetensors (`pretrain.*`). */
export function pretrainInputs(input: (key: string) => torch.Tensor): BertInputs {
  return {
    inputIds: input('pretrain.input_ids'),
    imageFeatures: input('pretrain.image_feat'),
    imageLocations: input('pretrain.image_loc'),
    tokenTypeIds: input('pretrain.segment_ids'),
    attentionMask: input('pretrain.input_mask'),
    imageAttentionMask: input('pretrain.image_mask'),
  };
}

/** Objective-0 labels of the pre-training batch, with the visual-target fixture's image_target. */
export function visualTargetLabels(input: (key: string) => torch.Tensor, imageTarget: torch.Tensor): PreTrainingLabels {
  return {
    maskedLmLabels: input('pretrain.lm_label_ids'),
    imageLabel: input('pretrain.image_label'),
    imageTarget,
    nextSentenceLabel: input('pretrain.is_next'),
  };
}

/**
 * train_concap's objective-0 step with torch's generator seeded immediately
 * before forward, as the fixture generator did (in eval mode nothing else
 * draws, so the seed fixes NCE's negatives). Gradients are cleared first, so a
 * backward of `loss` leaves exactly its gradients; the generator's state is
 * restored afterwards, so the caller's random stream is not disturbed.
 */
export function seededPretrainingLosses(
  model: BertForMultiModalPreTraining,
  inputs: BertInputs,
  labels: PreTrainingLabels,
  seed: number,
): VisualTargetLosses {
  model.zeroGrad(true);
  const state = torch.getRngState();
  let losses;
  try {
    torch.manualSeed(seed);
    losses = model.call(inputs, labels);
  } finally {
    torch.setRngState(state);
  }
  const loss = losses.maskedLmLoss.add(losses.maskedImageLoss).add(losses.nextSentenceLoss); // img_weight 1
  return {
    masked_lm_loss: losses.maskedLmLoss,
    masked_img_loss: losses.maskedImageLoss,
    next_sentence_loss: losses.nextSentenceLoss,
    loss,
  };
}

/** Scores without labels, under no-grad (the same for both visual targets). */
export function checkVisualTargetScores(
  model: BertForMultiModalPreTraining,
  inputs: BertInputs,
  check: VisualTargetCheck,
): void {
  torch.scope(() =>
    torch.noGrad(() => {
      const scores = model.scores(inputs);
      for (const [name, field] of Object.entries(VISUAL_TARGET_SCORES)) check(name, scores[field], TOLERANCES.forward);
    }),
  );
}

/**
 * `vt<k>.*`: the three losses and their sum with the seeded draw, then the
 * gradients of the sum for every `vt<k>.grad.<param>` among `names` (the
 * fixture's tensor names). Returns the gradient names it checked.
 */
export function checkVisualTargetLosses(
  model: BertForMultiModalPreTraining,
  visualTarget: VisualTarget,
  inputs: BertInputs,
  labels: PreTrainingLabels,
  seed: number,
  names: Iterable<string>,
  check: VisualTargetCheck,
): string[] {
  const prefix = `vt${visualTarget}.grad.`;
  const gradients = [...names].filter((name) => name.startsWith(prefix));
  torch.scope(() => {
    const losses = seededPretrainingLosses(model, inputs, labels, seed);
    for (const name of VISUAL_TARGET_LOSSES) check(`vt${visualTarget}.${name}`, losses[name], TOLERANCES.loss);
    if (gradients.length === 0) return;
    losses.loss.backward();
    const parameters = new Map(model.namedParameters());
    for (const name of gradients)
      check(name, parameters.get(name.slice(prefix.length))?.grad ?? undefined, TOLERANCES.gradient);
  });
  model.zeroGrad(true);
  return gradients;
}
