// Every differentiable op's gradient against central finite differences in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { float64Input, gradcheck } from './helpers.js';

const { F } = torch;
const x23 = () => float64Input([2, 3], 1);
const y23 = () => float64Input([2, 3], 4, 0.5, 2.5);
const positive = () => float64Input([2, 3], 2, 0.5, 3);
const long = (data: number[] | number[][]) => torch.tensor(data, { dtype: 'int64' });

const cases: [string, (inputs: torch.Tensor[]) => torch.Tensor, () => torch.Tensor[]][] = [
  ['add', ([a, b]) => a!.add(b!, 2), () => [x23(), y23()]],
  ['add scalar', ([a]) => a!.add(3), () => [x23()]],
  ['sub', ([a, b]) => a!.sub(b!), () => [x23(), y23()]],
  ['mul', ([a, b]) => a!.mul(b!), () => [x23(), y23()]],
  ['div', ([a, b]) => a!.div(b!), () => [x23(), y23()]],
  ['neg', ([a]) => a!.neg(), () => [x23()]],
  ['matmul', ([a, b]) => a!.matmul(b!), () => [x23(), float64Input([3, 2], 5)]],
  ['matmul batched', ([a, b]) => a!.matmul(b!), () => [float64Input([2, 2, 3], 1), float64Input([3, 2], 5)]],
  ['bmm', ([a, b]) => a!.bmm(b!), () => [float64Input([2, 2, 3], 1), float64Input([2, 3, 2], 2)]],
  ['linear', ([a, w, b]) => F.linear(a!, w!, b!), () => [x23(), float64Input([4, 3], 2), float64Input([4], 3)]],
  ['sum', ([a]) => a!.sum(), () => [x23()]],
  ['sum dim', ([a]) => a!.sum(1, true), () => [x23()]],
  ['mean', ([a]) => a!.mean(), () => [x23()]],
  ['mean dim', ([a]) => a!.mean(0), () => [x23()]],
  ['max dim', ([a]) => a!.max(1).values, () => [x23()]],
  ['max', ([a]) => a!.max(), () => [x23()]],
  ['topk', ([a]) => a!.topk(2, 1).values, () => [x23()]],
  ['sort', ([a]) => a!.sort(1, true).values, () => [x23()]],
  ['exp', ([a]) => a!.exp(), () => [x23()]],
  ['log', ([a]) => a!.log(), () => [positive()]],
  ['sqrt', ([a]) => a!.sqrt(), () => [positive()]],
  ['rsqrt', ([a]) => a!.rsqrt(), () => [positive()]],
  ['pow scalar', ([a]) => a!.pow(3), () => [x23()]],
  ['pow tensor', ([a, b]) => a!.pow(b!), () => [positive(), x23()]],
  ['erf', ([a]) => a!.erf(), () => [x23()]],
  ['abs', ([a]) => a!.abs(), () => [x23()]],
  ['tanh', ([a]) => a!.tanh(), () => [x23()]],
  ['sigmoid', ([a]) => a!.sigmoid(), () => [x23()]],
  ['clamp', ([a]) => a!.clamp(-0.9, 0.9), () => [x23()]],
  ['maximum', ([a, b]) => a!.maximum(b!), () => [x23(), float64Input([2, 3], 2)]],
  ['view', ([a]) => a!.view(3, 2).mul(a!.view(3, 2)), () => [x23()]],
  ['reshape', ([a]) => a!.reshape(6).exp(), () => [x23()]],
  ['permute', ([a]) => a!.permute(1, 0).matmul(float64Input([2, 2], 1)), () => [x23()]],
  ['transpose contiguous', ([a]) => a!.transpose(0, 1).contiguous().exp(), () => [x23()]],
  ['cat', ([a, b]) => torch.cat([a!, b!], 1).exp(), () => [x23(), y23()]],
  ['stack', ([a, b]) => torch.stack([a!, b!], 0).exp(), () => [x23(), y23()]],
  ['narrow', ([a]) => a!.narrow(1, 1, 2).exp(), () => [x23()]],
  ['slice', ([a]) => a!.slice(1, 0, null, 2).exp(), () => [x23()]],
  ['select', ([a]) => a!.select(0, 1).exp(), () => [x23()]],
  ['index_select', ([a]) => a!.indexSelect(1, long([2, 0, 2])), () => [x23()]],
  [
    'gather',
    ([a]) =>
      a!.gather(
        1,
        long([
          [2, 2],
          [0, 1],
        ]),
      ),
    () => [x23()],
  ],
  ['index', ([a]) => a!.index([long([1, 1, 0])]), () => [x23()]],
  ['expand', ([a]) => a!.unsqueeze(0).expand(4, 2, 3).exp(), () => [x23()]],
  ['squeeze', ([a]) => a!.view(1, 2, 3).squeeze(0).exp(), () => [x23()]],
  [
    'masked_fill',
    ([a]) =>
      a!.maskedFill(
        torch.tensor([
          [true, false, false],
          [false, true, false],
        ]),
        -10000,
      ),
    () => [x23()],
  ],
  [
    'where',
    ([a, b]) =>
      torch.where(
        torch.tensor([
          [true, false, true],
          [false, true, false],
        ]),
        a!,
        b!,
      ),
    () => [x23(), y23()],
  ],
  ['softmax', ([a]) => F.softmax(a!, -1), () => [x23()]],
  ['log_softmax', ([a]) => F.logSoftmax(a!, 1), () => [x23()]],
  [
    'layer_norm',
    ([a, w, b]) => F.layerNorm(a!, [3], w!, b!, 1e-12),
    () => [x23(), y23().select(0, 0), float64Input([3], 1)],
  ],
  ['gelu', ([a]) => F.gelu(a!), () => [x23()]],
  ['relu', ([a]) => F.relu(a!), () => [x23()]],
  ['dropout (eval)', ([a]) => F.dropout(a!, 0.5, false), () => [x23()]],
  [
    'embedding',
    ([w]) =>
      F.embedding(
        w!,
        long([
          [1, 0, 2],
          [2, 2, 0],
        ]),
      ),
    () => [float64Input([3, 2], 1)],
  ],
  ['bce with logits', ([a, t]) => F.binaryCrossEntropyWithLogits(a!, t!), () => [x23(), float64Input([2, 3], 1, 0, 1)]],
  [
    'bce with logits (weight)',
    ([a]) => F.binaryCrossEntropyWithLogits(a!, float64Input([2, 3], 1, 0, 1), { weight: y23(), reduction: 'sum' }),
    () => [x23()],
  ],
  ['cross_entropy ignore_index', ([a]) => F.crossEntropy(a!, long([2, -1]), { ignoreIndex: -1 }), () => [x23()]],
  ['kl_div', ([a]) => F.klDiv(F.logSoftmax(a!, 1), F.softmax(y23(), 1), { reduction: 'batchmean' }), () => [x23()]],
  ['mse', ([a, b]) => F.mseLoss(a!, b!), () => [x23(), y23()]],
];

for (const [name, f, inputs] of cases) {
  test(`gradient of ${name}`, () => gradcheck(name, f, inputs()));
}

test('gradient of dropout (training) with a fixed mask', () => {
  gradcheck('dropout', ([a]) => F.dropout(a!, 0.3, true), [float64Input([4, 5], 1)], {
    before: () => torch.manualSeed(7),
  });
});

test('embedding with paddingIdx: the padding row gets no gradient, the others one per lookup', () => {
  const weight = float64Input([3, 2], 1).requiresGrad_(true);
  F.embedding(
    weight,
    long([
      [1, 0, 2],
      [2, 2, 0],
    ]),
    0,
  )
    .sum()
    .backward();
  assert.deepEqual(weight.grad!.toNumbers(), [0, 0, 1, 1, 3, 3]);
});
