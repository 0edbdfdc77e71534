// Runs every comparison it can between this implementation and a folder of
// reference outputs laid out like the parity fixtures (config.json, weights in
// up to three formats, inputs / forward / pretrain / pretrain_visual_targets /
// train_step / optimizer safetensors).
// Tensors that exist in the folder but that nothing here checks are reported
// as unchecked, so a missing comparison can never pass silently. An entry the
// folder lacks (an input tensor, a scalars.json section) leaves the tensors
// that needed it unchecked, with a reason naming the entry.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { readSafetensors } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { rawToTensor, readWeights } from '../io/weights.js';
import { loadConfig } from '../model/config.js';
import type { BertInputs } from '../model/bert-model.js';
import {
  ALL_VL_HEADS,
  BertForMultiModalPreTraining,
  VILBertForVLTasks,
  dropMismatchedLabels,
} from '../model/vilbert.js';
import { getNumerics, type Numerics, setNumerics } from '../model/layers.js';
import { compare, type Tolerance, TOLERANCES } from './compare.js';
import {
  checkVisualTargetLosses,
  checkVisualTargetScores,
  pretrainInputs,
  VISUAL_TARGET_DECODER,
  VISUAL_TARGET_INPUTS,
  VISUAL_TARGETS,
  VISUAL_TARGETS_FILE,
  visualTargetLabels,
  visualTargetModel,
  visualTargetSeed,
} from './visual-targets.js';
import { QUESTION_ITEM_ORDER } from '../data/dataset.js';
import type { TaskProcess, TaskType } from '../data/task-registry.js';
import { forwardTask, headOf, prepareBatch, type TaskBatch } from '../task-step/step.js';
import { loadTaskRegistry, type TaskConfig } from '../data/task-registry.js';
import { AdamW, referenceParamGroups } from '../train/adamw.js';
import { LambdaLR, epochDecay, warmupConstant, warmupLinear } from '../train/schedules.js';

export const WEIGHT_FILES = {
  safetensors: 'weights_vltasks.safetensors',
  torch_legacy: 'weights_vltasks.torch_legacy.bin',
  torch_zip: 'weights_vltasks.torch_zip.bin',
} as const;

export type WeightVariant = keyof typeof WEIGHT_FILES;
export type Family = 'forward' | 'debug' | 'nlvr2' | 'pretrain' | 'train_step' | 'optimizer';
export const FAMILIES: readonly Family[] = ['forward', 'debug', 'nlvr2', 'pretrain', 'train_step', 'optimizer'];

export interface ParityRow {
  family: Family;
  name: string;
  ok: boolean;
  maxAbsDiff: number;
  bound: string;
  problem?: string;
}

export interface ParityReport {
  weights: string;
  rows: ParityRow[];
  /** Reference tensors that were not compared, with the reason. */
  unchecked: { family: Family; name: string; reason: string }[];
}

export interface ParityOptions {
  weights?: WeightVariant;
  /** Families not to check (their tensors are then neither compared nor reported as unchecked). */
  skip?: ReadonlySet<Family>;
  onProgress?: (message: string) => void;
  /**
   * 'reference' (default) computes LayerNorm and GeLU with the reference's own
   * formulas, reproducing its float32 rounding; 'fused' checks the faster
   * kernels the library uses by default. Forward outputs, losses and gradients
   * agree within the fixture tolerances either way; the optimiser snapshots need
   * 'reference', because Adam's first step (m / (sqrt(v) + eps)) turns float32
   * rounding in near-cancelled gradients into parameter differences above 1e-6.
   */
  numerics?: Numerics;
}

/** The checker's name of pretrain_visual_targets.safetensors (rows are `pretrain_visual_targets:<tensor>`). */
const VISUAL_TARGETS_KEY = 'pretrain_visual_targets';

function familyOf(file: string, key: string): Family {
  if (file === 'pretrain' || file === VISUAL_TARGETS_KEY) return 'pretrain';
  if (file === 'train_step') return 'train_step';
  if (file === 'optimizer') return 'optimizer';
  if (key.startsWith('nlvr2.')) return 'nlvr2';
  return key.includes('.debug.') ? 'debug' : 'forward';
}

/** Something the folder lacks (a tensor, a scalars.json entry): the comparisons that need it are reported unchecked. */
class ParityGap extends Error {}

class Checker {
  readonly rows: ParityRow[] = [];
  readonly pending = new Map<string, { family: Family; file: string; raw: RawTensor }>();
  readonly unchecked: { family: Family; name: string; reason: string }[] = [];

  constructor(readonly skip: ReadonlySet<Family>) {}

  add(file: string, tensors: Map<string, RawTensor>): void {
    for (const [key, raw] of tensors) {
      const family = familyOf(file, key);
      if (!this.skip.has(family)) this.pending.set(`${file}:${key}`, { family, file, raw });
    }
  }

  has(file: string, key: string): boolean {
    return this.pending.has(`${file}:${key}`);
  }

