// The transformer blocks of ViLBERT: text and visual self-attention layers and
// the co-attention ("connection") layer. Module and attribute names equal the
// reference's state-dict keys (attention.self.query, biOutput.q_dense1, ...).
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import type { ViLBertConfig } from './config.js';

const { nn, F } = torch;

/**
 * How LayerNorm and GeLU are computed. 'fused' (default) uses libtorch's
 * single kernels; 'reference' spells them out as the reference does without
 * apex (mean, biased variance, x*0.5*(1+erf(x/sqrt 2))), which reproduces its
 * float32 rounding exactly, at the cost of more kernels and memory traffic.
 */
export type Numerics = 'fused' | 'reference';
let numerics: Numerics = 'fused';

export function setNumerics(mode: Numerics): void {
  numerics = mode;
}

export function getNumerics(): Numerics {
  return numerics;
}

/** LayerNorm with the eps the reference uses everywhere (1e-12). */
export class BertLayerNorm extends nn.LayerNorm {
  constructor(size: number) {
    super(size, 1e-12);
  }

  override forward(input: Tensor): Tensor {
    // Under bf16 autocast a head's LayerNorm can receive bfloat16: normalise in float32.
    if (input.dtype !== this.weight.dtype) return torch.scope(() => this.forward(input.to(this.weight.dtype)));
    if (numerics === 'fused') return super.forward(input);
    const mean = input.mean(-1, true);
    const centered = input.sub(mean);
    const variance = centered.pow(2).mean(-1, true);
    return this.weight.mul(centered.div(variance.add(this.eps).sqrt())).add(this.bias);
  }
}

function gelu(input: Tensor): Tensor {
  if (numerics === 'fused') return F.gelu(input);
  return input.mul(0.5).mul(input.div(Math.SQRT2).erf().add(1));
}

export type { Activation } from './config.js';
import type { Activation } from './config.js';

export function activate(input: Tensor, activation: Activation): Tensor {
  switch (activation) {
    case 'gelu':
      return gelu(input); // exact erf form
    case 'relu':
      return F.relu(input);
    case 'swish':
      return torch.scope(() => input.mul(input.sigmoid()));
  }
}

/** GeLU as a parameterless module (the SimpleClassifier's logit_fc.1), following the numerics setting. */
export class GeLU extends torch.Module {
  forward(input: Tensor): Tensor {
    return gelu(input);
  }
}

/** [B, L, heads * d] -> [B, heads, L, d] */
function splitHeads(x: Tensor, heads: number): Tensor {
  const [B, L, width] = x.shape as [number, number, number];
  return x.view(B, L, heads, width / heads).permute(0, 2, 1, 3);
}

/** [B, heads, L, d] -> [B, L, heads * d] */
function mergeHeads(x: Tensor): Tensor {
  const [B, heads, L, d] = x.shape as [number, number, number, number];
  return x
    .permute(0, 2, 1, 3)
    .contiguous()
    .view(B, L, heads * d);
}

/** softmax(Q K^T / sqrt(d) + mask) V; the probabilities are returned for inspection. */
function attend(query: Tensor, key: Tensor, value: Tensor, additiveMask: Tensor, dropout: torch.nn.Dropout) {
  const headSize = query.size(-1);
  const scores = query.matmul(key.transpose(-1, -2)).div(Math.sqrt(headSize)).add(additiveMask); // [B, h, Lq, Lk]
  const probs = F.softmax(scores, -1);
  const context = mergeHeads(dropout.call(probs).matmul(value)); // [B, Lq, h * d]
  return { context, probs };
}

export interface AttentionSizes {
  hidden: number;
  heads: number;
  intermediate: number;
  activation: Activation;
  attentionDropout: number;
  hiddenDropout: number;
}

export function textSizes(config: ViLBertConfig): AttentionSizes {
  return {
    hidden: config.hidden_size,
    heads: config.num_attention_heads,
    intermediate: config.intermediate_size,
    activation: config.hidden_act,
    attentionDropout: config.attention_probs_dropout_prob,
    hiddenDropout: config.hidden_dropout_prob,
  };
}

export function visualSizes(config: ViLBertConfig): AttentionSizes {
  return {
    hidden: config.v_hidden_size,
    heads: config.v_num_attention_heads,
    intermediate: config.v_intermediate_size,
    activation: config.v_hidden_act,
    attentionDropout: config.v_attention_probs_dropout_prob,
    hiddenDropout: config.v_hidden_dropout_prob,
  };
}

/**
 * Self-attention (BertSelfAttention / BertImageSelfAttention). With dynamic
 * attention (visual layers only) the queries and keys are gated by the masked
 * mean of the current text states.
 */
export class SelfAttention extends torch.Module {
  readonly query: torch.nn.Linear;
  readonly key: torch.nn.Linear;
  readonly value: torch.nn.Linear;
  readonly dropout: torch.nn.Dropout;
  readonly dyLinear_q?: torch.nn.Linear;
  readonly dyLinear_k?: torch.nn.Linear;

