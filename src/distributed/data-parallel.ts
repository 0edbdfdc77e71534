// Data-parallel training as DistributedDataParallel does it, written as explicit steps
// instead of backward hooks: rank 0's weights are broadcast once at the start; after
// each backward, every gradient is summed over the ranks and divided by the world size
// before the optimizer step, so that all ranks apply the same update to the same
// weights. Tensors travel flattened into buckets of at most bucketBytes (DDP's
// bucket_cap_mb is 25 MiB): a step makes a few large collectives, not one per tensor.
import * as torch from '../torch/index.js';
import { BYTES_PER_ELEMENT, type Module, type Parameter, type Tensor } from '../torch/index.js';
import { isLoopback, readLaunchEnvironment } from './environment.js';
import { ProcessGroup } from './process-group.js';

/** torch.distributed's default for the rendezvous and every collective. */
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

export interface DataParallelOptions {
  /** Largest flattened bucket of one collective (a larger tensor travels alone). */
  bucketBytes?: number;
}

export interface InitDistributedOptions extends DataParallelOptions {
  /** Bound on connecting to the master, the rendezvous and each collective. */
  timeoutMs?: number;
  /** Where RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (and GLOO_SOCKET_IFNAME) are read. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Joins the run described by the environment that `vilbert launch` (or
 * torch.distributed.launch --use_env) sets. Without WORLD_SIZE, or with a world of
 * one, this is a single process: every collective is then a no-op.
 */
export async function initDistributed(options: InitDistributedOptions = {}): Promise<DataParallel> {
  const env = options.env ?? process.env;
  const launch = readLaunchEnvironment(env);
  if (launch === null || launch.worldSize === 1) return new DataParallel(null, launch?.localRank ?? 0, options);
  const group = await ProcessGroup.init({
    rank: launch.rank,
    worldSize: launch.worldSize,
    masterAddr: launch.masterAddr,
    masterPort: launch.masterPort,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    // A loopback master means every rank is on this machine: bind Gloo to loopback too,
    // whatever this machine's hostname resolves to.
    interface: env.GLOO_SOCKET_IFNAME || undefined,
    hostname: isLoopback(launch.masterAddr) ? '127.0.0.1' : undefined,
  });
  return new DataParallel(group, launch.localRank, options);
}

/** Consecutive runs of tensors of one dtype and device, each at most capBytes (or one tensor). */
function bucketsOf(tensors: Tensor[], capBytes: number): Tensor[][] {
  const buckets: Tensor[][] = [];
  let current: Tensor[] = [];
  let bytes = 0;
  let kind = '';
  for (const tensor of tensors) {
    const size = tensor.numel() * BYTES_PER_ELEMENT[tensor.dtype];
    const tensorKind = `${tensor.dtype}@${tensor.device}`;
    if (current.length > 0 && (tensorKind !== kind || bytes + size > capBytes)) {
      buckets.push(current);
      current = [];
      bytes = 0;
    }
    current.push(tensor);
    bytes += size;
    kind = tensorKind;
  }
  if (current.length > 0) buckets.push(current);
  return buckets;
}

type Layout = [name: string, shape: number[], dtype: string][];

/** Where this rank's model first differs from rank 0's, or null. */
function layoutDifference(own: Layout, main: Layout): string | null {
  for (let i = 0; i < Math.min(own.length, main.length); i++) {
    const [name, shape, dtype] = own[i]!;
    const [mainName, mainShape, mainDtype] = main[i]!;
    if (name !== mainName) return `its model's tensor ${i} is '${name}', rank 0's is '${mainName}'`;
    if (dtype !== mainDtype || shape.join(',') !== mainShape.join(',')) {
      return `'${name}' is ${dtype} [${shape.join(', ')}] here, ${mainDtype} [${mainShape.join(', ')}] on rank 0`;
    }
  }
  if (own.length !== main.length)
    return `its model has ${own.length} parameters and buffers, rank 0's has ${main.length}`;
  return null;
}

export class DataParallel {
  readonly #group: ProcessGroup | null;
  readonly #bucketBytes: number;

  /** A group of null is a single process; initDistributed() builds one from the environment. */
  constructor(
    group: ProcessGroup | null,
    readonly localRank: number,
    options: DataParallelOptions = {},
  ) {
    this.#group = group;
    this.#bucketBytes = options.bucketBytes ?? DEFAULT_BUCKET_BYTES;
  }

  get rank(): number {
    return this.#group?.rank ?? 0;
  }

  get worldSize(): number {
    return this.#group?.worldSize ?? 1;
  }

