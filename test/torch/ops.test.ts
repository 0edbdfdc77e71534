// Forward values of every op against hand-computed results.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { assertClose, values } from './helpers.js';

const { F } = torch;
const m = () =>
  torch.tensor([
    [1, -2, 3],
    [4, 5, -6],
  ]); // [2, 3]

test('creation and copy-out keep dtype, shape and values', () => {
  assert.deepEqual(values(torch.tensor([1.5, 2.5])), [1.5, 2.5]);
  assert.equal(torch.tensor([1, 2]).dtype, 'float32');
  assert.equal(torch.tensor([true, false]).dtype, 'bool');
  assert.equal(torch.tensor([1n, 2n]).dtype, 'int64');
  assert.equal(torch.tensor(new Float64Array([1, 2])).dtype, 'float64');
  assert.deepEqual(torch.tensor(new BigInt64Array([3n, -4n])).toArray(), new BigInt64Array([3n, -4n]));
  assert.deepEqual(torch.tensor(new Float32Array(6), { shape: [2, 3] }).shape, [2, 3]);
  assert.deepEqual(
    torch
      .tensor(
        [
          [1, 2],
          [3, 4],
        ],
        { dtype: 'int64' },
      )
      .toArray(),
    new BigInt64Array([1n, 2n, 3n, 4n]),
  );
  assert.deepEqual(values(torch.zeros([2], { dtype: 'float64' })), [0, 0]);
  assert.equal(torch.ones([2], { dtype: 'float64' }).dtype, 'float64');
  assert.deepEqual(values(torch.full([3], 7)), [7, 7, 7]);
  assert.deepEqual(values(torch.arange(1, 7, 2)), [1, 3, 5]);
  assert.deepEqual(values(torch.zerosLike(m())), [0, 0, 0, 0, 0, 0]);
  assert.deepEqual(values(torch.onesLike(m())), [1, 1, 1, 1, 1, 1]);
  assert.throws(() => torch.tensor([[1, 2], [3]]), /ragged/);
  assert.throws(
    () => torch.tensor(new Float32Array(5), { shape: [2, 3] }),
    /buffer holds 20 bytes but shape and dtype need 24/,
  );
});

test('dtype conversions', () => {
  const x = torch.tensor([1.7, -1.7]);
  assert.deepEqual(x.long().toArray(), new BigInt64Array([1n, -1n]));
  assert.equal(x.double().dtype, 'float64');
  assert.deepEqual(values(torch.tensor([0, 2]).bool()), [0, 1]);
  assert.equal(torch.tensor([1n]).float().dtype, 'float32');
});

test('shape ops', () => {
  const x = m();
  assert.deepEqual(x.view(3, 2).shape, [3, 2]);
  assert.deepEqual(x.view([6]).shape, [6]);
  assert.deepEqual(values(x.reshape(3, 2)), [1, -2, 3, 4, 5, -6]);
  assert.deepEqual(values(x.permute(1, 0)), [1, 4, -2, 5, 3, -6]);
  assert.deepEqual(values(x.transpose(0, 1).contiguous()), [1, 4, -2, 5, 3, -6]);
  assert.deepEqual(values(torch.cat([x, x], 0)), [1, -2, 3, 4, 5, -6, 1, -2, 3, 4, 5, -6]);
  assert.deepEqual(torch.cat([x, x], 1).shape, [2, 6]);
  assert.deepEqual(torch.stack([x, x], 1).shape, [2, 2, 3]);
  assert.deepEqual(values(x.narrow(1, 1, 2)), [-2, 3, 5, -6]);
  assert.deepEqual(values(x.slice(1, 0, null, 2)), [1, 3, 4, -6]);
  assert.deepEqual(values(x.slice(1, -1)), [3, -6]);
  assert.deepEqual(values(x.select(0, 1)), [4, 5, -6]);
  assert.deepEqual(values(x.indexSelect(1, torch.tensor([2, 0], { dtype: 'int64' }))), [3, 1, -6, 4]);
  assert.deepEqual(values(x.gather(1, torch.tensor([[2], [1]], { dtype: 'int64' }))), [3, 5]);
  assert.deepEqual(values(torch.tensor([1, 2]).unsqueeze(1).expand(2, 3)), [1, 1, 1, 2, 2, 2]);
  assert.deepEqual(torch.zeros([1, 3, 1]).squeeze().shape, [3]);
  assert.deepEqual(torch.zeros([1, 3, 1]).squeeze(0).shape, [3, 1]);
  assert.deepEqual(torch.zeros([3]).unsqueeze(0).shape, [1, 3]);
  assert.deepEqual(values(x.maskedFill(x.lt(0), 0)), [1, 0, 3, 4, 5, 0]);
  assert.deepEqual(values(torch.where(x.gt(0), x, torch.zerosLike(x))), [1, 0, 3, 4, 5, 0]);
  assert.deepEqual(values(torch.where(x.gt(0), 1, -1)), [1, -1, 1, 1, 1, -1]);
  assert.deepEqual(values(x.flatten()), [1, -2, 3, 4, 5, -6]);
  assert.deepEqual(
    x.chunk(3, 1).map((t) => t.shape),
    [
      [2, 1],
      [2, 1],
      [2, 1],
    ],
  );
  assert.deepEqual(values(x.index([torch.tensor([1, 0], { dtype: 'int64' })])), [4, 5, -6, 1, -2, 3]);
  assert.deepEqual(x.repeat(2, 1).shape, [4, 3]);
  assert.equal(x.size(-1), 3);
  assert.equal(x.numel(), 6);
});

