// The model folder the pipelines load and the trainer writes: everything a prediction needs
// besides the region features.
//
//   config.json        the ViLBERT config (reference keys), as the model was built
//   model.safetensors  its state dict (the reference's keys, both tied keys included)
//   labels.json        { "<head>": [label of class 0, label of class 1, ...] } for the answer heads
//   tasks.json         { "<pipeline>": { "task_id", "max_seq_length", "max_region_num" } }
//   vocab.txt          optional WordPiece vocabulary (default: the bundled bert-base-uncased)
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type * as torch from '../torch/index.js';
import { StateDictError } from '../torch/index.js';
import {
  bundledConfig,
  loadConfig,
  parseConfig,
  type ConfigWarning,
  type ParsedConfig,
  type ViLBertConfig,
} from '../model/config.js';
import { TASK_EMBEDDING_ROWS } from '../model/bert-model.js';
import { VILBertForVLTasks } from '../model/vilbert.js';
import { PRECISIONS, isPrecision, type Precision } from '../model/precision.js';
import { loadPretrainedWeights } from '../model/pretrained.js';
import { readWeights, writeWeights } from '../io/weights.js';
import { readAnswerVocabulary } from '../data/datasets/vqa.js';
import { loadTaskRegistry } from '../data/task-registry.js';
import { cachedPretrained } from '../download/pretrained.js';
import { BertTokenizer } from '../text/index.js';
import { VilbertError } from '../vilbert-error.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const LABELS_FILE = 'labels.json';
export const TASKS_FILE = 'tasks.json';
export const VOCAB_FILE = 'vocab.txt';

/** The pipelines, by the name tasks.json uses for them. */
export const PIPELINE_TASKS = ['vqa', 'gqa', 'ground', 'retrieve', 'verify', 'entail'] as const;
export type PipelineTask = (typeof PIPELINE_TASKS)[number];

/** How a pipeline's inputs were shaped in training (the task's entry of vilbert_tasks.yml). */
export interface TaskSettings {
  /** The task token (the reference's task number, e.g. 1 for VQA). */
  task_id: number;
  /** Text length with [CLS] and [SEP], before the task token. */
  max_seq_length: number;
  /** Regions per image, the whole-image region included. */
  max_region_num: number;
  /** The registry task this entry came from, for people reading the file (e.g. "refcoco"). */
  name?: string;
}
export type TaskTable = Partial<Record<PipelineTask, TaskSettings>>;

/** Heads whose outputs are classes named in labels.json, and the pipeline reading each. */
export const LABELLED_HEADS = { vil_prediction: 'vqa', vil_prediction_gqa: 'gqa' } as const satisfies Record<
  string,
  PipelineTask
>;
export type LabelledHead = keyof typeof LABELLED_HEADS;
export type LabelTable = Partial<Record<LabelledHead, readonly string[]>>;

/** What saveModelFolder writes. */
export interface ModelFolderContents {
  model: torch.Module;
  config: ViLBertConfig;
  labels: LabelTable;
  tasks: TaskTable;
  /** A vocabulary file to copy in; without one the folder uses the bundled bert-base-uncased vocabulary. */
  vocabFile?: string;
  /**
   * How model.safetensors stores the floating-point weights: 'float32' (default) or
   * 'bfloat16' (half the size; such a folder loads in bf16 unless told otherwise).
   */
  weightsDtype?: 'float32' | 'bfloat16';
}

/** A loaded model folder. The model is the caller's to dispose (or the pipeline's that loaded it). */
export interface ModelFolder {
  dir: string;
  model: VILBertForVLTasks;
  config: ViLBertConfig;
  labels: LabelTable;
  tasks: TaskTable;
  tokenizer: BertTokenizer;
  /** Config keys the reference would store and ignore (see parseConfig). */
  warnings: readonly ConfigWarning[];
  /** The precision the model runs in (model.precision): as asked, else bf16 for bfloat16 weights, else fp32. */
  precision: Precision;
  /** How model.safetensors stores the weights. */
  weightsDtype: 'float32' | 'bfloat16';
}

/** A model folder that cannot be read or written: names the folder, the file and, where one is at fault, the key. */
export class ModelFolderError extends VilbertError {
  override readonly name = 'ModelFolderError';
  override readonly code = 'E_MODEL_FOLDER';

