// RAdam against vectors from the reference's vilbert/optimization.py (tools/reference/radam_vectors.py),
// and the optimiser state a checkpoint saves and restores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import { Parameter } from '../../src/torch/index.js';
import { RAdam } from '../../src/train/radam.js';
import { AdamW, type Moments, type Optimizer } from '../../src/train/adamw.js';
import { fixture } from '../io/fixtures.js';

interface Vectors {
  grads_a: number[][];
  grads_b: number[][][];
  after: { a: number[]; b: number[] }[];
}

function parameters() {
  return {
    a: new Parameter(torch.tensor([0.5, -1.0, 2.0])),
    b: new Parameter(
      torch.tensor([
        [1.0, -0.25],
        [0.75, 3.0],
      ]),
    ),
  };
}

test('RAdam: 8 steps of two groups with different lrs equal the reference optimizer (shared step-size buffer included)', () => {
  const vectors = JSON.parse(readFileSync(fixture('train', 'radam_reference.json'), 'utf8')) as Vectors;
  const { a, b } = parameters();
  const optimizer = new RAdam([
    { name: 'a', parameter: a, lr: 1e-2, weightDecay: 0.01 },
    { name: 'b', parameter: b, lr: 1e-1, weightDecay: 0 },
  ]);
  vectors.after.forEach((expected, step) => {
    a.grad = torch.tensor(vectors.grads_a[step]!);
    b.grad = torch.tensor(vectors.grads_b[step]!);
    optimizer.step();
    const gotA = Array.from(a.toArray() as Float32Array);
    const gotB = Array.from(b.toArray() as Float32Array);
    gotA.forEach((value, i) =>
      assert.ok(Math.abs(value - expected.a[i]!) <= 1e-6, `step ${step + 1} a[${i}]: ${value} vs ${expected.a[i]}`),
    );
    gotB.forEach((value, i) =>
      assert.ok(Math.abs(value - expected.b[i]!) <= 1e-6, `step ${step + 1} b[${i}]: ${value} vs ${expected.b[i]}`),
    );
  });
  optimizer.dispose();
});

function runSteps(optimizer: Optimizer, params: { a: Parameter; b: Parameter }, steps: number[]): void {
  for (const k of steps) {
    params.a.grad = torch.tensor([0.1 * k, -0.3, 0.2]);
    params.b.grad =
      k % 2 === 0
        ? torch.tensor([
            [0.5, k],
            [-1, 0.25],
          ])
        : null;
    optimizer.step();
  }
}

for (const kind of ['AdamW', 'RAdam'] as const) {
  test(`${kind}: saved moments and extra state continue exactly like the original`, () => {
    const make = (params: { a: Parameter; b: Parameter }) => {
      const groups = [
        { name: 'a', parameter: params.a, lr: 1e-2, weightDecay: 0.01 },
        { name: 'b', parameter: params.b, lr: 1e-1, weightDecay: 0 },
      ];
      return kind === 'AdamW' ? new AdamW(groups) : new RAdam(groups);
    };
    const original = parameters();
    const first = make(original);
    runSteps(first, original, [1, 2, 3]);
    const saved = new Map<string, Moments>(
      [...first.stateEntries()].map(([name, m]) => [
        name,
        { step: m.step, expAvg: m.expAvg.clone().keep(), expAvgSq: m.expAvgSq.clone().keep() },
      ]),
    );
    const extra = JSON.parse(JSON.stringify(first.extraState())) as unknown;
    assert.deepEqual([...saved.keys()], ['a', 'b']);
    assert.equal(saved.get('a')!.step, 3);
    assert.equal(saved.get('b')!.step, 1, 'a null gradient does not advance the step');

    const copy = { a: new Parameter(original.a.clone()), b: new Parameter(original.b.clone()) };
    const second = make(copy);
    second.loadState(saved, extra);
    runSteps(first, original, [4, 5, 6, 7]);
    runSteps(second, copy, [4, 5, 6, 7]);
    assert.deepEqual(Array.from(copy.a.toArray() as Float32Array), Array.from(original.a.toArray() as Float32Array));
    assert.deepEqual(Array.from(copy.b.toArray() as Float32Array), Array.from(original.b.toArray() as Float32Array));
    first.dispose();
    second.dispose();
  });
}

test('optimizer state naming an unknown parameter or with a wrong shape is refused', () => {
  const { a, b } = parameters();
  const optimizer = new AdamW([
    { name: 'a', parameter: a, lr: 1, weightDecay: 0 },
    { name: 'b', parameter: b, lr: 1, weightDecay: 0 },
  ]);
  assert.throws(
    () => optimizer.loadState(new Map([['c', { step: 1, expAvg: torch.zeros([3]), expAvgSq: torch.zeros([3]) }]])),
    /'c', which is not trained/,
  );
  assert.throws(
    () => optimizer.loadState(new Map([['a', { step: 1, expAvg: torch.zeros([2]), expAvgSq: torch.zeros([2]) }]])),
    /a.exp_avg has shape \[2\], the parameter has \[3\]/,
  );
});