  /** A number of scalars.json: rows of their own (they are not tensors of the folder). */
  checkScalar(family: Family, name: string, got: number, want: number, tolerance: Tolerance): void {
    if (this.skip.has(family)) return;
    const difference = Math.abs(got - want);
    const ok = difference <= tolerance.atol + tolerance.rtol * Math.abs(want);
    this.rows.push({
      family,
      name: `scalars:${name}`,
      ok,
      maxAbsDiff: difference,
      bound: `atol ${tolerance.atol}, rtol ${tolerance.rtol}`,
    });
  }

  /** Moves every pending tensor whose name starts with `prefix` to the unchecked list, with `reason`. */
  abandon(prefix: string, reason: string): void {
    for (const [key, entry] of [...this.pending]) {
      if (!key.startsWith(prefix)) continue;
      this.pending.delete(key);
      this.unchecked.push({ family: entry.family, name: key, reason });
    }
  }

  /**
   * Runs one unit of comparisons; a ParityGap leaves the unit's remaining
   * tensors (names starting with `prefix`) unchecked, plus `extra` when given
   * (for the scalars.json values the unit would have compared).
   */
  attempt(prefix: string, run: () => void, extra?: { family: Family; name: string }): void {
    try {
      run();
    } catch (error) {
      if (!(error instanceof ParityGap)) throw error;
      this.abandon(prefix, error.message);
      if (extra && !this.skip.has(extra.family)) this.unchecked.push({ ...extra, reason: error.message });
    }
  }

  check(file: string, key: string, got: torch.Tensor | undefined, tolerance: Tolerance): void {
    const entry = this.pending.get(`${file}:${key}`);
    if (!entry) return;
    this.pending.delete(`${file}:${key}`);
    if (got === undefined) {
      this.rows.push({
        family: entry.family,
        name: `${file}:${key}`,
        ok: false,
        maxAbsDiff: Number.NaN,
        bound: '-',
        problem: 'not produced',
      });
      return;
    }
    this.rows.push({ family: entry.family, name: `${file}:${key}`, ...compare(got, entry.raw, tolerance) });
  }
}

/** Keeps a detached handle on every tensor a hook sees (scopes would free them). */
function keepTensor(tensor: torch.Tensor): torch.Tensor {
  return tensor.detach().keep();
}

export function verifyParity(dir: string, options: ParityOptions = {}): ParityReport {
  const variant = options.weights ?? 'safetensors';
  const skip = options.skip ?? new Set<Family>();
  const progress = options.onProgress ?? (() => {});
  const path = (name: string) => join(dir, name);
  const load = (name: string) =>
    existsSync(path(`${name}.safetensors`))
      ? readSafetensors(path(`${name}.safetensors`)).tensors
      : new Map<string, RawTensor>();
  const inputsRaw = load('inputs');
  const checker = new Checker(skip);
  checker.add('forward', load('forward'));
  checker.add('pretrain', load('pretrain'));
  // Visual targets 1 and 2: the file's targets, decoder and NCE draw are inputs of the comparison, not outputs.
  const visualTargets =
    !skip.has('pretrain') && existsSync(path(VISUAL_TARGETS_FILE))
      ? readSafetensors(path(VISUAL_TARGETS_FILE))
      : undefined;
  if (visualTargets) {
    checker.add(
      VISUAL_TARGETS_KEY,
      new Map([...visualTargets.tensors].filter(([key]) => !VISUAL_TARGET_INPUTS.includes(key))),
    );
  }
  checker.add('train_step', load('train_step'));
  checker.add('optimizer', load('optimizer'));

  const inputs = new Map<string, torch.Tensor>();
  const input = (key: string): torch.Tensor => {
    let tensor = inputs.get(key);
    if (!tensor) {
      const raw = inputsRaw.get(key);
      if (!raw) throw new ParityGap(`${path('inputs.safetensors')} has no input '${key}'`);
      tensor = rawToTensor(raw).keep();
      inputs.set(key, tensor);
    }
    return tensor;
  };

  progress(`loading ${WEIGHT_FILES[variant]}`);
  const weights = readWeights(path(WEIGHT_FILES[variant]));
  const configPath = path('config.json');
  const previousNumerics = getNumerics();
  setNumerics(options.numerics ?? 'reference');
  try {
    if (!skip.has('forward') || !skip.has('debug') || !skip.has('nlvr2')) {
      const { config } = loadConfig(configPath, { task_specific_tokens: true, visual_target: 0, v_target_size: 1601 });
      const model = new VILBertForVLTasks(config);
      model.loadStateDict(weights);
      model.eval();
      try {
        checkForwards(model, checker, input, progress);
        checker.attempt('forward:nlvr2.', () => checkNlvr2(model, checker, input));
      } finally {
        model.dispose();
      }
    }
    const scalars = existsSync(path('scalars.json'))
      ? (JSON.parse(readFileSync(path('scalars.json'), 'utf8')) as Partial<Scalars>)
      : undefined;
    if (scalars && (scalars.train || scalars.optimizer) && (!skip.has('train_step') || !skip.has('optimizer'))) {
      const specs = new TaskSpecs(scalars, path('scalars.json'));
      const { config } = loadConfig(configPath, { task_specific_tokens: true, visual_target: 0, v_target_size: 1601 });
      const model = new VILBertForVLTasks(config);
      model.eval();
      try {
        if (!skip.has('train_step')) {
          model.loadStateDict(weights);
          checkTrainSteps(model, checker, input, specs, progress);
        }
        const scenarios = scalars.optimizer?.scenarios;
        if (!skip.has('optimizer') && scenarios && typeof scenarios === 'object') {
          for (const scenario of Object.keys(scenarios)) {
            model.loadStateDict(weights);
            model.zeroGrad(true);
            checker.attempt(
              `optimizer:${scenario}.`,
              () => checkOptimizer(model, checker, input, scalars.optimizer!, specs, scenario, progress),
              { family: 'optimizer', name: `scalars:optimizer.${scenario}` },
            );
          }
        }
      } finally {
        model.dispose();
      }
    }
    // Only the families the folder has reference outputs for are run.
    if (!skip.has('pretrain') && [...checker.pending.values()].some((entry) => entry.file === 'pretrain')) {
      const { config } = loadConfig(configPath, { visual_target: 0, v_target_size: 1601 });
      const model = new BertForMultiModalPreTraining(config);
      model.loadStateDict(weights, { strict: false });
      model.eval();
      try {
        checker.attempt('pretrain:', () => checkPretraining(model, checker, input, progress));
      } finally {
        model.dispose();
      }
    }
    if (visualTargets && [...checker.pending.values()].some((entry) => entry.file === VISUAL_TARGETS_KEY)) {
      checker.attempt(`${VISUAL_TARGETS_KEY}:`, () =>
        checkVisualTargets(configPath, weights, visualTargets, path(VISUAL_TARGETS_FILE), checker, input, progress),
      );
    }
  } finally {
    setNumerics(previousNumerics);
    for (const tensor of weights.values()) tensor.dispose();
    for (const tensor of inputs.values()) tensor.dispose();
  }
  const unchecked = [
    ...checker.unchecked,
    ...[...checker.pending.entries()].map(([name, entry]) => ({
      family: entry.family,
      name,
      reason: 'no comparison for this tensor',
    })),
  ];
  return { weights: WEIGHT_FILES[variant], rows: checker.rows, unchecked };
}

