// Prediction heads: the pre-training heads (masked words, masked regions,
// alignment) and the multi-task classifiers of 12-in-1.
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import type { ViLBertConfig } from './config.js';
import { type Activation, BertLayerNorm, GeLU, activate } from './layers.js';
import { fuse } from './bert-model.js';

const { nn } = torch;

/** dense -> activation -> LayerNorm (BertPredictionHeadTransform and its image twin). */
export class PredictionHeadTransform extends torch.Module {
  readonly dense: torch.nn.Linear;
  readonly LayerNorm: BertLayerNorm;

  constructor(
    hidden: number,
    readonly activation: Activation,
  ) {
    super();
    this.dense = new nn.Linear(hidden, hidden);
    this.LayerNorm = new BertLayerNorm(hidden);
  }

  forward(hidden: Tensor): Tensor {
    return this.LayerNorm.call(activate(this.dense.call(hidden), this.activation));
  }
}

/** Masked-word logits; the decoder weight is the word-embedding matrix (tied). */
export class LMPredictionHead extends torch.Module {
  readonly bias: torch.Parameter;
  readonly transform: PredictionHeadTransform;
  readonly decoder: torch.nn.Linear;

  constructor(config: ViLBertConfig, wordEmbeddings: torch.Parameter) {
    super();
    this.bias = new torch.Parameter(torch.scope(() => torch.zeros([config.vocab_size])));
    this.transform = new PredictionHeadTransform(config.hidden_size, config.hidden_act);
    this.decoder = new nn.Linear(config.hidden_size, config.vocab_size, { bias: false, tiedWeight: wordEmbeddings });
  }

  forward(hidden: Tensor): Tensor {
    return this.decoder.call(this.transform.call(hidden)).add(this.bias); // [B, T, vocab]
  }
}

/** Masked-region predictions (v_target_size outputs); the transform uses hidden_act, as the reference. */
export class ImagePredictionHead extends torch.Module {
  readonly transform: PredictionHeadTransform;
  readonly decoder: torch.nn.Linear;

  constructor(config: ViLBertConfig) {
    super();
    this.transform = new PredictionHeadTransform(config.v_hidden_size, config.hidden_act);
    this.decoder = new nn.Linear(config.v_hidden_size, config.v_target_size);
  }

  forward(hidden: Tensor): Tensor {
    return this.decoder.call(this.transform.call(hidden)); // [B, R, v_target_size]
  }
}

export interface PreTrainingScores {
  predictionScoresText: Tensor; // [B, T, vocab]
  predictionScoresImage: Tensor; // [B, R, v_target_size]
  seqRelationshipScore: Tensor; // [B, 2]
}

/** BertPreTrainingHeads. */
export class PreTrainingHeads extends torch.Module {
  readonly predictions: LMPredictionHead;
  readonly bi_seq_relationship: torch.nn.Linear;
  readonly imagePredictions: ImagePredictionHead;
  readonly dropout = new nn.Dropout(0.1);

  constructor(
    readonly config: ViLBertConfig,
    wordEmbeddings: torch.Parameter,
  ) {
    super();
    this.predictions = new LMPredictionHead(config, wordEmbeddings);
    this.bi_seq_relationship = new nn.Linear(config.bi_hidden_size, 2);
    this.imagePredictions = new ImagePredictionHead(config);
  }

  /** The alignment logits alone (cheap: no vocabulary-wide decoder). */
  alignment(pooledText: Tensor, pooledImage: Tensor): Tensor {
    return torch.scope(() =>
      this.bi_seq_relationship.call(this.dropout.call(fuse(this.config, pooledText, pooledImage))),
    );
  }

  forward(sequenceText: Tensor, sequenceImage: Tensor, pooledText: Tensor, pooledImage: Tensor): PreTrainingScores {
    return {
      predictionScoresText: this.predictions.call(sequenceText),
      predictionScoresImage: this.imagePredictions.call(sequenceImage),
      seqRelationshipScore: this.alignment(pooledText, pooledImage),
    };
  }
}

/** Linear -> GeLU -> LayerNorm -> Linear, keys logit_fc.0/2/3 (no weight norm, no dropout). */
export class SimpleClassifier extends torch.Module {
  readonly logit_fc: torch.nn.Sequential;

  constructor(inFeatures: number, hidden: number, outFeatures: number) {
    super();
    this.logit_fc = new nn.Sequential([
      new nn.Linear(inFeatures, hidden),
      new GeLU(),
      new BertLayerNorm(hidden),
      new nn.Linear(hidden, outFeatures),
    ]);
  }

  forward(input: Tensor): Tensor {
    return this.logit_fc.call(input);
  }
}
