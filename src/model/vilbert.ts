// The two models of the reference: VILBertForVLTasks (12-in-1 multi-task heads)
// and BertForMultiModalPreTraining (Conceptual Captions objectives).
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import type { ViLBertConfig } from './config.js';
import { BertModel, type BertInputs, type BertModelOutput, fuse } from './bert-model.js';
import { PreTrainingHeads, type PreTrainingScores, SimpleClassifier } from './heads.js';
import { type Precision, changePrecision, inPrecision } from './precision.js';

const { nn, F } = torch;

/** Normal(0, initializer_range) for Linear and Embedding weights, zero biases, LayerNorm 1/0 (the reference's init_weights). */
export function initWeights(model: torch.Module, initializerRange: number): void {
  torch.noGrad(() => {
    for (const [, module] of model.namedModules()) {
      if (module instanceof nn.Linear) {
        module.weight.normal_(0, initializerRange);
        module.bias?.zero_();
      } else if (module instanceof nn.Embedding) {
        module.weight.normal_(0, initializerRange);
      } else if (module instanceof nn.LayerNorm) {
        module.weight.fill_(1);
        module.bias.zero_();
      }
    }
  });
}

/** Outputs of VILBertForVLTasks under the reference's names. */
export interface VLTaskOutputs {
  vil_prediction?: Tensor; // [B, 3129] VQA / GenomeQA answers
  vil_prediction_gqa?: Tensor; // [B, 1533] GQA answers
  vil_logit?: Tensor; // [B, 1] retrieval / multiple-choice score
  /** [B/2, 2] NLVR2 pair verdicts when B is even; with odd B the alignment logits [B, 2] (as the reference). */
  vil_binary_prediction?: Tensor;
  vil_tri_prediction?: Tensor; // [B, 3] entailment / GuessWhat-style
  vision_prediction?: Tensor; // [B, R, v_target_size]
  vision_logit?: Tensor; // [B, R, 1] grounding scores, padded regions -10000
  linguisic_prediction?: Tensor; // [B, T', vocab] (sic: the reference's output name)
  linguisic_logit?: Tensor; // [B, T', 1] (sic: the reference's output name)
  bert: BertModelOutput;
  /** dropout(fuse(pooled_t, pooled_v)): the input of every pooled head. */
  pooled_output_fused: Tensor;
}

export type VLHead = Exclude<keyof VLTaskOutputs, 'bert' | 'pooled_output_fused'>;

export const ALL_VL_HEADS: readonly VLHead[] = [
  'vil_prediction',
  'vil_prediction_gqa',
  'vil_logit',
  'vil_binary_prediction',
  'vil_tri_prediction',
  'vision_prediction',
  'vision_logit',
  'linguisic_prediction',
  'linguisic_logit',
];

export interface VLForwardOptions {
  /** Heads to compute (default all, as the reference). Asking for fewer skips their cost. */
  heads?: readonly VLHead[];
  outputAllEncodedLayers?: boolean;
}

export class VILBertForVLTasks extends torch.Module {
  readonly bert: BertModel;
  readonly dropout = new nn.Dropout(0.1);
  readonly cls: PreTrainingHeads;
  readonly vil_prediction: SimpleClassifier;
  readonly vil_prediction_gqa: SimpleClassifier;
  readonly vil_binary_prediction: SimpleClassifier;
  readonly vil_logit: torch.nn.Linear;
  readonly vil_tri_prediction: torch.nn.Linear;
  readonly vision_logit: torch.nn.Linear;
  readonly linguisic_logit: torch.nn.Linear; // (sic: checkpoint key)
  #precision: Precision = 'fp32';

  /** Head sizes are fixed as in the reference (its num_labels argument is ignored). */
  constructor(readonly config: ViLBertConfig) {
    super();
    const bi = config.bi_hidden_size;
    this.bert = new BertModel(config);
    this.cls = new PreTrainingHeads(config, this.bert.embeddings.word_embeddings.weight);
    this.vil_prediction = new SimpleClassifier(bi, bi * 2, 3129);
    this.vil_prediction_gqa = new SimpleClassifier(bi, bi * 2, 1533);
    this.vil_binary_prediction = new SimpleClassifier(bi * 2, bi * 2, 2);
    this.vil_logit = new nn.Linear(bi, 1);
    this.vil_tri_prediction = new nn.Linear(bi, 3);
    this.vision_logit = new nn.Linear(config.v_hidden_size, 1);
    this.linguisic_logit = new nn.Linear(config.hidden_size, 1);
    initWeights(this, config.initializer_range);
  }

