// The one-pass AdamW kernel (native/src/optim.cc) against the eight ATen operators
// of the reference's step, bit for bit: sizes around the kernel's 8-wide vectors and
// libtorch's parallel chunks, at one and two threads, with and without weight decay,
// bias correction, a parameter without a gradient, and a non-contiguous fallback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { Parameter, type Tensor } from '../../src/torch/index.js';
import { AdamW } from '../../src/train/adamw.js';

const SIZES = [1, 7, 8, 17, 1000, 32768 + 5, 3 * 65536 + 13, 1 << 20];

function bitsOf(tensor: Tensor): Uint32Array {
  const values = tensor.contiguous().toArray() as Float32Array;
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

function firstDifference(a: Tensor, b: Tensor): number {
  const x = bitsOf(a);
  const y = bitsOf(b);
  assert.equal(x.length, y.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

function run(fused: boolean, correctBias: boolean, threads: number) {
  torch.setNumThreads(threads);
  torch.manualSeed(7);
  const params = SIZES.map((size) => new Parameter(torch.randn([size])));
  const groups = params.map((parameter, index) => ({
    name: `p${index}`,
    parameter,
    lr: index % 2 === 0 ? 1e-4 : 2e-3,
    weightDecay: index % 3 === 0 ? 0 : 0.01,
  }));
  const optimizer = new AdamW(groups, { fused, correctBias });
  for (let step = 0; step < 4; step++) {
    params.forEach((parameter, index) => {
      // parameter 2 gets no gradient on step 1; gradients grow so the moments move.
      parameter.grad = index === 2 && step === 1 ? null : torch.randn([SIZES[index]!]).mul(step + 1);
    });
    optimizer.step();
  }
  return { params, optimizer };
}

for (const threads of [1, 2]) {
  for (const correctBias of [false, true]) {
    test(`AdamW: the one-pass kernel equals the ATen sequence bit for bit (${threads} thread(s), correct_bias ${correctBias})`, () => {
      const previous = torch.getNumThreads();
      try {
        const fused = run(true, correctBias, threads);
        const aten = run(false, correctBias, threads);
        fused.params.forEach((parameter, index) => {
          const name = `p${index} (${SIZES[index]} elements)`;
          const other = aten.params[index]!;
          assert.equal(firstDifference(parameter, other), -1, `${name}: parameter`);
          const a = fused.optimizer.stateOf(parameter)!;
          const b = aten.optimizer.stateOf(other)!;
          assert.equal(a.step, b.step, `${name}: step count`);
          assert.equal(firstDifference(a.expAvg, b.expAvg), -1, `${name}: exp_avg`);
          assert.equal(firstDifference(a.expAvgSq, b.expAvgSq), -1, `${name}: exp_avg_sq`);
        });
        assert.equal(fused.optimizer.stateOf(fused.params[2]!)!.step, 3, 'the step without a gradient is skipped');
        for (const side of [fused, aten]) {
          side.optimizer.dispose();
          side.params.forEach((parameter) => parameter.dispose());
        }
      } finally {
        torch.setNumThreads(previous);
      }
    });
  }
}

test('AdamW: a non-contiguous gradient takes the ATen sequence and gives its values', () => {
  const stepped = (fused: boolean) => {
    torch.manualSeed(3);
    const parameter = new Parameter(torch.randn([64, 48]));
    const optimizer = new AdamW([{ name: 'w', parameter, lr: 1e-3, weightDecay: 0.01 }], { fused });
    parameter.grad = torch.randn([48, 64]).transpose(0, 1); // strided: not contiguous
    optimizer.step();
    optimizer.dispose();
    return parameter;
  };
  assert.equal(firstDifference(stepped(true), stepped(false)), -1);
});

test('zeroGrad: zeros every gradient in place, or drops them with setToNone', () => {
  const module = new torch.nn.Linear(3, 2);
  const [weight, bias] = module.parameters();
  weight!.grad = torch.ones([2, 3]);
  bias!.grad = torch.ones([2]);
  module.zeroGrad();
  assert.deepEqual(Array.from(weight!.grad!.toArray() as Float32Array), [0, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(bias!.grad!.toArray() as Float32Array), [0, 0]);
  module.zeroGrad(true);
  assert.equal(weight!.grad, null);
  assert.equal(bias!.grad, null);
  module.dispose();
});
