// RAdam as vilbert/optimization.py has it (betas 0.9/0.999, eps 1e-8): the
// rectification term and step size are cached in a 10-slot buffer indexed by
// step mod 10 and shared by every parameter, so a parameter reaching step t
// after another reuses that one's step size, computed with that one's lr
// (kept: it decides which lr the heads really get). Weight decay is applied
// before the update. Null gradients are skipped as in AdamW.
import * as torch from '../torch/index.js';
import { MomentStore, type Moments, type Optimizer, type ParamGroup } from './adamw.js';

interface BufferedStep {
  /** The step number the entry was computed for (null: never). */
  step: number | null;
  rho: number;
  stepSize: number;
}

export class RAdam implements Optimizer {
  readonly groups: ParamGroup[];
  readonly betas: [number, number];
  readonly eps: number;
  readonly #state: MomentStore;
  #buffer: BufferedStep[] = Array.from({ length: 10 }, () => ({ step: null, rho: 0, stepSize: 0 }));

  constructor(
    groups: { name: string; parameter: torch.Parameter; lr: number; weightDecay: number }[],
    options: { betas?: [number, number]; eps?: number } = {},
  ) {
    this.groups = groups.map((group) => ({ ...group, initialLr: group.lr }));
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.#state = new MomentStore(this.groups);
  }

  #stepSize(step: number, lr: number): BufferedStep {
    const cached = this.#buffer[step % 10]!;
    if (cached.step === step) return cached;
    const [beta1, beta2] = this.betas;
    const beta2Power = beta2 ** step;
    const rhoInfinity = 2 / (1 - beta2) - 1;
    const rho = rhoInfinity - (2 * step * beta2Power) / (1 - beta2Power);
    const stepSize =
      rho >= 5
        ? (lr *
            Math.sqrt(
              ((1 - beta2Power) * (rho - 4) * (rho - 2) * rhoInfinity) / ((rhoInfinity - 4) * (rhoInfinity - 2) * rho),
            )) /
          (1 - beta1 ** step)
        : lr / (1 - beta1 ** step);
    const entry = { step, rho, stepSize };
    this.#buffer[step % 10] = entry;
    return entry;
  }

  step(): void {
    const [beta1, beta2] = this.betas;
    torch.noGrad(() =>
      torch.scope(() => {
        for (const group of this.groups) {
          const gradient = group.parameter.grad;
          if (gradient === null) continue;
          const state = this.#state.of(group.parameter);
          state.expAvgSq.mul_(beta2).addcmul_(gradient, gradient, 1 - beta2);
          state.expAvg.mul_(beta1).add_(gradient, 1 - beta1);
          state.step += 1;
          const { rho, stepSize } = this.#stepSize(state.step, group.lr);
          if (group.weightDecay !== 0) group.parameter.add_(group.parameter, -group.weightDecay * group.lr);
          if (rho >= 5) group.parameter.addcdiv_(state.expAvg, state.expAvgSq.sqrt().add(this.eps), -stepSize);
          else group.parameter.add_(state.expAvg, -stepSize);
        }
      }),
    );
  }

  stateEntries(): Map<string, Readonly<Moments>> {
    return this.#state.entries();
  }

  extraState(): unknown {
    return this.#buffer.map((entry) => ({ ...entry }));
  }

  loadState(entries: Map<string, Moments>, extra: unknown): void {
    if (!Array.isArray(extra) || extra.length !== 10)
      throw new Error('RAdam state: expected the 10-slot step-size buffer');
    this.#state.load(entries);
    this.#buffer = (extra as BufferedStep[]).map((entry) => ({
      step: entry.step,
      rho: Number(entry.rho),
      stepSize: Number(entry.stepSize),
    }));
  }

  dispose(): void {
    this.#state.dispose();
  }
}
