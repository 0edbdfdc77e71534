// One model, one request at a time: requests wait in a queue and a single worker runs them.
// A forward pass holds the event loop, so requests that arrive meanwhile are queued when it
// ends; the worker then takes the oldest request with every queued request of the same task
// (up to maxBatch) when that task runs batched. A batch that fails is rerun one request at a
// time, so one bad request fails alone.
import { ServeRequestError } from './serve-error.js';

export interface QueueOptions {
  /** Requests of a batched task run together, at most this many (1: no batching). */
  maxBatch: number;
  /** Requests waiting beyond this many are refused with a 503. */
  maxPending: number;
}

export interface Ran<Result> {
  result: Result;
  /** Milliseconds of the batch the request ran in. */
  ms: number;
  /** Milliseconds the request waited in the queue. */
  waitedMs: number;
  /** Requests in that batch. */
  batchSize: number;
}

interface Job<Task, Input, Result> {
  task: Task;
  input: Input;
  queuedAt: number;
  resolve: (ran: Ran<Result>) => void;
  reject: (error: unknown) => void;
}

export class BatchingQueue<Task, Input, Result> {
  readonly #jobs: Job<Task, Input, Result>[] = [];
  #working = false;

  constructor(
    private readonly run: (task: Task, inputs: Input[]) => Promise<Result[]>,
    private readonly batched: (task: Task) => boolean,
    readonly options: QueueOptions,
  ) {
    if (!Number.isSafeInteger(options.maxBatch) || options.maxBatch < 1)
      throw new RangeError(`maxBatch must be a positive integer, got ${options.maxBatch}`);
  }

  get pending(): number {
    return this.#jobs.length;
  }

  submit(task: Task, input: Input): Promise<Ran<Result>> {
    if (this.#jobs.length >= this.options.maxPending)
      return Promise.reject(
        new ServeRequestError(503, `the queue is full (${this.options.maxPending} requests waiting); try again`),
      );
    return new Promise((resolve, reject) => {
      this.#jobs.push({ task, input, queuedAt: performance.now(), resolve, reject });
      if (!this.#working) void this.#work();
    });
  }

  async #work(): Promise<void> {
    this.#working = true;
    try {
      while (this.#jobs.length > 0) {
        // Let requests that arrived during the last batch reach the queue first.
        await new Promise((resolve) => setImmediate(resolve));
        await this.#runBatch(this.#takeBatch());
      }
    } finally {
      this.#working = false;
    }
  }

  #takeBatch(): Job<Task, Input, Result>[] {
    const first = this.#jobs.shift()!;
    const batch = [first];
    if (!this.batched(first.task)) return batch;
    for (let index = 0; index < this.#jobs.length && batch.length < this.options.maxBatch;) {
      if (this.#jobs[index]!.task === first.task) batch.push(...this.#jobs.splice(index, 1));
      else index++;
    }
    return batch;
  }

  async #runBatch(batch: Job<Task, Input, Result>[]): Promise<void> {
    const started = performance.now();
    try {
      const results = await this.run(
        batch[0]!.task,
        batch.map((job) => job.input),
      );
      const ms = performance.now() - started;
      batch.forEach((job, index) =>
        job.resolve({ result: results[index]!, ms, waitedMs: started - job.queuedAt, batchSize: batch.length }),
      );
    } catch (error) {
      if (batch.length === 1) return batch[0]!.reject(error);
      for (const job of batch) await this.#runBatch([job]);
    }
  }
}