function baseInputs(input: (key: string) => torch.Tensor, taskIds: torch.Tensor | null): BertInputs {
  return {
    inputIds: input('base.question'),
    imageFeatures: input('base.features'),
    imageLocations: input('base.spatials'),
    tokenTypeIds: input('base.segment_ids'),
    attentionMask: input('base.input_mask'),
    imageAttentionMask: input('base.image_mask'),
    taskIds,
  };
}

function taskIdsPresent(checker: Checker): number[] {
  const ids = new Set<number>();
  for (const [name] of checker.pending) {
    const match = /^forward:t(\d+)\./.exec(name);
    if (match) ids.add(Number(match[1]));
  }
  return [...ids].sort((a, b) => a - b);
}

function checkForwards(
  model: VILBertForVLTasks,
  checker: Checker,
  input: (key: string) => torch.Tensor,
  progress: (m: string) => void,
): void {
  for (const task of taskIdsPresent(checker)) {
    progress(`forward, task ${task}`);
    const prefix = `t${task}.`;
    const debug = new Map<string, torch.Tensor>();
    const removers = checker.has('forward', `${prefix}debug.embeddings_t`) ? attachDebugHooks(model, debug) : [];
    try {
      checker.attempt(`forward:${prefix}`, () => {
        torch.scope(() =>
          torch.noGrad(() => {
            const out = model.call(baseInputs(input, input(`eval.task_ids.t${task}`)));
            for (const head of ALL_VL_HEADS)
              checker.check('forward', `${prefix}${head}`, out[head], TOLERANCES.forward);
            checker.check('forward', `${prefix}sequence_output_t`, out.bert.sequenceOutputText, TOLERANCES.forward);
            checker.check('forward', `${prefix}sequence_output_v`, out.bert.sequenceOutputImage, TOLERANCES.forward);
            checker.check('forward', `${prefix}pooled_output_t`, out.bert.pooledText, TOLERANCES.forward);
            checker.check('forward', `${prefix}pooled_output_v`, out.bert.pooledImage, TOLERANCES.forward);
            checker.check('forward', `${prefix}pooled_output_fused`, out.pooled_output_fused, TOLERANCES.forward);
          }),
        );
        for (const [name, tensor] of debug) {
          checker.check(
            'forward',
            `${prefix}debug.${name}`,
            tensor,
            name.includes('attn_probs') ? TOLERANCES.attention : TOLERANCES.forward,
          );
        }
      });
    } finally {
      for (const remove of removers) remove();
      for (const tensor of debug.values()) tensor.dispose();
    }
  }
}

