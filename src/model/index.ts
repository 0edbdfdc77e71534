// `vilbert-ts/model`: the ViLBERT configuration, the reference's two models, and loading
// released checkpoints into them (docs/API.md).
//
//   const { config } = loadConfig('config/bert_base_6layer_6conect.json', { task_specific_tokens: true });
//   const model = new VILBertForVLTasks(config).eval();
//   const report = loadPretrainedWeights(model, 'multi_task_model.bin'); // or .safetensors
//   const scores = torch.inferenceMode(() => model.call(inputs, { heads: ['vil_prediction'] }).vil_prediction!);

// The configuration: the reference's BertConfig keys (snake_case), validated and frozen.
export {
  /** The model configuration: every key of the reference's BertConfig, documented field by field. */
  type ViLBertConfig,
  /** A parsed config and the warnings parsing gave (unknown or ignored keys). */
  type ParsedConfig,
  /** A key the reference accepts and ignores, reported by parseConfig. */
  type ConfigWarning,
  /** Activation names of `hidden_act` / `v_hidden_act`. */
  type Activation,
  /** `fusion_method`: how the pooled text and image vectors are combined. */
  type FusionMethod,
  /** `visual_target`: the masked-region objective (0 KL, 1 regression, 2 NCE). */
  type VisualTarget,
  /** `model`: the text embedding class ('bert' or 'roberta'). */
  type TextModel,
  /** Validates a config object (a parsed JSON file's content); `overrides` win over the file. */
  parseConfig,
  /** Reads and validates a JSON config file (the reference's `config/*.json`). */
  loadConfig,
  /** A config shipped in assets/configs by name, e.g. `bundledConfig('bert_base_6layer_6conect')`. */
  bundledConfig,
  /** The names bundledConfig accepts. */
  bundledConfigNames,
  /** Checks a config built in code the way parseConfig checks a file, before a model allocates for it. */
  checkConfig,
  /** Thrown for a config the reference would reject or mis-run; names the file and the key. */
  ConfigError,
} from './config.js';

// The models.
export {
  /** 12-in-1's model: the two-stream BertModel and every multi-task head (vil_prediction, vil_logit, vision_logit, ...). */
  VILBertForVLTasks,
  /** The pre-training model (masked words, masked regions, alignment) of train-concap. */
  BertForMultiModalPreTraining,
  /** The heads VILBertForVLTasks can compute, by the reference's output names. */
  ALL_VL_HEADS,
  /** One head's name: a key of VLTaskOutputs. */
  type VLHead,
  /** What VILBertForVLTasks.forward returns: the heads asked for, the encoder outputs, the fused pooled vector. */
  type VLTaskOutputs,
  /** VILBertForVLTasks.forward's options: which heads to compute (default all). */
  type VLForwardOptions,
  /** The pre-training labels BertForMultiModalPreTraining.forward takes. */
  type PreTrainingLabels,
  /** Its three losses. */
  type PreTrainingLosses,
} from './vilbert.js';
// Precision: fp32 (the reference's), bf16 autocast, int8 dynamic quantization (model.setPrecision).
export {
  /** 'fp32' | 'bf16' | 'int8'. */
  type Precision,
  /** The three precisions, fp32 first. */
  PRECISIONS,
  isPrecision,
  /** What this CPU offers bf16 and int8 (AVX512-BF16/AMX, VNNI, oneDNN). */
  cpuPrecisionSupport,
  /** A line on what a precision runs as here when that is not what was asked, else null. */
  precisionNotice,
  /** Quantizes every Linear layer of any module (what setPrecision('int8') does). */
  quantizeLinearLayers,
} from './precision.js';
export {
  /** The model inputs: token ids, region features and boxes, masks, task ids; shapes in each field's doc. */
  type BertInputs,
  /** The two-stream encoder's outputs (sequence and pooled outputs of both streams, masks). */
  type BertModelOutput,
  /** The encoder alone (`model.bert`), for features without a head. */
  BertModel,
} from './bert-model.js';
/** The three pre-training scores (masked words, masked regions, alignment). */
export type { PreTrainingScores } from './heads.js';
export {
  /** 'fused' (default) or 'reference' LayerNorm/GeLU arithmetic: the latter reproduces the reference's float32 rounding. */
  type Numerics,
  /** Chooses the Numerics of every model in the process. */
  setNumerics,
  /** The Numerics in effect. */
  getNumerics,
} from './layers.js';

// Checkpoints.
export {
  /**
   * Loads a weights file (safetensors, or a PyTorch .bin/.pt in the zip or legacy format) or a
   * map of tensors into a model as the reference's from_pretrained does: gamma/beta and `bert.`
   * renames, missing keys kept at their initialisation, unexpected keys ignored, shape
   * mismatches refused (StateDictError). Returns what was missing, unexpected and renamed.
   */
  loadPretrainedWeights,
  /** What loadPretrainedWeights did. */
  type PretrainedLoadReport,
} from './pretrained.js';
export {
  /** Which bundled config (and task-token / visual-target variant) a checkpoint's key shapes fit, best first. */
  rankConfigFits,
  /** One entry of rankConfigFits. */
  type ConfigFit,
  /** The state-dict keys and shapes a config implies (built on the meta device: nothing allocated). */
  stateDictShapes,
  /** 'VILBertForVLTasks' or 'BertForMultiModalPreTraining'. */
  type ModelKind,
} from './shapes.js';
