// Runs every comparison it can between this implementation and a folder of
// reference outputs laid out like the parity fixtures (config.json, weights in
// up to three formats, inputs / forward / pretrain / train_step safetensors).
// Tensors that exist in the folder but that nothing here checks are reported
// as unchecked, so a missing comparison can never pass silently.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { readSafetensors } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { rawToTensor, readWeights } from '../io/weights.js';
import { loadConfig } from '../model/config.js';
import type { BertInputs } from '../model/bert-model.js';
import { BertForMultiModalPreTraining, VILBertForVLTasks, dropMismatchedLabels } from '../model/vilbert.js';
import { getNumerics, type Numerics, setNumerics } from '../model/layers.js';
import { compare, type Tolerance, TOLERANCES } from './compare.js';
import { forwardTask, headOf, prepareBatch, type TaskBatch, type TaskProcess, type TaskType } from '../tasks/task-step.js';
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

function familyOf(file: string, key: string): Family {
  if (file === 'pretrain') return 'pretrain';
  if (file === 'train_step') return 'train_step';
  if (file === 'optimizer') return 'optimizer';
  if (key.startsWith('nlvr2.')) return 'nlvr2';
  return key.includes('.debug.') ? 'debug' : 'forward';
}

class Checker {
  readonly rows: ParityRow[] = [];
  readonly pending = new Map<string, { family: Family; file: string; raw: RawTensor }>();

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
    this.rows.push({ family, name: `scalars:${name}`, ok, maxAbsDiff: difference, bound: `atol ${tolerance.atol}, rtol ${tolerance.rtol}` });
  }

  check(file: string, key: string, got: torch.Tensor | undefined, tolerance: Tolerance): void {
    const entry = this.pending.get(`${file}:${key}`);
    if (!entry) return;
    this.pending.delete(`${file}:${key}`);
    if (got === undefined) {
      this.rows.push({ family: entry.family, name: `${file}:${key}`, ok: false, maxAbsDiff: Number.NaN, bound: '-', problem: 'not produced' });
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
  const load = (name: string) => (existsSync(path(`${name}.safetensors`)) ? readSafetensors(path(`${name}.safetensors`)).tensors : new Map<string, RawTensor>());
  const inputsRaw = load('inputs');
  const checker = new Checker(skip);
  checker.add('forward', load('forward'));
  checker.add('pretrain', load('pretrain'));
  checker.add('train_step', load('train_step'));
  checker.add('optimizer', load('optimizer'));

  const inputs = new Map<string, torch.Tensor>();
  const input = (key: string): torch.Tensor => {
    let tensor = inputs.get(key);
    if (!tensor) {
      const raw = inputsRaw.get(key);
      if (!raw) throw new Error(`${path('inputs.safetensors')}: missing input '${key}'`);
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
      checkForwards(model, checker, input, progress);
      checkNlvr2(model, checker, input);
      model.dispose();
    }
    const scalars = existsSync(path('scalars.json')) ? (JSON.parse(readFileSync(path('scalars.json'), 'utf8')) as Scalars) : undefined;
    if (scalars?.train && (!skip.has('train_step') || !skip.has('optimizer'))) {
      const { config } = loadConfig(configPath, { task_specific_tokens: true, visual_target: 0, v_target_size: 1601 });
      const model = new VILBertForVLTasks(config);
      model.eval();
      if (!skip.has('train_step')) {
        model.loadStateDict(weights);
        checkTrainSteps(model, checker, input, scalars, progress);
      }
      if (!skip.has('optimizer') && scalars.optimizer) {
        for (const scenario of Object.keys(scalars.optimizer.scenarios)) {
          model.loadStateDict(weights);
          model.zeroGrad(true);
          checkOptimizer(model, checker, input, scalars, scenario, progress);
        }
      }
      model.dispose();
    }
    // Only the families the folder has reference outputs for are run.
    if (!skip.has('pretrain') && [...checker.pending.values()].some((entry) => entry.family === 'pretrain')) {
      const { config } = loadConfig(configPath, { visual_target: 0, v_target_size: 1601 });
      const model = new BertForMultiModalPreTraining(config);
      model.loadStateDict(weights, { strict: false });
      model.eval();
      checkPretraining(model, checker, input, progress);
      model.dispose();
    }
  } finally {
    setNumerics(previousNumerics);
    for (const tensor of weights.values()) tensor.dispose();
    for (const tensor of inputs.values()) tensor.dispose();
  }
  const unchecked = [...checker.pending.entries()].map(([name, entry]) => ({
    family: entry.family,
    name,
    reason: 'no comparison for this tensor',
  }));
  return { weights: WEIGHT_FILES[variant], rows: checker.rows, unchecked };
}

const HEADS = [
  'vil_prediction', 'vil_prediction_gqa', 'vil_logit', 'vil_binary_prediction', 'vil_tri_prediction',
  'vision_prediction', 'vision_logit', 'linguisic_prediction', 'linguisic_logit',
] as const;

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

function checkForwards(model: VILBertForVLTasks, checker: Checker, input: (key: string) => torch.Tensor, progress: (m: string) => void): void {
  for (const task of taskIdsPresent(checker)) {
    progress(`forward, task ${task}`);
    const prefix = `t${task}.`;
    const debug = new Map<string, torch.Tensor>();
    const removers = checker.has('forward', `${prefix}debug.embeddings_t`) ? attachDebugHooks(model, debug) : [];
    torch.scope(() =>
      torch.noGrad(() => {
        const out = model.call(baseInputs(input, input(`eval.task_ids.t${task}`)));
        for (const head of HEADS) checker.check('forward', `${prefix}${head}`, out[head], TOLERANCES.forward);
        checker.check('forward', `${prefix}sequence_output_t`, out.bert.sequenceOutputText, TOLERANCES.forward);
        checker.check('forward', `${prefix}sequence_output_v`, out.bert.sequenceOutputImage, TOLERANCES.forward);
        checker.check('forward', `${prefix}pooled_output_t`, out.bert.pooledText, TOLERANCES.forward);
        checker.check('forward', `${prefix}pooled_output_v`, out.bert.pooledImage, TOLERANCES.forward);
        checker.check('forward', `${prefix}pooled_output_fused`, out.pooled_output_fused, TOLERANCES.forward);
      }),
    );
    for (const remove of removers) remove();
    for (const [name, tensor] of debug) {
      checker.check('forward', `${prefix}debug.${name}`, tensor, name.includes('attn_probs') ? TOLERANCES.attention : TOLERANCES.forward);
      tensor.dispose();
    }
  }
}

function attachDebugHooks(model: VILBertForVLTasks, into: Map<string, torch.Tensor>): (() => void)[] {
  const encoder = model.bert.encoder;
  const removers = [
    model.bert.embeddings.registerForwardHook((_, output) => into.set('embeddings_t', keepTensor(output as torch.Tensor))),
    model.bert.v_embeddings.registerForwardHook((_, output) => into.set('embeddings_v', keepTensor(output as torch.Tensor))),
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
        const mixed = output as { image: torch.Tensor; text: torch.Tensor; probsTextToImage: torch.Tensor; probsImageToText: torch.Tensor };
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
        question: input('nlvr2.question'), features: input('nlvr2.features'), spatials: input('nlvr2.spatials'),
        image_mask: input('nlvr2.image_mask'), input_mask: input('nlvr2.input_mask'), segment_ids: input('nlvr2.segment_ids'),
        target: input('target.nlvr2'),
      };
      const modelInputs = prepareBatch(batch, 'nlvr', 12).inputs;
      checker.check('forward', 'nlvr2.model_in.question', modelInputs.inputIds, TOLERANCES.exact);
      checker.check('forward', 'nlvr2.model_in.segment_ids', modelInputs.tokenTypeIds!, TOLERANCES.exact);
      checker.check('forward', 'nlvr2.model_in.input_mask', modelInputs.attentionMask!, TOLERANCES.exact);
      checker.check('forward', 'nlvr2.model_in.image_mask', modelInputs.imageAttentionMask!, TOLERANCES.exact);
      checker.check('forward', 'nlvr2.model_in.task_ids', modelInputs.taskIds!, TOLERANCES.exact);
      const out = model.call(modelInputs);
      for (const head of HEADS) checker.check('forward', `nlvr2.${head}`, out[head], TOLERANCES.forward);
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
  const inputs: BertInputs = {
    inputIds: input('pretrain.input_ids'),
    imageFeatures: input('pretrain.image_feat'),
    imageLocations: input('pretrain.image_loc'),
    tokenTypeIds: input('pretrain.segment_ids'),
    attentionMask: input('pretrain.input_mask'),
    imageAttentionMask: input('pretrain.image_mask'),
  };
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
    { name: 'obj2', lm: input('pretrain.lm_label_ids'), image: input('pretrain.image_label'), isNext: torch.zerosLike(isNext).keep(), nspWeight: 0 },
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
      const gradientKeys = [...checker.pending.keys()].filter((key) => key.startsWith(`pretrain:${objective.name}.grad.`));
      if (gradientKeys.length > 0) {
        model.zeroGrad(true);
        total.backward();
        const parameters = new Map(model.stateDict());
        for (const key of gradientKeys) {
          const name = key.slice(`pretrain:${objective.name}.grad.`.length);
          checker.check('pretrain', `${objective.name}.grad.${name}`, parameters.get(name)?.grad ?? undefined, TOLERANCES.gradient);
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

interface TrainTaskScalars {
  name: string;
  type: TaskType;
  process: TaskProcess;
  task_token: number;
  batch: Record<string, string>;
  loss: number;
  batch_score: number;
  grad_is_none: string[];
}

interface OptimizerScalars {
  tasks: string[];
  base_lr: number;
  loss_scale: Record<string, number>;
  num_train_optimization_steps: number;
  warmup_steps: number;
  scenarios: Record<string, { steps: { step: number; iteration: number; task: string; loss_scaled: number; lr_used: { vil: number; base: number } }[] }>;
}

interface Scalars {
  train: Record<string, TrainTaskScalars>;
  optimizer?: OptimizerScalars;
}

function taskBatch(spec: TrainTaskScalars, input: (key: string) => torch.Tensor): TaskBatch {
  const slots = Object.fromEntries(Object.entries(spec.batch).map(([slot, name]) => [slot, input(name)]));
  return slots as unknown as TaskBatch;
}


/** Each task's loss, head output, reshaped model inputs and gradients (eval mode, as the fixtures). */
function checkTrainSteps(model: VILBertForVLTasks, checker: Checker, input: (key: string) => torch.Tensor, scalars: Scalars, progress: (m: string) => void): void {
  const parameters = new Map(model.namedParameters());
  for (const [task, spec] of Object.entries(scalars.train)) {
    progress(`training loss and gradients, ${task} (${spec.name})`);
    torch.scope(() => {
      model.zeroGrad(true);
      const result = forwardTask(model, taskBatch(spec, input), { type: spec.type, process: spec.process, number: spec.task_token });
      const inputs = result.prepared.inputs;
      checker.check('train_step', `${task}.model_in.question`, inputs.inputIds, TOLERANCES.exact);
      checker.check('train_step', `${task}.model_in.segment_ids`, inputs.tokenTypeIds ?? undefined, TOLERANCES.exact);
      checker.check('train_step', `${task}.model_in.input_mask`, inputs.attentionMask ?? undefined, TOLERANCES.exact);
      checker.check('train_step', `${task}.model_in.image_mask`, inputs.imageAttentionMask ?? undefined, TOLERANCES.exact);
      checker.check('train_step', `${task}.model_in.task_ids`, inputs.taskIds ?? undefined, TOLERANCES.exact);
      checker.check('train_step', `${task}.loss`, result.loss, TOLERANCES.loss);
      checker.check('train_step', `${task}.head.${headOf(spec.type)}`, result.output, TOLERANCES.forward);
      checker.checkScalar('train_step', `train.${task}.batch_score`, result.score / result.prepared.batchSize, spec.batch_score, { atol: 1e-6, rtol: 0 }); // stored from a float32 score
      result.loss.backward();
      for (const key of [...checker.pending.keys()].filter((k) => k.startsWith(`train_step:${task}.grad.`))) {
        const name = key.slice(`train_step:${task}.grad.`.length);
        checker.check('train_step', `${task}.grad.${name}`, parameters.get(name)?.grad ?? undefined, TOLERANCES.gradient);
      }
      for (const name of spec.grad_is_none) {
        const gradient = parameters.get(name)?.grad ?? null;
        const largest = gradient === null ? 0 : gradient.abs().max().item();
        checker.checkScalar('train_step', `train.${task}.grad_is_none.${name} (max |grad|)`, largest, 0, { atol: 0, rtol: 0 });
      }
    });
  }
  model.zeroGrad(true);
}

/** Replays train_tasks.py's loop for the fixture's tasks: one AdamW step per task, the schedule stepped after the first. */
function checkOptimizer(model: VILBertForVLTasks, checker: Checker, input: (key: string) => torch.Tensor, scalars: Scalars, scenario: string, progress: (m: string) => void): void {
  const spec = scalars.optimizer!;
  progress(`optimiser replay, ${scenario}`);
  const optimizer = new AdamW(referenceParamGroups(model, spec.base_lr));
  const total = spec.num_train_optimization_steps;
  let warmup: LambdaLR;
  if (scenario === 'warmup_linear') {
    warmup = new LambdaLR(optimizer.groups, warmupLinear(spec.warmup_steps, total));
  } else if (scenario === 'mannul') {
    warmup = new LambdaLR(optimizer.groups, warmupConstant(spec.warmup_steps));
    new LambdaLR(optimizer.groups, epochDecay()); // constructing it resets every lr to initial x 1, as in the reference
  } else {
    throw new Error(`scalars.json: unknown optimizer scenario '${scenario}'`);
  }
  const parameters = new Map(model.namedParameters());
  const vilGroup = optimizer.groups.find((group) => group.name.includes('vil_'))!;
  const baseGroup = optimizer.groups.find((group) => !group.name.includes('vil_'))!;
  let globalStep = 0;
  const steps = spec.scenarios[scenario]!.steps;
  const iterations = Math.max(...steps.map((step) => step.iteration)) + 1;
  let stepIndex = 0;
  for (let iteration = 0; iteration < iterations; iteration++) {
    let firstTask = true;
    for (const task of spec.tasks) {
      const expected = steps[stepIndex]!;
      const train = scalars.train[task]!;
      torch.scope(() => {
        const result = forwardTask(model, taskBatch(train, input), { type: train.type, process: train.process, number: train.task_token });
        const scaled = result.loss.mul(spec.loss_scale[task]!);
        checker.checkScalar('optimizer', `optimizer.${scenario}.step${stepIndex}.loss_scaled`, scaled.item(), expected.loss_scaled, TOLERANCES.loss);
        checker.checkScalar('optimizer', `optimizer.${scenario}.step${stepIndex}.lr_used.vil`, vilGroup.lr, expected.lr_used.vil, { atol: 0, rtol: 1e-12 });
        checker.checkScalar('optimizer', `optimizer.${scenario}.step${stepIndex}.lr_used.base`, baseGroup.lr, expected.lr_used.base, { atol: 0, rtol: 1e-12 });
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
      const state = optimizer.stateOf(parameters.get(name)!);
      checker.check('optimizer', `${prefix}${name}`, kind === 'exp_avg' ? state?.expAvg : state?.expAvgSq, TOLERANCES.moments);
    }
  }
  optimizer.dispose();
  model.zeroGrad(true);
}