function attachDebugHooks(model: VILBertForVLTasks, into: Map<string, torch.Tensor>): (() => void)[] {
  const encoder = model.bert.encoder;
  const removers = [
    model.bert.embeddings.registerForwardHook((_, output) =>
      into.set('embeddings_t', keepTensor(output as torch.Tensor)),
    ),
    model.bert.v_embeddings.registerForwardHook((_, output) =>
      into.set('embeddings_v', keepTensor(output as torch.Tensor)),
    ),
  ];
  const layerHook = (name: string) => (_: unknown, output: unknown) => {
    const { output: states, probs } = output as { output: torch.Tensor; probs: torch.Tensor };
    into.set(`${name}.output`, keepTensor(states));
    into.set(`${name}.attn_probs`, keepTensor(probs));
  };
  encoder.layer.items.forEach((layer, i) => removers.push(layer.registerForwardHook(layerHook(`layer.${i}`))));
  encoder.v_layer.items.forEach((layer, i) => removers.push(layer.registerForwardHook(layerHook(`v_layer.${i}`))));
  encoder.c_layer.items.forEach((layer, i) =>
    removers.push(
      layer.registerForwardHook((_, output) => {
        const mixed = output as {
          image: torch.Tensor;
          text: torch.Tensor;
          probsTextToImage: torch.Tensor;
          probsImageToText: torch.Tensor;
        };
        into.set(`c_layer.${i}.output_v`, keepTensor(mixed.image));
        into.set(`c_layer.${i}.output_t`, keepTensor(mixed.text));
        into.set(`c_layer.${i}.attn_probs_t2v`, keepTensor(mixed.probsTextToImage));
        into.set(`c_layer.${i}.attn_probs_v2t`, keepTensor(mixed.probsImageToText));
      }),
    ),
  );
  return removers;
}

function checkNlvr2(model: VILBertForVLTasks, checker: Checker, input: (key: string) => torch.Tensor): void {
  if (!checker.has('forward', 'nlvr2.vil_binary_prediction')) return;
  torch.scope(() =>
    torch.noGrad(() => {
      // The NLVR2 paired forward: the reference's 'nlvr' input processing of the dataset's packed pairs.
      const batch = {
        question: input('nlvr2.question'),
        features: input('nlvr2.features'),
        spatials: input('nlvr2.spatials'),
        image_mask: input('nlvr2.image_mask'),
        input_mask: input('nlvr2.input_mask'),
        segment_ids: input('nlvr2.segment_ids'),
        target: input('target.nlvr2'),
      };
      const modelInputs = prepareBatch(batch, 'nlvr', 12).inputs;
      checker.check('forward', 'nlvr2.model_in.question', modelInputs.inputIds, TOLERANCES.exact);
      checker.check('forward', 'nlvr2.model_in.segment_ids', modelInputs.tokenTypeIds!, TOLERANCES.exact);
      checker.check('forward', 'nlvr2.model_in.input_mask', modelInputs.attentionMask!, TOLERANCES.exact);
      checker.check('forward', 'nlvr2.model_in.image_mask', modelInputs.imageAttentionMask!, TOLERANCES.exact);
      checker.check('forward', 'nlvr2.model_in.task_ids', modelInputs.taskIds!, TOLERANCES.exact);
      const out = model.call(modelInputs);
      for (const head of ALL_VL_HEADS) checker.check('forward', `nlvr2.${head}`, out[head], TOLERANCES.forward);
    }),
  );
}

function checkPretraining(
  model: BertForMultiModalPreTraining,
  checker: Checker,
  input: (key: string) => torch.Tensor,
  progress: (m: string) => void,
): void {
  progress('pre-training scores and losses');
  const inputs = pretrainInputs(input);
  torch.scope(() =>
    torch.noGrad(() => {
      const scores = model.scores(inputs);
      checker.check('pretrain', 'scores.prediction_scores_t', scores.predictionScoresText, TOLERANCES.forward);
      checker.check('pretrain', 'scores.prediction_scores_v', scores.predictionScoresImage, TOLERANCES.forward);
      checker.check('pretrain', 'scores.seq_relationship_score', scores.seqRelationshipScore, TOLERANCES.forward);
    }),
  );
  const isNext = input('pretrain.is_next');
  const objectives = [
    { name: 'obj0', lm: input('pretrain.lm_label_ids'), image: input('pretrain.image_label'), isNext, nspWeight: 1 },
    {
      name: 'obj1',
      lm: dropMismatchedLabels(input('pretrain.lm_label_ids'), isNext).keep(),
      image: dropMismatchedLabels(input('pretrain.image_label'), isNext).keep(),
      isNext,
      nspWeight: 1,
    },
    {
      name: 'obj2',
      lm: input('pretrain.lm_label_ids'),
      image: input('pretrain.image_label'),
      isNext: torch.zerosLike(isNext).keep(),
      nspWeight: 0,
    },
  ];
  checker.check('pretrain', 'obj1.lm_label_ids', objectives[1]!.lm, TOLERANCES.exact);
  checker.check('pretrain', 'obj1.image_label', objectives[1]!.image, TOLERANCES.exact);
  for (const objective of objectives) {
    torch.scope(() => {
      const losses = model.call(inputs, {
        maskedLmLabels: objective.lm,
        imageLabel: objective.image,
        imageTarget: input('pretrain.image_target'),
        nextSentenceLabel: objective.isNext,
      });
      const nextSentence = losses.nextSentenceLoss.mul(objective.nspWeight);
      const total = losses.maskedLmLoss.add(losses.maskedImageLoss).add(nextSentence);
      checker.check('pretrain', `${objective.name}.masked_lm_loss`, losses.maskedLmLoss, TOLERANCES.loss);
      checker.check('pretrain', `${objective.name}.masked_img_loss`, losses.maskedImageLoss, TOLERANCES.loss);
      checker.check('pretrain', `${objective.name}.next_sentence_loss`, nextSentence, TOLERANCES.loss);
      checker.check('pretrain', `${objective.name}.loss`, total, TOLERANCES.loss);
      const gradientKeys = [...checker.pending.keys()].filter((key) =>
        key.startsWith(`pretrain:${objective.name}.grad.`),
      );
      if (gradientKeys.length > 0) {
        model.zeroGrad(true);
        total.backward();
        const parameters = new Map(model.stateDict());
        for (const key of gradientKeys) {
          const name = key.slice(`pretrain:${objective.name}.grad.`.length);
          checker.check(
            'pretrain',
            `${objective.name}.grad.${name}`,
            parameters.get(name)?.grad ?? undefined,
            TOLERANCES.gradient,
          );
        }
      }
    });
  }
  for (const objective of objectives.slice(1)) {
    if (objective.name === 'obj1') {
      objective.lm.dispose();
      objective.image.dispose();
    } else {
      objective.isNext.dispose();
    }
  }
}

