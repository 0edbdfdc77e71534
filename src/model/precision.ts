// A model's precision: fp32 as the reference runs; bf16 through CPU autocast (matrix
// products in bfloat16; LayerNorm, softmax and the losses in float32); int8 through dynamic
// quantization of every Linear layer (torch.ao.quantization.quantize_dynamic's result).
import * as torch from '../torch/index.js';
import {
  type Precision,
  autocast,
  emptyCache,
  preferredQuantizedEngine,
  quantizedEngine,
  setQuantizedEngine,
} from '../torch/precision.js';

export { type Precision, PRECISIONS, isPrecision, precisionNotice, cpuPrecisionSupport } from '../torch/precision.js';

/** Every bfloat16 tensor of an output (plain objects and arrays walked) as float32; the rest as is. */
export function toFloat32<T>(value: T): T {
  if (value instanceof torch.Tensor) return (value.dtype === 'bfloat16' ? value.float() : value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => toFloat32(item)) as T;
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, toFloat32(item)])) as T;
  }
  return value;
}

/** Runs a forward in a precision: under autocast for bf16, outputs cast back to float32. */
export function inPrecision<T>(precision: Precision, forward: () => T): T {
  if (precision !== 'bf16' || torch.isAutocastEnabled()) return forward();
  return torch.scope(() => toFloat32(autocast(forward)));
}

/**
 * Dynamic int8 quantization of every Linear layer of a model, on the preferred engine
 * (oneDNN here). The float32 weights are released and their memory returned to the system.
 */
export function quantizeLinearLayers(model: torch.Module, options: torch.nn.DynamicQuantizationOptions = {}): number {
  const engine = preferredQuantizedEngine();
  if (engine === null)
    throw new Error(`int8 needs libtorch's oneDNN or fbgemm quantized engine; this one has ${quantizedEngine()}`);
  if (quantizedEngine() !== engine) setQuantizedEngine(engine);
  let layers = 0;
  for (const [, module] of model.namedModules()) {
    if (module instanceof torch.nn.Linear && !module.isQuantized) {
      module.quantizeDynamic_(options);
      layers += 1;
    }
  }
  emptyCache();
  return layers;
}

/** The checks and work of a precision change; returns the new precision. */
export function changePrecision(
  model: torch.Module,
  from: Precision,
  to: Precision,
  options: torch.nn.DynamicQuantizationOptions = {},
): Precision {
  if (from === to) return to;
  if (from === 'bf16')
    for (const [, module] of model.namedModules())
      if (module instanceof torch.nn.Linear) module.releaseLowPrecisionCopies();
  if (from === 'int8')
    throw new Error(
      `this model's Linear weights were quantized to int8 and released; load it again to run it in ${to}`,
    );
  if (to === 'int8') {
    if (model.training) throw new Error('int8 is for inference: call eval() before setPrecision("int8")');
    quantizeLinearLayers(model, options);
  }
  return to;
}
