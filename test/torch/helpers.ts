// Shared test helpers: closeness checks and a float64 finite-difference gradient check.
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';

export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance = 1e-5,
  label = '',
): void {
  assert.equal(actual.length, expected.length, `${label}: length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    const bound = tolerance * Math.max(1, Math.abs(e));
    assert.ok(Math.abs(a - e) <= bound, `${label}[${i}]: got ${a}, expected ${e} (tolerance ${bound})`);
  }
}

export function values(tensor: torch.Tensor): number[] {
  return tensor.toNumbers();
}

/** Deterministic float64 inputs in [low, high) with at least `gap` between any two values. */
export function float64Input(shape: number[], seed: number, low = -2, high = 2): torch.Tensor {
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new Float64Array(count);
  // Evenly spaced values, permuted by a multiplicative step coprime to count.
  const step = [7, 11, 13, 17, 19, 23].find((p) => count % p !== 0) ?? 1;
  for (let i = 0; i < count; i++) {
    const position = ((i * step + seed) % count) + 0.5;
    data[i] = low + ((high - low) * position) / count;
  }
  return torch.tensor(data, { shape });
}

/**
 * Compares the analytic gradient of sum(f(inputs) * w) (w fixed, varied) with
 * central finite differences, for every element of every input.
 */
export function gradcheck(
  name: string,
  f: (inputs: torch.Tensor[]) => torch.Tensor,
  inputs: torch.Tensor[],
  options: { eps?: number; tolerance?: number; before?: () => void } = {},
): void {
  const eps = options.eps ?? 1e-6;
  const tolerance = options.tolerance ?? 1e-5;
  torch.scope(() => {
    const leaves = inputs.map((input) => input.detach().requiresGrad_(true));
    options.before?.();
    const output = f(leaves);
    const weights = float64Input(output.shape, 3, 0.5, 1.5);
    output.mul(weights).sum().backward();
    const objective = (perturbed: torch.Tensor[]): number =>
      torch.scope(() =>
        torch.noGrad(() => {
          options.before?.();
          return f(perturbed).mul(weights).sum().item();
        }),
      );
    leaves.forEach((leaf, index) => {
      const analytic = leaf.grad ? values(leaf.grad) : new Array<number>(leaf.numel()).fill(0);
      const base = leaf.toArray() as Float64Array;
      const numeric: number[] = [];
      for (let i = 0; i < base.length; i++) {
        const shifted = (delta: number) => {
          const data = Float64Array.from(base);
          data[i] = (data[i] as number) + delta;
          const replaced = leaves.map((other, j) =>
            j === index ? torch.tensor(data, { shape: leaf.shape }) : other.detach(),
          );
          return objective(replaced);
        };
        numeric.push((shifted(eps) - shifted(-eps)) / (2 * eps));
      }
      assertClose(analytic, numeric, tolerance, `${name}: d/d input ${index}`);
    });
  });
}