/**
 * pretrain_visual_targets.safetensors (MANIFEST section 9a): for each
 * `vt<k>` the file has, train_concap's model for --visual_target k with the
 * file's 2048-way decoder; the scores once, then the losses with the file's
 * nce_seed set just before forward, and the gradients of their sum.
 */
function checkVisualTargets(
  configPath: string,
  weights: ReadonlyMap<string, torch.Tensor>,
  file: { tensors: Map<string, RawTensor>; metadata: Record<string, string> },
  filePath: string,
  checker: Checker,
  input: (key: string) => torch.Tensor,
  progress: (m: string) => void,
): void {
  for (const key of [...VISUAL_TARGET_DECODER, 'image_target']) {
    if (!file.tensors.has(key)) throw new ParityGap(`${filePath} has no input '${key}'`);
  }
  const seed = visualTargetSeed(file.metadata);
  const pendingNames = (prefix: string) =>
    [...checker.pending.keys()]
      .filter((key) => key.startsWith(`${VISUAL_TARGETS_KEY}:${prefix}`))
      .map((key) => key.slice(VISUAL_TARGETS_KEY.length + 1));
  let targets = VISUAL_TARGETS.filter((k) => pendingNames(`vt${k}.`).length > 0);
  if (seed === undefined) {
    for (const k of targets)
      checker.abandon(`${VISUAL_TARGETS_KEY}:vt${k}.`, `${filePath} has no integer __metadata__ nce_seed`);
    targets = [];
  }
  if (targets.length === 0 && pendingNames('scores.').length > 0) targets = [1];
  const check = (name: string, got: torch.Tensor | undefined, tolerance: Tolerance) =>
    checker.check(VISUAL_TARGETS_KEY, name, got, tolerance);
  const imageTarget = rawToTensor(file.tensors.get('image_target')!).keep();
  try {
    for (const k of targets) {
      progress(`pre-training, visual_target ${k}`);
      let built;
      try {
        built = visualTargetModel(configPath, weights, file.tensors, k);
      } catch (error) {
        if (error instanceof torch.StateDictError)
          throw new ParityGap(
            `the visual_target ${k} model cannot load these weights with ${filePath}'s decoder: ${error.message}`,
          );
        throw error;
      }
      const { model, missingKeys } = built;
      try {
        if (missingKeys.length > 0) throw new ParityGap(`the weights lack ${missingKeys.join(', ')}`);
        const inputs = pretrainInputs(input);
        checkVisualTargetScores(model, inputs, check); // once: the entries are pending only until checked
        if (seed !== undefined && pendingNames(`vt${k}.`).length > 0) {
          checkVisualTargetLosses(
            model,
            k,
            inputs,
            visualTargetLabels(input, imageTarget),
            seed,
            pendingNames(`vt${k}.`),
            check,
          );
        }
      } finally {
        model.dispose();
      }
    }
  } finally {
    imageTarget.dispose();
  }
}

interface TrainTaskScalars {
  name: string;
  type: TaskType;
  process: TaskProcess;
  task_token: number;
  batch: Record<string, string>;
  loss?: number;
  /** Absent when the entry was derived from the task registry (the folder has no train.<TASK>). */
  batch_score?: number;
  grad_is_none?: string[];
}

interface OptimizerScalars {
  tasks: string[];
  task_lr?: number[];
  base_lr: number;
  loss_scale?: Record<string, number>;
  num_train_optimization_steps: number;
  warmup_steps: number;
  scenarios: Record<
    string,
    {
      steps: {
        step: number;
        iteration: number;
        task: string;
        loss_scaled: number;
        lr_used: { vil: number; base: number };
      }[];
    }
  >;
}

