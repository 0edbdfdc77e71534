// Grad-mode scopes. libtorch keeps these flags per thread; all of our calls run
// on the JavaScript thread, so a try/finally around the callback is exact.
import { native } from './native.js';

function withGradEnabled<T>(enabled: boolean, fn: () => T): T {
  const previous = native.setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs fn without recording operations for autograd (torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  return withGradEnabled(false, fn);
}

/** Runs fn with autograd recording on, even inside noGrad (torch.enable_grad()). */
export function enableGrad<T>(fn: () => T): T {
  return withGradEnabled(true, fn);
}

/**
 * Runs fn in libtorch's inference mode (torch.inference_mode()): no autograd
 * state and no version counters; tensors made inside cannot enter autograd later.
 */
export function inferenceMode<T>(fn: () => T): T {
  native.enterInferenceMode();
  try {
    return fn();
  } finally {
    native.exitInferenceMode();
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

export function isInferenceModeEnabled(): boolean {
  return native.isInferenceMode();
}
