import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';

const { nn } = torch;

class Block extends torch.Module {
  readonly dense = new nn.Linear(4, 3);
  readonly LayerNorm = new nn.LayerNorm(3, 1e-12);
  readonly dropout = new nn.Dropout(0.1);
  constructor() {
    super();
    this.registerBuffer('position_ids', torch.arange(5).unsqueeze(0));
    this.registerBuffer('scratch', torch.zeros([2]), false);
  }
}

class Net extends torch.Module {
  readonly embeddings = new nn.Embedding(10, 4, 0);
  readonly layer = new torch.ModuleList([new Block(), new Block()]);
  readonly scale = new torch.Parameter(torch.ones([1]));
  readonly head = new nn.Linear(3, 2, { bias: false });
}

test('parameter names are dotted paths in assignment order, PyTorch state_dict order', () => {
  const net = new Net();
  assert.deepEqual(
    net.namedParameters().map(([name]) => name),
    [
      'scale',
      'embeddings.weight',
      'layer.0.dense.weight',
      'layer.0.dense.bias',
      'layer.0.LayerNorm.weight',
      'layer.0.LayerNorm.bias',
      'layer.1.dense.weight',
      'layer.1.dense.bias',
      'layer.1.LayerNorm.weight',
      'layer.1.LayerNorm.bias',
      'head.weight',
    ],
  );
  assert.deepEqual(
    [...net.stateDict().keys()],
    [
      'scale',
      'embeddings.weight',
      // A module's own buffers come before its children's entries, as in PyTorch.
      'layer.0.position_ids',
      'layer.0.dense.weight',
      'layer.0.dense.bias',
      'layer.0.LayerNorm.weight',
      'layer.0.LayerNorm.bias',
      'layer.1.position_ids',
      'layer.1.dense.weight',
      'layer.1.dense.bias',
      'layer.1.LayerNorm.weight',
      'layer.1.LayerNorm.bias',
      'head.weight',
    ],
  );
  assert.deepEqual(
    net.namedBuffers().map(([name]) => name),
    ['layer.0.position_ids', 'layer.0.scratch', 'layer.1.position_ids', 'layer.1.scratch'],
  );
  assert.equal(net.numParameters(), 1 + 40 + 2 * (12 + 3 + 3 + 3) + 6);
  assert.ok(net.parameters().every((p) => p.requiresGrad));
});

test('default initialisation follows PyTorch', () => {
  torch.manualSeed(0);
  const linear = new nn.Linear(16, 8);
  const bound = 1 / 4;
  assert.ok(linear.weight.toNumbers().every((v) => Math.abs(v) <= bound));
  assert.ok(linear.bias!.toNumbers().every((v) => Math.abs(v) <= bound));
  const norm = new nn.LayerNorm(3);
  assert.deepEqual(norm.weight.toNumbers(), [1, 1, 1]);
  assert.deepEqual(norm.bias.toNumbers(), [0, 0, 0]);
  const embedding = new nn.Embedding(5, 3, 2);
  assert.deepEqual(embedding.weight.select(0, 2).toNumbers(), [0, 0, 0]);
  assert.throws(() => new nn.Embedding(5, 3, 5), /paddingIdx 5 outside/);
});

test('train() and eval() reach every module; dropout follows', () => {
  const net = new Net();
  net.eval();
  assert.ok(net.namedModules().every(([, m]) => !m.training));
  const block = net.layer.at(0);
  const x = torch.ones([100]);
  assert.deepEqual(block.dropout.forward(x).toNumbers(), x.toNumbers());
  net.train();
  assert.ok(net.namedModules().every(([, m]) => m.training));
  assert.notDeepEqual(block.dropout.forward(x).toNumbers(), x.toNumbers());
});

test('loadStateDict copies values and round-trips', () => {
  const source = new Net();
  const target = new Net();
  target.loadStateDict(source.stateDict());
  for (const [key, value] of source.stateDict()) {
    assert.deepEqual(target.stateDict().get(key)!.toNumbers(), value.toNumbers(), key);
  }
  assert.ok(target.stateDict().get('scale')!.requiresGrad, 'parameters stay trainable after loading');
});

test('loadStateDict reports missing, unexpected and mismatched keys', () => {
  const net = new Net();
  const state = new Map(net.stateDict());
  state.delete('head.weight');
  state.set('cls.bias', torch.zeros([3]));
  assert.throws(
    () => net.loadStateDict(state),
    (error: unknown) => {
      assert.ok(error instanceof torch.StateDictError);
      assert.deepEqual(error.missingKeys, ['head.weight']);
      assert.deepEqual(error.unexpectedKeys, ['cls.bias']);
      assert.match(error.message, /missing keys \(1\): head\.weight/);
      assert.match(error.message, /unexpected keys \(1\): cls\.bias/);
      return true;
    },
  );
  assert.deepEqual(net.loadStateDict(state, { strict: false }), {
    missingKeys: ['head.weight'],
    unexpectedKeys: ['cls.bias'],
  });

  state.set('layer.1.dense.weight', torch.zeros([3, 5]));
  assert.throws(
    () => net.loadStateDict(state, { strict: false }),
    /size mismatch for layer\.1\.dense\.weight: checkpoint has shape \[3, 5\], model has shape \[3, 4\]/,
  );
});

test('zeroGrad leaves zero tensors by default (as PyTorch 1.x), or drops them', () => {
  const linear = new nn.Linear(2, 1);
  linear
    .forward(torch.ones([1, 2]))
    .sum()
    .backward();
  assert.deepEqual(linear.bias!.grad!.toNumbers(), [1]);
  linear.zeroGrad();
  assert.deepEqual(linear.bias!.grad!.toNumbers(), [0]);
  linear.zeroGrad(true);
  assert.equal(linear.bias!.grad, null);
});

test('parameters survive the scope they were created in', () => {
  const linear = torch.scope(() => new nn.Linear(3, 3));
  assert.equal(linear.weight.isDisposed, false);
  assert.deepEqual(linear.forward(torch.ones([1, 3])).shape, [1, 3]);
  linear.dispose();
  assert.equal(linear.weight.isDisposed, true);
});