interface Scalars {
  train: Record<string, TrainTaskScalars>;
  optimizer?: OptimizerScalars;
}

/** The target tensor of a 'normal'-process task of each type (MANIFEST section 5); absent: no fixture layout. */
const NORMAL_TARGETS: Partial<Record<TaskType, string>> = {
  'VL-classifier': 'target.vqa',
  'VL-classifier-GQA': 'target.gqa',
  'V-logit': 'target.refer',
  'VL-tri-classifier': 'target.tri',
};

/**
 * The fixture batch of a task, from its type and process, the way the
 * fixture generator forms it (MANIFEST section 5): 'nlvr' uses the nlvr2.*
 * pairs, 'retrieval' the retrieval.* candidates, 'expand' the base images with
 * the vcr.* texts, 'normal' the base batch with its type's target. Undefined
 * for the layouts the fixtures do not cover (V-logit-mc, 'dialog', Foil).
 */
export function fixtureBatch(type: TaskType, process: TaskProcess): Record<string, string> | undefined {
  const from = (image: string, text: string, target: string) =>
    Object.fromEntries(
      QUESTION_ITEM_ORDER.map((slot) => [
        slot,
        slot === 'target'
          ? target
          : ['features', 'spatials', 'image_mask'].includes(slot)
            ? `${image}.${slot}`
            : `${text}.${slot}`,
      ]),
    );
  switch (process) {
    case 'nlvr':
      return type === 'VL-binary-classifier' ? from('nlvr2', 'nlvr2', 'target.nlvr2') : undefined;
    case 'retrieval':
      return type === 'VL-logit' ? from('retrieval', 'retrieval', 'target.retrieval') : undefined;
    case 'expand':
      return type === 'VL-logit' ? from('base', 'vcr', 'target.vcr') : undefined;
    case 'normal': {
      const target = NORMAL_TARGETS[type];
      return target ? from('base', 'base', target) : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * Each task's train-step description: the folder's train.<TASK> entry, or,
 * where the folder has none, one derived from the task registry (type,
 * process, name; the task token is the task number, as ForwardModelsTrain
 * sets it). A task that neither gives is a ParityGap naming the entry.
 */
class TaskSpecs {
  private registry: Map<string, TaskConfig> | undefined;

  constructor(
    readonly scalars: Partial<Scalars>,
    readonly scalarsPath: string,
  ) {}

  has(task: string): boolean {
    return Boolean(this.scalars.train && Object.hasOwn(this.scalars.train, task));
  }

  /** The registry entry of a task, if the bundled registry has one. */
  registryEntry(task: string): TaskConfig | undefined {
    this.registry ??= loadTaskRegistry();
    return this.registry.get(task);
  }

  get(task: string): TrainTaskScalars {
    const given = this.has(task) ? this.scalars.train![task] : undefined;
    if (
      given &&
      typeof given === 'object' &&
      given.batch &&
      typeof given.batch === 'object' &&
      given.type &&
      given.process
    ) {
      return { ...given, task_token: typeof given.task_token === 'number' ? given.task_token : taskNumber(task) };
    }
    const where = given
      ? `its train.${task} entry in ${this.scalarsPath} has no complete batch/type/process`
      : `${this.scalarsPath} has no train.${task} entry`;
    const entry = this.registryEntry(task);
    if (!entry) throw new ParityGap(`${task}: ${where}, and the task registry has no ${task}`);
    const batch = fixtureBatch(entry.type, entry.process);
    if (!batch) {
      throw new ParityGap(
        `${task}: ${where}, and the fixtures have no batch layout for its type '${entry.type}' with process '${entry.process}'`,
      );
    }
    return { name: entry.name, type: entry.type, process: entry.process, task_token: taskNumber(task), batch };
  }
}

function taskNumber(task: string): number {
  const match = /^TASK(\d+)$/.exec(task);
  if (!match) throw new ParityGap(`'${task}' is not a task key (TASK<n>)`);
  return Number(match[1]);
}

function taskBatch(spec: TrainTaskScalars, input: (key: string) => torch.Tensor): TaskBatch {
  const slots = Object.fromEntries(Object.entries(spec.batch).map(([slot, name]) => [slot, input(name)]));
  return slots as unknown as TaskBatch;
}

/**
 * Each task's loss, head output, reshaped model inputs and gradients (eval
 * mode, as the fixtures): the tasks of scalars.json's train section and any
 * other task train_step.safetensors has tensors of.
 */
function checkTrainSteps(
  model: VILBertForVLTasks,
  checker: Checker,
  input: (key: string) => torch.Tensor,
  specs: TaskSpecs,
  progress: (m: string) => void,
): void {
  const parameters = new Map(model.namedParameters());
  const tasks = new Set(Object.keys(specs.scalars.train ?? {}));
  for (const key of checker.pending.keys()) {
    const match = /^train_step:(TASK\d+)\./.exec(key);
    if (match) tasks.add(match[1]!);
  }
  for (const task of tasks) {
    const extra = specs.has(task) ? { family: 'train_step' as const, name: `scalars:train.${task}` } : undefined;
    checker.attempt(
      `train_step:${task}.`,
      () => checkTrainStep(model, checker, input, specs, task, parameters, progress),
      extra,
    );
  }
  model.zeroGrad(true);
}

function checkTrainStep(
  model: VILBertForVLTasks,
  checker: Checker,
  input: (key: string) => torch.Tensor,
  specs: TaskSpecs,
  task: string,
  parameters: Map<string, torch.Tensor>,
  progress: (m: string) => void,
): void {
  const spec = specs.get(task);
  {
    progress(
      `training loss and gradients, ${task} (${spec.name}${specs.has(task) ? '' : ', batch derived from the task registry'})`,
    );
    torch.scope(() => {
      model.zeroGrad(true);
      const result = forwardTask(model, taskBatch(spec, input), {
        type: spec.type,
        process: spec.process,
        number: spec.task_token,
      });
      const inputs = result.prepared.inputs;
      checker.check('train_step', `${task}.model_in.question`, inputs.inputIds, TOLERANCES.exact);
      checker.check('train_step', `${task}.model_in.segment_ids`, inputs.tokenTypeIds ?? undefined, TOLERANCES.exact);
      checker.check('train_step', `${task}.model_in.input_mask`, inputs.attentionMask ?? undefined, TOLERANCES.exact);
      checker.check(
        'train_step',
        `${task}.model_in.image_mask`,
        inputs.imageAttentionMask ?? undefined,
        TOLERANCES.exact,
      );
      checker.check('train_step', `${task}.model_in.task_ids`, inputs.taskIds ?? undefined, TOLERANCES.exact);
      checker.check('train_step', `${task}.loss`, result.loss, TOLERANCES.loss);
      checker.check('train_step', `${task}.head.${headOf(spec.type)}`, result.output, TOLERANCES.forward);
      if (typeof spec.batch_score === 'number') {
        checker.checkScalar(
          'train_step',
          `train.${task}.batch_score`,
          result.score / result.prepared.batchSize,
          spec.batch_score,
          { atol: 1e-6, rtol: 0 },
        ); // stored from a float32 score
      }
      result.loss.backward();
      for (const key of [...checker.pending.keys()].filter((k) => k.startsWith(`train_step:${task}.grad.`))) {
        const name = key.slice(`train_step:${task}.grad.`.length);
        checker.check(
          'train_step',
          `${task}.grad.${name}`,
          parameters.get(name)?.grad ?? undefined,
          TOLERANCES.gradient,
        );
      }
      for (const name of Array.isArray(spec.grad_is_none) ? spec.grad_is_none : []) {
        const gradient = parameters.get(name)?.grad ?? null;
        const largest = gradient === null ? 0 : gradient.abs().max().item();
        checker.checkScalar('train_step', `train.${task}.grad_is_none.${name} (max |grad|)`, largest, 0, {
          atol: 0,
          rtol: 0,
        });
      }
    });
  }
}

/** Replays train_tasks.py's loop for the fixture's tasks: one AdamW step per task, the schedule stepped after the first. */
function checkOptimizer(
  model: VILBertForVLTasks,
  checker: Checker,
  input: (key: string) => torch.Tensor,
  spec: OptimizerScalars,
  specs: TaskSpecs,
  scenario: string,
  progress: (m: string) => void,
): void {
  progress(`optimiser replay, ${scenario}`);
  // Everything the replay needs is resolved first, so a gap stops it before any step.
  const where = `${specs.scalarsPath} optimizer`;
  if (!Array.isArray(spec.tasks) || spec.tasks.length === 0 || !spec.tasks.every((task) => typeof task === 'string')) {
    throw new ParityGap(`${where}.tasks is missing or not a list of task keys`);
  }
  for (const field of ['base_lr', 'num_train_optimization_steps', 'warmup_steps'] as const) {
    if (typeof spec[field] !== 'number') throw new ParityGap(`${where}.${field} is missing or not a number`);
  }
  if (scenario !== 'warmup_linear' && scenario !== 'mannul')
    throw new ParityGap(`${where}.scenarios: unknown scenario '${scenario}' (warmup_linear, mannul)`);
  const steps = spec.scenarios[scenario]?.steps;
  if (!Array.isArray(steps) || steps.length === 0)
    throw new ParityGap(`${where}.scenarios.${scenario}.steps is missing or empty`);
  const iterations = Math.max(...steps.map((step) => Number(step?.iteration))) + 1;
  if (!Number.isInteger(iterations) || steps.length !== iterations * spec.tasks.length) {
    throw new ParityGap(
      `${where}.scenarios.${scenario}.steps: ${steps.length} steps do not make whole iterations over the ${spec.tasks.length} tasks ${spec.tasks.join(', ')}`,
    );
  }
  steps.forEach((step, index) => {
    const task = spec.tasks[index % spec.tasks.length]!;
    if (step.task !== undefined && step.task !== task)
      throw new ParityGap(
        `${where}.scenarios.${scenario}.steps[${index}] is task ${step.task}, but optimizer.tasks puts ${task} there`,
      );
    if (
      typeof step.loss_scaled !== 'number' ||
      typeof step.lr_used?.vil !== 'number' ||
      typeof step.lr_used?.base !== 'number'
    ) {
      throw new ParityGap(`${where}.scenarios.${scenario}.steps[${index}] lacks loss_scaled or lr_used.vil/base`);
    }
  });
  const tasks = spec.tasks.map((task, index) => {
    const train = specs.get(task);
    return { train, batch: taskBatch(train, input), lossScale: lossScale(spec, specs, task, index) };
  });

  const optimizer = new AdamW(referenceParamGroups(model, spec.base_lr));
  try {
    const total = spec.num_train_optimization_steps;
    let warmup: LambdaLR;
    if (scenario === 'warmup_linear') {
      warmup = new LambdaLR(optimizer.groups, warmupLinear(spec.warmup_steps, total));
    } else {
      warmup = new LambdaLR(optimizer.groups, warmupConstant(spec.warmup_steps));
      new LambdaLR(optimizer.groups, epochDecay()); // constructing it resets every lr to initial x 1, as in the reference
    }
    const parameters = new Map(model.namedParameters());
    const vilGroup = optimizer.groups.find((group) => group.name.includes('vil_'))!;
    const baseGroup = optimizer.groups.find((group) => !group.name.includes('vil_'))!;
    let globalStep = 0;
    let stepIndex = 0;
    for (let iteration = 0; iteration < iterations; iteration++) {
      let firstTask = true;
      for (const { train, batch, lossScale: scale } of tasks) {
        const expected = steps[stepIndex]!;
        torch.scope(() => {
          const result = forwardTask(model, batch, {
            type: train.type,
            process: train.process,
            number: train.task_token,
          });
          const scaled = result.loss.mul(scale);
          checker.checkScalar(
            'optimizer',
            `optimizer.${scenario}.step${stepIndex}.loss_scaled`,
            scaled.item(),
            expected.loss_scaled,
            TOLERANCES.loss,
          );
          checker.checkScalar(
            'optimizer',
            `optimizer.${scenario}.step${stepIndex}.lr_used.vil`,
            vilGroup.lr,
            expected.lr_used.vil,
            { atol: 0, rtol: 1e-12 },
          );
          checker.checkScalar(
            'optimizer',
            `optimizer.${scenario}.step${stepIndex}.lr_used.base`,
            baseGroup.lr,
            expected.lr_used.base,
            { atol: 0, rtol: 1e-12 },
          );
          scaled.backward();
        });
        optimizer.step();
        model.zeroGrad();
        if (firstTask && (globalStep < spec.warmup_steps || scenario === 'warmup_linear')) warmup.step();
        if (firstTask) {
          globalStep += 1;
          firstTask = false;
        }
        const prefix = `${scenario}.step${stepIndex}.`;
        for (const key of [...checker.pending.keys()].filter((k) => k.startsWith(`optimizer:${prefix}`))) {
          const name = key.slice(`optimizer:${prefix}`.length);
          checker.check('optimizer', `${prefix}${name}`, parameters.get(name), TOLERANCES.optimizer);
        }
        stepIndex += 1;
      }
    }
    for (const kind of ['exp_avg', 'exp_avg_sq'] as const) {
      const prefix = `${scenario}.final.${kind}.`;
      for (const key of [...checker.pending.keys()].filter((k) => k.startsWith(`optimizer:${prefix}`))) {
        const name = key.slice(`optimizer:${prefix}`.length);
        const parameter = parameters.get(name);
        const state = parameter ? optimizer.stateOf(parameter) : undefined;
        checker.check(
          'optimizer',
          `${prefix}${name}`,
          kind === 'exp_avg' ? state?.expAvg : state?.expAvgSq,
          TOLERANCES.moments,
        );
      }
    }
  } finally {
    optimizer.dispose();
    model.zeroGrad(true);
  }
}

/**
 * train_tasks.py's loss_scale[task] = task lr / min(task lrs): the folder's
 * optimizer.loss_scale, else its optimizer.task_lr, else the registry's lrs.
 */
function lossScale(spec: OptimizerScalars, specs: TaskSpecs, task: string, index: number): number {
  const given = spec.loss_scale?.[task];
  if (typeof given === 'number') return given;
  const lrs = spec.tasks.map((name, i) => {
    const lr =
      Array.isArray(spec.task_lr) && typeof spec.task_lr[i] === 'number'
        ? spec.task_lr[i]
        : specs.registryEntry(name)?.lr;
    if (typeof lr !== 'number' || !(lr > 0)) {
      throw new ParityGap(
        `${specs.scalarsPath} optimizer.loss_scale has no ${task}, and the lr of ${name} is neither in optimizer.task_lr nor in the task registry`,
      );
    }
    return lr;
  });
  return lrs[index]! / Math.min(...lrs);
}
