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
}

interface Moments {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

export class AdamW {
  readonly groups: ParamGroup[];
  readonly betas: [number, number];
  readonly eps: number;
  readonly correctBias: boolean;
  readonly #state = new Map<Parameter, Moments>();

  constructor(groups: { name: string; parameter: Parameter; lr: number; weightDecay: number }[], options: AdamWOptions = {}) {
    this.groups = groups.map((group) => ({ ...group, initialLr: group.lr }));
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-6;
    this.correctBias = options.correctBias ?? false;
  }

  step(): void {
    const [beta1, beta2] = this.betas;
    torch.noGrad(() =>
      torch.scope(() => {
        for (const group of this.groups) {
          const gradient = group.parameter.grad;
          if (gradient === null) continue;
          let state = this.#state.get(group.parameter);
          if (!state) {
            state = { step: 0, expAvg: torch.zerosLike(group.parameter).keep(), expAvgSq: torch.zerosLike(group.parameter).keep() };
            this.#state.set(group.parameter, state);
          }
          state.step += 1;
          state.expAvg.mul_(beta1).add_(gradient, 1 - beta1);
          state.expAvgSq.mul_(beta2).addcmul_(gradient, gradient, 1 - beta2);
          const denominator = state.expAvgSq.sqrt().add(this.eps);
          let stepSize = group.lr;
          if (this.correctBias) stepSize = (stepSize * Math.sqrt(1 - beta2 ** state.step)) / (1 - beta1 ** state.step);
          group.parameter.addcdiv_(state.expAvg, denominator, -stepSize);
          if (group.weightDecay > 0) group.parameter.add_(group.parameter, -group.lr * group.weightDecay);
        }
      }),
    );
  }

  /** Adam moments and step count of a parameter, or undefined when it was never stepped. */
  stateOf(parameter: Parameter): Readonly<Moments> | undefined {
    return this.#state.get(parameter);
  }

  dispose(): void {
    for (const state of this.#state.values()) {
      state.expAvg.dispose();
      state.expAvgSq.dispose();
    }
    this.#state.clear();
  }
}

/** The reference's decay exclusions (substring match on the parameter name). */
export const NO_DECAY = ['bias', 'LayerNorm.bias', 'LayerNorm.weight'];

/**
 * One group per trainable parameter, as train_tasks.py builds them: lr 1e-4 for
 * names containing 'vil_', base_lr otherwise; weight decay 0.01 except names
 * containing a NO_DECAY substring.
 */
export function referenceParamGroups(model: torch.Module, baseLr: number, headLr = 1e-4) {
  return model
    .namedParameters()
    .filter(([, parameter]) => parameter.requiresGrad)
    .map(([name, parameter]) => ({
      name,
      parameter,
      lr: name.includes('vil_') ? headLr : baseLr,
      weightDecay: NO_DECAY.some((pattern) => name.includes(pattern)) ? 0 : 0.01,
    }));
}
