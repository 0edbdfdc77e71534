// The compiled addon (native/): libtorch tensors, and LMDB for the feature stores. Loaded once.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A native tensor handle: a BigInt naming a slot of the addon's tensor table (generation << 32 | slot). */
export type Handle = bigint;

/** An opaque read-only LMDB environment handle; closed by lmdbClose or its finaliser. */
export type LmdbHandle = { readonly __lmdbHandle: unique symbol };

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
  /** target[0:width] = mean over rows of source[rows, width], float32, rows summed in order. */
  meanRowsF32(source: Float32Array, rows: number, width: number, target: Float32Array): void;
  findOperator(name: string, overload: string): number;
  operatorSchema(id: number): string;
  callOperator(id: number, args: unknown[]): unknown;
  lmdbOpen(path: string): LmdbHandle;
  lmdbGet(env: LmdbHandle, key: Uint8Array): Buffer | null;
  /** Copies the value into target when it fits; returns its byte length (copied or not), or null when missing. */
  lmdbGetInto(env: LmdbHandle, key: Uint8Array, target: Uint8Array): number | null;
  lmdbCount(env: LmdbHandle): number;
  lmdbKeys(env: LmdbHandle): Buffer[];
  lmdbClose(env: LmdbHandle): void;
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
