// AdamW as the reference uses it (pytorch-transformers 1.0.0, correct_bias=False):
// no bias correction, decoupled weight decay applied after the update to the
// updated parameter. A parameter whose gradient is null is skipped entirely
// (no moment update, no decay, its step count unchanged); once it has had a
// gradient, zeroGrad() leaves zeros, so it keeps being stepped.
import * as torch from '../torch/index.js';
import type { Parameter, Tensor } from '../torch/index.js';

export interface ParamGroup {
  name: string;
  parameter: Parameter;
  /** The group's current lr (schedules scale initialLr into it). */
  lr: number;
  readonly initialLr: number;
  readonly weightDecay: number;
}

export interface AdamWOptions {
  betas?: [number, number];
  eps?: number;
  correctBias?: boolean;
  /** false: each step runs the reference's eight ATen operators per parameter instead of the one-pass kernel (the same values; for checking it). */
  fused?: boolean;
}

export interface Moments {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

/**
 * What a checkpoint needs of an optimiser: its groups (the schedules write their
 * lr), one step, and its per-parameter state as tensors plus plain data.
 */
export interface Optimizer {
  readonly groups: ParamGroup[];
  step(): void;
  /** Per parameter name: moments and step count (only parameters that were stepped). */
  stateEntries(): Map<string, Readonly<Moments>>;
  /** Plain data beyond the moments (RAdam's step-size buffer). */
  extraState(): unknown;
  /** Takes copies of the moments; names must be parameter names of the groups. */
  loadState(entries: Map<string, Moments>, extra: unknown): void;
  dispose(): void;
}

/** Moments by parameter name, shared by the optimisers here. */
export class MomentStore {
  readonly #state = new Map<Parameter, Moments>();

  constructor(private readonly groups: readonly ParamGroup[]) {}

  /** The parameter's moments, created as zeros on its first step. */
  of(parameter: Parameter): Moments {
    let state = this.#state.get(parameter);
    if (!state) {
      state = { step: 0, expAvg: torch.zerosLike(parameter).keep(), expAvgSq: torch.zerosLike(parameter).keep() };
      this.#state.set(parameter, state);
    }
    return state;
  }

  get(parameter: Parameter): Readonly<Moments> | undefined {
    return this.#state.get(parameter);
  }

  entries(): Map<string, Readonly<Moments>> {
    const entries = new Map<string, Readonly<Moments>>();
    for (const group of this.groups) {
      const state = this.#state.get(group.parameter);
      if (state) entries.set(group.name, state);
    }
    return entries;
  }

  load(entries: Map<string, Moments>): void {
    const byName = new Map(this.groups.map((group) => [group.name, group]));
    for (const name of entries.keys()) {
      if (!byName.has(name))
        throw new Error(`optimizer state names parameter '${name}', which is not trained by this model`);
    }
    this.dispose();
    for (const [name, moments] of entries) {
      const parameter = byName.get(name)!.parameter;
      for (const [what, tensor] of [
        ['exp_avg', moments.expAvg],
        ['exp_avg_sq', moments.expAvgSq],
      ] as const) {
        if (tensor.shape.join(',') !== parameter.shape.join(',')) {
          throw new Error(
            `optimizer state ${name}.${what} has shape [${tensor.shape.join(', ')}], the parameter has [${parameter.shape.join(', ')}]`,
          );
        }
      }
      this.#state.set(parameter, {
        step: moments.step,
        expAvg: moments.expAvg.clone().keep(),
        expAvgSq: moments.expAvgSq.clone().keep(),
      });
    }
  }

  dispose(): void {
    for (const state of this.#state.values()) {
      state.expAvg.dispose();
      state.expAvgSq.dispose();
    }
    this.#state.clear();
  }
}

export class AdamW implements Optimizer {
  readonly groups: ParamGroup[];
  readonly betas: [number, number];
  readonly eps: number;
  readonly correctBias: boolean;
  readonly fused: boolean;
  readonly #state: MomentStore;

  constructor(
    groups: { name: string; parameter: Parameter; lr: number; weightDecay: number }[],
    options: AdamWOptions = {},
  ) {
    this.groups = groups.map((group) => ({ ...group, initialLr: group.lr }));
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-6;
    this.correctBias = options.correctBias ?? false;
    this.fused = options.fused ?? true;
    this.#state = new MomentStore(this.groups);
  }

  step(): void {
    const [beta1, beta2] = this.betas;
    // One native call for every parameter with a gradient: a one-pass kernel that
    // computes what the reference's eight operators per parameter compute, bit for
    // bit (native/src/optim.cc), without a denominator tensor or a handle per
    // operator. `fused = false` runs those eight ATen operators instead.
    const withGrad = torch.gradsDefined(this.groups.map((group) => group.parameter));
    const groups = this.groups.filter((_, index) => withGrad[index]);
    if (groups.length === 0) return;
    const stepSizes = new Float64Array(groups.length);
    const decays = new Float64Array(groups.length);
    const expAvgs: Tensor[] = [];
    const expAvgSqs: Tensor[] = [];
    groups.forEach((group, index) => {
      const state = this.#state.of(group.parameter);
      state.step += 1;
      let stepSize = group.lr;
      if (this.correctBias) stepSize = (stepSize * Math.sqrt(1 - beta2 ** state.step)) / (1 - beta1 ** state.step);
      stepSizes[index] = stepSize;
      decays[index] = group.weightDecay > 0 ? group.lr * group.weightDecay : 0;
      expAvgs.push(state.expAvg);
      expAvgSqs.push(state.expAvgSq);
    });
    torch.adamwStep({
      parameters: groups.map((group) => group.parameter),
      expAvgs,
      expAvgSqs,
      stepSizes,
      decays,
      beta1,
      beta2,
      eps: this.eps,
      fused: this.fused,
    });
  }

  /** Adam moments and step count of a parameter, or undefined when it was never stepped. */
  stateOf(parameter: Parameter): Readonly<Moments> | undefined {
    return this.#state.get(parameter);
  }

  stateEntries(): Map<string, Readonly<Moments>> {
    return this.#state.entries();
  }

  extraState(): unknown {
    return null;
  }

  loadState(entries: Map<string, Moments>): void {
    this.#state.load(entries);
  }

  dispose(): void {
    this.#state.dispose();
  }
}

/** The reference's decay exclusions (substring match on the parameter name). */
export const NO_DECAY = ['bias', 'LayerNorm.bias', 'LayerNorm.weight'];

/** One group per trainable parameter with the lr `lrOf(name)`; weight decay 0.01 except names containing a NO_DECAY substring. */
export function paramGroups(model: torch.Module, lrOf: (name: string) => number) {
  return model
    .namedParameters()
    .filter(([, parameter]) => parameter.requiresGrad)
    .map(([name, parameter]) => ({
      name,
      parameter,
      lr: lrOf(name),
      weightDecay: NO_DECAY.some((pattern) => name.includes(pattern)) ? 0 : 0.01,
    }));
}

/** The groups train_tasks.py builds: lr 1e-4 (headLr) for names containing 'vil_', base_lr otherwise. */
export function referenceParamGroups(model: torch.Module, baseLr: number, headLr = 1e-4) {
  return paramGroups(model, (name) => (name.includes('vil_') ? headLr : baseLr));
}
