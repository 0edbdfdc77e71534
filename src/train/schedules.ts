// Learning-rate schedules with torch's LambdaLR semantics: each scheduler sets
// lr = initialLr * lambda(k), k = how often it was stepped; constructing one
// applies lambda(0). Several schedulers on one optimiser overwrite each other.
import type { ParamGroup } from './adamw.js';

export type LrLambda = (step: number) => number;

/** k / W during warm-up, then linear decay to 0 at T (WarmupLinearSchedule). */
export function warmupLinear(warmupSteps: number, totalSteps: number): LrLambda {
  return (step) => (step < warmupSteps ? step / Math.max(1, warmupSteps) : Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps)));
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

  constructor(readonly groups: ParamGroup[], readonly lambda: LrLambda) {
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
