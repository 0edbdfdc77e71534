// The ViLBERT model configuration: the reference's BertConfig (vilbert/vilbert.py) as a
// typed, validated, frozen object that keeps the original snake_case JSON keys.
// Order of precedence: constructor defaults, then the JSON file, then `overrides`.
import { assetPath } from '../assets.js';
import { VilbertError } from '../vilbert-error.js';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The reference's ACT2FN: exact-erf gelu, relu, swish (x * sigmoid(x)). */
export const ACTIVATIONS = ['gelu', 'relu', 'swish'] as const;
export type Activation = (typeof ACTIVATIONS)[number];
/** How the pooled text and image vectors are combined: elementwise product or sum. */
export const FUSION_METHODS = ['mul', 'sum'] as const;
export type FusionMethod = (typeof FUSION_METHODS)[number];
/**
 * Text embedding class: BertEmbeddings or RobertaEmbeddings, numerically the same (the
 * reference's RoBERTa position offset never takes effect: positions start at 0 in both).
 */
export const TEXT_MODELS = ['bert', 'roberta'] as const;
export type TextModel = (typeof TEXT_MODELS)[number];
/** Masked-region objective: 0 KL to detector classes, 1 feature regression (MSE), 2 NCE. */
export const VISUAL_TARGETS = [0, 1, 2] as const;
export type VisualTarget = (typeof VISUAL_TARGETS)[number];

/**
 * Every attribute the reference's BertConfig defines or that its JSON files carry. Sizes are
 * `int`s. "Dead" marks keys the reference stores but never reads.
 */
export interface ViLBertConfig {
  /**
   * int, required (from_dict starts from `BertConfig(-1)`, so the default is an unusable -1).
   * Rows of the word-embedding table and of the MLM decoder.
   */
  readonly vocab_size: number;
  /** int, default 768. Text hidden size H_t (embeddings, text layers, co-attention text side). */
  readonly hidden_size: number;
  /** int, default 12. Number of text layers `bert.encoder.layer.N`. */
  readonly num_hidden_layers: number;
  /** int, default 12. Text self-attention heads; must divide `hidden_size`. */
  readonly num_attention_heads: number;
  /** int, default 3072. Inner size of the text FFN, also in every connection layer's text FFN. */
  readonly intermediate_size: number;
  /** Activation, default 'gelu'. Text FFN activation, also used by both prediction-head transforms (text and image). */
  readonly hidden_act: Activation;
  /** float, default 0.1. Dropout after text dense layers, text and image embeddings, co-attention text output. */
  readonly hidden_dropout_prob: number;
  /** float, default 0.1. Dropout on text self-attention probabilities and on image-queries-over-text co-attention. */
  readonly attention_probs_dropout_prob: number;
  /** int, default 512. Rows of the position-embedding table. */
  readonly max_position_embeddings: number;
  /** int, default 2. Rows of the token-type table (1 for RoBERTa). */
  readonly type_vocab_size: number;
  /** float, default 0.02. Std of the normal init of every Linear and Embedding, text and visual. */
  readonly initializer_range: number;
  /** int, default 2048. Size of the input region features. */
  readonly v_feature_size: number;
  /**
   * int, default 1601. Output size of the masked-region head; the reference's scripts
   * overwrite it (1601 for visual_target 0, else 2048).
   */
  readonly v_target_size: number;
  /** int, default 768. Visual hidden size H_v. */
  readonly v_hidden_size: number;
  /** int, default 3. Number of visual layers `bert.encoder.v_layer.N`. */
  readonly v_num_hidden_layers: number;
  /** int, default 12. Visual self-attention heads; must divide `v_hidden_size`. */
  readonly v_num_attention_heads: number;
  /** int, default 3072. Inner size of the visual FFN, also in every connection layer's visual FFN. */
  readonly v_intermediate_size: number;
  /** int, default 1024. Co-attention projection size H_b; also the output size of both poolers. */
  readonly bi_hidden_size: number;
  /** int, default 16. Co-attention heads; must divide `bi_hidden_size`. */
  readonly bi_num_attention_heads: number;
  /** float, default 0.1. Dropout on visual self-attention probabilities and on text-queries-over-image co-attention. */
  readonly v_attention_probs_dropout_prob: number;
  /** Activation, default 'gelu'. Visual FFN activation (not the image prediction head, which uses `hidden_act`). */
  readonly v_hidden_act: Activation;
  /** float, default 0.1. Dropout after visual dense layers and the co-attention visual output. */
  readonly v_hidden_dropout_prob: number;
  /** float, default 0.2 (the files say 0.02). Dead: all init uses `initializer_range`. */
  readonly v_initializer_range: number;
  /** int[], default [0, 1]. Connection layer k runs once visual layers 0..v_biattention_id[k]-1 have run. */
  readonly v_biattention_id: readonly number[];
  /** int[], default [10, 11]. Connection layer k runs once text layers 0..t_biattention_id[k]-1 have run. */
  readonly t_biattention_id: readonly number[];
  /** VisualTarget, default 0. Masked-region objective, also decides `v_target_size` in the scripts. */
  readonly visual_target: VisualTarget;
  /** boolean, default false. After the first text block, broadcast a batch-1 text to the image batch (retrieval). */
  readonly fast_mode: boolean;
  /** int, default 0. Visual layers below this index run without gradient. */
  readonly fixed_v_layer: number;
  /** int, default 0. Text layers below this index run without gradient. */
  readonly fixed_t_layer: number;
  /** boolean, default false. After the first block, pair every text with every image (B*B rows). */
  readonly in_batch_pairs: boolean;
  /** FusionMethod, default 'mul'. How pooled text and image vectors are fused; the only key that decides it. */
  readonly fusion_method: FusionMethod;
  /** boolean, default false. Text-conditioned gating of visual queries and keys (adds dyLinear_q/k). */
  readonly dynamic_attention: boolean;
  /** boolean, default true. If false, connection layers are skipped and the streams only meet in the fusion. */
  readonly with_coattention: boolean;
  /** int, default 0. Pre-training objective variant; stored, not read by the model. */
  readonly objective: number;
  /** int, default 128. NCE negatives per masked region for visual_target 2. */
  readonly num_negative: number;
  /** TextModel, default 'bert'. Text embedding class. */
  readonly model: TextModel;
  /** boolean, default false. Adds the 20-row task-embedding table and a task token after [CLS]. */
  readonly task_specific_tokens: boolean;
  /** boolean, default false. Attention layers also return probabilities, queries and keys. */
  readonly visualization: boolean;
  /** int, optional, in the files only (1024). Dead. */
  readonly bi_intermediate_size?: number;
  /** int, optional, in the files only (1). Dead. */
  readonly bi_attention_type?: number;
  /** string, optional, in the files only ('mul'). Dead: fusion is decided by `fusion_method` alone. */
  readonly pooling_method?: string;
}

