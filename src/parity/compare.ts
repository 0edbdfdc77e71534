// Elementwise comparison of a computed tensor with a reference one:
// |got - want| <= atol + rtol * |want| (+ a term scaled by the reference's max).
import type * as torch from '../torch/index.js';
import type { RawTensor } from '../io/raw-tensor.js';

export interface Tolerance {
  atol: number;
  rtol: number;
  /** Added to atol, times max |want| of the tensor (the gradient rule of the fixtures). */
  scaledAtol?: number;
}

export const TOLERANCES = {
  forward: { atol: 1e-4, rtol: 1e-4 },
  attention: { atol: 1e-5, rtol: 1e-4 },
  loss: { atol: 1e-6, rtol: 1e-5 },
  gradient: { atol: 1e-6, rtol: 0, scaledAtol: 1e-4 },
  exact: { atol: 0, rtol: 0 },
  // Parameters after AdamW steps. Without bias correction, Adam's first steps turn float
  // rounding in near-cancelled gradients into visible differences: on an AMD EPYC machine the
  // reference numerics path differs from the fixtures (made on another CPU) by up to 1.4e-6
  // in four snapshots of one weight, everything else within 1e-6.
  optimizer: { atol: 2e-6, rtol: 0 },
  moments: { atol: 1e-12, rtol: 0, scaledAtol: 1e-4 },
} satisfies Record<string, Tolerance>;

export interface Comparison {
  ok: boolean;
  maxAbsDiff: number;
  bound: string;
  problem?: string;
}

export function rawValues(raw: RawTensor): number[] {
  const { buffer, byteOffset, byteLength } = raw.data;
  const aligned = new Uint8Array(byteLength);
  aligned.set(new Uint8Array(buffer, byteOffset, byteLength));
  switch (raw.dtype) {
    case 'float32':
      return Array.from(new Float32Array(aligned.buffer));
    case 'float64':
      return Array.from(new Float64Array(aligned.buffer));
    case 'int64':
      return Array.from(new BigInt64Array(aligned.buffer), Number);
    case 'int32':
      return Array.from(new Int32Array(aligned.buffer));
    case 'uint8':
    case 'bool':
      return Array.from(aligned);
    default:
      throw new Error(`cannot compare tensors of dtype ${raw.dtype}`);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  const volume = (s: readonly number[]) => s.reduce((x, y) => x * y, 1);
  return a.length === b.length ? a.every((v, i) => v === b[i]) : volume(a) === volume(b) && volume(a) === 1;
}

export function compare(got: torch.Tensor, want: RawTensor, tolerance: Tolerance): Comparison {
  const bound = `atol ${tolerance.atol}${tolerance.scaledAtol ? ` + ${tolerance.scaledAtol}*max|want|` : ''}, rtol ${tolerance.rtol}`;
  if (!sameShape(got.shape, want.shape)) {
    return {
      ok: false,
      maxAbsDiff: Number.NaN,
      bound,
      problem: `shape [${got.shape.join(', ')}] != reference [${want.shape.join(', ')}]`,
    };
  }
  const actual = got.toNumbers();
  const expected = rawValues(want);
  const scale = tolerance.scaledAtol
    ? tolerance.scaledAtol * expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
    : 0;
  let maxAbsDiff = 0;
  let ok = true;
  for (let i = 0; i < expected.length; i++) {
    const difference = Math.abs(actual[i]! - expected[i]!);
    if (!(difference <= tolerance.atol + scale + tolerance.rtol * Math.abs(expected[i]!))) ok = false;
    if (!(difference <= maxAbsDiff)) maxAbsDiff = difference;
  }
  return { ok, maxAbsDiff, bound };
}
