// The Tensor class: a handle to one libtorch tensor, with the methods the
// model, losses and optimisers need. Every method returns a new tensor (owned
// by the innermost open scope) except the in-place ones ending in `_`, which
// return `this`.
import { native, type Handle } from './native.js';
import { type AnyTypedArray, type DType, dtypeCode, dtypeFromCode, viewAs } from './dtype.js';
import { markOwned, untrack, type Owned } from './scope.js';

export type Scalar = number | boolean;
export type TensorOrScalar = Tensor | Scalar;

const operatorIds = new Map<string, number>();

function operatorId(qualified: string): number {
  let id = operatorIds.get(qualified);
  if (id === undefined) {
    const dot = qualified.indexOf('.');
    const name = dot < 0 ? qualified : qualified.slice(0, dot);
    const overload = dot < 0 ? '' : qualified.slice(dot + 1);
    // 'quantized::linear_dynamic' names its namespace; a bare name is ATen's.
    id = native.findOperator(name.includes('::') ? name : `aten::${name}`, overload);
    operatorIds.set(qualified, id);
  }
  return id;
}

function toNative(value: unknown): unknown {
  if (value instanceof Tensor) return value.handle;
  if (Array.isArray(value)) return value.map(toNative);
  return value;
}

function fromNative(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromNative);
  if (typeof value === 'bigint') return new Tensor(value);
  return value;
}

// The safety net: a tensor that becomes unreachable without dispose() is freed
// when it is collected. dispose() unregisters it, so deterministic code leaves
// nothing behind for the collector.
const collected = new FinalizationRegistry<Handle>((handle) => native.dispose(handle));

/** Calls the ATen operator `name[.overload]` with positional arguments in schema order. */
export function callOp(qualified: string, ...args: unknown[]): unknown {
  return fromNative(native.callOperator(operatorId(qualified), args.map(toNative)));
}

/** The raw native result, for code that must own the handle itself (Parameter). */
export function callNative(qualified: string, ...args: unknown[]): unknown {
  return native.callOperator(operatorId(qualified), args.map(toNative));
}

export function op(qualified: string, ...args: unknown[]): Tensor {
  return callOp(qualified, ...args) as Tensor;
}

export function opList(qualified: string, ...args: unknown[]): Tensor[] {
  return callOp(qualified, ...args) as Tensor[];
}

/** The schema libtorch declares for an operator, e.g. for error messages and docs. */
export function operatorSchema(qualified: string): string {
  return native.operatorSchema(operatorId(qualified));
}

export interface ValuesIndices {
  values: Tensor;
  indices: Tensor;
}

function pair(qualified: string, ...args: unknown[]): ValuesIndices {
  const [values, indices] = callOp(qualified, ...args) as [Tensor, Tensor];
  return { values, indices };
}

function binary(name: string, self: Tensor, other: TensorOrScalar): Tensor {
  return other instanceof Tensor ? op(`${name}.Tensor`, self, other) : op(`${name}.Scalar`, self, other);
}

function shapeArgs(dims: (number | number[])[]): number[] {
  return dims.length === 1 && Array.isArray(dims[0]) ? dims[0] : (dims as number[]);
}

export class Tensor implements Owned {
  #handle: Handle;
  #kept = false;

  /** Wraps a native handle; library users create tensors with torch.tensor(), zeros(), ... */
  constructor(handle: Handle) {
    this.#handle = handle;
    collected.register(this, handle, this);
    markOwned(this);
  }

  get handle(): Handle {
    return this.#handle;
  }

