// The compiled addon (native/): libtorch tensors, and LMDB for the feature stores. Loaded once.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What the addon's large-block CPU allocator holds (tensors of 1 MiB and more), in bytes. */
export interface CpuAllocatorStats {
  /** Large requests served from an idle block. */
  hits: number;
  /** Large requests that mapped new memory. */
  misses: number;
  liveBytes: number;
  /** Freed blocks kept for reuse: live + idle stays within peakLiveBytes + slackBytes, and a block idle for 10 s is unmapped. */
  idleBytes: number;
  /** The most live bytes at once. */
  peakLiveBytes: number;
  /** VILBERT_CPU_CACHE_MB (default 64) in bytes. */
  slackBytes: number;
  /** The most live + idle bytes held at once. */
  peakBytes: number;
}

/** A native tensor handle: a BigInt naming a slot of the addon's tensor table (generation << 32 | slot). */
export type Handle = bigint;

/** An opaque libtorch script object (e.g. quantized::LinearPackedParamsBase), as operators return them. */
export type ScriptObjectHandle = { readonly __scriptObject: unique symbol };

/** An opaque read-only LMDB environment handle; closed by lmdbClose or its finaliser. */
export type LmdbHandle = { readonly __lmdbHandle: unique symbol };

/** An opaque c10d process group handle (Gloo, with its TCPStore); released by distDestroy or its finaliser. */
export type DistGroupHandle = { readonly __distGroupHandle: unique symbol };

export interface DistInitOptions {
  rank: number;
  worldSize: number;
  /** Where rank 0 runs the TCPStore server. */
  masterAddr: string;
  masterPort: number;
  /** Bound on connecting, the rendezvous and each collective. */
  timeoutMs: number;
  /** Network interface for Gloo's connections (GLOO_SOCKET_IFNAME); else hostname; else this machine's hostname. */
  interface?: string;
  hostname?: string;
}

