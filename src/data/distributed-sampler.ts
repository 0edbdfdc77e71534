// Per-rank batches as torch's DistributedSampler makes them (drop_last=False): the
// epoch's permutation is padded by repeating its start until it divides into
// worldSize equal shards, and rank r takes positions r, r + W, r + 2W, ... Every rank
// then has ceil(N / W) indices an epoch and the same number of batches, so the
// ranks' collectives stay in step. The permutation is the single-process
// BatchSampler's for the same (seed, epoch): with per-rank batch b, the union of the
// ranks' k-th batches is the k-th batch of BatchSampler(N, W * b) wherever no padding
// is involved.
import { BatchSampler, type Sampler, type SamplerState } from './loader.js';

export interface ShardOptions {
  shuffle: boolean;
  seed: number;
  /** Drop each rank's last batch when it is incomplete (the reference keeps it). */
  dropLast?: boolean;
  rank: number;
  worldSize: number;
}

/** A BatchSampler over one rank's shard, for TaskLoader's `sampler` option. */
export class ShardedBatchSampler implements Sampler {
  /** Indices per rank and epoch, padding included. */
  readonly samplesPerRank: number;
  readonly #permutation: BatchSampler;
  #state: SamplerState;
  #shard: number[] = [];
  #shardEpoch = -1;

  constructor(
    readonly datasetLength: number,
    readonly batchSize: number,
    readonly options: ShardOptions,
  ) {
    const { rank, worldSize } = options;
    if (!Number.isInteger(worldSize) || worldSize < 1)
      throw new RangeError(`world size must be a positive integer, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
      throw new RangeError(`rank must be an integer in 0..${worldSize - 1}, got ${rank}`);
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
    // One batch of the whole dataset: its only batch is the epoch's permutation.
    this.#permutation = new BatchSampler(datasetLength, datasetLength, {
      shuffle: options.shuffle,
      seed: options.seed,
    });
    this.samplesPerRank = Math.ceil(datasetLength / worldSize);
    this.#state = { seed: options.seed, epoch: 0, position: 0 };
  }

  /** Batches per epoch (the same on every rank). */
  get length(): number {
    const batches = this.samplesPerRank / this.batchSize;
    return this.options.dropLast ? Math.floor(batches) : Math.ceil(batches);
  }

  state(): SamplerState {
    return { ...this.#state };
  }

  /** A saved state counts this rank's batches: resume with the same world size. */
  restore(state: SamplerState): void {
    if (state.position < 0 || state.position > this.length)
      throw new RangeError(`sampler position ${state.position} outside 0..${this.length}`);
    this.#state = { ...state };
  }

  /** This rank's indices of the current epoch. */
  #epochShard(): number[] {
    if (this.#shardEpoch !== this.#state.epoch) {
      this.#permutation.restore({ seed: this.#state.seed, epoch: this.#state.epoch, position: 0 });
      const order = this.#permutation.next();
      const { rank, worldSize } = this.options;
      this.#shard = Array.from(
        { length: this.samplesPerRank },
        (_, i) => order[(rank + i * worldSize) % order.length]!,
      );
      this.#shardEpoch = this.#state.epoch;
    }
    return this.#shard;
  }

  /** The next batch's indices; an exhausted epoch starts the next one. */
  next(): number[] {
    if (this.#state.position >= this.length)
      this.#state = { ...this.#state, epoch: this.#state.epoch + 1, position: 0 };
    const start = this.#state.position * this.batchSize;
    const indices = this.#epochShard().slice(start, start + this.batchSize);
    this.#state = { ...this.#state, position: this.#state.position + 1 };
    return indices;
  }
}