  constructor(
    readonly dir: string,
    readonly file: string | undefined,
    readonly problem: string,
    readonly key?: string,
  ) {
    super(`${file === undefined ? dir : join(dir, file)}: ${key === undefined ? '' : `${key}: `}${problem}`);
  }
}

export interface LoadModelFolderOptions {
  /** Called before each file is read. */
  onFile?: (file: string) => void;
  /** Run the model in this precision (default: bf16 for a folder of bfloat16 weights, else fp32). */
  precision?: Precision;
}

const SETTING_KEYS = ['task_id', 'max_seq_length', 'max_region_num'] as const;

/** Rows of a classifier head's output layer, read from the state dict. */
function headClasses(state: ReadonlyMap<string, { shape: number[] }>, head: LabelledHead): number | undefined {
  return state.get(`${head}.logit_fc.3.bias`)?.shape[0];
}

/** tasks.json's table, checked against the config (task-token rows, position-table length). */
function checkTasks(
  value: unknown,
  config: ViLBertConfig,
  fail: (problem: string, key?: string) => ModelFolderError,
): TaskTable {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw fail(`expected an object of pipelines (${PIPELINE_TASKS.join(', ')})`);
  const tasks: TaskTable = {};
  for (const [task, entry] of Object.entries(value)) {
    if (!(PIPELINE_TASKS as readonly string[]).includes(task))
      throw fail(`not a pipeline (${PIPELINE_TASKS.join(', ')})`, task);
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
      throw fail('expected an object with task_id, max_seq_length and max_region_num', task);
    const fields = entry as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      if (key !== 'name' && !(SETTING_KEYS as readonly string[]).includes(key))
        throw fail(`unknown setting (expected ${SETTING_KEYS.join(', ')} and an optional name)`, `${task}.${key}`);
    }
    for (const key of SETTING_KEYS) {
      const setting = fields[key];
      if (!Number.isSafeInteger(setting) || (setting as number) < 0)
        throw fail(
          `${setting === undefined ? 'missing' : JSON.stringify(setting)}, expected a non-negative integer`,
          `${task}.${key}`,
        );
    }
    const settings = fields as unknown as TaskSettings;
    if (config.task_specific_tokens && settings.task_id >= TASK_EMBEDDING_ROWS) {
      throw fail(
        `${settings.task_id} has no row in the task-token table (0..${TASK_EMBEDDING_ROWS - 1})`,
        `${task}.task_id`,
      );
    }
    if (settings.max_seq_length < 2 || settings.max_seq_length > config.max_position_embeddings) {
      throw fail(
        `${settings.max_seq_length} is outside 2..${config.max_position_embeddings} ([CLS] and [SEP] up to the config's max_position_embeddings)`,
        `${task}.max_seq_length`,
      );
    }
    if (settings.max_region_num < 1)
      throw fail('must be at least 1 (the whole-image region)', `${task}.max_region_num`);
    if (fields.name !== undefined && typeof fields.name !== 'string')
      throw fail(`${JSON.stringify(fields.name)}, expected a string`, `${task}.name`);
    tasks[task as PipelineTask] = { ...settings };
  }
  return tasks;
}

/** labels.json's table, checked against the heads' class counts and the pipelines that need labels. */
function checkLabels(
  value: unknown,
  tasks: TaskTable,
  state: ReadonlyMap<string, { shape: number[] }>,
  fail: (problem: string, key?: string) => ModelFolderError,
): LabelTable {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw fail(`expected an object of heads (${Object.keys(LABELLED_HEADS).join(', ')})`);
  const labels: LabelTable = {};
  for (const [head, list] of Object.entries(value)) {
    if (!Object.hasOwn(LABELLED_HEADS, head))
      throw fail(`not a head with named classes (${Object.keys(LABELLED_HEADS).join(', ')})`, head);
    if (!Array.isArray(list) || !list.every((label) => typeof label === 'string'))
      throw fail('expected a list of strings', head);
    const classes = headClasses(state, head as LabelledHead);
    // Fewer answers than outputs is how models trained on a smaller label map (the demo's world) come:
    // training padded their targets with zeros, and the pipelines rank only the named answers.
    if (classes === undefined || list.length > classes)
      throw fail(`has ${list.length} labels but the model's head has ${classes ?? 'no'} classes`, head);
    labels[head as LabelledHead] = Object.freeze([...(list as string[])]);
  }
  for (const [head, task] of Object.entries(LABELLED_HEADS)) {
    if (tasks[task] !== undefined && labels[head as LabelledHead] === undefined) {
      throw fail(`missing: tasks.json has the '${task}' pipeline, which names its answers with this list`, head);
    }
  }
  return labels;
}

