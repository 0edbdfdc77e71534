// Per-step work over a whole list of parameters in one native call
// (native/src/optim.cc): which have gradients, the fused AdamW update, zero_grad.
// One call instead of ~8 operator calls and a handle per parameter.
import { native } from './native.js';
import type { Tensor } from './tensor.js';

const handles = (tensors: readonly Tensor[]) => tensors.map((tensor) => tensor.handle);

/** For each tensor, whether it has a gradient (without wrapping the gradient). */
export function gradsDefined(parameters: readonly Tensor[]): boolean[] {
  return Array.from(native.gradsDefined(handles(parameters)), (flag) => flag === 1);
}

export interface AdamWStepArgs {
  /** Every one must have a gradient. */
  parameters: readonly Tensor[];
  expAvgs: readonly Tensor[];
  expAvgSqs: readonly Tensor[];
  /** Per parameter: the lr (times any bias correction) that scales exp_avg / denom. */
  stepSizes: Float64Array;
  /** Per parameter: lr * weight_decay, applied as p -= decay * p after the update; 0 for none. */
  decays: Float64Array;
  beta1: number;
  beta2: number;
  eps: number;
  /** false: the ATen operator sequence instead of the one-pass kernel (same values, bit for bit). */
  fused?: boolean;
}

/** The reference's AdamW update (pytorch-transformers 1.0) on every parameter, in one call. */
export function adamwStep(args: AdamWStepArgs): void {
  native.adamwStep(
    handles(args.parameters),
    handles(args.expAvgs),
    handles(args.expAvgSqs),
    args.stepSizes,
    args.decays,
    args.beta1,
    args.beta2,
    args.eps,
    args.fused ?? true,
  );
}

/** zero_() every defined gradient (setToNone: drop it instead); returns how many there were. */
export function zeroGrads(parameters: readonly Tensor[], setToNone = false): number {
  return native.zeroGrads(handles(parameters), setToNone);
}
