// Learning-rate schedules with torch's LambdaLR semantics: each scheduler sets
// lr = initialLr * lambda(k), k = how often it was stepped; constructing one
// applies lambda(0). Several schedulers on one optimiser overwrite each other.
import type { ParamGroup } from './adamw.js';

export type LrLambda = (step: number) => number;

/** k / W during warm-up, then linear decay to 0 at T (WarmupLinearSchedule). */
export function warmupLinear(warmupSteps: number, totalSteps: number): LrLambda {
  return (step) =>
    step < warmupSteps
      ? step / Math.max(1, warmupSteps)
      : Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
}

/** k / W during warm-up, then 1 (WarmupConstantSchedule). */
export function warmupConstant(warmupSteps: number): LrLambda {
  return (step) => (step < warmupSteps ? step / Math.max(1, warmupSteps) : 1);
}

/** The 'mannul' epoch decay: x0.2 after each of the epochs 5 and 7. */
export function epochDecay(milestones: readonly number[] = [5, 7], factor = 0.2): LrLambda {
  return (epoch) => factor ** milestones.filter((milestone) => milestone <= epoch).length;
}

export class LambdaLR {
  lastEpoch = 0;

  constructor(
    readonly groups: ParamGroup[],
    readonly lambda: LrLambda,
  ) {
    this.apply();
  }

  step(): void {
    this.lastEpoch += 1;
    this.apply();
  }

  private apply(): void {
    const factor = this.lambda(this.lastEpoch);
    for (const group of this.groups) group.lr = group.initialLr * factor;
  }
}

/** ReduceLROnPlateau as train_tasks.py builds it for 'automatic': factor 0.2, and torch's default eps. */
const PLATEAU_FACTOR = 0.2;
const PLATEAU_EPS = 1e-8;

export const LR_SCHEDULERS = ['mannul', 'warmup_linear', 'automatic', 'cosine', 'cosine_warm'] as const;
export type LrSchedulerName = (typeof LR_SCHEDULERS)[number];

export interface LrPlanState {
  /** Steps taken by the warm-up scheduler. */
  warmupSteps: number;
  /** Steps taken by the second scheduler (epochs for mannul, iterations for the cosines, reductions for automatic). */
  secondSteps: number;
  /** The factor the last scheduler to act applied (all groups share it; automatic's reductions come on top). */
  factor: number;
  /**
   * ReduceLROnPlateau bookkeeping (automatic only). `reductions`: how many times each group's
   * lr was cut (absent in checkpoints written before it was kept per group: then every
   * group had been cut `secondSteps` times).
   */
  plateau: { best: number; numBad: number; cooldownCounter: number; reductions?: number[] };
}

/**
 * The schedulers train_tasks.py builds for --lr_scheduler, driven at the points
 * where its loop steps them. Each acts as a LambdaLR: it writes
 * initialLr * lambda(its own count) into every group; the last to act wins.
 * `automatic` crashes in the reference; here it reduces by 0.2 on a plateau of
 * the mean validation score (patience 1, cooldown 1, threshold 0.001 relative),
 * the settings the reference constructs, multiplying the warm-up factor. As in
 * torch's ReduceLROnPlateau, a group's lr is not cut when the cut would be 1e-8 or less.
 */
export class LrPlan {
  readonly #warmup: LrLambda;
  readonly #second: LrLambda | null;
  #state: LrPlanState;

