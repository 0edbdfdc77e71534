// Batches for training and evaluation: a deterministic, seedable and resumable
// sampler, collation in the reference's tuple order, and prefetching in a worker
// thread so that a training step does not wait for LMDB reads and decoding.
import { Worker } from 'node:worker_threads';
import { type DatasetItem, type ItemTensor, type ItemValue, type TaskDataset, int64Tensor } from './dataset.js';
import { ReferenceRandomSource } from './random-source.js';
import type { DatasetSpec } from './dataset-spec.js';

export interface Batch {
  /** Element names in the reference's tuple order. */
  readonly order: readonly string[];
  /** Each element stacked along a new leading batch dimension; Python ints become int64 [B]. */
  readonly values: Readonly<Record<string, ItemTensor | string[]>>;
  /** Dataset indices of the rows. */
  readonly indices: readonly number[];
}

export interface SamplerState {
  seed: number;
  epoch: number;
  /** Batches already taken in this epoch. */
  position: number;
}

/** What TaskLoader needs of a sampler: BatchSampler, or a ShardedBatchSampler on one rank. */
export interface Sampler {
  /** Batches per epoch. */
  readonly length: number;
  next(): number[];
  state(): SamplerState;
  restore(state: SamplerState): void;
}

/**
 * The order of each epoch: a permutation drawn from (seed, epoch) alone, so a
 * saved {seed, epoch, position} restores the exact remaining order.
 */
export class BatchSampler implements Sampler {
  #state: SamplerState;
  #order: number[] = [];
  #orderEpoch = -1;

  constructor(
    readonly datasetLength: number,
    readonly batchSize: number,
    readonly options: { shuffle: boolean; seed: number; dropLast?: boolean },
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
    if (datasetLength < 1) throw new RangeError('cannot sample from an empty dataset');
    this.#state = { seed: options.seed, epoch: 0, position: 0 };
  }

  /** Batches per epoch. */
  get length(): number {
    return this.options.dropLast
      ? Math.floor(this.datasetLength / this.batchSize)
      : Math.ceil(this.datasetLength / this.batchSize);
  }

