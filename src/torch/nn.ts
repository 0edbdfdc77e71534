// The basic layers, with PyTorch's parameter names and default initialisation.
import { Module, ModuleList, Parameter } from './module.js';
import { empty, ones, zeros } from './creation.js';
import { isGradEnabled, noGrad } from './autograd.js';
import { isAutocastEnabled } from './precision.js';
import * as F from './functional.js';
import { scope } from './scope.js';
import { callNative, op, type Tensor } from './tensor.js';
import { native, type Handle, type ScriptObjectHandle } from './native.js';
import type { DType } from './dtype.js';

export interface LayerOptions {
  dtype?: DType;
}

function uniformParameter(shape: number[], bound: number, options: LayerOptions): Parameter {
  return noGrad(() => {
    const data = empty(shape, options).uniform_(-bound, bound);
    const parameter = new Parameter(data);
    data.dispose();
    return parameter;
  });
}

function filledParameter(make: () => Tensor): Parameter {
  const data = make();
  const parameter = new Parameter(data);
  data.dispose();
  return parameter;
}

export interface DynamicQuantizationOptions {
  /**
   * Quantize the activations to 7 bits (reduce_range) as torch.ao.quantization.quantize_dynamic
   * does, which gives PyTorch's results exactly. Default false: all 8 bits, closer to float32
   * (7 bits guard fbgemm's AVX2 kernels against overflow; oneDNN on VNNI does not need it).
   */
  reduceRange?: boolean;
  /** Free the float32 weight and bias once packed (default true); a tied weight is kept for its other user. */
  releaseWeights?: boolean;
}

const QINT8 = 12; // c10::ScalarType::QInt8
const FLOAT32_EPS = 2 ** -23; // torch.finfo(torch.float32).eps, the observers' smallest scale

