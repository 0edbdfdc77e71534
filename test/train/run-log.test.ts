// The NaN/Inf guard of both trainers (run-log.ts) on gradients made by autograd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { TrainingDivergedError, checkFiniteGradients } from '../../src/train/run-log.js';

class Two extends torch.Module {
  readonly first = new torch.Parameter(torch.tensor([1, 4]));
  readonly second = new torch.Parameter(torch.tensor([1, 0, 9]));
}

function diverged(model: torch.Module): TrainingDivergedError {
  try {
    checkFiniteGradients(model, 'iteration 3 (epoch 0, step 3), TASK1 VQA');
  } catch (error) {
    assert.ok(error instanceof TrainingDivergedError, String(error));
    return error;
  }
  assert.fail('checkFiniteGradients did not throw');
}

test('finite gradients pass; an Inf gradient element is named with its parameter', () => {
  const model = new Two();
  torch.scope(() => model.first.mul(model.first).sum().add(model.second.sum()).backward());
  checkFiniteGradients(model, 'nowhere'); // 2x and ones: finite
  model.zeroGrad();
  // sqrt(0) has the derivative 1 / (2 sqrt(0)) = Inf while the loss 1 + 0 + 3 is finite.
  torch.scope(() => model.first.sum().add(model.second.sqrt().sum()).backward());
  assert.equal(
    diverged(model).message,
    'iteration 3 (epoch 0, step 3), TASK1 VQA: the gradient of second holds 1 NaN or infinite value; ' +
      'stopping without saving (the last checkpoint is kept)',
  );
});

test('a finite gradient whose squares overflow float32 is refused, naming its largest value', () => {
  const model = new Two();
  torch.scope(() => model.first.mul(1e20).sum().add(model.second.sum()).backward());
  assert.match(
    diverged(model).message,
    /: the gradient of first is too large for float32 \(largest \|value\| 1\.00e\+20; its squares overflow/,
  );
});