function readJson(dir: string, file: string): unknown {
  const path = join(dir, file);
  if (!existsSync(path)) throw new ModelFolderError(dir, file, 'missing');
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ModelFolderError(dir, file, `not valid JSON (${(error as Error).message})`);
  }
}

/** Whether a folder looks like a model folder (so that replacing it loses nothing else). */
function isModelFolder(dir: string): boolean {
  return existsSync(join(dir, CONFIG_FILE)) && existsSync(join(dir, WEIGHTS_FILE));
}

/**
 * Writes a model folder. Atomic: the files go to a temporary folder beside `dir`, which then
 * takes `dir`'s place, so readers see the old folder or the new one, never a partial one. An
 * existing `dir` is replaced only when it is empty or a model folder.
 */
export function saveModelFolder(dir: string, contents: ModelFolderContents): void {
  const target = resolve(dir);
  if ((contents.model as { precision?: unknown }).precision === 'int8')
    throw new ModelFolderError(
      target,
      WEIGHTS_FILE,
      "an int8 model's float32 weights were released: save it before setPrecision('int8')",
    );
  const state = contents.model.stateDict();
  const fail = (file: string) => (problem: string, key?: string) => new ModelFolderError(target, file, problem, key);
  const tasks = checkTasks(contents.tasks, contents.config, fail(TASKS_FILE));
  const labels = checkLabels(contents.labels, tasks, state, fail(LABELS_FILE));
  if (
    existsSync(target) &&
    !(statSync(target).isDirectory() && (readdirSync(target).length === 0 || isModelFolder(target)))
  ) {
    throw new ModelFolderError(target, undefined, 'exists and is not a model folder; not replacing it');
  }
  mkdirSync(dirname(target), { recursive: true });
  // mkdirSync, not mkdtempSync: the folder gets the usual permissions (mkdtemp's are 0700).
  const staging = join(
    dirname(target),
    `.${basename(target)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  mkdirSync(staging);
  try {
    const sortedConfig = Object.fromEntries(
      Object.entries(contents.config).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
    writeFileSync(join(staging, CONFIG_FILE), `${JSON.stringify(sortedConfig, null, 2)}\n`);
    writeFileSync(join(staging, TASKS_FILE), `${JSON.stringify(tasks, null, 2)}\n`);
    writeFileSync(join(staging, LABELS_FILE), `${JSON.stringify(labels)}\n`);
    if (contents.vocabFile !== undefined) copyFileSync(contents.vocabFile, join(staging, VOCAB_FILE));
    const stored = storedWeights(state, contents.weightsDtype ?? 'float32');
    try {
      writeWeights(join(staging, WEIGHTS_FILE), stored, 'safetensors', { format: 'pt' });
    } finally {
      for (const [key, tensor] of stored) if (tensor !== state.get(key)) tensor.dispose();
    }
    if (existsSync(target)) {
      const previous = `${staging}-previous`;
      renameSync(target, previous);
      try {
        renameSync(staging, target);
      } catch (error) {
        renameSync(previous, target);
        throw error;
      }
      rmSync(previous, { recursive: true, force: true });
    } else {
      renameSync(staging, target);
    }
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
}

/** The state to write: float32 tensors cast when the folder stores bfloat16 (the caller frees the casts). */
function storedWeights(state: torch.StateDict, dtype: 'float32' | 'bfloat16'): torch.StateDict {
  if (dtype === 'float32') return state;
  if (dtype !== 'bfloat16') throw new TypeError(`weightsDtype must be 'float32' or 'bfloat16', got ${String(dtype)}`);
  return new Map([...state].map(([key, tensor]) => [key, tensor.dtype === 'float32' ? tensor.to('bfloat16') : tensor]));
}

/** Reads and checks a model folder and builds its model (in eval mode). */
export function loadModelFolder(dir: string, options: LoadModelFolderOptions = {}): ModelFolder {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new ModelFolderError(root, undefined, 'not a folder');
  const fail = (file: string) => (problem: string, key?: string) => new ModelFolderError(root, file, problem, key);

  options.onFile?.(CONFIG_FILE);
  const { config, warnings } = parseConfig(readJson(root, CONFIG_FILE), join(root, CONFIG_FILE));
  options.onFile?.(TASKS_FILE);
  const tasks = checkTasks(readJson(root, TASKS_FILE), config, fail(TASKS_FILE));

  let tokenizer = BertTokenizer.bundled();
  if (existsSync(join(root, VOCAB_FILE))) {
    options.onFile?.(VOCAB_FILE);
    tokenizer = BertTokenizer.fromVocabFile(join(root, VOCAB_FILE));
  }
  if (tokenizer.vocabSize > config.vocab_size) {
    const source = existsSync(join(root, VOCAB_FILE)) ? VOCAB_FILE : 'the bundled bert-base-uncased vocabulary';
    throw new ModelFolderError(
      root,
      CONFIG_FILE,
      `${config.vocab_size} is smaller than the ${tokenizer.vocabSize} tokens of ${source}`,
      'vocab_size',
    );
  }

  const weightsPath = join(root, WEIGHTS_FILE);
  if (!existsSync(weightsPath)) throw new ModelFolderError(root, WEIGHTS_FILE, 'missing');
  options.onFile?.(WEIGHTS_FILE);
  const weights = readWeights(weightsPath);
  let model: VILBertForVLTasks | undefined;
  try {
    options.onFile?.(LABELS_FILE);
    const labels = checkLabels(readJson(root, LABELS_FILE), tasks, weights, fail(LABELS_FILE));
    model = new VILBertForVLTasks(config);
    try {
      model.loadStateDict(weights);
    } catch (error) {
      if (!(error instanceof StateDictError)) throw error;
      throw new ModelFolderError(root, WEIGHTS_FILE, `does not fit ${CONFIG_FILE}: ${error.message}`);
    }
    model.eval();
    const weightsDtype = [...weights.values()].some((tensor) => tensor.dtype === 'bfloat16') ? 'bfloat16' : 'float32';
    const precision = options.precision ?? (weightsDtype === 'bfloat16' ? 'bf16' : 'fp32');
    if (!isPrecision(precision))
      throw new TypeError(`precision must be one of ${PRECISIONS.join(', ')}, got ${String(precision)}`);
    model.setPrecision(precision);
    return { dir: root, model, config, labels, tasks, tokenizer, warnings, precision, weightsDtype };
  } catch (error) {
    model?.dispose();
    throw error;
  } finally {
    for (const tensor of weights.values()) tensor.dispose();
  }
}

/** Which registry task each pipeline of a folder made from a checkpoint uses (the 12-in-1 tasks). */
export const DEFAULT_PIPELINE_TASKS: Readonly<Record<PipelineTask, string>> = {
  vqa: 'TASK1',
  gqa: 'TASK15',
  ground: 'TASK9',
  retrieve: 'TASK7',
  verify: 'TASK12',
  entail: 'TASK13',
};

export interface CheckpointFolderOptions {
  /** Weights in any supported format, e.g. the released multi_task_model.bin. */
  checkpoint: string;
  /** A config file, or the name of a bundled one (default bert_base_6layer_6conect). */
  config?: string;
  /**
   * The folder holding the reference's datasets/ tree: each answer list is read from its
   * task's `<dataroot>/cache/trainval_label2ans.pkl` (datasets/VQA/..., datasets/gqa/...).
   * Without it the folder has no vqa and gqa pipelines.
   */
  labelsFrom?: string;
  out: string;
  vocabFile?: string;
  /** Registry keys per pipeline, over DEFAULT_PIPELINE_TASKS; a pipeline mapped to null is left out. */
  tasks?: Partial<Record<PipelineTask, string | null>>;
  /** The task registry (default: the bundled vilbert_tasks.yml). */
  registry?: string;
  onProgress?: (event: { step: 'reading' | 'writing'; file: string }) => void;
}

export interface CheckpointFolderReport {
  tasks: TaskTable;
  /** The answer lists found, per head. */
  labels: { head: LabelledHead; file: string; count: number }[];
  /** Pipelines left out because their answer list was not found there. */
  leftOut: { task: PipelineTask; file: string }[];
  /** Checkpoint keys the model has no place for (ignored, as from_pretrained ignores them). */
  unexpectedKeys: string[];
}

function configOf(name: string, overrides: Partial<ViLBertConfig>): ParsedConfig {
  return existsSync(name) ? loadConfig(name, overrides) : bundledConfig(name, overrides);
}

/**
 * A model folder from a reference checkpoint, its config and the released datasets' answer
 * lists. The structure the weights imply overrides the config file: task tokens when the
 * checkpoint has the task-token table (the released multi-task model does), and the masked-region
 * head's size. Every model parameter must come from the checkpoint: a head left at its random
 * initialisation would answer nonsense.
 */
export function modelFolderFromCheckpoint(options: CheckpointFolderOptions): CheckpointFolderReport {
  const registry = loadTaskRegistry(options.registry);
  const pipelines = { ...DEFAULT_PIPELINE_TASKS, ...options.tasks };
  const tasks: TaskTable = {};
  const labels: LabelTable = {};
  const report: CheckpointFolderReport = { tasks, labels: [], leftOut: [], unexpectedKeys: [] };
  for (const task of PIPELINE_TASKS) {
    const key = pipelines[task];
    if (key === null || key === undefined) continue;
    const entry = registry.get(key);
    if (entry === undefined)
      throw new Error(
        `${options.registry ?? 'the bundled vilbert_tasks.yml'}: no ${key} (asked for the ${task} pipeline)`,
      );
    const head = (Object.keys(LABELLED_HEADS) as LabelledHead[]).find((name) => LABELLED_HEADS[name] === task);
    if (head !== undefined) {
      const dataroot = join(resolve(options.labelsFrom ?? '.'), entry.dataroot);
      const file = join(dataroot, 'cache', 'trainval_label2ans.pkl');
      if (options.labelsFrom === undefined || !existsSync(file)) {
        report.leftOut.push({ task, file });
        continue;
      }
      labels[head] = readAnswerVocabulary(dataroot).label2ans;
      report.labels.push({ head, file, count: labels[head].length });
    }
    tasks[task] = {
      name: entry.name,
      task_id: entry.task_id,
      max_seq_length: entry.max_seq_length,
      max_region_num: entry.max_region_num,
    };
  }
  if (options.labelsFrom !== undefined && report.labels.length === 0) {
    throw new Error(
      `${options.labelsFrom}: no answer list found (looked for ${report.leftOut.map(({ file }) => file).join(' and ')})`,
    );
  }

  options.onProgress?.({ step: 'reading', file: options.checkpoint });
  const weights = readWeights(cachedPretrained(options.checkpoint));
  let model: VILBertForVLTasks | undefined;
  try {
    const shapeOf = (suffix: string) => [...weights].find(([key]) => key.endsWith(suffix))?.[1].shape;
    const decoder = shapeOf('cls.imagePredictions.decoder.weight');
    const { config } = configOf(options.config ?? 'bert_base_6layer_6conect', {
      task_specific_tokens: shapeOf('embeddings.task_embeddings.weight') !== undefined,
      ...(decoder === undefined ? {} : { v_target_size: decoder[0], visual_target: decoder[0] === 1601 ? 0 : 1 }),
    });
    model = new VILBertForVLTasks(config);
    const loaded = loadPretrainedWeights(model, weights);
    if (loaded.missingKeys.length > 0) {
      const shown = loaded.missingKeys.slice(0, 10).join(', ');
      throw new Error(
        `${options.checkpoint}: lacks ${loaded.missingKeys.length} of the model's keys (${shown}${loaded.missingKeys.length > 10 ? ', ...' : ''}); is it a multi-task checkpoint?`,
      );
    }
    report.unexpectedKeys = loaded.unexpectedKeys;
    for (const tensor of weights.values()) tensor.dispose();
    weights.clear();
    options.onProgress?.({ step: 'writing', file: options.out });
    saveModelFolder(options.out, {
      model,
      config,
      labels,
      tasks,
      ...(options.vocabFile === undefined ? {} : { vocabFile: options.vocabFile }),
    });
    return report;
  } finally {
    model?.dispose();
    for (const tensor of weights.values()) tensor.dispose();
  }
}
