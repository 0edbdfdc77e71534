// Pre-training on Conceptual Captions as train_concap.py runs it (docs/TRAINING.md): every
// batch of the training LMDB, in key order, is masked (words, regions, a random caption
// for half of the pairs) and trained on masked-LM + weighted masked-region + alignment
// losses; AdamW with bias correction steps on accumulation boundaries after the linear
// warm-up schedule has stepped; each epoch ends with a validation pass over the
// validation LMDB, the epoch's weights and a checkpoint.
//
// In a distributed run (docs/DISTRIBUTED.md) rank r trains on batches r, r + W, ... of the
// training LMDB, gradients are averaged before each optimiser step, every rank runs the
// whole validation pass, and only rank 0 writes files and emits events.
//
// Around the loop, run-harness.ts keeps the run: seed, run directory, resume, run log,
// pretrained weights, checkpoints, the stop poll, the NaN/Inf guard and the run's end.
import { existsSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import * as torch from '../torch/index.js';
import type { ViLBertConfig } from '../model/config.js';
import { configFromFlags } from './model-from-flags.js';
import { BertForMultiModalPreTraining, type PreTrainingLabels } from '../model/vilbert.js';
import type { BertInputs } from '../model/bert-model.js';
import { ConceptCaptionsReader, type ConceptCaptionsBatch } from '../data/concept-captions.js';
import { ReferenceRandom, type ReferenceRandomState } from '../data/random-source.js';
import { itemToTensor } from '../task-step/batch.js';
import { dropMismatchedLabels } from '../model/vilbert.js';
import { BertTokenizer } from '../text/index.js';
import type { DataParallel } from '../distributed/index.js';
import { AdamW, referenceParamGroups } from './adamw.js';
import { LambdaLR, warmupLinear } from './schedules.js';
import { formatG, type TrainEvent } from './run-log.js';
import { openRun, type RunHooks } from './run-harness.js';

/** The flags of train_concap.py that change what it computes (same names and defaults), plus this project's own. */
export interface TrainConcapArgs {
  file_path: string;
  from_pretrained: string;
  bert_model: string;
  output_dir: string;
  config_file: string;
  max_seq_length: number;
  train_batch_size: number;
  learning_rate: number;
  num_train_epochs: number;
  start_epoch: number;
  warmup_proportion: number;
  img_weight: number;
  seed: number;
  gradient_accumulation_steps: number;
  dynamic_attention: boolean;
  save_name: string;
  freeze: number;
  without_coattention: boolean;
  visual_target: number;
  objective: number;
  resume_file: string;
  adam_epsilon: number;
  /** Ours: also checkpoint every N iterations (0: at epoch ends only, as the reference). */
  checkpoint_every: number;
  /** Ours: check every loss and gradient for NaN/Inf (stops the run, naming the tensor). */
  check_finite: boolean;
  /** Ours: bfloat16 autocast for the forward (float32 weights, gradients, optimiser state and losses). */
  bf16: boolean;
}

export const TRAIN_CONCAP_DEFAULTS: TrainConcapArgs = {
  file_path: 'data/conceptual_caption/',
  from_pretrained: 'bert-base-uncased',
  bert_model: 'bert-base-uncased',
  output_dir: 'save',
  config_file: 'config/bert_base_6layer_6conect.json',
  max_seq_length: 36,
  train_batch_size: 512,
  learning_rate: 1e-4,
  num_train_epochs: 10,
  start_epoch: 0,
  warmup_proportion: 0.1,
  img_weight: 1,
  seed: 42,
  gradient_accumulation_steps: 1,
  dynamic_attention: false,
  save_name: '',
  freeze: -1,
  without_coattention: false,
  visual_target: 0,
  objective: 0,
  resume_file: '',
  adam_epsilon: 1e-8,
  checkpoint_every: 0,
  check_finite: true,
  bf16: false,
};

/** The reference's task name for Conceptual Captions in its log tags. */
export const CONCAP_NAME = 'Conceptual_Caption';

/** One batch's three losses as logged: masked_loss_v after img_weight, next_sentence_loss after objective 2's x0. */
export interface ConcapLosses {
  maskedLm: number;
  maskedImage: number;
  nextSentence: number;
}

export type ConcapEvent =
  | Extract<TrainEvent, { kind: 'warning' | 'pretrained' | 'resumed' | 'checkpoint' | 'epoch' }>
  | {
      kind: 'setup';
      runDir: string;
      records: number;
      batchesPerEpoch: number;
      epochs: number;
      totalSteps: number;
      startIteration: number;
    }
  | {
      kind: 'train';
      iteration: number;
      epoch: number;
      step: number;
      globalStep: number;
      losses: ConcapLosses;
      lr: number;
    }
  | { kind: 'iteration'; iteration: number; epoch: number; step: number }
  | {
      kind: 'validation';
      epoch: number;
      iteration: number;
      losses: ConcapLosses;
      alignmentAccuracy: number;
      batches: number;
    };

/** The out.txt summary's sums since its last line, and the micro-batches logged so far. */
interface RunningSummary {
  maskedLm: number;
  maskedImage: number;
  nextSentence: number;
  lr: number;
  count: number;
  microBatches: number;
}

/** Everything besides tensors that a resumed run needs to continue exactly. */
export interface TrainConcapState {
  /** Where the next iteration starts. */
  epoch: number;
  step: number;
  globalStep: number;
  /** The run's shape, checked on resume (the schedule depends on them). */
  batchSize: number;
  totalSteps: number;
  /** The masking draws of the training and validation readers (rank 0's; validation draws alike on every rank). */
  trainRandom: ReferenceRandomState;
  valRandom: ReferenceRandomState;
  summary: RunningSummary;
  /** Processes of the run that saved it (batchSize is per process); absent means 1. */
  worldSize?: number;
  /** The training draws of ranks 1 .. worldSize - 1, each of which masks its own batches. */
  otherTrainRandom?: ReferenceRandomState[];
}

export interface TrainConcapResult {
  status: 'finished' | 'interrupted';
  runDir: string;
  model: BertForMultiModalPreTraining;
  config: ViLBertConfig;
  /** Iterations run by this process (not counting a resumed run's earlier ones). */
  iterations: number;
}

export type TrainConcapHooks = RunHooks<ConcapEvent>;

/** `<output_dir>/<config stem>[-<save_name>]`, the reference's savePath. */
export function concapRunDirectory(args: Pick<TrainConcapArgs, 'output_dir' | 'config_file' | 'save_name'>): string {
  const stem = basename(args.config_file, extname(args.config_file));
  return join(args.output_dir, `${stem}${args.save_name ? `-${args.save_name}` : ''}`);
}

/** --bert_model as a tokenizer: a vocab.txt, a folder holding one, or else the bundled bert-base-uncased vocabulary. */
function tokenizerFor(bertModel: string): BertTokenizer {
  if (existsSync(bertModel))
    return BertTokenizer.fromVocabFile(statSync(bertModel).isDirectory() ? join(bertModel, 'vocab.txt') : bertModel);
  return BertTokenizer.bundled();
}

function checkArgs(args: TrainConcapArgs): void {
  const choice = (flag: string, value: number) => {
    if (![0, 1, 2].includes(value)) throw new Error(`--${flag} must be 0, 1 or 2, got ${value}`);
  };
  choice('objective', args.objective);
  choice('visual_target', args.visual_target);
  if (!(args.gradient_accumulation_steps >= 1))
    throw new Error(`--gradient_accumulation_steps must be at least 1, got ${args.gradient_accumulation_steps}`);
  if (!(args.num_train_epochs > args.start_epoch))
    throw new Error(
      `--num_train_epochs ${args.num_train_epochs} leaves no epoch after --start_epoch ${args.start_epoch}`,
    );
}

/** The batch as model inputs and pre-training labels; objective 1 drops the labels of mismatched pairs. */
function toModelBatch(
  batch: ConceptCaptionsBatch,
  objective: number,
): { inputs: BertInputs; labels: PreTrainingLabels } {
  const t = Object.fromEntries(batch.order.map((name) => [name, itemToTensor(batch.values[name])])) as Record<
    (typeof batch.order)[number],
    torch.Tensor
  >;
  const mismatchDropped = objective === 1;
  return {
    inputs: {
      inputIds: t.input_ids,
      imageFeatures: t.image_feat,
      imageLocations: t.image_loc,
      tokenTypeIds: t.segment_ids,
      attentionMask: t.input_mask,
      imageAttentionMask: t.image_mask,
    },
    labels: {
      maskedLmLabels: mismatchDropped ? dropMismatchedLabels(t.lm_label_ids, t.is_next) : t.lm_label_ids,
      imageLabel: mismatchDropped ? dropMismatchedLabels(t.image_label, t.is_next) : t.image_label,
      imageTarget: t.image_target,
      nextSentenceLabel: t.is_next,
    },
  };
}

/** Runs train_concap.py's loop; returns when done, interrupted (checkpoint saved) or throws (no checkpoint overwritten). */
export async function trainConcap(args: TrainConcapArgs, hooks: TrainConcapHooks = {}): Promise<TrainConcapResult> {
  checkArgs(args);
  const run = openRun<TrainConcapState, ConcapEvent>(hooks, {
    runDir: concapRunDirectory(args),
    seed: args.seed,
    resumeFile: args.resume_file,
    checkFinite: args.check_finite,
    report: true,
  });
  const { dp, emit, runDir, resumed } = run;
  const coattention = args.without_coattention ? { with_coattention: false } : {};
  let parsed = configFromFlags(args, coattention);
  const firstConnection = parsed.config.t_biattention_id[0];
  if (firstConnection !== undefined && args.freeze > firstConnection) {
    // The reference's --freeze: text layers before the first connection run without gradients.
    parsed = configFromFlags(args, { ...coattention, fixed_t_layer: firstConnection });
  }
  const config = run.recordCommand(args, parsed);

  const accumulated = Math.floor(args.train_batch_size / args.gradient_accumulation_steps);
  const batchFlags = `--train_batch_size ${args.train_batch_size} // --gradient_accumulation_steps ${args.gradient_accumulation_steps}`;
  if (accumulated < 1) throw new Error(`${batchFlags} is 0`);
  // As the reference: each process's batch is the accumulation-divided one // world size.
  const batchSize = dp.localBatchSize(accumulated, `${batchFlags} = ${accumulated}`);
  const tokenizer = tokenizerFor(args.bert_model);
  const readerOptions = {
    tokenizer,
    batchSize,
    seqLen: args.max_seq_length,
    objective: args.objective,
    visualTarget: args.visual_target,
  };
  // Both streams start from the seed: the reference's validation loader draws from the seeded
  // main process, its training workers from forked copies of the same state.
  const trainRandom = resumed
    ? ReferenceRandom.fromState(savedTrainRandom(resumed, dp.rank, args.resume_file))
    : ReferenceRandom.seeded(args.seed);
  const valRandom = resumed ? ReferenceRandom.fromState(resumed.valRandom) : ReferenceRandom.seeded(args.seed);
  const train = ConceptCaptionsReader.open(args.file_path, { ...readerOptions, split: 'train', random: trainRandom });
  const val = openOrClose(
    () => ConceptCaptionsReader.open(args.file_path, { ...readerOptions, split: 'val', random: valRandom }),
    train,
  );
  const model = new BertForMultiModalPreTraining(config).setPrecision(args.bf16 ? 'bf16' : 'fp32');
  // run.json and the report know a run by its tasks; pre-training has this one.
  const tasks = [{ key: 'TASK0', name: CONCAP_NAME, type: 'pretraining' }];
  const close = () => {
    train.close();
    val.close();
  };
  return run.execute({ model, tasks, config, close }, async () => {
    for (const reader of [train, val]) {
      if (reader.length === 0)
        throw new Error(
          `${reader.path}: ${reader.numRecords} records make no batch of ${batchSize} (--train_batch_size // --gradient_accumulation_steps${dp.worldSize > 1 ? ' // world size' : ''})`,
        );
    }
    const shard = trainingShard(train, dp);
    if (shard.length === 0)
      throw new Error(
        `${train.path}: ${train.length} batches of ${batchSize} leave none for some of the ${dp.worldSize} processes`,
      );
    if (dp.worldSize > 1 && existsSync(join(args.file_path, 'training_feat_part_0.lmdb'))) {
      emit({
        kind: 'warning',
        message: `training_feat_part_<rank>.lmdb files are not read: rank r trains on batches r, r + ${dp.worldSize}, ... of training_feat_all.lmdb`,
      });
    }
    run.loadPretrained(model, args.from_pretrained);
    // The reference means BERT-initialised weights to train at 0.1 x lr, but its name test never
    // matches, so every parameter trains at --learning_rate; kept (docs/TRAINING.md).
    const optimizer = new AdamW(referenceParamGroups(model, args.learning_rate, args.learning_rate), {
      betas: [0.9, 0.98],
      eps: args.adam_epsilon,
      correctBias: true,
    });
    const checkpointParts = { model, optimizer, optimizerKind: 'AdamW' };
    const accumulation = args.gradient_accumulation_steps;
    const batchesPerEpoch = shard.length;
    const totalSteps =
      Math.trunc(shard.records / batchSize / accumulation) * (args.num_train_epochs - args.start_epoch);
    const scheduler = new LambdaLR(optimizer.groups, warmupLinear(args.warmup_proportion * totalSteps, totalSteps));

    let state: TrainConcapState = {
      epoch: Math.trunc(args.start_epoch),
      step: 0,
      globalStep: 0,
      batchSize,
      totalSteps,
      trainRandom: trainRandom.state(),
      valRandom: valRandom.state(),
      summary: { maskedLm: 0, maskedImage: 0, nextSentence: 0, lr: 0, count: 0, microBatches: 0 },
      worldSize: dp.worldSize,
      otherTrainRandom: [],
    };
    if (resumed) {
      if (resumed.batchSize !== batchSize || resumed.totalSteps !== totalSteps) {
        throw new Error(
          `${args.resume_file}: saved by a run with batches of ${resumed.batchSize} and ${resumed.totalSteps} optimisation steps; these flags give ${batchSize} and ${totalSteps} (resume with the original run's flags)`,
        );
      }
      state = run.loadCheckpoint(checkpointParts);
      // LambdaLR's count is the number of optimiser steps: put it there and apply its lr.
      scheduler.lastEpoch = state.globalStep - 1;
      scheduler.step();
      run.resumedAt(state, batchesPerEpoch);
    }
    await run.shareWeights(model);
    const summary = state.summary;
    emit({
      kind: 'setup',
      runDir,
      records: train.numRecords,
      batchesPerEpoch,
      epochs: Math.trunc(args.num_train_epochs),
      totalSteps,
      startIteration: state.epoch * batchesPerEpoch + state.step,
    });

    // Every rank takes part (each masks its own batches, so rank 0 saves all their draws); rank 0 writes.
    const checkpoint = async (epoch: number, step: number) => {
      const [first, ...others] = await dp.gatherValues(trainRandom.state());
      run.checkpoint(epoch, step, {
        ...checkpointParts,
        trainer: () => ({
          ...state,
          epoch,
          step,
          trainRandom: first!,
          valRandom: valRandom.state(),
          summary: { ...summary },
          worldSize: dp.worldSize,
          otherTrainRandom: others,
        }),
      });
    };
    const taskNumIters = shard.records / batchSize;
    const result = (status: TrainConcapResult['status']): TrainConcapResult => ({
      status,
      runDir,
      model,
      config,
      iterations,
    });

    let iterations = 0;
    for (let epoch = state.epoch; epoch < Math.trunc(args.num_train_epochs); epoch++) {
      model.train();
      for (let step = epoch === state.epoch ? state.step : 0; step < batchesPerEpoch; step++) {
        if (await run.stopRequested(step % accumulation === 0)) {
          await checkpoint(epoch, step);
          return result('interrupted');
        }
        const iterId = step + epoch * batchesPerEpoch;
        const where = `iteration ${iterId} (epoch ${epoch}, step ${step}), ${CONCAP_NAME}`;
        const local = torch.scope(() => {
          const { inputs, labels } = toModelBatch(shard.batch(step), args.objective);
          const out = model.call(inputs, labels);
          const maskedImage = out.maskedImageLoss.mul(args.img_weight);
          const nextSentence = args.objective === 2 ? out.nextSentenceLoss.mul(0) : out.nextSentenceLoss;
          // A batch without a masked word has a NaN masked-LM loss (a mean over no tokens) but zero
          // gradients from it, in the reference as here: it is logged as 0 and trained on.
          const maskedLm = hasTargets(labels.maskedLmLabels) ? out.maskedLmLoss.item() : 0;
          const values: ConcapLosses = { maskedLm, maskedImage: maskedImage.item(), nextSentence: nextSentence.item() };
          const checked: [number, string][] = [
            [values.maskedLm, 'masked_loss_t'],
            [values.maskedImage, 'masked_loss_v'],
            [values.nextSentence, 'next_sentence_loss'],
          ];
          const divergence = run.guardedBackward(model, where, checked, () =>
            out.maskedLmLoss.add(maskedImage).add(nextSentence).div(accumulation).backward(),
          );
          return { values, divergence };
        });
        // One collective: every rank stops if one diverged, and the log gets the mean of the ranks' losses.
        const sums = await run.sumOverRanks(
          local.divergence,
          [local.values.maskedLm, local.values.maskedImage, local.values.nextSentence],
          where,
        );
        const [maskedLm, maskedImage, nextSentence] = sums.map((sum) => sum / dp.worldSize) as [number, number, number];
        const losses: ConcapLosses = { maskedLm, maskedImage, nextSentence };
        if ((step + 1) % accumulation === 0) {
          await dp.averageGradients(model);
          // As the reference: the schedule steps first, so update g uses lambda(g + 1).
          scheduler.step();
          optimizer.step();
          model.zeroGrad();
          state.globalStep += 1;
          const lr = optimizer.groups[0]?.lr ?? 0;
          const tag = (name: string) => `train/${CONCAP_NAME}_${name}`;
          run.log?.metrics.scalar(tag('masked_loss_t'), iterId, losses.maskedLm);
          run.log?.metrics.scalar(tag('masked_loss_v'), iterId, losses.maskedImage);
          run.log?.metrics.scalar(tag('next_sentence_loss'), iterId, losses.nextSentence);
          run.log?.metrics.scalar(tag('loss'), iterId, losses.maskedLm + losses.maskedImage + losses.nextSentence);
          run.log?.metrics.scalar(tag('lr'), iterId, lr);
          summary.maskedLm += losses.maskedLm;
          summary.maskedImage += losses.maskedImage;
          summary.nextSentence += losses.nextSentence;
          summary.lr += lr;
          summary.count += 1;
          summary.microBatches += accumulation;
          emit({ kind: 'train', iteration: iterId, epoch, step, globalStep: state.globalStep, losses, lr });
        }
        if (step !== 0 && step % (20 * accumulation) === 0 && summary.count > 0) {
          const mean = (sum: number) => (sum / summary.count).toFixed(3);
          run.log?.line(
            `[${CONCAP_NAME}]: iter ${summary.microBatches} Ep: ${(summary.microBatches / taskNumIters).toFixed(2)} masked_t ${mean(summary.maskedLm)} masked_v ${mean(summary.maskedImage)} NSP ${mean(summary.nextSentence)} lr ${formatG(summary.lr / summary.count)}`,
          );
          Object.assign(summary, { maskedLm: 0, maskedImage: 0, nextSentence: 0, lr: 0, count: 0 });
        }
        iterations += 1;
        emit({ kind: 'iteration', iteration: iterId, epoch, step });
        const next = step + 1;
        if (
          args.checkpoint_every > 0 &&
          (iterId + 1) % args.checkpoint_every === 0 &&
          next % accumulation === 0 &&
          next < batchesPerEpoch
        )
          await checkpoint(epoch, next);
      }
      // A partial accumulation at the epoch's end is dropped (the reference carries it into the next epoch), so the epoch-end checkpoint is exact.
      model.zeroGrad();
      const lastIteration = (epoch + 1) * batchesPerEpoch - 1;
      // Every rank runs the whole pass (the same batches and draws everywhere); rank 0 logs it.
      const validation = validate(model, val, args.img_weight);
      const tag = (name: string) => `val/${CONCAP_NAME}_${name}`;
      run.log?.metrics.scalar(tag('mask_t'), lastIteration, validation.losses.maskedLm);
      run.log?.metrics.scalar(tag('maks_v'), lastIteration, validation.losses.maskedImage);
      run.log?.metrics.scalar(tag('nsp'), lastIteration, validation.losses.nextSentence);
      run.log?.metrics.scalar(
        tag('loss'),
        lastIteration,
        validation.losses.maskedLm + validation.losses.maskedImage + validation.losses.nextSentence,
      );
      run.log?.metrics.scalar(tag('score'), lastIteration, validation.alignmentAccuracy);
      run.log?.line(
        `Validation [${CONCAP_NAME}]: masked_t ${validation.losses.maskedLm.toFixed(3)} masked_v ${validation.losses.maskedImage.toFixed(3)} NSP ${validation.losses.nextSentence.toFixed(3)}`,
      );
      emit({ kind: 'validation', epoch, iteration: lastIteration, ...validation });
      await run.endEpoch(epoch, model, checkpoint);
    }
    return result('finished');
  });
}

/** This rank's training batches, per epoch. */
interface TrainingShard {
  /** Batches per epoch, the same on every rank. */
  length: number;
  /** Records in them, as the reference counts a rank's part file (num_dataset). */
  records: number;
  batch(step: number): ConceptCaptionsBatch;
}

/**
 * Rank r's batches r, r + W, ... of the training LMDB, as many on every rank (the last
 * length % W batches are left out). The reference reads one training_feat_part_<r>.lmdb per
 * rank instead; a world of one is the whole LMDB in order.
 */
function trainingShard(train: ConceptCaptionsReader, dp: DataParallel): TrainingShard {
  const { rank, worldSize } = dp;
  return {
    length: Math.floor(train.length / worldSize),
    records: Math.floor(train.numRecords / worldSize),
    batch: (step) => train.batch(step * worldSize + rank),
  };
}

/** This rank's training draws from a checkpoint (one entry per rank of the run that saved it). */
function savedTrainRandom(saved: TrainConcapState, rank: number, path: string): ReferenceRandomState {
  const state = [saved.trainRandom, ...(saved.otherTrainRandom ?? [])][rank];
  if (!state) throw new Error(`${path}: no training draws saved for rank ${rank}`);
  return state;
}

/** Whether a label tensor has any position to predict (not -1). */
function hasTargets(labels: torch.Tensor): boolean {
  return labels.ne(-1).sum().item() > 0;
}

/** Opens a second resource, closing the first if that fails. */
function openOrClose<T>(open: () => T, first: { close(): void }): T {
  try {
    return open();
  } catch (error) {
    first.close();
    throw error;
  }
}

/**
 * One pass over the validation LMDB without gradients: the mean over batches of each loss
 * (masked_loss_v after img_weight; no objective-1 label dropping and no x0, as the
 * reference) and the alignment head's accuracy over all pairs. The masked-word and
 * masked-region means leave out batches with nothing masked of that kind (the reference's
 * mean turns NaN there).
 */
function validate(
  model: BertForMultiModalPreTraining,
  val: ConceptCaptionsReader,
  imgWeight: number,
): { losses: ConcapLosses; alignmentAccuracy: number; batches: number } {
  model.eval();
  const sums = { maskedLm: 0, wordBatches: 0, maskedImage: 0, regionBatches: 0, nextSentence: 0, correct: 0, pairs: 0 };
  torch.noGrad(() => {
    for (const batch of val) {
      torch.scope(() => {
        const { inputs, labels } = toModelBatch(batch, 0);
        const out = model.call(inputs, labels);
        if (hasTargets(labels.maskedLmLabels)) {
          sums.maskedLm += out.maskedLmLoss.item();
          sums.wordBatches += 1;
        }
        if (labels.imageLabel.eq(1).sum().item() > 0) {
          sums.maskedImage += out.maskedImageLoss.mul(imgWeight).item();
          sums.regionBatches += 1;
        }
        sums.nextSentence += out.nextSentenceLoss.item();
        // The model's forward returns losses only; the alignment logits take a second
        // forward pass, a small cost next to an epoch (the validation set is ~0.5% of it).
        const aligned = model.scores(inputs).seqRelationshipScore.argmax(1); // [B]
        sums.correct += aligned.eq(labels.nextSentenceLabel).sum().item();
        sums.pairs += labels.nextSentenceLabel.size(0);
      });
    }
  });
  const batches = val.length;
  return {
    losses: {
      maskedLm: sums.maskedLm / sums.wordBatches,
      maskedImage: sums.maskedImage / sums.regionBatches,
      nextSentence: sums.nextSentence / batches,
    },
    alignmentAccuracy: sums.correct / sums.pairs,
    batches,
  };
}