/** y = x W^T + b, weight [out, in]; PyTorch's kaiming-uniform default init. */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly #tied: boolean;
  #packed: ScriptObjectHandle | null = null;
  #reduceRange = false;
  #released = false;
  /** bfloat16 copies of weight and bias for inference under autocast, and the versions they were made from. */
  #bf16: { weight: Tensor; bias: Tensor | null; versions: [number, number] } | null = null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: LayerOptions & { bias?: boolean; tiedWeight?: Parameter } = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    if (
      options.tiedWeight &&
      (options.tiedWeight.size(0) !== outFeatures || options.tiedWeight.size(1) !== inFeatures)
    ) {
      throw new RangeError(
        `Linear(${inFeatures}, ${outFeatures}): tied weight has shape [${options.tiedWeight.shape.join(', ')}]`,
      );
    }
    // A tied weight is shared with another module (e.g. the MLM decoder and the word embeddings).
    this.weight = options.tiedWeight ?? uniformParameter([outFeatures, inFeatures], bound, options);
    this.bias = options.bias === false ? null : uniformParameter([outFeatures], bound, options);
    this.#tied = options.tiedWeight !== undefined;
  }

  forward(input: Tensor): Tensor {
    if (this.#packed !== null) return op('quantized::linear_dynamic', input, this.#packed, this.#reduceRange);
    // Inference under bf16 autocast: the weights' bfloat16 copies, kept between calls (autocast
    // would cast them afresh in every forward); training lets autocast cast them, with autograd.
    if (!isGradEnabled() && this.weight.dtype === 'float32' && isAutocastEnabled()) {
      const copies = this.#bf16Copies();
      return F.linear(input, copies.weight, copies.bias);
    }
    return F.linear(input, this.weight, this.bias); // [..., out]
  }

  /** The bfloat16 weight and bias, made again whenever either was written in place since. */
  #bf16Copies(): { weight: Tensor; bias: Tensor | null } {
    const versions: [number, number] = [
      native.version(this.weight.handle),
      this.bias === null ? 0 : native.version(this.bias.handle),
    ];
    const held = this.#bf16;
    if (held !== null && held.versions[0] === versions[0] && held.versions[1] === versions[1]) return held;
    this.releaseLowPrecisionCopies();
    const weight = noGrad(() => this.weight.to('bfloat16')).keep();
    const bias = this.bias === null ? null : noGrad(() => this.bias!.to('bfloat16')).keep();
    this.#bf16 = { weight, bias, versions };
    return this.#bf16;
  }

  /** Frees the bfloat16 copies kept for inference (they are made again when next needed). */
  releaseLowPrecisionCopies(): void {
    this.#bf16?.weight.dispose();
    this.#bf16?.bias?.dispose();
    this.#bf16 = null;
  }

  /** Whether quantizeDynamic_() has run: forward then takes int8 weights and float32 activations. */
  get isQuantized(): boolean {
    return this.#packed !== null;
  }

  /**
   * Dynamic int8 quantization, as torch's quantize_dynamic with per_channel_dynamic_qconfig:
   * int8 weights with one symmetric scale per output row (max |w| / 127.5), packed for the
   * current quantized engine (setQuantizedEngine); activations quantized per call from their
   * own range. Inference only: once the float32 weights are released they leave the state
   * dict, and the module cannot train.
   */
  quantizeDynamic_(options: DynamicQuantizationOptions = {}): this {
    if (this.#packed !== null) return this;
    if (this.weight.dtype !== 'float32')
      throw new TypeError(`Linear(${this.inFeatures}, ${this.outFeatures}): int8 quantization needs float32 weights`);
    this.#packed = noGrad(() =>
      scope(() => {
        const weight = this.weight.detach();
        const scales = op('amax', weight.abs(), [1], false).div(127.5).clamp(FLOAT32_EPS).to('float64');
        const zeroPoints = zeros([this.outFeatures], { dtype: 'int64' });
        const quantized = callNative('quantize_per_channel', weight, scales, zeroPoints, 0, QINT8) as Handle;
        try {
          return callNative('quantized::linear_prepack', quantized, this.bias) as ScriptObjectHandle;
        } finally {
          native.dispose(quantized);
        }
      }),
    );
    this.#reduceRange = options.reduceRange ?? false;
    if (options.releaseWeights ?? true) {
      if (!this.#tied) this.weight.dispose();
      this.bias?.dispose();
      this.#released = true;
    }
    return this;
  }

  /** Released float32 weights are no longer this module's parameters (nor in its state dict). */
  override ownParameters(): [string, Parameter][] {
    if (!this.#released) return super.ownParameters();
    return super.ownParameters().filter(([, parameter]) => !parameter.isDisposed);
  }

  protected override releaseOwn(): void {
    if (this.#packed !== null) native.releaseObject(this.#packed);
    this.#packed = null;
    this.releaseLowPrecisionCopies();
  }
}

export class LayerNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  readonly normalizedShape: number[];

  constructor(
    normalizedShape: number | number[],
    readonly eps = 1e-5,
    options: LayerOptions = {},
  ) {
    super();
    this.normalizedShape = Array.isArray(normalizedShape) ? normalizedShape : [normalizedShape];
    this.weight = filledParameter(() => ones(this.normalizedShape, options));
    this.bias = filledParameter(() => zeros(this.normalizedShape, options));
  }

  forward(input: Tensor): Tensor {
    return F.layerNorm(input, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

/** A lookup table [num, dim] drawn from N(0, 1); the padding row starts at zero and gets no gradient. */
export class Embedding extends Module {
  readonly weight: Parameter;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    readonly paddingIdx: number | null = null,
    options: LayerOptions = {},
  ) {
    super();
    if (paddingIdx !== null && (paddingIdx < -numEmbeddings || paddingIdx >= numEmbeddings)) {
      throw new RangeError(`Embedding paddingIdx ${paddingIdx} outside [0, ${numEmbeddings})`);
    }
    this.paddingIdx = paddingIdx !== null && paddingIdx < 0 ? paddingIdx + numEmbeddings : paddingIdx;
    this.weight = noGrad(() => {
      const data = empty([numEmbeddings, embeddingDim], options).normal_(0, 1);
      if (this.paddingIdx !== null) {
        const row = data.select(0, this.paddingIdx);
        row.zero_();
        row.dispose();
      }
      const parameter = new Parameter(data);
      data.dispose();
      return parameter;
    });
  }

  forward(indices: Tensor): Tensor {
    return F.embedding(this.weight, indices, this.paddingIdx); // [..., dim]
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (p < 0 || p > 1) throw new RangeError(`Dropout probability must be in [0, 1], got ${p}`);
  }

  forward(input: Tensor): Tensor {
    return F.dropout(input, this.p, this.training);
  }
}

/** Modules applied in order; their state-dict keys are their indices (nn.Sequential). */
export class Sequential extends ModuleList<Module & { forward(input: Tensor): Tensor }> {
  forward(input: Tensor): Tensor {
    let output = input;
    for (const module of this.items) output = module.call(output);
    return output;
  }
}

/** Exact (erf) GeLU as a parameterless module, for Sequential heads. */
export class GeLU extends Module {
  forward(input: Tensor): Tensor {
    return F.gelu(input);
  }
}
