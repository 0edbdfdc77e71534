// The Module base: the module tree is the checkpoint. Parameters and child
// modules are discovered from a module's own properties in the order they were
// assigned (as PyTorch's __setattr__ records them), so a property's name is its
// state-dict key segment; buffers are registered explicitly.
import { noGrad } from './autograd.js';
import { scope } from './scope.js';
import { zeroGrads } from './optim-kernels.js';
import { Tensor, callNative } from './tensor.js';
import type { Handle } from './native.js';
import { VilbertError } from '../vilbert-error.js';

/** A trainable tensor owned by a module: requires grad, outlives every scope. */
export class Parameter extends Tensor {
  constructor(data: Tensor, requiresGrad = true) {
    super(callNative('detach', data) as Handle);
    this.keep();
    if (requiresGrad) this.requiresGrad_(true);
  }
}

export type StateDict = Map<string, Tensor>;

export interface LoadResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

export interface ShapeMismatch {
  key: string;
  checkpointShape: number[];
  modelShape: number[];
}

export class StateDictError extends VilbertError {
  override readonly code = 'E_STATE_DICT';

  constructor(
    readonly missingKeys: string[],
    readonly unexpectedKeys: string[],
    readonly shapeMismatches: ShapeMismatch[],
  ) {
    const lines: string[] = [];
    for (const mismatch of shapeMismatches) {
      lines.push(
        `size mismatch for ${mismatch.key}: checkpoint has shape [${mismatch.checkpointShape.join(', ')}], ` +
          `model has shape [${mismatch.modelShape.join(', ')}]`,
      );
    }
    if (missingKeys.length > 0) lines.push(`missing keys (${missingKeys.length}): ${missingKeys.join(', ')}`);
    if (unexpectedKeys.length > 0)
      lines.push(`unexpected keys (${unexpectedKeys.length}): ${unexpectedKeys.join(', ')}`);
    super(`error loading state dict:\n  ${lines.join('\n  ')}`);
    this.name = 'StateDictError';
  }
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((size, i) => size === b[i]);
}

export abstract class Module {
  training = true;
  readonly #buffers = new Map<string, { tensor: Tensor; persistent: boolean }>();
  readonly #forwardHooks: ((module: Module, output: unknown) => void)[] = [];

  /**
   * Runs this module's forward inside its own scope, as PyTorch's __call__
   * runs forward: the intermediates it made are freed as soon as it returns,
   * only its result lives on. This keeps the working set as small as Python's
   * reference counting keeps it, which matters for speed (memory reuse) as much
   * as for peak memory.
   */
  call<M extends Module & { forward(...args: never[]): unknown }>(
    this: M,
    ...args: Parameters<M['forward']>
  ): ReturnType<M['forward']> {
    const output = scope(() => this.forward(...args)) as ReturnType<M['forward']>;
    for (const hook of this.#forwardHooks) hook(this, output);
    return output;
  }

  /**
   * Calls hook(module, output) after each call() of this module (PyTorch's
   * register_forward_hook); the output lives in the caller's scope, so a hook
   * that wants to keep a tensor keeps a detached copy. Returns the remover.
   */
  registerForwardHook(hook: (module: this, output: unknown) => void): () => void {
    const registered = hook as (module: Module, output: unknown) => void;
    this.#forwardHooks.push(registered);
    return () => {
      const index = this.#forwardHooks.indexOf(registered);
      if (index >= 0) this.#forwardHooks.splice(index, 1);
    };
  }

  /** Child modules in assignment order; containers override this to name children by index. */
  namedChildren(): [string, Module][] {
    return Object.entries(this).filter((entry): entry is [string, Module] => entry[1] instanceof Module);
  }

  /** This module's own parameters (not its children's), in assignment order. */
  ownParameters(): [string, Parameter][] {
    return Object.entries(this).filter((entry): entry is [string, Parameter] => entry[1] instanceof Parameter);
  }

  protected registerBuffer(name: string, tensor: Tensor, persistent = true): Tensor {
    this.#buffers.get(name)?.tensor.dispose();
    this.#buffers.set(name, { tensor: tensor.keep(), persistent });
    return tensor;
  }

  buffer(name: string): Tensor {
    const entry = this.#buffers.get(name);
    if (!entry) throw new Error(`${this.constructor.name} has no buffer '${name}'`);
    return entry.tensor;
  }

  /** Every module of the tree, this one first (prefix ''), depth first in assignment order. */
  namedModules(prefix = ''): [string, Module][] {
    const result: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.namedChildren()) {
      result.push(...child.namedModules(prefix === '' ? name : `${prefix}.${name}`));
    }
    return result;
  }