  /** 'fp32' (default), 'bf16' (autocast) or 'int8' (dynamically quantized Linear layers). */
  get precision(): Precision {
    return this.#precision;
  }

  /**
   * Runs the model in another precision from now on (see ./precision.ts). bf16 can be switched
   * back; int8 quantizes every Linear layer and releases its float32 weights, for good
   * (`{ reduceRange: true }` gives PyTorch's quantize_dynamic exactly; the default uses 8-bit
   * activations). Outputs stay float32 in every precision.
   */
  setPrecision(precision: Precision, options: torch.nn.DynamicQuantizationOptions = {}): this {
    this.#precision = changePrecision(this, this.#precision, precision, options);
    return this;
  }

  forward(inputs: BertInputs, options: VLForwardOptions = {}): VLTaskOutputs {
    return inPrecision(this.#precision, () => this.#forward(inputs, options));
  }

  #forward(inputs: BertInputs, options: VLForwardOptions): VLTaskOutputs {
    const wanted = new Set(options.heads ?? ALL_VL_HEADS);
    const bert = this.bert.call(inputs, options.outputAllEncodedLayers ?? false);
    const pooled = this.dropout.call(fuse(this.config, bert.pooledText, bert.pooledImage)); // [B, bi]
    const B = pooled.size(0);
    const out: VLTaskOutputs = { bert, pooled_output_fused: pooled };
    if (wanted.has('linguisic_prediction'))
      out.linguisic_prediction = this.cls.predictions.call(bert.sequenceOutputText);
    if (wanted.has('vision_prediction'))
      out.vision_prediction = this.cls.imagePredictions.call(bert.sequenceOutputImage);
    if (wanted.has('vil_prediction')) out.vil_prediction = this.vil_prediction.call(pooled);
    if (wanted.has('vil_prediction_gqa')) out.vil_prediction_gqa = this.vil_prediction_gqa.call(pooled);
    if (wanted.has('vil_logit')) out.vil_logit = this.vil_logit.call(pooled);
    if (wanted.has('vil_tri_prediction')) out.vil_tri_prediction = this.vil_tri_prediction.call(pooled);
    if (wanted.has('vision_logit')) {
      const padding = bert.imageMask.to(pooled.dtype).neg().add(1).mul(-10000).unsqueeze(2); // [B, R, 1]
      out.vision_logit = this.vision_logit.call(this.dropout.call(bert.sequenceOutputImage)).add(padding);
    }
    if (wanted.has('linguisic_logit'))
      out.linguisic_logit = this.linguisic_logit.call(this.dropout.call(bert.sequenceOutputText));
    if (wanted.has('vil_binary_prediction')) {
      // Rows 2i and 2i+1 are the two images of pair i; an odd batch gets the alignment head, as the reference.
      out.vil_binary_prediction =
        B % 2 === 0
          ? this.vil_binary_prediction.call(pooled.view(B / 2, 2 * pooled.size(1)))
          : this.cls.alignment(bert.pooledText, bert.pooledImage);
    }
    return out;
  }
}

export interface PreTrainingLabels {
  /** [B, T] original ids at masked positions, -1 elsewhere. */
  maskedLmLabels: Tensor;
  /** [B, R-1] (no global region) 1 = masked region to predict. */
  imageLabel: Tensor;
  /** visual_target 0: [B, R-1, 1601] detector class distributions; 1 and 2: [B, R-1, 2048] features. */
  imageTarget: Tensor;
  /** [B] 0 = the caption belongs to the image, 1 = a random caption. */
  nextSentenceLabel: Tensor;
}

export interface PreTrainingLosses {
  maskedLmLoss: Tensor;
  maskedImageLoss: Tensor;
  nextSentenceLoss: Tensor;
}

export class BertForMultiModalPreTraining extends torch.Module {
  readonly bert: BertModel;
  readonly cls: PreTrainingHeads;
  #precision: Precision = 'fp32';

  constructor(readonly config: ViLBertConfig) {
    super();
    this.bert = new BertModel(config);
    this.cls = new PreTrainingHeads(config, this.bert.embeddings.word_embeddings.weight);
    initWeights(this, config.initializer_range);
  }

  get precision(): Precision {
    return this.#precision;
  }

  /** As VILBertForVLTasks.setPrecision; the losses are computed in float32 from float32 scores. */
  setPrecision(precision: Precision, options: torch.nn.DynamicQuantizationOptions = {}): this {
    this.#precision = changePrecision(this, this.#precision, precision, options);
    return this;
  }

