// Training checkpoints: one safetensors file holding the model's state dict,
// the optimiser's moments and, in its metadata, everything else a run needs
// to continue exactly (step counters, schedules, stop-and-go, sampler
// positions, the generator state). Every file is written under a temporary
// name, synced and renamed, so the previous checkpoint stays valid until the
// new one is complete.
import * as torch from '../torch/index.js';
import { readRawWeights, rawToTensor, tensorToRaw } from '../io/weights.js';
import { writeAtomically } from '../io/file-io.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import type { Moments, Optimizer } from './adamw.js';

/** Metadata key of the JSON training state. */
const STATE_KEY = 'vilbert_training_state';
const MODEL_PREFIX = 'model.';
const OPTIMIZER_PREFIX = 'optimizer.';

/** A model's state dict as safetensors (the per-epoch pytorch_model_<epoch> files). */
export function saveModelWeights(path: string, model: torch.Module, metadata: Record<string, string> = {}): void {
  const raw = new Map<string, RawTensor>([...model.stateDict()].map(([key, tensor]) => [key, tensorToRaw(tensor)]));
  writeAtomically(path, (temporary) => writeSafetensors(temporary, raw, { format: 'pt', ...metadata }));
}

export interface SavedOptimizerState {
  kind: string;
  /** Per parameter name, its step count; the moments are tensors of the file. */
  steps: Record<string, number>;
  extra: unknown;
}

/** The JSON half of a checkpoint; `T` is the trainer's own state. */
export interface CheckpointState<T> {
  format: 'vilbert-ts-training-checkpoint';
  version: 1;
  optimizer: SavedOptimizerState;
  /** Parameters whose gradient exists (zeros after zero_grad): the optimiser steps them, others it skips. */
  gradients: string[];
  /** torch's global generator (dropout), base64. */
  rng: string;
  trainer: T;
}

export function saveTrainingCheckpoint<T>(
  path: string,
  parts: { model: torch.Module; optimizer: Optimizer; optimizerKind: string; trainer: T },
): void {
  const { model, optimizer } = parts;
  const raw = new Map<string, RawTensor>();
  for (const [key, tensor] of model.stateDict()) raw.set(MODEL_PREFIX + key, tensorToRaw(tensor));
  const steps: Record<string, number> = {};
  for (const [name, moments] of optimizer.stateEntries()) {
    steps[name] = moments.step;
    raw.set(`${OPTIMIZER_PREFIX}${name}.exp_avg`, tensorToRaw(moments.expAvg));
    raw.set(`${OPTIMIZER_PREFIX}${name}.exp_avg_sq`, tensorToRaw(moments.expAvgSq));
  }
  const state: CheckpointState<T> = {
    format: 'vilbert-ts-training-checkpoint',
    version: 1,
    optimizer: { kind: parts.optimizerKind, steps, extra: optimizer.extraState() },
    gradients: model
      .namedParameters()
      .filter(([, parameter]) => hasGradient(parameter))
      .map(([name]) => name),
    rng: Buffer.from(torch.getRngState()).toString('base64'),
    trainer: parts.trainer,
  };
  writeAtomically(path, (temporary) =>
    writeSafetensors(temporary, raw, { format: 'pt', [STATE_KEY]: JSON.stringify(state) }),
  );
}

/** Whether the parameter holds a gradient (a tensor, possibly zeros). */
export function hasGradient(parameter: torch.Parameter): boolean {
  const gradient = parameter.grad;
  gradient?.dispose();
  return gradient !== null;
}

/** Reads a checkpoint's JSON state without its tensors. */
export function readCheckpointState<T>(path: string): CheckpointState<T> {
  const { metadata } = readSafetensors(path);
  const text = metadata[STATE_KEY];
  if (text === undefined)
    throw new Error(
      `${path}: not a vilbert-ts training checkpoint (no '${STATE_KEY}' metadata; a weights-only file goes to --from_pretrained)`,
    );
  let state: CheckpointState<T>;
  try {
    state = JSON.parse(text) as CheckpointState<T>;
  } catch (error) {
    throw new Error(
      `${path}: the training state metadata is not valid JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  if (state.format !== 'vilbert-ts-training-checkpoint' || state.version !== 1)
    throw new Error(`${path}: unknown training checkpoint format ${String(state.format)} v${String(state.version)}`);
  return state;
}

/**
 * Restores model, optimiser, gradient flags and generator from a checkpoint and
 * returns the trainer's state. The model must have the checkpoint's parameters.
 */
export function loadTrainingCheckpoint<T>(
  path: string,
  parts: { model: torch.Module; optimizer: Optimizer; optimizerKind: string },
): T {
  const state = readCheckpointState<T>(path);
  if (state.optimizer.kind !== parts.optimizerKind)
    throw new Error(`${path}: saved with optimizer ${state.optimizer.kind}, this run uses ${parts.optimizerKind}`);
  const raw = readRawWeights(path);
  const modelState = new Map<string, torch.Tensor>();
  const moments = new Map<string, Moments>();
  try {
    for (const [key, tensor] of raw) {
      if (key.startsWith(MODEL_PREFIX)) modelState.set(key.slice(MODEL_PREFIX.length), rawToTensor(tensor).keep());
    }
    for (const [name, step] of Object.entries(state.optimizer.steps)) {
      const expAvg = raw.get(`${OPTIMIZER_PREFIX}${name}.exp_avg`);
      const expAvgSq = raw.get(`${OPTIMIZER_PREFIX}${name}.exp_avg_sq`);
      if (!expAvg || !expAvgSq) throw new Error(`${path}: optimizer moments of '${name}' are missing`);
      moments.set(name, { step, expAvg: rawToTensor(expAvg).keep(), expAvgSq: rawToTensor(expAvgSq).keep() });
    }
    try {
      parts.model.loadStateDict(modelState);
    } catch (error) {
      throw new Error(`${path}: ${error instanceof Error ? error.message : String(error)}`);
    }
    parts.optimizer.loadState(moments, state.optimizer.extra);
  } finally {
    for (const tensor of modelState.values()) tensor.dispose();
    for (const entry of moments.values()) {
      entry.expAvg.dispose();
      entry.expAvgSq.dispose();
    }
  }
  const withGradient = new Set(state.gradients);
  torch.noGrad(() =>
    torch.scope(() => {
      for (const [name, parameter] of parts.model.namedParameters()) {
        if (!withGradient.has(name)) parameter.grad = null;
        else if (!hasGradient(parameter)) parameter.grad = torch.zerosLike(parameter);
      }
      parts.model.zeroGrad();
    }),
  );
  torch.setRngState(new Uint8Array(Buffer.from(state.rng, 'base64')));
  return state.trainer;
}
