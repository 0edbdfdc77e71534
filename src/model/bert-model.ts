// BertModel of ViLBERT: text and image embeddings, the two-stream encoder with
// its co-attention schedule, and the poolers (reference: vilbert/vilbert.py).
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import { checkConfig, type ViLBertConfig } from './config.js';
import { BertLayerNorm, ConnectionLayer, TransformerLayer, textSizes, visualSizes } from './layers.js';

const { nn, F } = torch;

/** Rows of the task-token table; task numbers 1..18 are used. */
export const TASK_EMBEDDING_ROWS = 20;

export class BertEmbeddings extends torch.Module {
  readonly word_embeddings: torch.nn.Embedding;
  readonly position_embeddings: torch.nn.Embedding;
  readonly token_type_embeddings: torch.nn.Embedding;
  readonly LayerNorm: BertLayerNorm;
  readonly dropout: torch.nn.Dropout;
  readonly task_embeddings?: torch.nn.Embedding;

  constructor(config: ViLBertConfig) {
    super();
    this.word_embeddings = new nn.Embedding(config.vocab_size, config.hidden_size, 0);
    this.position_embeddings = new nn.Embedding(config.max_position_embeddings, config.hidden_size);
    this.token_type_embeddings = new nn.Embedding(config.type_vocab_size, config.hidden_size);
    this.LayerNorm = new BertLayerNorm(config.hidden_size);
    this.dropout = new nn.Dropout(config.hidden_dropout_prob);
    if (config.task_specific_tokens) this.task_embeddings = new nn.Embedding(TASK_EMBEDDING_ROWS, config.hidden_size);
  }

  /** input_ids, token_type_ids [B, T]; task_ids [B, 1] -> [B, T (+1 with a task token), H] */
  forward(inputIds: Tensor, tokenTypeIds: Tensor, taskIds: Tensor | null): Tensor {
    const T = inputIds.size(1);
    const positions = torch
      .arange(T, undefined, 1, { dtype: 'int64', device: inputIds.device })
      .unsqueeze(0)
      .expandAs(inputIds);
    let embeddings = this.word_embeddings
      .call(inputIds)
      .add(this.position_embeddings.call(positions))
      .add(this.token_type_embeddings.call(tokenTypeIds)); // [B, T, H]
    if (this.task_embeddings) {
      if (taskIds === null)
        throw new Error('this model has task tokens (task_specific_tokens): task_ids [B, 1] are required');
      // The task token goes right after [CLS], with no position or type embedding.
      const task = this.task_embeddings.call(taskIds); // [B, 1, H]
      embeddings = torch.cat([embeddings.narrow(1, 0, 1), task, embeddings.narrow(1, 1, T - 1)], 1);
    }
    return this.dropout.call(this.LayerNorm.call(embeddings));
  }
}

export class BertImageEmbeddings extends torch.Module {
  readonly image_embeddings: torch.nn.Linear;
  readonly image_location_embeddings: torch.nn.Linear;
  readonly LayerNorm: BertLayerNorm;
  readonly dropout: torch.nn.Dropout;

  constructor(config: ViLBertConfig) {
    super();
    this.image_embeddings = new nn.Linear(config.v_feature_size, config.v_hidden_size);
    this.image_location_embeddings = new nn.Linear(5, config.v_hidden_size);
    this.LayerNorm = new BertLayerNorm(config.v_hidden_size);
    // The reference uses the text dropout probability here.
    this.dropout = new nn.Dropout(config.hidden_dropout_prob);
  }

  /** features [B, R, v_feature_size], locations [B, R, 5] -> [B, R, Hv] */
  forward(features: Tensor, locations: Tensor): Tensor {
    const summed = this.image_embeddings.call(features).add(this.image_location_embeddings.call(locations));
    return this.dropout.call(this.LayerNorm.call(summed));
  }
}

export interface EncoderOutput {
  /** Text states after each co-attention block (all layers) or the final ones (one entry). */
  text: Tensor[];
  image: Tensor[];
}

/** Interleaves text layers, visual layers and co-attention layers as the reference schedules them. */
export class BertEncoder extends torch.Module {
  readonly layer: torch.ModuleList<TransformerLayer>;
  readonly v_layer: torch.ModuleList<TransformerLayer>;
  readonly c_layer: torch.ModuleList<ConnectionLayer>;

