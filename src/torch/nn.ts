// The basic layers, with PyTorch's parameter names and default initialisation.
import { Module, ModuleList, Parameter } from './module.js';
import { empty, ones, zeros } from './creation.js';
import { noGrad } from './autograd.js';
import * as F from './functional.js';
import type { Tensor } from './tensor.js';
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

/** y = x W^T + b, weight [out, in]; PyTorch's kaiming-uniform default init. */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

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
  }

  forward(input: Tensor): Tensor {
    return F.linear(input, this.weight, this.bias); // [..., out]
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