  constructor(
    readonly kind: LrSchedulerName,
    readonly groups: ParamGroup[],
    readonly steps: { warmup: number; total: number; iterationsPerEpoch: number; epochs: number },
  ) {
    if (!LR_SCHEDULERS.includes(kind))
      throw new Error(`--lr_scheduler must be one of ${LR_SCHEDULERS.join(', ')}, got '${String(kind)}'`);
    this.#warmup = kind === 'warmup_linear' ? warmupLinear(steps.warmup, steps.total) : warmupConstant(steps.warmup);
    const period = steps.iterationsPerEpoch * steps.epochs;
    this.#second =
      kind === 'mannul'
        ? epochDecay()
        : // CosineAnnealingLR: not clamped at T_max (past it torch's lr rises again; train_tasks never gets there).
          kind === 'cosine'
          ? (k) => (1 + Math.cos((Math.PI * k) / period)) / 2
          : kind === 'cosine_warm'
            ? (k) => (1 + Math.cos((Math.PI * (k % period)) / period)) / 2
            : null;
    this.#state = {
      warmupSteps: 0,
      secondSteps: 0,
      factor: 0,
      plateau: { best: Number.NEGATIVE_INFINITY, numBad: 0, cooldownCounter: 0 },
    };
    // Construction order of the reference: the warm-up scheduler applies lambda(0), then a second one overrides it,
    // except CosineAnnealingLR: being recursive, at construction it keeps the lr it finds (torch 1.13), so with a
    // warm-up the first update of a cosine run uses lr 0. LambdaLR ('mannul') and CosineAnnealingWarmRestarts
    // write initial_lr * factor(0) = initial_lr. The recursive form equals this closed form afterwards because the
    // warm-up has reached 1 by the time train_tasks first steps the cosine (global_step > warm-up steps).
    this.#apply(this.#warmup(0));
    if (this.#second && kind !== 'cosine') this.#apply(this.#second(0));
  }

  #reductions(): number[] {
    const plateau = this.#state.plateau;
    plateau.reductions ??= this.groups.map(() => this.#state.secondSteps);
    return plateau.reductions;
  }

  #apply(factor: number): void {
    this.#state.factor = factor;
    const reductions = this.kind === 'automatic' ? this.#reductions() : null;
    this.groups.forEach((group, i) => {
      group.lr = group.initialLr * factor * (reductions ? PLATEAU_FACTOR ** reductions[i]! : 1);
    });
  }

  /** After the first task's optimiser step of an iteration (global step before its increment). */
  afterFirstTaskStep(globalStep: number): void {
    if (globalStep < this.steps.warmup || this.kind === 'warmup_linear') {
      this.#state.warmupSteps += 1;
      this.#apply(this.#warmup(this.#state.warmupSteps));
    }
  }

  /** At the end of every iteration. */
  endOfIteration(globalStep: number): void {
    if ((this.kind === 'cosine' || this.kind === 'cosine_warm') && globalStep > this.steps.warmup) {
      this.#state.secondSteps += 1;
      this.#apply(this.#second!(this.#state.secondSteps));
    }
  }

  /** At the end of an epoch; `meanValScore` drives `automatic`. */
  endOfEpoch(meanValScore: number): void {
    if (this.kind === 'mannul') {
      this.#state.secondSteps += 1;
      this.#apply(this.#second!(this.#state.secondSteps));
    } else if (this.kind === 'automatic') {
      const plateau = this.#state.plateau;
      if (meanValScore > plateau.best * (1 + 0.001) || plateau.best === Number.NEGATIVE_INFINITY) {
        plateau.best = meanValScore;
        plateau.numBad = 0;
      } else {
        plateau.numBad += 1;
      }
      if (plateau.cooldownCounter > 0) {
        plateau.cooldownCounter -= 1;
        plateau.numBad = 0;
      }
      if (plateau.numBad > 1) {
        this.#state.secondSteps += 1;
        plateau.cooldownCounter = 1;
        plateau.numBad = 0;
        const reductions = this.#reductions();
        this.groups.forEach((group, i) => {
          if (group.lr - group.lr * PLATEAU_FACTOR > PLATEAU_EPS) reductions[i]! += 1;
        });
        this.#apply(this.#warmup(this.#state.warmupSteps));
      }
    }
  }

  get factor(): number {
    return this.#state.factor;
  }

  state(): LrPlanState {
    const plateau = this.#state.plateau;
    return {
      ...this.#state,
      plateau: { ...plateau, ...(plateau.reductions ? { reductions: [...plateau.reductions] } : {}) },
    };
  }

  restore(state: LrPlanState): void {
    // JSON writes -Infinity as null.
    const plateau = { ...state.plateau, best: state.plateau.best ?? Number.NEGATIVE_INFINITY };
    let factor = state.factor;
    if (this.kind === 'automatic' && plateau.reductions === undefined) {
      // Written before the reductions were kept per group: the factor then included them.
      plateau.reductions = this.groups.map(() => state.secondSteps);
      factor /= PLATEAU_FACTOR ** state.secondSteps;
    }
    if (plateau.reductions) plateau.reductions = [...plateau.reductions];
    this.#state = { ...state, plateau };
    this.#apply(factor);
  }
}
