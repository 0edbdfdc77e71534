// Multi-task training as train_tasks.py runs it (docs/MODEL.md, "Training"): every
// iteration visits the tasks in --tasks order, each with its own batch,
// backward pass and optimiser step; the schedule advances after the first
// task's step; a task the stop-and-go controller paused is trained only every
// train_iter_gap iterations; each task is evaluated every time the iteration
// count passes a multiple of its own epoch length.
//
// In a distributed run (docs/DISTRIBUTED.md) every rank trains on its shard of
// each batch, gradients are averaged before each optimiser step, every rank
// evaluates the whole validation split and takes rank 0's scores, and only rank
// 0 writes files and emits events.
//
// Around the loop, run-harness.ts keeps the run: seed, run directory, resume, run log,
// pretrained weights, checkpoints, the stop poll, the NaN/Inf guard and the run's end.
import { basename, extname, join } from 'node:path';
import * as torch from '../torch/index.js';
import type { ViLBertConfig } from '../model/config.js';
import { configFromFlags } from './model-from-flags.js';
import { VILBertForVLTasks } from '../model/vilbert.js';
import { loadTaskRegistry, bundledTasksPath, type TaskConfig } from '../data/task-registry.js';
import { forwardTask } from '../task-step/step.js';
import { toTaskBatch } from '../task-step/batch.js';
import { evaluateTask } from '../eval/evaluate.js';
import type { SamplerState } from '../data/loader.js';
import { AdamW, referenceParamGroups, type Optimizer } from './adamw.js';
import { RAdam } from './radam.js';
import { LrPlan, type LrPlanState, type LrSchedulerName } from './schedules.js';
import { StopAndGo, type StopAndGoState } from './stop-and-go.js';
import { buildTaskLoaders, selectTasks, type TaskLoaders } from './task-data.js';
import { freezeTextLayers, visionScratchGroups } from './param-groups.js';
import type { TrainEvent } from './run-log.js';
import { openRun, type RunHooks } from './run-harness.js';

/** The flags of train_tasks.py (same names and defaults), plus this project's own. */
export interface TrainTasksArgs {
  bert_model: string;
  from_pretrained: string;
  output_dir: string;
  config_file: string;
  num_train_epochs: number;
  train_iter_multiplier: number;
  train_iter_gap: number;
  warmup_proportion: number;
  do_lower_case: boolean;
  seed: number;
  gradient_accumulation_steps: number;
  num_workers: number;
  save_name: string;
  in_memory: boolean;
  optim: 'AdamW' | 'RAdam';
  tasks: string;
  freeze: number;
  vision_scratch: boolean;
  lr_scheduler: LrSchedulerName;
  resume_file: string;
  dynamic_attention: boolean;
  clean_train_sets: boolean;
  visual_target: number;
  task_specific_tokens: boolean;
  /** Ours: a task registry replacing the bundled vilbert_tasks.yml. */
  tasks_config: string;
  /** Ours: the directory the registry's relative paths start from (the reference's working directory). */
  datasets_root: string;
  /** Ours: also checkpoint every N iterations (0: at epoch ends only, as the reference). */
  checkpoint_every: number;
  /** Ours: every task's batch size (0: the registry's). */
  batch_size: number;
  /** Ours: check every loss and gradient for NaN/Inf (stops the run, naming the tensor). */
  check_finite: boolean;
  /** Ours: bfloat16 autocast for the forward (float32 weights, gradients, optimiser state and losses). */
  bf16: boolean;
  /** Ours: lr of the 'vil_' heads (and of --vision_scratch weights); the reference fixes it at 1e-4. */
  head_lr: number;
  /** Ours: initial bias of the answer classifiers' last layer when training starts them afresh (the reference: 0). */
  answer_bias_init: number;
}

export const TRAIN_TASKS_DEFAULTS: TrainTasksArgs = {
  bert_model: 'bert-base-uncased',
  from_pretrained: 'bert-base-uncased',
  output_dir: 'save',
  config_file: 'config/bert_base_6layer_6conect.json',
  num_train_epochs: 20,
  train_iter_multiplier: 1.0,
  train_iter_gap: 4,
  warmup_proportion: 0.1,
  do_lower_case: true,
  seed: 0,
  gradient_accumulation_steps: 1,
  num_workers: 16,
  save_name: '',
  in_memory: false,
  optim: 'AdamW',
  tasks: '',
  freeze: -1,
  vision_scratch: false,
  lr_scheduler: 'mannul',
  resume_file: '',
  dynamic_attention: false,
  clean_train_sets: true,
  visual_target: 0,
  task_specific_tokens: false,
  tasks_config: '',
  datasets_root: '.',
  checkpoint_every: 0,
  batch_size: 0,
  check_finite: true,
  bf16: false,
  head_lr: 1e-4,
  answer_bias_init: 0,
};