  /** Rank 0: the one that writes checkpoints, logs and reports. */
  get isMain(): boolean {
    return this.rank === 0;
  }

  /** The process group, null in a single process. */
  get group(): ProcessGroup | null {
    return this.#group;
  }

  /** Each rank's share of a global batch, truncated as the reference divides it; `what` names the batch in the error. */
  localBatchSize(globalBatchSize: number, what = `a batch size of ${globalBatchSize}`): number {
    const local = Math.trunc(globalBatchSize / this.worldSize);
    if (local < 1) throw new RangeError(`${what} cannot be split over ${this.worldSize} processes`);
    return local;
  }

  /**
   * Gives every rank rank 0's parameters and persistent buffers. Call once, after the
   * model is built and loaded, before training; it first checks that every rank has
   * the same tensor names, shapes and dtypes (all ranks throw if one differs).
   */
  async broadcastParameters(model: Module): Promise<void> {
    const group = this.#group;
    if (group === null) return;
    const entries = [...model.stateDict()];
    const layout: Layout = entries.map(([name, tensor]) => [name, tensor.shape, tensor.dtype]);
    const difference = layoutDifference(layout, await this.broadcastValue(layout));
    if (await this.someRank(difference !== null)) {
      throw new Error(
        `rank ${this.rank}: ${difference ?? "the model of another rank differs from rank 0's (that rank says where)"}`,
      );
    }
    await this.#bucketed(
      entries.map(([, tensor]) => tensor),
      (flats) => group.broadcast(flats, 0),
      this.rank !== 0,
    );
  }