test('elementwise math', () => {
  const x = m();
  assert.deepEqual(values(x.add(x)), [2, -4, 6, 8, 10, -12]);
  assert.deepEqual(values(x.add(1)), [2, -1, 4, 5, 6, -5]);
  assert.deepEqual(values(x.add(x, 2)), [3, -6, 9, 12, 15, -18]);
  assert.deepEqual(values(x.sub(1)), [0, -3, 2, 3, 4, -7]);
  assert.deepEqual(values(x.mul(x)), [1, 4, 9, 16, 25, 36]);
  assert.deepEqual(values(x.mul(-1)), [-1, 2, -3, -4, -5, 6]);
  assertClose(values(x.div(2)), [0.5, -1, 1.5, 2, 2.5, -3]);
  assertClose(values(x.div(x)), [1, 1, 1, 1, 1, 1]);
  assert.deepEqual(values(x.abs()), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(values(torch.tensor([1.5, -1.5]).floor()), [1, -2]);
  assert.deepEqual(values(x.remainder(4)), [1, 2, 3, 0, 1, 2]);
  assert.deepEqual(values(x.neg()), [-1, 2, -3, -4, -5, 6]);
  assert.deepEqual(values(x.pow(2)), [1, 4, 9, 16, 25, 36]);
  assert.deepEqual(values(torch.tensor([2, 3]).pow(torch.tensor([3, 2]))), [8, 9]);
  assertClose(values(torch.tensor([0, 1]).exp()), [1, Math.E]);
  assertClose(values(torch.tensor([1, Math.E]).log()), [0, 1]);
  assertClose(values(torch.tensor([4, 9]).sqrt()), [2, 3]);
  assertClose(values(torch.tensor([4]).rsqrt()), [0.5]);
  assertClose(values(torch.tensor([0, 0.5, -1]).erf()), [0, 0.5204998778130465, -0.8427007929497149]);
  assertClose(values(torch.tensor([0]).tanh()), [0]);
  assertClose(values(torch.tensor([0]).sigmoid()), [0.5]);
  assert.deepEqual(values(x.clamp(-1, 4)), [1, -1, 3, 4, 4, -1]);
  assert.deepEqual(values(x.clamp(0)), [1, 0, 3, 4, 5, 0]);
  assert.deepEqual(values(x.maximum(torch.zerosLike(x))), [1, 0, 3, 4, 5, 0]);
  assert.deepEqual(values(x.minimum(torch.zerosLike(x))), [0, -2, 0, 0, 0, -6]);
});

test('matrix products', () => {
  const a = torch.tensor([
    [1, 2],
    [3, 4],
  ]);
  const b = torch.tensor([
    [5, 6],
    [7, 8],
  ]);
  assert.deepEqual(values(a.matmul(b)), [19, 22, 43, 50]);
  assert.deepEqual(values(torch.stack([a, b]).bmm(torch.stack([b, a]))), [19, 22, 43, 50, 23, 34, 31, 46]);
  // linear: x W^T + b
  assert.deepEqual(values(F.linear(a, b, torch.tensor([1, -1]))), [18, 22, 40, 52]);
  assert.deepEqual(values(F.linear(a, b)), [17, 23, 39, 53]);
});

test('reductions, max, argmax, topk, sort', () => {
  const x = m();
  assert.equal(x.sum().item(), 5);
  assert.deepEqual(values(x.sum(1)), [2, 3]);
  assert.deepEqual(x.sum(1, true).shape, [2, 1]);
  assert.deepEqual(values(x.sum([0, 1])), [5]);
  assertClose([x.mean().item()], [5 / 6]);
  assertClose(values(x.mean(0)), [2.5, 1.5, -1.5]);
  assert.equal(x.max().item(), 5);
  assert.equal(x.min().item(), -6);
  const { values: maxValues, indices } = x.max(1);
  assert.deepEqual(values(maxValues), [3, 5]);
  assert.deepEqual(values(indices), [2, 1]);
  assert.deepEqual(values(x.min(1).indices), [1, 2]);
  assert.deepEqual(values(x.argmax(1)), [2, 1]);
  assert.equal(x.argmax().item(), 4);
  const top = x.topk(2, 1);
  assert.deepEqual(values(top.values), [3, 1, 5, 4]);
  assert.deepEqual(values(top.indices), [2, 0, 1, 0]);
  assert.deepEqual(values(x.topk(1, 1, false).values), [-2, -6]);
  const sorted = x.sort(1, true);
  assert.deepEqual(values(sorted.values), [3, 1, -2, 5, 4, -6]);
  assert.deepEqual(values(sorted.indices), [2, 0, 1, 1, 0, 2]);
  assert.equal(x.gt(-10).all().item(), 1);
  assert.equal(x.gt(10).any().item(), 0);
});

test('comparisons and logic', () => {
  const x = m();
  assert.deepEqual(values(x.eq(3)), [0, 0, 1, 0, 0, 0]);
  assert.deepEqual(values(x.ne(3)), [1, 1, 0, 1, 1, 1]);
  assert.deepEqual(values(x.lt(0)), [0, 1, 0, 0, 0, 1]);
  assert.deepEqual(values(x.le(1)), [1, 1, 0, 0, 0, 1]);
  assert.deepEqual(values(x.gt(3)), [0, 0, 0, 1, 1, 0]);
  assert.deepEqual(values(x.ge(3)), [0, 0, 1, 1, 1, 0]);
  assert.deepEqual(values(x.eq(x)), [1, 1, 1, 1, 1, 1]);
  assert.equal(x.lt(0).dtype, 'bool');
  assert.deepEqual(values(x.lt(0).logicalNot()), [1, 0, 1, 1, 1, 0]);
  assert.deepEqual(values(x.lt(0).logicalAnd(x.lt(-3))), [0, 0, 0, 0, 0, 1]);
  assert.deepEqual(values(x.gt(4).logicalOr(x.lt(-3))), [0, 0, 0, 0, 1, 1]);
});

test('nn functions', () => {
  const logits = torch.tensor([[1, 2, 3]]);
  const expected = [1, 2, 3].map((v) => Math.exp(v) / (Math.exp(1) + Math.exp(2) + Math.exp(3)));
  assertClose(values(F.softmax(logits, -1)), expected);
  assertClose(values(F.logSoftmax(logits, 1)), expected.map(Math.log));
  // layer_norm of [1, 2, 3]: mean 2, biased variance 2/3
  const normed = [-1, 0, 1].map((v) => v / Math.sqrt(2 / 3 + 1e-12));
  assertClose(values(F.layerNorm(logits, [3], null, null, 1e-12)), normed);
  assertClose(
    values(F.layerNorm(logits, [3], torch.tensor([2, 2, 2]), torch.tensor([1, 1, 1]), 1e-12)),
    normed.map((v) => 2 * v + 1),
  );
  // exact GeLU: x * Phi(x)
  const gelu = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
  assertClose(values(F.gelu(torch.tensor([-1, 0.5, 2]))), [gelu(-1), gelu(0.5), gelu(2)], 1e-6);
  assertClose(values(F.gelu(torch.tensor([1]), 'tanh')), [0.8411920071], 1e-6);
  assert.deepEqual(values(F.relu(torch.tensor([-1, 2]))), [0, 2]);
  const weight = torch.tensor([
    [0, 0],
    [1, 2],
    [3, 4],
  ]);
  assert.deepEqual(values(F.embedding(weight, torch.tensor([[2, 0, 1]], { dtype: 'int64' }), 0)), [3, 4, 0, 0, 1, 2]);
});

test('dropout honours the training flag and scales kept values', () => {
  const x = torch.ones([1000]);
  assert.deepEqual(values(F.dropout(x, 0.5, false)), new Array<number>(1000).fill(1));
  torch.manualSeed(0);
  const dropped = values(F.dropout(x, 0.5, true));
  assert.ok(
    dropped.every((v) => v === 0 || v === 2),
    'kept values are scaled by 1/(1-p)',
  );
  const zeros = dropped.filter((v) => v === 0).length;
  assert.ok(zeros > 400 && zeros < 600, `about half dropped, got ${zeros}`);
  assert.throws(() => F.dropout(x, 1.5, true), /probability/);
});

test('losses', () => {
  const logits = torch.tensor([
    [0.5, -1],
    [2, 0],
  ]);
  const target = torch.tensor([
    [1, 0],
    [0, 1],
  ]);
  const bce = (x: number, y: number) => Math.max(x, 0) - x * y + Math.log(1 + Math.exp(-Math.abs(x)));
  const terms = [bce(0.5, 1), bce(-1, 0), bce(2, 0), bce(0, 1)];
  assertClose([F.binaryCrossEntropyWithLogits(logits, target).item()], [terms.reduce((a, b) => a + b) / 4]);
  assertClose(values(F.binaryCrossEntropyWithLogits(logits, target, { reduction: 'none' })), terms);
  assertClose(
    [F.binaryCrossEntropyWithLogits(logits, target, { reduction: 'sum' }).item()],
    [terms.reduce((a, b) => a + b)],
  );

  const scores = torch.tensor([
    [1, 2, 3],
    [1, 1, 1],
    [0, 5, 0],
  ]);
  const labels = torch.tensor([2, -1, 1], { dtype: 'int64' });
  const lse = (row: number[]) => Math.log(row.reduce((sum, v) => sum + Math.exp(v), 0));
  const row0 = lse([1, 2, 3]) - 3;
  const row2 = lse([0, 5, 0]) - 5;
  assertClose([F.crossEntropy(scores, labels, { ignoreIndex: -1 }).item()], [(row0 + row2) / 2]);
  assertClose(values(F.crossEntropy(scores, labels, { ignoreIndex: -1, reduction: 'none' })), [row0, 0, row2]);

  const p = [0.2, 0.8];
  const q = [0.5, 0.5];
  const kl = p[0]! * Math.log(p[0]! / q[0]!) + p[1]! * Math.log(p[1]! / q[1]!);
  const logQ = torch.tensor([q.map(Math.log)]);
  assertClose([F.klDiv(logQ, torch.tensor([p]), { reduction: 'sum' }).item()], [kl]);
  assertClose([F.klDiv(logQ, torch.tensor([p]), { reduction: 'batchmean' }).item()], [kl]);
  assertClose([F.klDiv(logQ, torch.tensor([p]), { reduction: 'mean' }).item()], [kl / 2]);
  assertClose([F.klDiv(logQ, torch.tensor([p.map(Math.log)]), { reduction: 'sum', logTarget: true }).item()], [kl]);

  assertClose([F.mseLoss(torch.tensor([1, 2]), torch.tensor([0, 4])).item()], [2.5]);
  assertClose([F.mseLoss(torch.tensor([1, 2]), torch.tensor([0, 4]), { reduction: 'sum' }).item()], [5]);
});

test('in-place updates used by optimisers', () => {
  const x = torch.tensor([1, 2]);
  x.add_(torch.tensor([1, 1]), 0.5).mul_(2);
  assert.deepEqual(values(x), [3, 5]);
  x.sub_(1).div_(2);
  assert.deepEqual(values(x), [1, 2]);
  x.addcmul_(torch.tensor([2, 2]), torch.tensor([3, 3]), 0.5);
  assert.deepEqual(values(x), [4, 5]);
  x.addcdiv_(torch.tensor([4, 4]), torch.tensor([2, 4]), -1);
  assert.deepEqual(values(x), [2, 4]);
  x.sqrt_();
  assertClose(values(x), [Math.SQRT2, 2]);
  x.copy_(torch.tensor([9, -9]));
  assert.deepEqual(values(x.clamp_(-1, 1)), [1, -1]);
  x.lerp_(torch.tensor([3, 3]), 0.5);
  assert.deepEqual(values(x), [2, 1]);
  x.maskedFill_(torch.tensor([true, false]), 7);
  assert.deepEqual(values(x), [7, 1]);
  x.fill_(4);
  assert.deepEqual(values(x), [4, 4]);
  x.zero_();
  assert.deepEqual(values(x), [0, 0]);
  torch.manualSeed(1);
  const u = torch.zeros([100]).uniform_(2, 3);
  assert.ok(values(u).every((v) => v >= 2 && v < 3));
});

// Abramowitz-Stegun is not exact enough; use the series, fine for |x| < 3.
function erf(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 60; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
