// Lower precision on the CPU. bfloat16 runs through libtorch's autocast (the matrix
// products in bfloat16, everything else as it comes, exactly as torch.autocast('cpu')
// dispatches them); int8 through libtorch's dynamically quantized Linear operators
// (nn.ts). What the CPU offers decides whether either is fast: cpuPrecisionSupport().
import { readFileSync } from 'node:fs';
import { native } from './native.js';
import { dtypeCode } from './dtype.js';

/** The precisions a model can run in: float32 (the default, parity-exact), bfloat16 autocast, dynamic int8. */
export const PRECISIONS = ['fp32', 'bf16', 'int8'] as const;
export type Precision = (typeof PRECISIONS)[number];

export function isPrecision(value: unknown): value is Precision {
  return typeof value === 'string' && (PRECISIONS as readonly string[]).includes(value);
}

/**
 * Runs fn with CPU autocast to bfloat16 (torch.autocast('cpu', torch.bfloat16)): Linear,
 * matmul and bmm run in bfloat16, their float32 weights cast once per outermost region
 * and cached for it. Synchronous only, like scope(): the setting is the thread's.
 */
export function autocast<T>(fn: () => T): T {
  const [wasEnabled, previous] = native.autocastEnter(dtypeCode('bfloat16'));
  try {
    const result = fn();
    if (result instanceof Promise) throw new TypeError('torch.autocast() takes a synchronous function');
    return result;
  } finally {
    native.autocastExit(wasEnabled, previous);
  }
}

export function isAutocastEnabled(): boolean {
  return native.isAutocastEnabled();
}

/** The quantized engines this libtorch has (Debian's: qnnpack, onednn; no fbgemm). */
export function quantizedEngines(): string[] {
  return native.quantizedEngines();
}

export function quantizedEngine(): string {
  return native.quantizedEngine();
}

export function setQuantizedEngine(name: string): void {
  native.setQuantizedEngine(name);
}

/**
 * The engine int8 Linear layers use: oneDNN where libtorch has it (VNNI where the CPU has
 * it), else fbgemm. qnnpack is refused: on x86 it ran 2.4-4.1x slower than float32 here.
 */
export function preferredQuantizedEngine(): string | null {
  const engines = quantizedEngines();
  return ['onednn', 'fbgemm'].find((engine) => engines.includes(engine)) ?? null;
}

/** Unmaps the allocator's idle blocks (e.g. float32 weights freed by quantization); returns the bytes. */
export function emptyCache(): number {
  return native.cpuAllocatorEmptyCache();
}

export interface PrecisionSupport {
  /** The CPU's model name (/proc/cpuinfo), or 'unknown'. */
  cpu: string;
  /** AVX512-BF16 or AMX-BF16: oneDNN's bfloat16 products run natively. */
  bf16Native: boolean;
  /** AVX512-VNNI, AVX-VNNI or AMX-INT8: oneDNN's int8 products run natively. */
  int8Native: boolean;
  /** libtorch has oneDNN (it runs both lower-precision paths on x86). */
  mkldnn: boolean;
  /** The engine int8 would use, or null when libtorch has none that serves. */
  int8Engine: string | null;
}

let support: PrecisionSupport | undefined;

/** What this machine offers the lower precisions (read once). */
export function cpuPrecisionSupport(): PrecisionSupport {
  if (support !== undefined) return support;
  let cpu = 'unknown';
  let flags = new Set<string>();
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    cpu = /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? cpu;
    flags = new Set((/^flags\s*:\s*(.+)$/m.exec(text)?.[1] ?? '').split(/\s+/));
  } catch {
    // not Linux: the flags stay unknown (reported as not native)
  }
  support = {
    cpu,
    bf16Native: flags.has('avx512_bf16') || flags.has('amx_bf16'),
    int8Native: flags.has('avx512_vnni') || flags.has('avx_vnni') || flags.has('amx_int8'),
    mkldnn: native.hasMkldnn(),
    int8Engine: preferredQuantizedEngine(),
  };
  return support;
}

/**
 * One line on what a precision will run as on this machine, or null when it runs as asked
 * at full speed. Library code returns it; the CLI prints it.
 */
export function precisionNotice(precision: Precision): string | null {
  if (precision === 'fp32') return null;
  const found = cpuPrecisionSupport();
  if (precision === 'bf16') {
    if (!found.mkldnn)
      return 'bf16: this libtorch has no oneDNN; bfloat16 products run on its reference kernels, likely slower than fp32';
    if (!found.bf16Native)
      return `bf16: this CPU (${found.cpu}) has no AVX512-BF16 or AMX; oneDNN converts to float32 inside its kernels, so expect little or no speed-up over fp32`;
    return null;
  }
  if (found.int8Engine === null)
    return 'int8: this libtorch has no oneDNN or fbgemm quantized engine; int8 cannot run here';
  if (!found.int8Native)
    return `int8: this CPU (${found.cpu}) has no VNNI; the ${found.int8Engine} int8 kernels run on plain AVX2/AVX512 instructions, with a smaller speed-up`;
  return null;
}