  /**
   * Replaces every gradient by its mean over the ranks; call after backward, before the
   * optimizer step. A trainable parameter that has a gradient on some rank but not on
   * this one takes part with zeros (and then has a gradient here too); one without a
   * gradient on any rank keeps none, so the optimizer skips it everywhere.
   */
  async averageGradients(model: Module): Promise<void> {
    const group = this.#group;
    if (group === null) return;
    const trainable = model.parameters().filter((parameter) => parameter.requiresGrad);
    const ranksWithGradient = await this.sumOverRanks(trainable.map((parameter) => Number(hasGradient(parameter))));
    const reduced = trainable.filter((_, i) => ranksWithGradient[i]! > 0);
    const gradients = torch.noGrad(() => reduced.map((parameter) => gradientOf(parameter)));
    try {
      await this.#bucketed(
        gradients,
        async (flats) => {
          await group.allreduce(flats);
          torch.noGrad(() => flats.forEach((flat) => flat.div_(this.worldSize)));
        },
        true,
      );
    } finally {
      for (const gradient of gradients) gradient.dispose();
    }
  }

  /** Element-wise sums of numbers over the ranks (float64), e.g. to log a global loss. */
  async sumOverRanks(values: number[]): Promise<number[]> {
    if (this.#group === null || values.length === 0) return [...values];
    const tensor = torch.tensor(Float64Array.from(values)).keep();
    try {
      await this.#group.allreduce([tensor]);
      return Array.from(tensor.toArray() as Float64Array);
    } finally {
      tensor.dispose();
    }
  }

  /**
   * sumOverRanks in the same collective that makes every rank throw when any rank failed:
   * that rank throws its own error, the others `othersError()`. No rank is then left
   * waiting in a collective that the failed one never joins.
   */
  async sumOverRanksOrThrow(failure: Error | null, values: number[], othersError: () => Error): Promise<number[]> {
    const [failed, ...sums] = await this.sumOverRanks([failure === null ? 0 : 1, ...values]);
    if (failed! > 0) throw failure ?? othersError();
    return sums;
  }

  /**
   * Throws unless a checkpoint saved by a run of `savedWorldSize` processes can continue
   * here: its sampler positions count the batches of each of its processes.
   */
  checkResumable(savedWorldSize: number, checkpoint: string): void {
    if (savedWorldSize === this.worldSize) return;
    const plural = (count: number) => `${count} process${count === 1 ? '' : 'es'}`;
    const how =
      savedWorldSize === 1
        ? 'without vilbert launch'
        : `under vilbert launch with ${plural(savedWorldSize)} in all (--nnodes x --nproc_per_node)`;
    throw new Error(
      `${checkpoint}: saved by a run of ${plural(savedWorldSize)}, this run has ${plural(this.worldSize)}; its data positions count per-process batches, so resume it ${how}`,
    );
  }

  /** True on every rank when flag is true on any: how ranks agree to stop at the same step. */
  async someRank(flag: boolean): Promise<boolean> {
    const [count] = await this.sumOverRanks([flag ? 1 : 0]);
    return count! > 0;
  }

  /** Rank 0's value (any JSON value) on every rank; the others' arguments are ignored. */
  async broadcastValue<T>(value: T): Promise<T> {
    const group = this.#group;
    if (group === null) return value;
    const bytes = new TextEncoder().encode(this.isMain ? JSON.stringify(value) : '');
    const length = torch.tensor(Float64Array.of(bytes.length)).keep();
    let byteLength: number;
    try {
      await group.broadcast([length]);
      byteLength = length.item();
    } finally {
      length.dispose();
    }
    const payload = (this.isMain ? torch.tensor(bytes) : torch.zeros([byteLength], { dtype: 'uint8' })).keep();
    try {
      await group.broadcast([payload]);
      return JSON.parse(new TextDecoder().decode(payload.toArray() as Uint8Array)) as T;
    } finally {
      payload.dispose();
    }
  }

  /** Rank 0's numbers on every rank (float64; NaN and Infinity survive, unlike JSON). */
  async broadcastNumbers(values: number[]): Promise<number[]> {
    if (this.#group === null || values.length === 0) return [...values];
    const tensor = torch.tensor(Float64Array.from(values)).keep();
    try {
      await this.#group.broadcast([tensor]);
      return Array.from(tensor.toArray() as Float64Array);
    } finally {
      tensor.dispose();
    }
  }

  /** Every rank's value (any JSON value) on every rank, indexed by rank. */
  async gatherValues<T>(value: T): Promise<T[]> {
    const group = this.#group;
    if (group === null) return [value];
    const bytes = new TextEncoder().encode(JSON.stringify(value));
    const lengths = await this.sumOverRanks(
      Array.from({ length: this.worldSize }, (_, rank) => (rank === this.rank ? bytes.length : 0)),
    );
    const offsets = lengths.map((_, rank) => lengths.slice(0, rank).reduce((sum, length) => sum + length, 0));
    // Each rank fills its own slice of zeros: the sum over ranks is every slice at once.
    const all = new Uint8Array(offsets.at(-1)! + lengths.at(-1)!);
    all.set(bytes, offsets[this.rank]);
    const tensor = torch.tensor(all).keep();
    try {
      await group.allreduce([tensor]);
      const gathered = tensor.toArray() as Uint8Array;
      const decoder = new TextDecoder();
      return lengths.map(
        (length, rank) => JSON.parse(decoder.decode(gathered.subarray(offsets[rank], offsets[rank]! + length))) as T,
      );
    } finally {
      tensor.dispose();
    }
  }

  /** Resolves when every rank has reached it. */
  async barrier(): Promise<void> {
    await this.#group?.barrier();
  }

  /** Leaves the process group (rank 0 stops the store): call when every rank is done. */
  destroy(): void {
    this.#group?.destroy();
  }

  /**
   * Runs collective on flat copies of tensors (a few buckets), then, when unpack is
   * set, copies the results back into the tensors.
   */
  async #bucketed(tensors: Tensor[], collective: (flats: Tensor[]) => Promise<void>, unpack: boolean): Promise<void> {
    const buckets = bucketsOf(tensors, this.#bucketBytes);
    const flats = torch.noGrad(() =>
      torch.scope(() => buckets.map((bucket) => torch.cat(bucket.map((tensor) => tensor.reshape(-1))).keep())),
    );
    try {
      await collective(flats);
      if (!unpack) return;
      torch.noGrad(() =>
        torch.scope(() => {
          buckets.forEach((bucket, i) => {
            let offset = 0;
            for (const tensor of bucket) {
              const size = tensor.numel();
              tensor.copy_(flats[i]!.narrow(0, offset, size).view(tensor.shape));
              offset += size;
            }
          });
        }),
      );
    } finally {
      for (const flat of flats) flat.dispose();
    }
  }
}

/** Runs `check`; an error of class `type` that it throws is returned instead (null if none), e.g. for sumOverRanksOrThrow. */
export function caught<E extends Error>(type: abstract new (...args: never[]) => E, check: () => void): E | null {
  try {
    check();
    return null;
  } catch (error) {
    if (error instanceof type) return error;
    throw error;
  }
}

function hasGradient(parameter: Parameter): boolean {
  const gradient = parameter.grad;
  gradient?.dispose();
  return gradient !== null;
}

/** The parameter's gradient (a handle for the caller to dispose), zeros when it had none. */
function gradientOf(parameter: Parameter): Tensor {
  const existing = parameter.grad;
  if (existing !== null) return existing.keep();
  const zeros = torch.zerosLike(parameter).keep();
  parameter.grad = zeros;
  return zeros;
}