  /** The three prediction scores (no task token: pre-training never uses one). */
  scores(inputs: BertInputs): PreTrainingScores {
    return inPrecision(this.#precision, () =>
      torch.scope(() => {
        const bert = this.bert.call({ ...inputs, taskIds: null });
        return this.cls.call(bert.sequenceOutputText, bert.sequenceOutputImage, bert.pooledText, bert.pooledImage);
      }),
    );
  }

  forward(inputs: BertInputs, labels: PreTrainingLabels): PreTrainingLosses {
    const scores = this.scores(inputs);
    const imageScores = scores.predictionScoresImage.narrow(1, 1, scores.predictionScoresImage.size(1) - 1); // drop region 0
    return {
      maskedLmLoss: F.crossEntropy(
        scores.predictionScoresText.view(-1, this.config.vocab_size),
        labels.maskedLmLabels.view(-1),
        {
          ignoreIndex: -1,
        },
      ),
      maskedImageLoss: this.maskedImageLoss(imageScores, labels.imageLabel, labels.imageTarget),
      nextSentenceLoss: F.crossEntropy(scores.seqRelationshipScore.view(-1, 2), labels.nextSentenceLabel.view(-1), {
        ignoreIndex: -1,
      }),
    };
  }

  /**
   * The masked-region loss for the configured visual target, averaged over the
   * masked regions. Deviation: with no masked region the reference divides by
   * zero (NaN); here the count is clamped to 1, so the loss is 0.
   */
  maskedImageLoss(scores: Tensor, imageLabel: Tensor, target: Tensor): Tensor {
    const masked = imageLabel.eq(1).to(scores.dtype); // [B, R']
    const count = masked.sum().clamp(1);
    switch (this.config.visual_target) {
      case 0: {
        const kl = F.klDiv(F.logSoftmax(scores, 2), target, { reduction: 'none' }); // [B, R', C]
        return kl.mul(masked.unsqueeze(2)).sum().div(count);
      }
      case 1: {
        const squared = F.mseLoss(scores, target, { reduction: 'none' }); // [B, R', 2048]
        return squared
          .mul(masked.unsqueeze(2))
          .sum()
          .div(count.mul(scores.size(2)));
      }
      case 2:
        return this.nceLoss(scores, masked, target);
      default:
        throw new Error(`visual_target must be 0, 1 or 2, got ${String(this.config.visual_target)}`);
    }
  }

  /** Noise-contrastive loss: each masked region's prediction against its own feature and sampled negatives. */
  nceLoss(scores: Tensor, masked: Tensor, target: Tensor): Tensor {
    const [B, R] = scores.shape as [number, number];
    const negatives = this.config.num_negative;
    const across = Math.floor(0.7 * negatives);
    const inside = Math.floor(0.3 * negatives);
    const rowIds = torch.arange(B, undefined, 1, { dtype: 'int64' }).view(B, 1, 1);
    const regionIds = torch.arange(R, undefined, 1, { dtype: 'int64' }).view(1, R, 1);
    // Negatives from other images: a row uniform over the other B-1 rows, any region.
    let acrossRows = torch.randint(0, Math.max(B - 1, 1), [B, R, across]);
    acrossRows = torch.where(acrossRows.eq(rowIds), B - 1, acrossRows);
    const acrossRegions = torch.randint(0, R, [B, R, across]);
    // Negatives from the same image: any other region.
    let insideRegions = torch.randint(0, Math.max(R - 1, 1), [B, R, inside]);
    insideRegions = torch.where(insideRegions.eq(regionIds), R - 1, insideRegions);
    const insideRows = rowIds.expand(B, R, inside);
    const rows = torch.cat([rowIds.expand(B, R, 1), acrossRows, insideRows], 2); // [B, R, 1 + n]
    const regions = torch.cat([regionIds.expand(B, R, 1), acrossRegions, insideRegions], 2);
    const candidates = target.index([rows, regions]); // [B, R, 1 + n, D]
    const logits = candidates.mul(scores.unsqueeze(2)).sum(3); // [B, R, 1 + n]
    const positives = torch.zeros([B * R], { dtype: 'int64' });
    const perRegion = F.crossEntropy(logits.view(B * R, -1), positives, { reduction: 'none' }).view(B, R);
    return perRegion.mul(masked).sum().div(masked.sum().clamp(1));
  }
}

/** train_concap's objective 1: no masked-word or masked-region targets on mismatched pairs. */
export function dropMismatchedLabels(labels: Tensor, isNext: Tensor): Tensor {
  const aligned = isNext.eq(0).unsqueeze(1).to(labels.dtype); // [B, 1]
  const kept = labels.mul(aligned);
  return kept.maskedFill(kept.eq(0), -1);
}