  constructor(
    readonly sizes: AttentionSizes,
    dynamicFromText?: number,
  ) {
    super();
    this.query = new nn.Linear(sizes.hidden, sizes.hidden);
    this.key = new nn.Linear(sizes.hidden, sizes.hidden);
    this.value = new nn.Linear(sizes.hidden, sizes.hidden);
    this.dropout = new nn.Dropout(sizes.attentionDropout);
    if (dynamicFromText !== undefined) {
      this.dyLinear_q = new nn.Linear(dynamicFromText, sizes.hidden);
      this.dyLinear_k = new nn.Linear(dynamicFromText, sizes.hidden);
    }
  }

  forward(hidden: Tensor, additiveMask: Tensor, text?: { states: Tensor; mask: Tensor }) {
    let query = this.query.call(hidden); // [B, L, H]
    let key = this.key.call(hidden);
    if (this.dyLinear_q && this.dyLinear_k && text) {
      // Masked mean of the text states: [B, T, Ht] x [B, T, 1] -> [B, Ht]
      const pooled = text.states.mul(text.mask).sum(1).div(text.mask.sum(1));
      query = query.mul(this.dyLinear_q.call(pooled).sigmoid().add(1).unsqueeze(1));
      key = key.mul(this.dyLinear_k.call(pooled).sigmoid().add(1).unsqueeze(1));
    }
    const heads = this.sizes.heads;
    return attend(
      splitHeads(query, heads),
      splitHeads(key, heads),
      splitHeads(this.value.call(hidden), heads),
      additiveMask,
      this.dropout,
    );
  }
}

/** dense -> dropout -> LayerNorm(x + residual): BertSelfOutput and BertOutput. */
export class ResidualOutput extends torch.Module {
  readonly dense: torch.nn.Linear;
  readonly LayerNorm: BertLayerNorm;
  readonly dropout: torch.nn.Dropout;

  constructor(inFeatures: number, outFeatures: number, dropout: number) {
    super();
    this.dense = new nn.Linear(inFeatures, outFeatures);
    this.LayerNorm = new BertLayerNorm(outFeatures);
    this.dropout = new nn.Dropout(dropout);
  }

  forward(hidden: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.call(this.dropout.call(this.dense.call(hidden)).add(residual));
  }
}

export class Intermediate extends torch.Module {
  readonly dense: torch.nn.Linear;

  constructor(
    hidden: number,
    intermediate: number,
    readonly activation: Activation,
  ) {
    super();
    this.dense = new nn.Linear(hidden, intermediate);
  }

  forward(hidden: Tensor): Tensor {
    return activate(this.dense.call(hidden), this.activation); // [B, L, intermediate]
  }
}

export class Attention extends torch.Module {
  readonly self: SelfAttention;
  readonly output: ResidualOutput;

  constructor(sizes: AttentionSizes, dynamicFromText?: number) {
    super();
    this.self = new SelfAttention(sizes, dynamicFromText);
    this.output = new ResidualOutput(sizes.hidden, sizes.hidden, sizes.hiddenDropout);
  }

  forward(hidden: Tensor, additiveMask: Tensor, text?: { states: Tensor; mask: Tensor }) {
    const { context, probs } = this.self.call(hidden, additiveMask, text);
    return { output: this.output.call(context, hidden), probs };
  }
}

/** A post-LN transformer layer: BertLayer (text) and BertImageLayer (visual). */
export class TransformerLayer extends torch.Module {
  readonly attention: Attention;
  readonly intermediate: Intermediate;
  readonly output: ResidualOutput;

  constructor(sizes: AttentionSizes, dynamicFromText?: number) {
    super();
    this.attention = new Attention(sizes, dynamicFromText);
    this.intermediate = new Intermediate(sizes.hidden, sizes.intermediate, sizes.activation);
    this.output = new ResidualOutput(sizes.intermediate, sizes.hidden, sizes.hiddenDropout);
  }

  forward(hidden: Tensor, additiveMask: Tensor, text?: { states: Tensor; mask: Tensor }) {
    const { output: attended, probs } = this.attention.call(hidden, additiveMask, text);
    return { output: this.output.call(this.intermediate.call(attended), attended), probs };
  }
}

/**
 * BertBiAttention: text queries over image keys/values (stream 1 = image) and
 * image queries over text keys/values (stream 2 = text).
 */
export class BiAttention extends torch.Module {
  readonly query1: torch.nn.Linear;
  readonly key1: torch.nn.Linear;
  readonly value1: torch.nn.Linear;
  readonly dropout1: torch.nn.Dropout;
  readonly query2: torch.nn.Linear;
  readonly key2: torch.nn.Linear;
  readonly value2: torch.nn.Linear;
  readonly dropout2: torch.nn.Dropout;
  readonly heads: number;