/** Everything besides tensors that a resumed run needs to continue exactly. */
export interface TrainTasksState {
  /** Where the next iteration starts. */
  epoch: number;
  step: number;
  globalStep: number;
  lrPlan: LrPlanState;
  stopAndGo: Record<string, StopAndGoState>;
  samplers: Record<string, { train: SamplerState; val: SamplerState }>;
  /** Latest validation score per task (the 'automatic' schedule's input). */
  valScores: Record<string, number>;
  /** Processes of the run that saved it (the sampler positions count each one's batches); absent means 1. */
  worldSize?: number;
}

export interface TrainTasksResult {
  status: 'finished' | 'interrupted';
  runDir: string;
  model: VILBertForVLTasks;
  config: ViLBertConfig;
  tasks: TaskConfig[];
  /** Iterations run by this process (not counting a resumed run's earlier ones). */
  iterations: number;
  valScores: Record<string, number>;
}

export type TrainTasksHooks = RunHooks<TrainEvent>;

/** `<output_dir>/<task names joined by ->_<config stem>[-<save_name>]`, the reference's savePath. */
export function runDirectory(
  args: Pick<TrainTasksArgs, 'output_dir' | 'config_file' | 'save_name'>,
  tasks: TaskConfig[],
): string {
  const stem = basename(args.config_file, extname(args.config_file));
  const name = `${tasks.map((task) => task.name).join('-')}_${stem}${args.save_name ? `-${args.save_name}` : ''}`;
  return join(args.output_dir, name);
}

function buildOptimizer(args: TrainTasksArgs, model: VILBertForVLTasks, baseLr: number): Optimizer {
  const groups = args.vision_scratch
    ? visionScratchGroups(model, baseLr, args.bert_model, args.head_lr)
    : referenceParamGroups(model, baseLr, args.head_lr);
  if (args.optim === 'AdamW') return new AdamW(groups, { eps: 1e-6, correctBias: false });
  if (args.optim === 'RAdam') return new RAdam(groups);
  throw new Error(`--optim must be AdamW or RAdam, got '${String(args.optim)}'`);
}

/** The answer classifiers' output layers: VQA / GenomeQA (3129 answers) and GQA (1533), trained with BCE over every answer. */
export const ANSWER_BIAS_KEYS = ['vil_prediction.logit_fc.3.bias', 'vil_prediction_gqa.logit_fc.3.bias'] as const;

/**
 * Sets the answer classifiers' output bias to `value` where no checkpoint provided it. The
 * reference starts it at 0, so every one of the 3129 sigmoids starts at 0.5 and the summed
 * BCE at ~2170 per question; from random weights the first hundreds of steps then go to
 * pushing every logit down. A bias near -log(answers) (the prior of a rare answer) starts
 * there instead.
 */
export function initAnswerBias(model: VILBertForVLTasks, value: number, loaded: ReadonlySet<string>): void {
  if (!Number.isFinite(value)) throw new RangeError(`--answer_bias_init must be a finite number, got ${value}`);
  const parameters = new Map(model.namedParameters());
  torch.noGrad(() => {
    for (const key of ANSWER_BIAS_KEYS) if (!loaded.has(key)) parameters.get(key)?.fill_(value);
  });
}