  constructor(readonly config: ViLBertConfig) {
    super();
    const text = textSizes(config);
    const visual = visualSizes(config);
    const dynamic = config.dynamic_attention ? config.hidden_size : undefined;
    this.layer = new torch.ModuleList(
      Array.from({ length: config.num_hidden_layers }, () => new TransformerLayer(text)),
    );
    this.v_layer = new torch.ModuleList(
      Array.from({ length: config.v_num_hidden_layers }, () => new TransformerLayer(visual, dynamic)),
    );
    this.c_layer = new torch.ModuleList(config.v_biattention_id.map(() => new ConnectionLayer(config)));
  }

  forward(
    textStates: Tensor, // [B, T, Ht]
    imageStates: Tensor, // [B, R, Hv]
    masks: { text: Tensor; textMultiplicative: Tensor; image: Tensor },
    outputAllEncodedLayers: boolean,
  ): EncoderOutput {
    const config = this.config;
    let text = textStates;
    let image = imageStates;
    let textMask = masks.text; // [B, 1, 1, T] additive
    let imageMask = masks.image; // [B, 1, 1, R] additive
    const all: EncoderOutput = { text: [], image: [] };
    // States are released as soon as the next layer has replaced them (unless
    // they are the caller's inputs or recorded outputs), as Python's reference
    // counting does: the encoder's working set stays one layer deep.
    const replace = (previous: Tensor, next: Tensor, input: Tensor, recorded: Tensor[]) => {
      if (previous !== input && previous !== next && !recorded.includes(previous)) previous.dispose();
      return next;
    };
    const runText = (from: number, to: number) => {
      for (let index = from; index < to; index++) {
        const run = () => this.layer.at(index).call(text, textMask);
        const { output, probs } = index < config.fixed_t_layer ? torch.noGrad(run) : run();
        probs.dispose();
        text = replace(text, output, textStates, all.text);
      }
    };
    const runImage = (from: number, to: number) => {
      for (let index = from; index < to; index++) {
        const textContext = { states: text, mask: masks.textMultiplicative };
        const run = () => this.v_layer.at(index).call(image, imageMask, textContext);
        const { output, probs } = index < config.fixed_v_layer ? torch.noGrad(run) : run();
        probs.dispose();
        image = replace(image, output, imageStates, all.image);
      }
    };
    let textStart = 0;
    let imageStart = 0;
    config.v_biattention_id.forEach((imageEnd, block) => {
      const textEnd = config.t_biattention_id[block]!;
      runText(textStart, textEnd);
      runImage(imageStart, imageEnd);
      if (block === 0 && config.in_batch_pairs) {
        // Every text with every image: row i*B + j pairs text i with image j.
        const B = image.size(0);
        const tile = (x: Tensor, textSide: boolean) => {
          const expanded = textSide ? x.unsqueeze(1) : x.unsqueeze(0);
          const shape = [B, B, ...x.shape.slice(1)];
          return expanded.expand(shape).reshape([B * B, ...x.shape.slice(1)]);
        };
        image = tile(image, false);
        imageMask = tile(imageMask, false);
        text = tile(text, true);
        textMask = tile(textMask, true);
      }
      if (block === 0 && config.fast_mode) {
        // One caption against many images: broadcast the text side to the image batch.
        const B = image.size(0);
        text = text.expand(B, text.size(1), text.size(2));
        textMask = textMask.expand(B, 1, 1, textMask.size(3));
      }
      if (config.with_coattention) {
        const mixed = this.c_layer.at(block).call(image, imageMask, text, textMask);
        mixed.probsTextToImage.dispose();
        mixed.probsImageToText.dispose();
        image = replace(image, mixed.image, imageStates, all.image);
        text = replace(text, mixed.text, textStates, all.text);
      }
      textStart = textEnd;
      imageStart = imageEnd;
      if (outputAllEncodedLayers) {
        all.text.push(text);
        all.image.push(image);
      }
    });
    runImage(imageStart, config.v_num_hidden_layers);
    runText(textStart, config.num_hidden_layers);
    if (!outputAllEncodedLayers) {
      all.text.push(text);
      all.image.push(image);
    }
    return all;
  }
}

/** relu(dense(states[:, 0])): [CLS] for text, the global region for images. */
export class Pooler extends torch.Module {
  readonly dense: torch.nn.Linear;

  constructor(hidden: number, biHidden: number) {
    super();
    this.dense = new nn.Linear(hidden, biHidden);
  }