  constructor(config: ViLBertConfig) {
    super();
    const bi = config.bi_hidden_size;
    this.heads = config.bi_num_attention_heads;
    this.query1 = new nn.Linear(config.v_hidden_size, bi);
    this.key1 = new nn.Linear(config.v_hidden_size, bi);
    this.value1 = new nn.Linear(config.v_hidden_size, bi);
    this.dropout1 = new nn.Dropout(config.v_attention_probs_dropout_prob);
    this.query2 = new nn.Linear(config.hidden_size, bi);
    this.key2 = new nn.Linear(config.hidden_size, bi);
    this.value2 = new nn.Linear(config.hidden_size, bi);
    this.dropout2 = new nn.Dropout(config.attention_probs_dropout_prob);
  }

  forward(image: Tensor, imageMask: Tensor, text: Tensor, textMask: Tensor) {
    const h = this.heads;
    const imageQuery = splitHeads(this.query1.call(image), h);
    const imageKey = splitHeads(this.key1.call(image), h);
    const imageValue = splitHeads(this.value1.call(image), h);
    const textQuery = splitHeads(this.query2.call(text), h);
    const textKey = splitHeads(this.key2.call(text), h);
    const textValue = splitHeads(this.value2.call(text), h);
    const textToImage = attend(textQuery, imageKey, imageValue, imageMask, this.dropout1); // context [B, T, bi]
    const imageToText = attend(imageQuery, textKey, textValue, textMask, this.dropout2); // context [B, R, bi]
    return {
      textContext: textToImage.context,
      imageContext: imageToText.context,
      probsTextToImage: textToImage.probs,
      probsImageToText: imageToText.probs,
    };
  }
}

/** BertBiOutput: q_dense1 / q_dense2 are never used but are part of the checkpoint. */
export class BiOutput extends torch.Module {
  readonly dense1: torch.nn.Linear;
  readonly LayerNorm1: BertLayerNorm;
  readonly dropout1: torch.nn.Dropout;
  readonly q_dense1: torch.nn.Linear;
  readonly dense2: torch.nn.Linear;
  readonly LayerNorm2: BertLayerNorm;
  readonly dropout2: torch.nn.Dropout;
  readonly q_dense2: torch.nn.Linear;

  constructor(config: ViLBertConfig) {
    super();
    const bi = config.bi_hidden_size;
    this.dense1 = new nn.Linear(bi, config.v_hidden_size);
    this.LayerNorm1 = new BertLayerNorm(config.v_hidden_size);
    this.dropout1 = new nn.Dropout(config.v_hidden_dropout_prob);
    this.q_dense1 = new nn.Linear(bi, config.v_hidden_size);
    this.dense2 = new nn.Linear(bi, config.hidden_size);
    this.LayerNorm2 = new BertLayerNorm(config.hidden_size);
    this.dropout2 = new nn.Dropout(config.hidden_dropout_prob);
    this.q_dense2 = new nn.Linear(bi, config.hidden_size);
  }

  forward(imageContext: Tensor, image: Tensor, textContext: Tensor, text: Tensor) {
    return {
      image: this.LayerNorm1.call(this.dropout1.call(this.dense1.call(imageContext)).add(image)),
      text: this.LayerNorm2.call(this.dropout2.call(this.dense2.call(textContext)).add(text)),
    };
  }
}

/** BertConnectionLayer: co-attention, then a feed-forward block per stream. */
export class ConnectionLayer extends torch.Module {
  readonly biattention: BiAttention;
  readonly biOutput: BiOutput;
  readonly v_intermediate: Intermediate;
  readonly v_output: ResidualOutput;
  readonly t_intermediate: Intermediate;
  readonly t_output: ResidualOutput;

  constructor(config: ViLBertConfig) {
    super();
    this.biattention = new BiAttention(config);
    this.biOutput = new BiOutput(config);
    this.v_intermediate = new Intermediate(config.v_hidden_size, config.v_intermediate_size, config.v_hidden_act);
    this.v_output = new ResidualOutput(config.v_intermediate_size, config.v_hidden_size, config.v_hidden_dropout_prob);
    this.t_intermediate = new Intermediate(config.hidden_size, config.intermediate_size, config.hidden_act);
    this.t_output = new ResidualOutput(config.intermediate_size, config.hidden_size, config.hidden_dropout_prob);
  }

  forward(image: Tensor, imageMask: Tensor, text: Tensor, textMask: Tensor) {
    const attention = this.biattention.call(image, imageMask, text, textMask);
    const mixed = this.biOutput.call(attention.imageContext, image, attention.textContext, text);
    return {
      image: this.v_output.call(this.v_intermediate.call(mixed.image), mixed.image), // [B, R, Hv]
      text: this.t_output.call(this.t_intermediate.call(mixed.text), mixed.text), // [B, T, Ht]
      probsTextToImage: attention.probsTextToImage,
      probsImageToText: attention.probsImageToText,
    };
  }
}