/** Runs train_tasks.py's loop; returns when done, interrupted (checkpoint saved) or throws (no checkpoint overwritten). */
export async function trainTasks(args: TrainTasksArgs, hooks: TrainTasksHooks = {}): Promise<TrainTasksResult> {
  const registryPath = args.tasks_config || bundledTasksPath();
  const tasks = selectTasks(loadTaskRegistry(registryPath), args.tasks, registryPath);
  const run = openRun<TrainTasksState, TrainEvent>(hooks, {
    runDir: runDirectory(args, tasks),
    seed: args.seed,
    resumeFile: args.resume_file,
    checkFinite: args.check_finite,
  });
  const { dp, emit, runDir } = run;
  const baseLr = Math.min(...tasks.map((task) => task.lr));
  const lossScale = new Map(tasks.map((task) => [task.key, task.lr / baseLr]));
  const config = run.recordCommand(args, configFromFlags(args));

  // Rank 0 opens the datasets first: it writes the token caches that the other ranks then read.
  const loaders = await run.mainRankFirst(() =>
    buildTaskLoaders(tasks, {
      root: args.datasets_root,
      cleanDatasets: args.clean_train_sets,
      gradientAccumulation: args.gradient_accumulation_steps,
      seed: args.seed,
      workers: args.num_workers > 0,
      batchSize: args.batch_size,
      parallel: dp,
    }),
  );
  const model = new VILBertForVLTasks(config).setPrecision(args.bf16 ? 'bf16' : 'fp32');
  const close = () => Promise.all(loaders.flatMap((loader) => [loader.train.close(), loader.val.close()]));
  return run.execute({ model, tasks, config, close }, async () => {
    const loadedKeys = run.loadPretrained(model, args.from_pretrained);
    if (args.answer_bias_init !== 0 && !args.resume_file) initAnswerBias(model, args.answer_bias_init, loadedKeys);
    if (args.freeze >= 0) freezeTextLayers(model, args.freeze, args.bert_model);
    const optimizer = buildOptimizer(args, model, baseLr);
    const checkpointParts = { model, optimizer, optimizerKind: args.optim };

    const taskNumIters = new Map(loaders.map(({ task, train }) => [task.key, train.length]));
    const taskAveIter = new Map(
      loaders.map(({ task, train }) => [
        task.key,
        Math.trunc((tasks.at(-1)!.num_epoch * train.length * args.train_iter_multiplier) / args.num_train_epochs),
      ]),
    );
    const iterationsPerEpoch = Math.max(...taskAveIter.values());
    if (iterationsPerEpoch < 1)
      throw new Error(
        `--train_iter_multiplier ${args.train_iter_multiplier} and num_epoch leave 0 iterations per epoch`,
      );
    const totalSteps = Math.trunc((iterationsPerEpoch * args.num_train_epochs) / args.gradient_accumulation_steps);
    const lrPlan = new LrPlan(args.lr_scheduler, optimizer.groups, {
      warmup: args.warmup_proportion * totalSteps,
      total: totalSteps,
      iterationsPerEpoch,
      epochs: args.num_train_epochs,
    });
    const stops = new Map(tasks.map((task) => [task.key, new StopAndGo()]));

    let state: TrainTasksState = {
      epoch: 0,
      step: 0,
      globalStep: 0,
      lrPlan: lrPlan.state(),
      stopAndGo: {},
      samplers: {},
      valScores: {},
      worldSize: dp.worldSize,
    };
    if (run.resumed) {
      state = run.loadCheckpoint(checkpointParts);
      lrPlan.restore(state.lrPlan);
      for (const [key, stop] of stops) if (state.stopAndGo[key]) stop.restore(state.stopAndGo[key]);
      for (const loader of loaders) {
        const saved = state.samplers[loader.task.key];
        if (!saved)
          throw new Error(
            `${args.resume_file}: no sampler state for ${loader.task.key} (was it saved by a run with other --tasks?)`,
          );
        loader.train.restore(saved.train);
        loader.val.restore(saved.val);
      }
      run.resumedAt(state, iterationsPerEpoch);
    }
    await run.shareWeights(model);
    emit({
      kind: 'setup',
      runDir,
      tasks,
      iterationsPerEpoch,
      epochs: args.num_train_epochs,
      totalSteps,
      startIteration: state.epoch * iterationsPerEpoch + state.step,
    });

    const snapshot = (epoch: number, step: number): TrainTasksState => ({
      epoch,
      step,
      globalStep: state.globalStep,
      lrPlan: lrPlan.state(),
      stopAndGo: Object.fromEntries([...stops].map(([key, stop]) => [key, stop.state()])),
      samplers: Object.fromEntries(
        loaders.map((loader) => [loader.task.key, { train: loader.train.state(), val: loader.val.state() }]),
      ),
      valScores: { ...state.valScores },
      worldSize: dp.worldSize,
    });
    // Sampler positions, weights and moments are the same on every rank: rank 0's checkpoint serves all.
    const checkpoint = (epoch: number, step: number) =>
      run.checkpoint(epoch, step, { ...checkpointParts, trainer: () => snapshot(epoch, step) });
    const evaluate = async (loader: TaskLoaders, iterId: number) => {
      model.eval();
      const result = await evaluateTask(
        model,
        loader.val,
        { ...loader.task, number: loader.number },
        { collectResults: false },
      );
      model.train();
      // Rank 0's numbers on every rank, so that stop-and-go and the lr plan decide alike everywhere.
      const [loss, score] = (await dp.broadcastNumbers([result.loss, result.score])) as [number, number];
      const stop = stops.get(loader.task.key)!;
      stop.step(score);
      state.valScores[loader.task.key] = score;
      run.log?.validation(loader.task, iterId, loss, score, stop.inStop);
      emit({ kind: 'eval', task: loader.task, iteration: iterId, loss, score, inStop: stop.inStop });
    };
    const result = (status: TrainTasksResult['status']): TrainTasksResult => ({
      status,
      runDir,
      model,
      config,
      tasks,
      iterations,
      valScores: state.valScores,
    });

    let iterations = 0;
    const accumulation = args.gradient_accumulation_steps;
    for (let epoch = state.epoch; epoch < args.num_train_epochs; epoch++) {
      model.train();
      for (let step = epoch === state.epoch ? state.step : 0; step < iterationsPerEpoch; step++) {
        if (await run.stopRequested(step % accumulation === 0)) {
          checkpoint(epoch, step);
          return result('interrupted');
        }
        const iterId = step + epoch * iterationsPerEpoch;
        let firstTask = true;
        for (const loader of loaders) {
          const { task } = loader;
          if (stops.get(task.key)!.inStop && iterId % args.train_iter_gap !== 0) continue;
          const batch = await loader.train.next();
          const where = `iteration ${iterId} (epoch ${epoch}, step ${step}), ${task.key} ${task.name}`;
          const local = torch.scope(() => {
            const taskBatch = toTaskBatch(batch);
            const out = forwardTask(model, taskBatch, {
              type: task.type,
              process: task.process,
              number: loader.number,
            });
            const scaled = out.loss.mul(lossScale.get(task.key)! / accumulation);
            const value = scaled.item();
            const divergence = run.guardedBackward(model, where, [[value, 'the loss']], () => scaled.backward());
            return { loss: value, score: out.score, batchSize: out.prepared.batchSize, divergence };
          });
          // One collective: every rank stops if one diverged, and the log gets the global batch's loss and score.
          const [lossSum, scoreSum, rows] = (await run.sumOverRanks(
            local.divergence,
            [local.loss, local.score, local.batchSize],
            where,
          )) as [number, number, number];
          const loss = lossSum / dp.worldSize; // the ranks' batches are of one size
          const score = scoreSum / rows;
          if ((step + 1) % accumulation === 0) {
            await dp.averageGradients(model);
            optimizer.step();
            model.zeroGrad();
            if (firstTask) {
              lrPlan.afterFirstTaskStep(state.globalStep);
              state.globalStep += 1;
              firstTask = false;
            }
            const lr = optimizer.groups[0]?.lr ?? 0;
            run.log?.train(task, iterId, loss, score, lr);
            emit({ kind: 'train', task, iteration: iterId, epoch, step, loss, score, lr });
          }
        }
        lrPlan.endOfIteration(state.globalStep);
        run.log?.periodicSummary(step, accumulation, taskNumIters);
        for (const loader of loaders) {
          const lastIteration = epoch === args.num_train_epochs - 1 && step === iterationsPerEpoch - 1;
          if ((iterId !== 0 && iterId % taskNumIters.get(loader.task.key)! === 0) || lastIteration)
            await evaluate(loader, iterId);
        }
        iterations += 1;
        emit({ kind: 'iteration', iteration: iterId, epoch, step, globalStep: state.globalStep });
        const next = step + 1;
        if (
          args.checkpoint_every > 0 &&
          (iterId + 1) % args.checkpoint_every === 0 &&
          next % accumulation === 0 &&
          next < iterationsPerEpoch
        )
          checkpoint(epoch, next);
      }
      const scores = Object.values(state.valScores);
      lrPlan.endOfEpoch(scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : 0);
      // After epochs 5 and 7, where 'mannul' cuts the lr by 0.2 (the reference's lr_reduce_list), every task's
      // stop-and-go controller starts afresh, whatever --lr_scheduler: at a lower lr a task that had stopped
      // improving may improve again. The reference does this for every scheduler; so do we.
      if (epoch === 5 || epoch === 7) for (const stop of stops.values()) stop.reset();
      await run.endEpoch(epoch, model, checkpoint);
    }
    return result('finished');
  });
}