  get shape(): number[] {
    return native.shape(this.#handle);
  }

  get dtype(): DType {
    return dtypeFromCode(native.dtype(this.#handle));
  }

  get device(): string {
    return native.device(this.#handle);
  }

  get ndim(): number {
    return this.shape.length;
  }

  size(dim: number): number {
    const shape = this.shape;
    const size = shape[dim < 0 ? dim + shape.length : dim];
    if (size === undefined)
      throw new RangeError(`dimension ${dim} out of range for a tensor of shape [${shape.join(', ')}]`);
    return size;
  }

  numel(): number {
    return this.shape.reduce((product, size) => product * size, 1);
  }

  // ---- lifetime -------------------------------------------------------------

  /** Releases the native memory now; the tensor cannot be used afterwards. */
  dispose(): void {
    native.dispose(this.#handle);
    collected.unregister(this);
  }

  get isDisposed(): boolean {
    return native.isDisposed(this.#handle);
  }

  get isKept(): boolean {
    return this.#kept;
  }

  /** Takes the tensor out of every open scope: it lives until dispose(). */
  keep(): this {
    this.#kept = true;
    untrack(this);
    return this;
  }

  // ---- data out -------------------------------------------------------------

  /** A copy of the elements in row-major order (int64 as BigInt64Array, bool as Uint8Array). */
  toArray(): AnyTypedArray {
    return viewAs(this.dtype, native.toBuffer(this.#handle));
  }

  /** A copy of the elements as JavaScript numbers (int64 converted, so exact up to 2^53). */
  toNumbers(): number[] {
    return Array.from(this.toArray() as ArrayLike<number | bigint>, Number);
  }

  item(): number {
    return Number(native.item(this.#handle));
  }

  // ---- autograd -------------------------------------------------------------

  get requiresGrad(): boolean {
    return native.requiresGrad(this.#handle);
  }

  requiresGrad_(value = true): this {
    native.setRequiresGrad(this.#handle, value);
    return this;
  }

  /** The accumulated gradient, or null; a new handle on the same storage. */
  get grad(): Tensor | null {
    const gradient = native.grad(this.#handle);
    return gradient === null ? null : new Tensor(gradient);
  }

  set grad(gradient: Tensor | null) {
    native.setGrad(this.#handle, gradient === null ? null : gradient.handle);
  }

  /** True when the tensor records the operation that made it (autograd state). */
  get hasGradFn(): boolean {
    return native.hasGradFn(this.#handle);
  }

  get isInference(): boolean {
    return native.isInference(this.#handle);
  }

  backward(gradient: Tensor | null = null, options: { retainGraph?: boolean } = {}): void {
    native.backward(this.#handle, gradient === null ? null : gradient.handle, options.retainGraph ?? false);
  }

  detach(): Tensor {
    return op('detach', this);
  }

  // ---- conversion -----------------------------------------------------------

  to(target: DType | string): Tensor {
    if (target.startsWith('cpu') || target.startsWith('cuda'))
      return op('to.device', this, target, native.dtype(this.#handle));
    return op('to.dtype', this, dtypeCode(target as DType));
  }

  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  long(): Tensor {
    return this.to('int64');
  }
  bool(): Tensor {
    return this.to('bool');
  }
  clone(): Tensor {
    return op('clone', this);
  }

  // ---- shape ----------------------------------------------------------------

  view(...shape: (number | number[])[]): Tensor {
    return op('view', this, shapeArgs(shape));
  }
  reshape(...shape: (number | number[])[]): Tensor {
    return op('reshape', this, shapeArgs(shape));
  }
  permute(...dims: (number | number[])[]): Tensor {
    return op('permute', this, shapeArgs(dims));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return op('transpose.int', this, dim0, dim1);
  }
  contiguous(): Tensor {
    return op('contiguous', this);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return op('flatten.using_ints', this, startDim, endDim);
  }
  expand(...shape: (number | number[])[]): Tensor {
    return op('expand', this, shapeArgs(shape));
  }
  expandAs(other: Tensor): Tensor {
    return this.expand(other.shape);
  }
  repeat(...repeats: (number | number[])[]): Tensor {
    return op('repeat', this, shapeArgs(repeats));
  }
  squeeze(dim?: number): Tensor {
    return dim === undefined ? op('squeeze', this) : op('squeeze.dim', this, dim);
  }
  unsqueeze(dim: number): Tensor {
    return op('unsqueeze', this, dim);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return op('narrow', this, dim, start, length);
  }
  /** Python's x[start:end:step] along dim; null bounds mean the ends. */
  slice(dim: number, start: number | null = null, end: number | null = null, step = 1): Tensor {
    return op('slice.Tensor', this, dim, start, end, step);
  }
  select(dim: number, index: number): Tensor {
    return op('select.int', this, dim, index);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return op('index_select', this, dim, index);
  }
  gather(dim: number, index: Tensor): Tensor {
    return op('gather', this, dim, index);
  }
  /** Advanced indexing, Python's x[i0, i1, ...] with tensors (null keeps a dimension whole). */
  index(indices: (Tensor | null)[]): Tensor {
    return op('index.Tensor', this, indices);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return opList('chunk', this, chunks, dim);
  }
  split(splitSize: number, dim = 0): Tensor[] {
    return opList('split.Tensor', this, splitSize, dim);
  }
  maskedFill(mask: Tensor, value: TensorOrScalar): Tensor {
    return value instanceof Tensor
      ? op('masked_fill.Tensor', this, mask, value)
      : op('masked_fill.Scalar', this, mask, value);
  }

  // ---- arithmetic -----------------------------------------------------------

  add(other: TensorOrScalar, alpha: number = 1): Tensor {
    return other instanceof Tensor ? op('add.Tensor', this, other, alpha) : op('add.Scalar', this, other, alpha);
  }
  sub(other: TensorOrScalar, alpha: number = 1): Tensor {
    return other instanceof Tensor ? op('sub.Tensor', this, other, alpha) : op('sub.Scalar', this, other, alpha);
  }
  mul(other: TensorOrScalar): Tensor {
    return binary('mul', this, other);
  }
  div(other: TensorOrScalar): Tensor {
    return binary('div', this, other);
  }
  neg(): Tensor {
    return op('neg', this);
  }
  pow(exponent: TensorOrScalar): Tensor {
    return exponent instanceof Tensor
      ? op('pow.Tensor_Tensor', this, exponent)
      : op('pow.Tensor_Scalar', this, exponent);
  }
  matmul(other: Tensor): Tensor {
    return op('matmul', this, other);
  }
  bmm(other: Tensor): Tensor {
    return op('bmm', this, other);
  }
  exp(): Tensor {
    return op('exp', this);
  }
  log(): Tensor {
    return op('log', this);
  }
  sqrt(): Tensor {
    return op('sqrt', this);
  }
  rsqrt(): Tensor {
    return op('rsqrt', this);
  }
  erf(): Tensor {
    return op('erf', this);
  }
  abs(): Tensor {
    return op('abs', this);
  }
  floor(): Tensor {
    return op('floor', this);
  }
  /** Python's % (the result has the divisor's sign). */
  remainder(other: TensorOrScalar): Tensor {
    return binary('remainder', this, other);
  }
  tanh(): Tensor {
    return op('tanh', this);
  }
  sigmoid(): Tensor {
    return op('sigmoid', this);
  }
  relu(): Tensor {
    return op('relu', this);
  }
  clamp(min: number | null = null, max: number | null = null): Tensor {
    return op('clamp', this, min, max);
  }
  maximum(other: Tensor): Tensor {
    return op('maximum', this, other);
  }
  minimum(other: Tensor): Tensor {
    return op('minimum', this, other);
  }

  // ---- reductions -----------------------------------------------------------

  sum(dim?: number | number[], keepdim = false): Tensor {
    return dim === undefined ? op('sum', this) : op('sum.dim_IntList', this, dim, keepdim);
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return dim === undefined ? op('mean', this) : op('mean.dim', this, dim, keepdim);
  }
  max(): Tensor;
  max(dim: number, keepdim?: boolean): ValuesIndices;
  max(dim?: number, keepdim = false): Tensor | ValuesIndices {
    return dim === undefined ? op('max', this) : pair('max.dim', this, dim, keepdim);
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): ValuesIndices;
  min(dim?: number, keepdim = false): Tensor | ValuesIndices {
    return dim === undefined ? op('min', this) : pair('min.dim', this, dim, keepdim);
  }
  argmax(dim: number | null = null, keepdim = false): Tensor {
    return op('argmax', this, dim, keepdim);
  }
  topk(k: number, dim = -1, largest = true, sorted = true): ValuesIndices {
    return pair('topk', this, k, dim, largest, sorted);
  }
  sort(dim = -1, descending = false): ValuesIndices {
    return pair('sort', this, dim, descending);
  }
  all(): Tensor {
    return op('all', this);
  }
  any(): Tensor {
    return op('any', this);
  }

  // ---- comparison and logic (bool results) -----------------------------------

  eq(other: TensorOrScalar): Tensor {
    return binary('eq', this, other);
  }
  ne(other: TensorOrScalar): Tensor {
    return binary('ne', this, other);
  }
  lt(other: TensorOrScalar): Tensor {
    return binary('lt', this, other);
  }
  le(other: TensorOrScalar): Tensor {
    return binary('le', this, other);
  }
  gt(other: TensorOrScalar): Tensor {
    return binary('gt', this, other);
  }
  ge(other: TensorOrScalar): Tensor {
    return binary('ge', this, other);
  }
  logicalNot(): Tensor {
    return op('logical_not', this);
  }
  logicalAnd(other: Tensor): Tensor {
    return op('logical_and', this, other);
  }
  logicalOr(other: Tensor): Tensor {
    return op('logical_or', this, other);
  }

  // ---- in-place updates (optimisers, masking) ---------------------------------

  #inPlace(qualified: string, ...args: unknown[]): this {
    // The operator returns an alias of `this`; drop that extra handle at once.
    (callOp(qualified, this, ...args) as Tensor).dispose();
    return this;
  }

  add_(other: TensorOrScalar, alpha: number = 1): this {
    return other instanceof Tensor
      ? this.#inPlace('add_.Tensor', other, alpha)
      : this.#inPlace('add_.Scalar', other, alpha);
  }
  sub_(other: TensorOrScalar, alpha: number = 1): this {
    return other instanceof Tensor
      ? this.#inPlace('sub_.Tensor', other, alpha)
      : this.#inPlace('sub_.Scalar', other, alpha);
  }
  mul_(other: TensorOrScalar): this {
    return other instanceof Tensor ? this.#inPlace('mul_.Tensor', other) : this.#inPlace('mul_.Scalar', other);
  }
  div_(other: TensorOrScalar): this {
    return other instanceof Tensor ? this.#inPlace('div_.Tensor', other) : this.#inPlace('div_.Scalar', other);
  }
  /** this += value * tensor1 * tensor2 */
  addcmul_(tensor1: Tensor, tensor2: Tensor, value = 1): this {
    return this.#inPlace('addcmul_', tensor1, tensor2, value);
  }
  /** this += value * tensor1 / tensor2 */
  addcdiv_(tensor1: Tensor, tensor2: Tensor, value = 1): this {
    return this.#inPlace('addcdiv_', tensor1, tensor2, value);
  }
  copy_(source: Tensor): this {
    return this.#inPlace('copy_', source);
  }
  zero_(): this {
    return this.#inPlace('zero_');
  }
  fill_(value: Scalar): this {
    return this.#inPlace('fill_.Scalar', value);
  }
  sqrt_(): this {
    return this.#inPlace('sqrt_');
  }
  clamp_(min: number | null = null, max: number | null = null): this {
    return this.#inPlace('clamp_', min, max);
  }
  lerp_(end: Tensor, weight: number): this {
    return this.#inPlace('lerp_.Scalar', end, weight);
  }
  maskedFill_(mask: Tensor, value: Scalar): this {
    return this.#inPlace('masked_fill_.Scalar', mask, value);
  }
  /** Fills with draws from U(from, to) using the global generator. */
  uniform_(from = 0, to = 1): this {
    return this.#inPlace('uniform_', from, to);
  }
  /** Fills with draws from N(mean, std^2) using the global generator. */
  normal_(mean = 0, std = 1): this {
    return this.#inPlace('normal_', mean, std);
  }

  toString(): string {
    return this.isDisposed
      ? 'Tensor(disposed)'
      : `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }
}
