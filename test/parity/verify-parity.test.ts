// The parity suite: this implementation against outputs of the reference PyTorch code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyParity, type WeightVariant } from '../../src/parity/verify-parity.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/parity', import.meta.url));

for (const weights of ['safetensors', 'torch_legacy', 'torch_zip'] as WeightVariant[]) {
  test(`every fixture tensor matches the reference: forward heads, per-layer outputs, NLVR2, pre-training, task losses, gradients, optimiser steps (${weights} weights)`, () => {
    const report = verifyParity(fixtures, { weights });
    const failed = report.rows.filter((row) => !row.ok).map((row) => `${row.name}: ${row.maxAbsDiff} ${row.problem ?? ''}`);
    assert.deepEqual(failed, []);
    assert.deepEqual(report.unchecked, []);
    const names = new Set(report.rows.map((row) => row.name));
    for (const expected of [
      'forward:t1.vil_prediction', 'forward:t13.vision_logit', 'forward:t1.debug.c_layer.1.attn_probs_v2t',
      'forward:nlvr2.vil_binary_prediction', 'pretrain:obj1.masked_img_loss', 'pretrain:obj0.grad.bert.embeddings.word_embeddings.weight',
      'train_step:TASK5.model_in.question', 'train_step:TASK12.grad.vil_binary_prediction.logit_fc.3.bias', 'train_step:TASK9.loss',
      'optimizer:mannul.step3.vil_prediction.logit_fc.2.weight', 'optimizer:warmup_linear.final.exp_avg_sq.vision_logit.weight',
      'scalars:optimizer.warmup_linear.step0.lr_used.vil',
    ]) {
      assert.ok(names.has(expected), `${expected} was compared`);
    }
    assert.equal(report.rows.length, 336);
  });
}

test('a perturbed reference value is reported as a mismatch, and unknown tensors as unchecked', () => {
  const dir = mkdtempSync(join(tmpdir(), 'parity-'));
  try {
    cpSync(fixtures, dir, { recursive: true });
    const forward = readSafetensors(join(dir, 'forward.safetensors')).tensors;
    const target = forward.get('t1.vil_logit')!;
    const copy = new Uint8Array(target.data);
    new DataView(copy.buffer).setFloat32(0, new DataView(copy.buffer).getFloat32(0, true) + 0.01, true);
    const edited = new Map(forward);
    edited.set('t1.vil_logit', { ...target, data: copy });
    edited.set('t1.something_new', { ...target });
    writeSafetensors(join(dir, 'forward.safetensors'), edited);
    const report = verifyParity(dir, { skip: new Set(['train_step', 'optimizer', 'pretrain']) });
    assert.deepEqual(report.rows.filter((row) => !row.ok).map((row) => row.name), ['forward:t1.vil_logit']);
    assert.deepEqual(report.unchecked.map((item) => item.name), ['forward:t1.something_new']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the fused kernels (the library default) also match, except where Adam amplifies float32 rounding', () => {
  const report = verifyParity(fixtures, { numerics: 'fused', skip: new Set(['optimizer']) });
  assert.deepEqual(report.rows.filter((row) => !row.ok).map((row) => row.name), []);
  assert.deepEqual(report.unchecked, []);
  assert.equal(report.rows.length, 220, 'every row but the 116 of the optimiser family');
});

const variant = fileURLToPath(new URL('../../../test/fixtures/parity-variant', import.meta.url));

for (const numerics of ['reference', 'fused'] as const) {
  test(`a folder generated from another config (layer counts, repeated biattention ids, fusion sum, batch 4) matches, ${numerics} numerics`, () => {
    for (const weights of ['safetensors', 'torch_legacy', 'torch_zip'] as WeightVariant[]) {
      const report = verifyParity(variant, { weights, numerics });
      assert.deepEqual(report.rows.filter((row) => !row.ok).map((row) => row.name), [], weights);
      assert.deepEqual(report.unchecked, []);
      assert.equal(report.rows.length, 28);
      assert.ok(report.rows.some((row) => row.name === 'forward:t9.vil_binary_prediction'));
    }
  });
}
