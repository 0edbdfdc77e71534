// Autograd entry points, grad and inference modes, RNG state, threads, error surfacing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';

test('backward accumulates into leaf gradients; detach cuts the graph', () => {
  const x = torch.tensor([1, 2, 3]).requiresGrad_();
  x.mul(x).sum().backward();
  assert.deepEqual(x.grad!.toNumbers(), [2, 4, 6]);
  x.mul(3).sum().backward();
  assert.deepEqual(x.grad!.toNumbers(), [5, 7, 9]);
  x.grad = null;
  assert.equal(x.grad, null);
  const y = x.detach();
  assert.equal(y.requiresGrad, false);
  const z = x.mul(2);
  z.backward(torch.tensor([1, 0, 1]));
  assert.deepEqual(x.grad!.toNumbers(), [2, 0, 2]);
  const w = x.mul(x).sum();
  w.backward(null, { retainGraph: true });
  w.backward();
  assert.deepEqual(x.grad!.toNumbers(), [6, 8, 14]);
});

test('noGrad and enableGrad scopes nest and restore', () => {
  const x = torch.ones([2]).requiresGrad_();
  assert.equal(torch.isGradEnabled(), true);
  const inside = torch.noGrad(() => {
    assert.equal(torch.isGradEnabled(), false);
    const again = torch.enableGrad(() => x.mul(2));
    assert.equal(again.requiresGrad, true);
    return x.mul(2);
  });
  assert.equal(inside.requiresGrad, false);
  assert.equal(inside.hasGradFn, false);
  assert.equal(torch.isGradEnabled(), true);
  assert.throws(
    () =>
      torch.noGrad(() => {
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(torch.isGradEnabled(), true, 'restored after a throw');
});

test('inference mode records no autograd state', () => {
  const weight = torch.randn([4, 4]).requiresGrad_();
  const out = torch.inferenceMode(() => {
    assert.equal(torch.isInferenceModeEnabled(), true);
    return torch.F.gelu(torch.ones([2, 4]).matmul(weight));
  });
  assert.equal(torch.isInferenceModeEnabled(), false);
  assert.equal(out.requiresGrad, false);
  assert.equal(out.hasGradFn, false);
  assert.equal(out.isInference, true);
});

test('manualSeed makes draws repeatable; RNG state saves and restores exactly', () => {
  torch.manualSeed(42);
  const first = torch.randn([5]).toNumbers();
  torch.manualSeed(42);
  assert.deepEqual(torch.randn([5]).toNumbers(), first);
  const state = torch.getRngState();
  const next = torch.rand([7]).toNumbers();
  const dropped = torch.F.dropout(torch.ones([20]), 0.5, true).toNumbers();
  torch.setRngState(state);
  assert.deepEqual(torch.rand([7]).toNumbers(), next);
  assert.deepEqual(torch.F.dropout(torch.ones([20]), 0.5, true).toNumbers(), dropped);
  const ints = torch.randint(0, 10, [50]);
  assert.equal(ints.dtype, 'int64');
  assert.ok(ints.toNumbers().every((v) => v >= 0 && v < 10));
  torch.manualSeed(2n ** 40n);
});

test('thread count can be read and set', () => {
  const previous = torch.getNumThreads();
  torch.setNumThreads(1);
  assert.equal(torch.getNumThreads(), 1);
  torch.setNumThreads(previous);
  assert.equal(torch.getNumThreads(), previous);
  assert.throws(() => torch.setNumThreads(0), /thread count must be >= 1/);
});

test('libtorch errors become JS errors with its message, and computing goes on', () => {
  const a = torch.ones([2, 3]);
  assert.throws(
    () => a.matmul(torch.ones([2, 3])),
    /aten::matmul: mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)/,
  );
  assert.throws(() => a.add(torch.ones([4])), /The size of tensor a \(3\) must match the size of tensor b \(4\)/);
  assert.throws(() => a.indexSelect(0, torch.tensor([5], { dtype: 'int64' })), /index out of range|out of range/i);
  assert.throws(
    () => a.indexSelect(0, torch.tensor([0.5])),
    /aten::index_select: .*Expected dtype int32 or int64 for index/,
  );
  assert.throws(
    () => torch.F.embedding(torch.ones([3, 2]), torch.tensor([7], { dtype: 'int64' })),
    /index out of range/i,
  );
  assert.throws(() => a.view(5), /shape '\[5\]' is invalid for input of size 6/);
  assert.throws(() => a.sum(4), /Dimension out of range/);
  assert.throws(
    () => torch.F.crossEntropy(torch.ones([2, 3]), torch.tensor([0, 9], { dtype: 'int64' })),
    /out of bounds|Target 9/,
  );
  assert.throws(() => torch.cat([a, torch.ones([2])]), /aten::cat/);
  assert.throws(() => a.item(), /one element/);
  assert.throws(() => torch.callOp('matmul', a, 'not a tensor'), /argument 'other' must be a Tensor/);
  assert.throws(() => torch.callOp('nonexistent_op', a), /libtorch has no operator aten::nonexistent_op/);
  // The process survives and keeps computing correctly.
  assert.deepEqual(a.matmul(torch.ones([3, 1])).toNumbers(), [3, 3]);
});

test('a disposed tensor cannot be used and says so', () => {
  const a = torch.ones([2]);
  a.dispose();
  assert.equal(a.isDisposed, true);
  assert.throws(() => a.add(1), /used after dispose\(\)/);
  assert.throws(() => a.toArray(), /used after dispose\(\)/);
  a.dispose();
});

test('scope frees what it created except the returned and kept tensors', () => {
  const before = torch.liveTensors();
  let kept: torch.Tensor | undefined;
  const result = torch.scope(() => {
    const a = torch.ones([3]);
    const b = a.add(1);
    kept = a.mul(5).keep();
    return { sum: b.sum(), list: [b] };
  });
  assert.equal(torch.liveTensors(), before + 3, 'sum, b and the kept tensor remain');
  assert.equal(result.sum.item(), 6);
  assert.deepEqual(kept!.toNumbers(), [5, 5, 5]);
  result.sum.dispose();
  result.list[0]!.dispose();
  kept!.dispose();
  assert.equal(torch.liveTensors(), before);
  assert.throws(
    () =>
      torch.scope(() => {
        torch.ones([1]);
        throw new Error('inner');
      }),
    /inner/,
  );
  assert.equal(torch.liveTensors(), before, 'a throwing scope frees its tensors');
  const nested = torch.scope(() => torch.scope(() => torch.ones([2])));
  assert.equal(torch.liveTensors(), before + 1, 'a returned tensor moves to the outer scope and out');
  nested.dispose();
});