type Key = keyof ViLBertConfig;
type Origin = 'file' | 'default' | 'overrides';

/** A config the reference would reject or mis-run; names the file and, where one is to blame, the key. */
export class ConfigError extends VilbertError {
  override readonly code = 'E_CONFIG';

  constructor(
    readonly source: string,
    readonly key: string | undefined,
    readonly problem: string,
    readonly origin: Origin = 'file',
  ) {
    const note = origin === 'default' ? ' (default value)' : origin === 'overrides' ? ' (set by overrides)' : '';
    super(key === undefined ? `${source}: ${problem}` : `${source}: ${key}${note}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/** Something accepted, as the reference accepts it, that the caller may want to hear about. */
export interface ConfigWarning {
  /**
   * 'unknown-key': not a BertConfig attribute (the reference stores it and never reads it; we drop it).
   * 'ignored-key': a dead key whose value disagrees with the key that is read.
   */
  readonly kind: 'unknown-key' | 'ignored-key';
  readonly source: string;
  readonly key: string;
  readonly message: string;
}

export interface ParsedConfig {
  readonly config: ViLBertConfig;
  readonly warnings: readonly ConfigWarning[];
}

/** Returns what is wrong with a value, or undefined when it is acceptable. */
type Check = (value: unknown) => string | undefined;

function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

function rule(expected: string, accepts: (value: unknown) => boolean): Check {
  return (value) => (accepts(value) ? undefined : `expected ${expected}, found ${show(value)}`);
}

/** The largest any size may be (hidden, intermediate, vocabulary, positions, features, targets, negatives). */
export const SIZE_LIMIT = 2 ** 20;
/** The most layers a stream may have, and the most co-attention connections. */
export const LAYER_LIMIT = 1024;
/**
 * The most weights a config may imply: 2^33 (32 GiB of float32). The released models have
 * 0.27 billion (base) to 0.6 billion (large); a config past this cannot be built on any
 * machine this library targets, so it is refused before anything is allocated.
 */
export const PARAMETER_LIMIT = 2 ** 33;

const isInteger = (value: unknown): value is number => Number.isInteger(value);
const positiveInteger = rule('a positive integer', (v) => isInteger(v) && v > 0);
function atMost(limit: number, name: string): Check {
  return (value) =>
    positiveInteger(value) ??
    ((value as number) > limit ? `${show(value)} is over the ${name} of ${limit}` : undefined);
}
const size = atMost(SIZE_LIMIT, 'size limit (2^20)');
const layerCount = atMost(LAYER_LIMIT, 'layer limit');
const nonNegativeInteger = rule('a non-negative integer', (v) => isInteger(v) && v >= 0);
const integer = rule('an integer', isInteger);
const probability = rule('a probability in [0, 1]', (v) => typeof v === 'number' && v >= 0 && v <= 1);
const stdDev = rule('a non-negative number', (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0);
const boolean = rule('true or false', (v) => typeof v === 'boolean');
const string = rule('a string', (v) => typeof v === 'string');
const numberList = rule(
  `an array of at most ${LAYER_LIMIT} layer ids`,
  (v) => Array.isArray(v) && v.length <= LAYER_LIMIT && v.every((id) => typeof id === 'number'),
);
function oneOf(values: readonly unknown[], what: string): Check {
  return rule(`one of ${values.map(show).join(', ')} (${what})`, (v) => values.includes(v));
}
const activation = oneOf(ACTIVATIONS, "the reference's ACT2FN");

interface Field<T> {
  readonly check: Check;
  /** Absent for vocab_size (required) and for the file-only dead keys (optional). */
  readonly default?: T;
  readonly optional?: true;
}

// The reference's BertConfig constructor defaults, in its order, then the file-only keys.
const FIELDS: { readonly [K in Key]-?: Field<ViLBertConfig[K]> } = {
  vocab_size: { check: size },
  hidden_size: { check: size, default: 768 },
  num_hidden_layers: { check: layerCount, default: 12 },
  num_attention_heads: { check: positiveInteger, default: 12 },
  intermediate_size: { check: size, default: 3072 },
  hidden_act: { check: activation, default: 'gelu' },
  hidden_dropout_prob: { check: probability, default: 0.1 },
  attention_probs_dropout_prob: { check: probability, default: 0.1 },
  max_position_embeddings: { check: size, default: 512 },
  type_vocab_size: { check: size, default: 2 },
  initializer_range: { check: stdDev, default: 0.02 },
  v_feature_size: { check: size, default: 2048 },
  v_target_size: { check: size, default: 1601 },
  v_hidden_size: { check: size, default: 768 },
  v_num_hidden_layers: { check: layerCount, default: 3 },
  v_num_attention_heads: { check: positiveInteger, default: 12 },
  v_intermediate_size: { check: size, default: 3072 },
  bi_hidden_size: { check: size, default: 1024 },
  bi_num_attention_heads: { check: positiveInteger, default: 16 },
  v_attention_probs_dropout_prob: { check: probability, default: 0.1 },
  v_hidden_act: { check: activation, default: 'gelu' },
  v_hidden_dropout_prob: { check: probability, default: 0.1 },
  v_initializer_range: { check: stdDev, default: 0.2 },
  v_biattention_id: { check: numberList, default: [0, 1] },
  t_biattention_id: { check: numberList, default: [10, 11] },
  visual_target: { check: oneOf(VISUAL_TARGETS, 'KL, regression, NCE'), default: 0 },
  fast_mode: { check: boolean, default: false },
  fixed_v_layer: { check: nonNegativeInteger, default: 0 },
  fixed_t_layer: { check: nonNegativeInteger, default: 0 },
  in_batch_pairs: { check: boolean, default: false },
  fusion_method: { check: oneOf(FUSION_METHODS, 'anything else fails an assertion in the reference'), default: 'mul' },
  dynamic_attention: { check: boolean, default: false },
  with_coattention: { check: boolean, default: true },
  objective: { check: integer, default: 0 },
  num_negative: { check: size, default: 128 },
  model: { check: oneOf(TEXT_MODELS, 'the text embedding classes'), default: 'bert' },
  task_specific_tokens: { check: boolean, default: false },
  visualization: { check: boolean, default: false },
  bi_intermediate_size: { check: size, optional: true },
  bi_attention_type: { check: integer, optional: true },
  pooling_method: { check: string, optional: true },
};

const isKey = (key: string): key is Key => Object.hasOwn(FIELDS, key);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Builds a config from parsed JSON: defaults, then `json`, then `overrides`.
 * Keys the reference does not define are accepted with a warning, as BertConfig.from_dict
 * stores any key (real files carry HF extras such as `layer_norm_eps`); unknown keys in
 * `overrides` throw, since they come from code or flags where a typo would silently do nothing.
 * @param source where the JSON came from, named in every error and warning
 */
export function parseConfig(json: unknown, source: string, overrides: Partial<ViLBertConfig> = {}): ParsedConfig {
  if (!isPlainObject(json)) throw new ConfigError(source, undefined, `expected a JSON object, found ${show(json)}`);
  const warnings: ConfigWarning[] = Object.keys(json)
    .filter((key) => !isKey(key))
    .map((key) => ({
      kind: 'unknown-key',
      source,
      key,
      message: `${source}: ${key}: not a ViLBERT config key; ignored, as in the reference`,
    }));
  for (const key of Object.keys(overrides)) {
    if (!isKey(key)) throw new ConfigError(source, key, 'is not a ViLBERT config key', 'overrides');
  }

  const origins = new Map<Key, Origin>();
  const merged: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(FIELDS) as [Key, Field<unknown>][]) {
    const origin: Origin = overrides[key] !== undefined ? 'overrides' : Object.hasOwn(json, key) ? 'file' : 'default';
    const value = origin === 'overrides' ? overrides[key] : origin === 'file' ? json[key] : field.default;
    origins.set(key, origin);
    if (value === undefined) {
      if (field.optional) continue;
      throw new ConfigError(source, key, 'is required (it has no default)', origin);
    }
    const problem = field.check(value);
    if (problem !== undefined) throw new ConfigError(source, key, problem, origin);
    merged[key] = Array.isArray(value) ? Object.freeze([...(value as number[])]) : value;
  }
  const config = Object.freeze(merged) as unknown as ViLBertConfig;
  checkConsistency(config, (key, problem) => new ConfigError(source, key, problem, origins.get(key)));

  if (config.pooling_method !== undefined && config.pooling_method !== config.fusion_method) {
    warnings.push({
      kind: 'ignored-key',
      source,
      key: 'pooling_method',
      message:
        `${source}: pooling_method: ${show(config.pooling_method)} is never read, as in the reference; ` +
        `the pooled vectors are fused with fusion_method ${show(config.fusion_method)}`,
    });
  }
  return { config, warnings };
}

/** The cross-key rules; the reference checks them late or not at all (its constructor asserts on its defaults only). */
function checkConsistency(config: ViLBertConfig, fail: (key: Key, problem: string) => ConfigError): void {
  const headSplits: [Key, Key][] = [
    ['hidden_size', 'num_attention_heads'],
    ['v_hidden_size', 'v_num_attention_heads'],
    ['bi_hidden_size', 'bi_num_attention_heads'],
  ];
  for (const [sizeKey, headsKey] of headSplits) {
    const size = config[sizeKey] as number;
    const heads = config[headsKey] as number;
    if (size % heads !== 0) throw fail(sizeKey, `${size} is not a multiple of ${headsKey} (${heads})`);
  }

  const { v_biattention_id: visualIds, t_biattention_id: textIds } = config;
  if (visualIds.length !== textIds.length) {
    throw fail(
      't_biattention_id',
      `has ${textIds.length} entries but v_biattention_id has ${visualIds.length}; ` +
        'both need one entry per connection layer',
    );
  }
  const streams: [Key, readonly number[], Key, Key][] = [
    ['v_biattention_id', visualIds, 'v_num_hidden_layers', 'fixed_v_layer'],
    ['t_biattention_id', textIds, 'num_hidden_layers', 'fixed_t_layer'],
  ];
  for (const [idsKey, ids, countKey, fixedKey] of streams) {
    const count = config[countKey] as number;
    ids.forEach((id, index) => {
      if (!Number.isInteger(id)) throw fail(idsKey, `entry ${index} is ${id}, not an integer layer index`);
      if (id < 0 || id >= count) {
        throw fail(idsKey, `entry ${index} is ${id}, outside 0..${count - 1} (${countKey} is ${count})`);
      }
      const previous = ids[index - 1];
      if (previous !== undefined && id < previous) {
        // The reference would run layers id..previous-1 a second time after this connection.
        throw fail(idsKey, `entry ${index} (${id}) is below entry ${index - 1} (${previous}); ids must not decrease`);
      }
    });
    const fixed = config[fixedKey] as number;
    const first = ids[0];
    if (first !== undefined && fixed > first) {
      const assertion = `the reference asserts ${fixedKey} <= every entry`;
      throw fail(fixedKey, `is ${fixed}, past the first connection point ${idsKey}[0] = ${first} (${assertion})`);
    }
  }

  const [largest, ...rest] = weightTerms(config).sort((a, b) => b.count - a.count);
  const total = rest.reduce((sum, term) => sum + term.count, largest?.count ?? 0);
  if (largest !== undefined && total > PARAMETER_LIMIT) {
    throw fail(
      largest.key,
      `the config implies at least ${total.toExponential(2)} weights (largest part: ${largest.what}, ` +
        `${largest.count.toExponential(2)}), over the limit of ${PARAMETER_LIMIT} (2^33, 32 GiB of float32)`,
    );
  }

  // Both combinations fail with a shape error in the reference's encoder, where it tiles the
  // inputs for in_batch_pairs before the first co-attention layer (reasons below).
  if (config.in_batch_pairs && config.task_specific_tokens) {
    throw fail(
      'in_batch_pairs',
      'cannot be combined with task_specific_tokens ' +
        '(the reference tiles the co-attention mask to the length before the task token)',
    );
  }
  if (config.in_batch_pairs && config.dynamic_attention) {
    throw fail(
      'in_batch_pairs',
      'cannot be combined with dynamic_attention (the reference does not tile the dynamic-attention text mask)',
    );
  }
}

interface WeightTerm {
  readonly key: Key;
  readonly what: string;
  readonly count: number;
}

/** The weight matrices a config implies, by part: a lower bound on its parameters (biases and norms left out). */
function weightTerms(config: ViLBertConfig): WeightTerm[] {
  const { hidden_size: H, intermediate_size: I, v_hidden_size: V, v_intermediate_size: VI, bi_hidden_size: B } = config;
  const connections = config.v_biattention_id.length;
  return [
    { key: 'vocab_size', what: 'vocab_size x hidden_size word embeddings', count: config.vocab_size * H },
    { key: 'max_position_embeddings', what: 'position embeddings', count: config.max_position_embeddings * H },
    { key: 'type_vocab_size', what: 'token-type embeddings', count: config.type_vocab_size * H },
    { key: 'intermediate_size', what: 'text layers', count: config.num_hidden_layers * (4 * H * H + 2 * H * I) },
    { key: 'v_feature_size', what: 'region-feature embedding', count: config.v_feature_size * V },
    { key: 'v_intermediate_size', what: 'visual layers', count: config.v_num_hidden_layers * (4 * V * V + 2 * V * VI) },
    {
      key: 'bi_hidden_size',
      what: 'co-attention connection layers',
      count: connections * (5 * (H + V) * B + 2 * H * I + 2 * V * VI),
    },
    { key: 'v_target_size', what: 'masked-region prediction head', count: V * config.v_target_size },
  ];
}

/**
 * Checks a config object built in code (not through parseConfig) the way parseConfig would,
 * before a model allocates anything for it.
 */
export function checkConfig(config: ViLBertConfig, source = 'model config'): void {
  parseConfig(config, source);
}

/** Reads a JSON config file; see parseConfig. */
export function loadConfig(path: string, overrides: Partial<ViLBertConfig> = {}): ParsedConfig {
  const text = readFileSync(path, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(path, undefined, `not valid JSON (${(error as Error).message})`);
  }
  return parseConfig(json, path, overrides);
}

// The reference's config/ folder also holds these parameter-name lists (JSON arrays, not configs).
const WEIGHT_NAME_SUFFIX = '_weight_name.json';

function bundledConfigDir(): string {
  try {
    return assetPath('configs');
  } catch (error) {
    throw new ConfigError('assets/configs', undefined, (error as Error).message);
  }
}

/** Names (file names without `.json`) of the model configs shipped in assets/configs, sorted. */
export function bundledConfigNames(): string[] {
  return readdirSync(bundledConfigDir())
    .filter((file) => file.endsWith('.json') && !file.endsWith(WEIGHT_NAME_SUFFIX))
    .map((file) => file.slice(0, -'.json'.length))
    .sort();
}

/** Loads a shipped config by name, e.g. `bundledConfig('bert_base_6layer_6conect')`. */
export function bundledConfig(name: string, overrides: Partial<ViLBertConfig> = {}): ParsedConfig {
  const names = bundledConfigNames();
  if (!names.includes(name)) {
    const problem = `not found; bundled configs are ${names.join(', ')}`;
    throw new ConfigError(`bundled config ${show(name)}`, undefined, problem);
  }
  return loadConfig(join(bundledConfigDir(), `${name}.json`), overrides);
}
