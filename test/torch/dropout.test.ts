// Training-mode dropout (F.dropout with the addon's mask generator): the kept
// fraction, the kept values, the gradient, and reproducibility from the seed and
// the saved generator state, independent of the thread count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { F } from '../../src/torch/index.js';

const N = 1 << 20;

function maskOf(p: number, seed: number, threads = torch.getNumThreads()): Float32Array {
  const previous = torch.getNumThreads();
  torch.setNumThreads(threads);
  try {
    torch.manualSeed(seed);
    return F.dropout(torch.ones([N]), p, true).toArray() as Float32Array;
  } finally {
    torch.setNumThreads(previous);
  }
}

for (const p of [0.1, 0.5, 0.9]) {
  test(`dropout p=${p}: kept fraction within 5 standard deviations of ${1 - p}, kept values 1/(1-p), the rest 0`, () => {
    const values = maskOf(p, 1);
    const scale = Math.fround(1 / (1 - p));
    let kept = 0;
    for (const value of values) {
      if (value === scale) kept += 1;
      else assert.equal(value, 0);
    }
    const sd = Math.sqrt(N * p * (1 - p));
    assert.ok(Math.abs(kept - N * (1 - p)) < 5 * sd, `kept ${kept} of ${N}`);
  });
}

test('dropout: the same seed gives the same mask at 1 and 2 threads; another seed, another mask; successive calls differ', () => {
  const a = maskOf(0.1, 5, 1);
  const b = maskOf(0.1, 5, 2);
  assert.deepEqual(a, b);
  const c = maskOf(0.1, 6);
  assert.notDeepEqual(a, c);
  torch.manualSeed(5);
  const first = F.dropout(torch.ones([N]), 0.1, true).toArray();
  const second = F.dropout(torch.ones([N]), 0.1, true).toArray();
  assert.deepEqual(first, a);
  assert.notDeepEqual(first, second);
});

test('dropout: restoring the generator state replays the mask', () => {
  torch.manualSeed(9);
  F.dropout(torch.ones([1000]), 0.3, true).dispose();
  const state = torch.getRngState();
  const expected = F.dropout(torch.ones([1000]), 0.3, true).toArray();
  torch.setRngState(state);
  assert.deepEqual(F.dropout(torch.ones([1000]), 0.3, true).toArray(), expected);
});

test('dropout: the gradient is the mask; eval mode, p=0 and p=1 behave as in PyTorch', () => {
  const x = torch.randn([4096]).requiresGrad_(true);
  torch.manualSeed(2);
  const y = F.dropout(x, 0.25, true);
  y.sum().backward();
  const mask = (y.toArray() as Float32Array).map((value, i) =>
    value === 0 ? 0 : value / (x.toArray() as Float32Array)[i]!,
  );
  const grad = x.grad!.toArray() as Float32Array;
  grad.forEach((g, i) => assert.ok(Math.abs(g - mask[i]!) < 1e-5, `grad[${i}] ${g} vs mask ${mask[i]}`));
  assert.deepEqual(F.dropout(x, 0.25, false).toArray(), x.toArray());
  assert.deepEqual(F.dropout(x, 0, true).toArray(), x.toArray());
  assert.ok((F.dropout(x, 1, true).toArray() as Float32Array).every((value) => value === 0));
  assert.throws(() => F.dropout(x, 1.5, true), /\[0, 1\]/);
});
