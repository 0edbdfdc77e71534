// A c10d process group (Gloo over TCP) through the addon: the collectives that
// data-parallel training needs. Every operation returns a Promise; all ranks must call
// the same operations on tensors of the same shapes and dtypes, in the same order.
import { native, type DistGroupHandle, type DistInitOptions } from '../torch/native.js';
import type { Tensor } from '../torch/index.js';

/** Rank, world, master and timeout of a group (documented with the addon's type). */
export type ProcessGroupOptions = DistInitOptions;

export class ProcessGroup {
  #handle: DistGroupHandle | null;

  private constructor(
    handle: DistGroupHandle,
    readonly rank: number,
    readonly worldSize: number,
  ) {
    this.#handle = handle;
  }

  /**
   * Joins the group: rank 0 serves the TCPStore at masterAddr:masterPort and every rank
   * connects to it. Rejects when the rendezvous does not complete within the timeout.
   */
  static async init(options: ProcessGroupOptions): Promise<ProcessGroup> {
    const handle = await native.distInit(options);
    return new ProcessGroup(handle, options.rank, options.worldSize);
  }

  #live(): DistGroupHandle {
    if (this.#handle === null) throw new Error(`process group of rank ${this.rank}: used after destroy()`);
    return this.#handle;
  }

  /** Sums each tensor over all ranks, in place. */
  allreduce(tensors: Tensor[]): Promise<void> {
    return native.distAllreduce(
      this.#live(),
      tensors.map((tensor) => tensor.handle),
    );
  }

  /** Overwrites each tensor with root's, in place. */
  broadcast(tensors: Tensor[], root = 0): Promise<void> {
    return native.distBroadcast(
      this.#live(),
      tensors.map((tensor) => tensor.handle),
      root,
    );
  }

  /** Resolves when every rank has reached its barrier. */
  barrier(): Promise<void> {
    return native.distBarrier(this.#live());
  }

  /** Leaves the group; rank 0 stops the store. Destroying twice is a no-op. */
  destroy(): void {
    if (this.#handle === null) return;
    native.distDestroy(this.#handle);
    this.#handle = null;
  }
}
