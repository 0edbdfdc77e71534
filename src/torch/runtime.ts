// Process-wide engine settings: seeding, generator state, threads, diagnostics.
import { native, type CpuAllocatorStats } from './native.js';
import { Tensor } from './tensor.js';

/** Seeds the global generator of every device (torch.manual_seed). */
export function manualSeed(seed: number | bigint): void {
  native.manualSeed(seed);
}

/** The CPU generator's full state (a byte string), for exact resume. */
export function getRngState(): Uint8Array {
  const state = new Tensor(native.getRngState());
  try {
    return state.toArray() as Uint8Array;
  } finally {
    state.dispose();
  }
}

export function setRngState(state: Uint8Array): void {
  const handle = native.fromBuffer(state, [state.byteLength], 0);
  try {
    native.setRngState(handle);
  } finally {
    native.dispose(handle);
  }
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

export function setNumThreads(threads: number): void {
  native.setNumThreads(threads);
}

/** Native tensors alive now (handles not yet disposed or collected). */
export function liveTensors(): number {
  return native.liveTensors();
}

export function buildInfo(): { torchVersion: string; cuda: boolean; parallelInfo: string } {
  return native.buildInfo();
}

/** The large-block allocator's counters, or null under VILBERT_SYSTEM_MALLOC=1 (libtorch's allocator). */
export function cpuAllocatorStats(): CpuAllocatorStats | null {
  return native.cpuAllocatorStats();
}