  state(): SamplerState {
    return { ...this.#state };
  }

  restore(state: SamplerState): void {
    if (state.position < 0 || state.position > this.length)
      throw new RangeError(`sampler position ${state.position} outside 0..${this.length}`);
    this.#state = { ...state };
  }

  #epochOrder(): number[] {
    if (this.#orderEpoch !== this.#state.epoch) {
      const order = Array.from({ length: this.datasetLength }, (_, i) => i);
      if (this.options.shuffle) {
        const random = new ReferenceRandomSource((this.#state.seed + this.#state.epoch * 0x9e3779b1) >>> 0);
        for (let i = order.length - 1; i > 0; i--) {
          const j = random.randint(0, i + 1);
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
      }
      this.#order = order;
      this.#orderEpoch = this.#state.epoch;
    }
    return this.#order;
  }

  /** The next batch's indices; an exhausted epoch starts the next one (the reference restarts its iterator). */
  next(): number[] {
    if (this.#state.position >= this.length)
      this.#state = { ...this.#state, epoch: this.#state.epoch + 1, position: 0 };
    const start = this.#state.position * this.batchSize;
    const indices = this.#epochOrder().slice(start, start + this.batchSize);
    this.#state = { ...this.#state, position: this.#state.position + 1 };
    return indices;
  }
}

type TypedData = ItemTensor['data'];

function isTensor(value: ItemValue): value is ItemTensor {
  return typeof value === 'object' && value !== null && 'shape' in value;
}

/** Stacks items as torch's default_collate does: tensors along a new dim 0, ints to int64 [B]. */
export function collate(items: readonly DatasetItem[], indices: readonly number[]): Batch {
  if (items.length !== indices.length)
    throw new RangeError(`collate: ${items.length} items for ${indices.length} indices`);
  return collateFrom(indices, (_, row) => items[row]!);
}

/**
 * `collate` of `item(indices[row], row)` for every row, each item copied into the batch
 * before the next is asked for: so `dataset.item(index, true)` (transient items, one set
 * of arrays reused) can feed it, and no per-item arrays are left for V8 to collect.
 */
export function collateFrom(indices: readonly number[], item: (index: number, row: number) => DatasetItem): Batch {
  if (indices.length === 0) throw new RangeError('cannot collate an empty batch');
  const first = item(indices[0]!, 0);
  const rows = indices.length;
  type Column =
    | { name: string; head: ItemTensor; data: TypedData }
    | { name: string; head: ItemValue; data: undefined; scalars: ItemValue[] };
  const columns = first.order.map((name): Column => {
    const head = first.values[name]!;
    if (!isTensor(head)) return { name, head, data: undefined, scalars: [] };
    // Every element is overwritten below, so the memory need not be zeroed first.
    const bytes = Buffer.allocUnsafeSlow(head.data.length * rows * head.data.BYTES_PER_ELEMENT);
    const Constructor = head.data.constructor as {
      new (buffer: ArrayBuffer, offset: number, length: number): TypedData;
    };
    return {
      name,
      head,
      data: new Constructor(bytes.buffer as ArrayBuffer, bytes.byteOffset, head.data.length * rows),
    };
  });
  for (let row = 0; row < rows; row++) {
    const current = row === 0 ? first : item(indices[row]!, row);
    for (const column of columns) {
      const value = current.values[column.name]!;
      if (column.data === undefined) {
        column.scalars.push(value);
        continue;
      }
      const { head } = column;
      if (!isTensor(value) || value.data.length !== head.data.length || value.dtype !== head.dtype) {
        throw new TypeError(
          `collate: element '${column.name}' of item ${indices[row]} is not a ${head.dtype} [${head.shape.join(', ')}] like item ${indices[0]}`,
        );
      }
      (column.data as Float32Array).set(value.data as Float32Array, row * head.data.length);
    }
  }
  const values: Record<string, ItemTensor | string[]> = {};
  for (const column of columns) {
    if (column.data !== undefined)
      values[column.name] = { dtype: column.head.dtype, shape: [rows, ...column.head.shape], data: column.data };
    else if (typeof column.head === 'string') values[column.name] = column.scalars.map(String);
    else if (typeof column.head === 'number') values[column.name] = int64Tensor([rows], column.scalars as number[]);
  }
  return { order: first.order, values, indices };
}

export interface LoaderOptions {
  batchSize: number;
  shuffle: boolean;
  seed: number;
  dropLast?: boolean;
  /** Batches prepared ahead in a worker thread (0: build each batch when asked, on this thread). */
  prefetch?: number;
  /** Reseed the dataset's random draws before each batch from (seed, epoch, batch position): resumable draws. */
  reseed?: boolean;
  /** Used instead of BatchSampler(length, batchSize, options), e.g. a ShardedBatchSampler. */
  sampler?: Sampler;
}

/** A 32-bit seed for one batch's random draws, from the sampler's seed and the batch's place in it. */
export function batchSeed(state: SamplerState): number {
  let hash = Math.imul(state.seed ^ 0x85ebca6b, 0xc2b2ae35) >>> 0;
  hash = Math.imul(hash ^ (state.epoch + 0x27d4eb2f), 0x165667b1) >>> 0;
  hash = Math.imul(hash ^ (state.position + 0x9e3779b9), 0x85ebca77) >>> 0;
  return (hash ^ (hash >>> 16)) >>> 0;
}

/** A source of batches: `next()` resolves to the following batch in sampler order. */
export class TaskLoader {
  readonly sampler: Sampler;
  readonly #dataset: TaskDataset | null;
  readonly #worker: Worker | null;
  readonly #pending = new Map<number, { resolve: (batch: Batch) => void; reject: (error: Error) => void }>();
  readonly #queue: Promise<Batch>[] = [];
  #nextRequest = 0;
  readonly #prefetch: number;
  readonly #reseed: boolean;

  private constructor(length: number, options: LoaderOptions, dataset: TaskDataset | null, spec: DatasetSpec | null) {
    this.sampler = options.sampler ?? new BatchSampler(length, options.batchSize, options);
    this.#dataset = dataset;
    this.#reseed = options.reseed ?? false;
    this.#prefetch = spec ? Math.max(1, options.prefetch ?? 2) : 0;
    this.#worker = spec ? new Worker(new URL('./loader-worker.js', import.meta.url), { workerData: spec }) : null;
    this.#worker?.on('message', (message: { id: number; batch?: Batch; error?: string }) => {
      const waiting = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.batch) waiting?.resolve(message.batch);
      else waiting?.reject(new Error(message.error ?? 'the loader worker failed'));
    });
    this.#worker?.on('error', (error) => {
      for (const waiting of this.#pending.values()) waiting.reject(error);
      this.#pending.clear();
    });
  }

  /** Batches built on this thread from a dataset object. */
  static inProcess(dataset: TaskDataset, options: LoaderOptions): TaskLoader {
    return new TaskLoader(dataset.length, options, dataset, null);
  }

  /** Batches built and prefetched in a worker thread that opens the dataset from its spec. */
  static inWorker(spec: DatasetSpec, length: number, options: LoaderOptions): TaskLoader {
    return new TaskLoader(length, options, null, spec);
  }

  get length(): number {
    return this.sampler.length;
  }

  #request(): Promise<Batch> {
    const indices = this.sampler.next();
    const seed = this.#reseed ? batchSeed(this.sampler.state()) : null;
    if (this.#dataset) {
      const dataset = this.#dataset;
      if (seed !== null) dataset.reseed?.(seed);
      return Promise.resolve(collateFrom(indices, (index) => dataset.item(index, true)));
    }
    const id = this.#nextRequest++;
    return new Promise<Batch>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker!.postMessage({ id, indices, seed });
    });
  }

  /** The next batch. With prefetching, the following ones are already being built. */
  next(): Promise<Batch> {
    while (this.#queue.length < Math.max(1, this.#prefetch)) this.#queue.push(this.#request());
    const batch = this.#queue.shift()!;
    if (this.#prefetch > 0) this.#queue.push(this.#request());
    return batch;
  }

  /**
   * The sampler position of the next batch the caller will receive (prefetched
   * batches not yet handed out are not counted), for checkpoints.
   */
  state(): SamplerState {
    const state = this.sampler.state();
    let { epoch, position } = state;
    for (let i = 0; i < this.#queue.length; i++) {
      if (position === 0) {
        epoch -= 1;
        position = this.sampler.length;
      }
      position -= 1;
    }
    return { seed: state.seed, epoch, position };
  }

  /** Continues from a saved state (drops prefetched batches). */
  restore(state: SamplerState): void {
    this.#queue.length = 0;
    this.sampler.restore(state);
  }

  async close(): Promise<void> {
    await this.#worker?.terminate();
  }
}