  /** Each parameter once, under its first name (a tied weight appears once, as in PyTorch). */
  namedParameters(): [string, Parameter][] {
    const result: [string, Parameter][] = [];
    const seen = new Set<Parameter>();
    for (const [path, module] of this.namedModules()) {
      for (const [name, parameter] of module.ownParameters()) {
        if (seen.has(parameter)) continue;
        seen.add(parameter);
        result.push([path === '' ? name : `${path}.${name}`, parameter]);
      }
    }
    return result;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, parameter]) => parameter);
  }

  namedBuffers(): [string, Tensor][] {
    const result: [string, Tensor][] = [];
    for (const [path, module] of this.namedModules()) {
      for (const [name, entry] of module.#buffers) result.push([path === '' ? name : `${path}.${name}`, entry.tensor]);
    }
    return result;
  }

  numParameters(): number {
    return this.parameters().reduce((total, parameter) => total + parameter.numel(), 0);
  }

  /** Parameters and persistent buffers under their dotted keys, in PyTorch's state_dict order. */
  stateDict(): StateDict {
    const state: StateDict = new Map();
    for (const [path, module] of this.namedModules()) {
      const key = (name: string) => (path === '' ? name : `${path}.${name}`);
      for (const [name, parameter] of module.ownParameters()) state.set(key(name), parameter);
      for (const [name, entry] of module.#buffers) if (entry.persistent) state.set(key(name), entry.tensor);
    }
    return state;
  }

  /**
   * Copies values into the model's tensors. Shape mismatches always throw;
   * missing and unexpected keys throw when strict (the default) and are
   * returned otherwise.
   */
  loadStateDict(state: StateDict | Record<string, Tensor>, options: { strict?: boolean } = {}): LoadResult {
    const strict = options.strict ?? true;
    const incoming = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missingKeys = [...own.keys()].filter((key) => !incoming.has(key));
    const unexpectedKeys = [...incoming.keys()].filter((key) => !own.has(key));
    const shapeMismatches: ShapeMismatch[] = [];
    for (const [key, value] of incoming) {
      const target = own.get(key);
      if (target && !sameShape(value.shape, target.shape)) {
        shapeMismatches.push({ key, checkpointShape: value.shape, modelShape: target.shape });
      }
    }
    if (shapeMismatches.length > 0 || (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0))) {
      throw new StateDictError(missingKeys, unexpectedKeys, shapeMismatches);
    }
    noGrad(() => {
      for (const [key, value] of incoming) own.get(key)?.copy_(value);
    });
    return { missingKeys, unexpectedKeys };
  }

  train(mode = true): this {
    for (const [, module] of this.namedModules()) module.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Clears gradients. PyTorch 1.x (the reference) leaves zero tensors, which
   * matters to its optimiser loop; setToNone drops them instead.
   */
  zeroGrad(setToNone = false): void {
    zeroGrads(this.parameters(), setToNone);
  }

  /** Frees every parameter and buffer of the tree now, and what each module holds besides (releaseOwn). */
  dispose(): void {
    for (const parameter of this.parameters()) parameter.dispose();
    for (const [, buffer] of this.namedBuffers()) buffer.dispose();
    for (const [, module] of this.namedModules()) module.releaseOwn();
  }

  /** Frees native state a module holds outside its parameters and buffers (e.g. packed int8 weights). */
  protected releaseOwn(): void {}
}

/** A list of modules whose state-dict keys are their indices (nn.ModuleList, nn.Sequential). */
export class ModuleList<T extends Module = Module> extends Module {
  readonly items: T[];

  constructor(items: T[]) {
    super();
    this.items = items;
  }

  override namedChildren(): [string, Module][] {
    return this.items.map((item, index) => [String(index), item]);
  }

  get length(): number {
    return this.items.length;
  }

  at(index: number): T {
    const item = this.items[index];
    if (item === undefined)
      throw new RangeError(`ModuleList index ${index} out of range (length ${this.items.length})`);
    return item;
  }

  [Symbol.iterator](): Iterator<T> {
    return this.items[Symbol.iterator]();
  }
}
