// vilbert-ts's tensor engine: libtorch through the project's N-API addon.
export {
  Tensor,
  callOp,
  op,
  opList,
  operatorSchema,
  type Scalar,
  type TensorOrScalar,
  type ValuesIndices,
} from './tensor.js';
export { type DType, type AnyTypedArray, BYTES_PER_ELEMENT, isFloating } from './dtype.js';
export {
  tensor,
  tensorOverFileBytes,
  zeros,
  ones,
  full,
  empty,
  rand,
  randn,
  randint,
  arange,
  zerosLike,
  onesLike,
  cat,
  stack,
  where,
  withDefaultDevice,
  type CreateOptions,
} from './creation.js';
export { scope, scopeDepth } from './scope.js';
export { noGrad, enableGrad, inferenceMode, isGradEnabled, isInferenceModeEnabled } from './autograd.js';
export {
  manualSeed,
  getRngState,
  setRngState,
  getNumThreads,
  setNumThreads,
  liveTensors,
  buildInfo,
  cpuAllocatorStats,
} from './runtime.js';
export type { CpuAllocatorStats } from './native.js';
export {
  Module,
  ModuleList,
  Parameter,
  StateDictError,
  type StateDict,
  type LoadResult,
  type ShapeMismatch,
} from './module.js';
export { gradsDefined, adamwStep, zeroGrads, type AdamWStepArgs } from './optim-kernels.js';
export {
  PRECISIONS,
  type Precision,
  type PrecisionSupport,
  isPrecision,
  autocast,
  isAutocastEnabled,
  quantizedEngines,
  quantizedEngine,
  setQuantizedEngine,
  preferredQuantizedEngine,
  emptyCache,
  cpuPrecisionSupport,
  precisionNotice,
} from './precision.js';
export * as F from './functional.js';
export * as nn from './nn.js';