export interface NativeAddon {
  fromBuffer(data: ArrayBufferView, shape: number[], dtype: number): Handle;
  toBuffer(handle: Handle): ArrayBuffer;
  dispose(handle: Handle): void;
  isDisposed(handle: Handle): boolean;
  shape(handle: Handle): number[];
  dtype(handle: Handle): number;
  device(handle: Handle): string;
  item(handle: Handle): number | boolean;
  requiresGrad(handle: Handle): boolean;
  /** The tensor's in-place version counter (Tensor._version); 0 for an inference tensor. */
  version(handle: Handle): number;
  setRequiresGrad(handle: Handle, value: boolean): void;
  hasGradFn(handle: Handle): boolean;
  isInference(handle: Handle): boolean;
  grad(handle: Handle): Handle | null;
  setGrad(handle: Handle, gradient: Handle | null): void;
  backward(handle: Handle, gradient: Handle | null, retainGraph: boolean): void;
  setGradEnabled(enabled: boolean): boolean;
  isGradEnabled(): boolean;
  enterInferenceMode(): number;
  exitInferenceMode(): void;
  isInferenceMode(): boolean;
  manualSeed(seed: number | bigint): void;
  getRngState(): Handle;
  setRngState(state: Handle): void;
  getNumThreads(): number;
  setNumThreads(threads: number): void;
  liveTensors(): number;
  buildInfo(): { torchVersion: string; cuda: boolean; parallelInfo: string };
  cpuAllocatorStats(): CpuAllocatorStats | null;
  /** The whole file, read into libtorch-allocated memory (huge pages for large files); errors say what failed, not the path (the caller names it). */
  readFile(path: string, maxBytes: number): ArrayBuffer;
  /** Detaches a readFile buffer and drops its hold on the memory (tensors over it keep theirs); false for other buffers. */
  releaseFile(buffer: ArrayBuffer): boolean;
  /** A tensor sharing the bytes of a readFile buffer (aligned for the dtype), else null. */
  tensorFromFileBytes(bytes: Uint8Array, shape: number[], dtype: number): Handle | null;
  /** CRC-32 (ISO-HDLC) of the bytes, chunks in parallel. */
  crc32(bytes: Uint8Array): number;
  /**
   * target row 0 = mean over the rows of source [rows, width] (float32, rows summed in order),
   * rows 1..keep = source rows 0..keep-1, every later element 0 (streaming stores unless streaming is false: for a warm, reused target).
   * Returns whether every element of the mean row is finite (false when a summed value is NaN or
   * infinite, or a column's float32 sum overflows).
   */
  copyRowsWithMeanF32(
    source: Uint8Array,
    rows: number,
    width: number,
    keep: number,
    target: Float32Array,
    streaming?: boolean,
  ): boolean;
  /** 1 where the parameter has a gradient. */
  gradsDefined(parameters: Handle[]): Uint8Array;
  /**
   * AdamW (the reference's, correct_bias off: the caller folds any correction into stepSizes) on
   * every parameter, each of which must have a gradient; decays[i] is lr * weight_decay (0: none).
   * fused false runs the ATen operator sequence instead of the one-pass kernel.
   */
  adamwStep(
    parameters: Handle[],
    expAvgs: Handle[],
    expAvgSqs: Handle[],
    stepSizes: Float64Array,
    decays: Float64Array,
    beta1: number,
    beta2: number,
    eps: number,
    fused: boolean,
  ): void;
  /** zero_() (or, with setToNone, drops) every defined gradient; returns how many there were. */
  zeroGrads(parameters: Handle[], setToNone: boolean): number;
  /** float32 shaped like input: 1 / (1 - p) with probability 1 - p, else 0 (0 < p < 1); one seed from the default generator. */
  dropoutMask(input: Handle, p: number): Handle;
  /** Frees a script object an operator returned (e.g. packed quantized weights); later uses are refused. */
  releaseObject(object: ScriptObjectHandle): void;
  /** CPU autocast on with that lower-precision dtype code; returns the previous [enabled, dtype code]. */
  autocastEnter(dtype: number): [boolean, number];
  /** Restores what autocastEnter returned; the outermost exit frees the cached low-precision weights. */
  autocastExit(wasEnabled: boolean, dtype: number): void;
  isAutocastEnabled(): boolean;
  quantizedEngines(): string[];
  quantizedEngine(): string;
  setQuantizedEngine(name: string): void;
  hasMkldnn(): boolean;
  /** Unmaps the large-block allocator's idle blocks and restarts its peaks; returns the bytes unmapped. */
  cpuAllocatorEmptyCache(): number;
  findOperator(name: string, overload: string): number;
  operatorSchema(id: number): string;
  callOperator(id: number, args: unknown[]): unknown;
  lmdbOpen(path: string): LmdbHandle;
  lmdbGet(env: LmdbHandle, key: Uint8Array): Buffer | null;
  lmdbView(env: LmdbHandle, key: Uint8Array): ArrayBuffer | null;
  detachView(buffer: ArrayBuffer): void;
  lmdbCount(env: LmdbHandle): number;
  lmdbKeys(env: LmdbHandle): Buffer[];
  lmdbClose(env: LmdbHandle): void;
  /** Creates a new store (a directory with data.mdb, or one file when subdir is false), all pairs in one write transaction. */
  lmdbWrite(path: string, keys: Uint8Array[], values: Uint8Array[], mapSize: number, subdir: boolean): void;
  /** Joins a Gloo process group; rejects with an Error naming the rank and master address on failure or timeout. */
  distInit(options: DistInitOptions): Promise<DistGroupHandle>;
  /** Sums each tensor over all ranks, in place (one collective per tensor, enqueued in call order). */
  distAllreduce(group: DistGroupHandle, tensors: Handle[]): Promise<void>;
  /** Copies root's tensors into every rank's, in place. */
  distBroadcast(group: DistGroupHandle, tensors: Handle[], root: number): Promise<void>;
  distBarrier(group: DistGroupHandle): Promise<void>;
  /** Releases the group (waits for work in flight, bounded by the timeout); twice is a no-op. */
  distDestroy(group: DistGroupHandle): void;
}

function addonPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // src/torch (tsx or similar) or dist/src/torch (compiled): the package root is above either.
  for (const root of [join(here, '..', '..'), join(here, '..', '..', '..')]) {
    const candidate = join(root, 'native', 'build', 'Release', 'vilbert_torch.node');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    'vilbert-ts: the native addon native/build/Release/vilbert_torch.node is missing. ' +
      'Build it with `npm run build:native` (it needs libtorch: `apt-get install libtorch-dev`, or set LIBTORCH).',
  );
}

export const native: NativeAddon = createRequire(import.meta.url)(addonPath()) as NativeAddon;