  forward(states: Tensor): Tensor {
    return F.relu(this.dense.call(states.select(1, 0))); // [B, bi]
  }
}

export interface BertInputs {
  /** [B, T] int64 token ids, [CLS] first, 0-padded; no task token (the model inserts it). */
  inputIds: Tensor;
  /** [B, R, v_feature_size] region features, region 0 the global mean feature. */
  imageFeatures: Tensor;
  /** [B, R, 5] normalised boxes. */
  imageLocations: Tensor;
  /** [B, T] int64, default zeros. */
  tokenTypeIds?: Tensor | null;
  /** [B, T] 0/1, default ones. */
  attentionMask?: Tensor | null;
  /** [B, R] 0/1, default ones. */
  imageAttentionMask?: Tensor | null;
  /** [B, 1] int64 task numbers; required with task tokens. */
  taskIds?: Tensor | null;
}

export interface BertModelOutput {
  sequenceOutputText: Tensor; // [B, T', Ht]
  sequenceOutputImage: Tensor; // [B, R, Hv]
  pooledText: Tensor; // [B, bi]
  pooledImage: Tensor; // [B, bi]
  encoded: EncoderOutput;
  /** The 0/1 text mask after the task-token column was added: [B, T']. */
  textMask: Tensor;
  imageMask: Tensor;
}

/** (1 - mask) * -10000 as [B, 1, 1, L] float: added to attention scores. */
export function additiveMask(mask: Tensor, dtype: torch.DType): Tensor {
  return mask.unsqueeze(1).unsqueeze(2).to(dtype).neg().add(1).mul(-10000);
}

export class BertModel extends torch.Module {
  readonly embeddings: BertEmbeddings;
  readonly v_embeddings: BertImageEmbeddings;
  readonly encoder: BertEncoder;
  readonly t_pooler: Pooler;
  readonly v_pooler: Pooler;

  constructor(readonly config: ViLBertConfig) {
    super();
    checkConfig(config); // sizes past the limits are refused before anything is allocated
    this.embeddings = new BertEmbeddings(config);
    this.v_embeddings = new BertImageEmbeddings(config);
    this.encoder = new BertEncoder(config);
    this.t_pooler = new Pooler(config.hidden_size, config.bi_hidden_size);
    this.v_pooler = new Pooler(config.v_hidden_size, config.bi_hidden_size);
  }

  forward(inputs: BertInputs, outputAllEncodedLayers = false): BertModelOutput {
    const { inputIds, imageFeatures, imageLocations } = inputs;
    const [B, T] = inputIds.shape as [number, number];
    const R = imageFeatures.size(1);
    const dtype = this.embeddings.word_embeddings.weight.dtype;
    let textMask = inputs.attentionMask ?? torch.ones([B, T], { dtype: 'int64', device: inputIds.device });
    if (this.config.task_specific_tokens) {
      textMask = torch.cat([torch.ones([B, 1], { dtype: textMask.dtype, device: inputIds.device }), textMask], 1);
    }
    const imageMask = inputs.imageAttentionMask ?? torch.ones([B, R], { dtype: 'int64', device: inputIds.device });
    const tokenTypeIds = inputs.tokenTypeIds ?? torch.zerosLike(inputIds);

    const textEmbedding = this.embeddings.call(inputIds, tokenTypeIds, inputs.taskIds ?? null);
    const imageEmbedding = this.v_embeddings.call(imageFeatures, imageLocations);
    const masks = {
      text: additiveMask(textMask, dtype),
      textMultiplicative: textMask.unsqueeze(2).to(dtype), // [B, T', 1]
      image: additiveMask(imageMask, dtype),
    };
    const encoded = this.encoder.call(textEmbedding, imageEmbedding, masks, outputAllEncodedLayers);
    const sequenceOutputText = encoded.text[encoded.text.length - 1]!;
    const sequenceOutputImage = encoded.image[encoded.image.length - 1]!;
    return {
      sequenceOutputText,
      sequenceOutputImage,
      pooledText: this.t_pooler.call(sequenceOutputText),
      pooledImage: this.v_pooler.call(sequenceOutputImage),
      encoded,
      textMask,
      imageMask,
    };
  }
}

/** The pooled fusion of both streams: elementwise product ('mul') or sum. */
export function fuse(config: ViLBertConfig, pooledText: Tensor, pooledImage: Tensor): Tensor {
  return config.fusion_method === 'sum' ? pooledText.add(pooledImage) : pooledText.mul(pooledImage);
}
