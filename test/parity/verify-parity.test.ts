// The parity suite: this implementation against outputs of the reference PyTorch code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAMILIES, fixtureBatch, verifyParity, type WeightVariant } from '../../src/parity/verify-parity.js';
import { loadTaskRegistry } from '../../src/data/task-registry.js';
import type { TaskProcess, TaskType } from '../../src/data/task-registry.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/parity', import.meta.url));

for (const weights of ['safetensors', 'torch_legacy', 'torch_zip'] as WeightVariant[]) {
  test(`every fixture tensor matches the reference: forward heads, per-layer outputs, NLVR2, pre-training, task losses, gradients, optimiser steps (${weights} weights)`, () => {
    const report = verifyParity(fixtures, { weights });
    const failed = report.rows
      .filter((row) => !row.ok)
      .map((row) => `${row.name}: ${row.maxAbsDiff} ${row.problem ?? ''}`);
    assert.deepEqual(failed, []);
    assert.deepEqual(report.unchecked, []);
    const names = new Set(report.rows.map((row) => row.name));
    for (const expected of [
      'forward:t1.vil_prediction',
      'forward:t13.vision_logit',
      'forward:t1.debug.c_layer.1.attn_probs_v2t',
      'forward:nlvr2.vil_binary_prediction',
      'pretrain:obj1.masked_img_loss',
      'pretrain:obj0.grad.bert.embeddings.word_embeddings.weight',
      'train_step:TASK5.model_in.question',
      'train_step:TASK12.grad.vil_binary_prediction.logit_fc.3.bias',
      'train_step:TASK9.loss',
      'optimizer:mannul.step3.vil_prediction.logit_fc.2.weight',
      'optimizer:warmup_linear.final.exp_avg_sq.vision_logit.weight',
      'scalars:optimizer.warmup_linear.step0.lr_used.vil',
      'pretrain_visual_targets:scores.prediction_scores_v',
      'pretrain_visual_targets:vt1.masked_img_loss',
      'pretrain_visual_targets:vt2.loss',
      'pretrain_visual_targets:vt2.grad.cls.imagePredictions.decoder.bias',
    ]) {
      assert.ok(names.has(expected), `${expected} was compared`);
    }
    assert.equal(
      report.rows.filter((row) => row.name.startsWith('pretrain_visual_targets:')).length,
      21,
      '3 scores, then per visual target 4 losses and 5 gradients',
    );
    assert.equal(report.rows.length, 357);
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
    assert.deepEqual(
      report.rows.filter((row) => !row.ok).map((row) => row.name),
      ['forward:t1.vil_logit'],
    );
    assert.deepEqual(
      report.unchecked.map((item) => item.name),
      ['forward:t1.something_new'],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the fused kernels (the library default) also match, except where Adam amplifies float32 rounding', () => {
  const report = verifyParity(fixtures, { numerics: 'fused', skip: new Set(['optimizer']) });
  assert.deepEqual(
    report.rows.filter((row) => !row.ok).map((row) => row.name),
    [],
  );
  assert.deepEqual(report.unchecked, []);
  assert.equal(report.rows.length, 241, 'every row but the 116 of the optimiser family');
});

const PRETRAIN_ONLY = { skip: new Set(['forward', 'debug', 'nlvr2', 'train_step', 'optimizer'] as const) };

/** A reference scalar of a safetensors file, moved by `delta` (the file keeps its metadata). */
function perturbScalar(file: string, name: string, delta: number): void {
  const { tensors, metadata } = readSafetensors(file);
  const target = tensors.get(name)!;
  const copy = new Uint8Array(target.data);
  const view = new DataView(copy.buffer);
  view.setFloat32(0, view.getFloat32(0, true) + delta, true);
  writeSafetensors(file, new Map(tensors).set(name, { ...target, data: copy }), metadata);
}

test('visual targets 1 and 2: a reference loss moved by 1e-3 fails its row, and only that row', () => {
  const dir = mkdtempSync(join(tmpdir(), 'parity-vt-'));
  try {
    cpSync(fixtures, dir, { recursive: true });
    perturbScalar(join(dir, 'pretrain_visual_targets.safetensors'), 'vt2.loss', 1e-3);
    const report = verifyParity(dir, PRETRAIN_ONLY);
    assert.deepEqual(
      report.rows.filter((row) => !row.ok).map((row) => row.name),
      ['pretrain_visual_targets:vt2.loss'],
    );
    assert.deepEqual(report.unchecked, []);
    assert.equal(report.rows.filter((row) => row.name.startsWith('pretrain_visual_targets:')).length, 21);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('visual targets: without nce_seed the losses are unchecked, naming it; without the file, or skipping pretrain, the rows are absent', () => {
  const dir = mkdtempSync(join(tmpdir(), 'parity-vt-'));
  try {
    cpSync(fixtures, dir, { recursive: true });
    const file = join(dir, 'pretrain_visual_targets.safetensors');
    const { tensors, metadata } = readSafetensors(file);
    const { nce_seed: _, ...unseeded } = metadata;
    writeSafetensors(file, tensors, unseeded);
    const noSeed = verifyParity(dir, PRETRAIN_ONLY);
    assert.deepEqual(
      noSeed.rows.filter((row) => !row.ok).map((row) => row.name),
      [],
    );
    assert.deepEqual(
      noSeed.rows.filter((row) => row.name.startsWith('pretrain_visual_targets:')).map((row) => row.name),
      [
        'pretrain_visual_targets:scores.prediction_scores_t',
        'pretrain_visual_targets:scores.prediction_scores_v',
        'pretrain_visual_targets:scores.seq_relationship_score',
      ],
    );
    assert.equal(noSeed.unchecked.length, 18);
    for (const item of noSeed.unchecked) {
      assert.match(item.name, /^pretrain_visual_targets:vt[12]\./);
      assert.match(item.reason, /nce_seed/);
    }

    rmSync(file);
    const absent = verifyParity(dir, PRETRAIN_ONLY);
    assert.deepEqual(
      absent.rows.filter((row) => !row.ok).map((row) => row.name),
      [],
    );
    assert.deepEqual(absent.unchecked, []);
    assert.equal(absent.rows.length, 24, 'the pretrain.safetensors rows only');
    assert.ok(absent.rows.every((row) => row.name.startsWith('pretrain:')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const skipped = verifyParity(fixtures, { skip: new Set(FAMILIES) });
  assert.deepEqual(skipped.rows, []);
  assert.deepEqual(skipped.unchecked, []);
});

const variant = fileURLToPath(new URL('../../../test/fixtures/parity-variant', import.meta.url));

for (const numerics of ['reference', 'fused'] as const) {
  test(`a folder generated from another config (layer counts, repeated biattention ids, fusion sum, batch 4) matches, ${numerics} numerics`, () => {
    for (const weights of ['safetensors', 'torch_legacy', 'torch_zip'] as WeightVariant[]) {
      const report = verifyParity(variant, { weights, numerics });
      assert.deepEqual(
        report.rows.filter((row) => !row.ok).map((row) => row.name),
        [],
        weights,
      );
      assert.deepEqual(report.unchecked, []);
      assert.equal(report.rows.length, 28);
      assert.ok(report.rows.some((row) => row.name === 'forward:t9.vil_binary_prediction'));
    }
  });
}

/** The parts of scalars.json the edits below touch. */
interface EditableScalars {
  train: Record<string, unknown>;
  optimizer: { tasks: string[]; scenarios: Record<string, { steps: { task: string }[] }> };
}

/** A copy of the fixtures in a temp dir, with scalars.json and the inputs edited; removed afterwards. */
function withEditedFixtures(
  edit: { scalars?: (scalars: EditableScalars) => void; dropInputs?: string[] },
  run: (dir: string) => void,
): void {
  const dir = mkdtempSync(join(tmpdir(), 'parity-edit-'));
  try {
    cpSync(fixtures, dir, { recursive: true });
    if (edit.scalars) {
      const scalars = JSON.parse(readFileSync(join(dir, 'scalars.json'), 'utf8')) as EditableScalars;
      edit.scalars(scalars);
      writeFileSync(join(dir, 'scalars.json'), JSON.stringify(scalars));
    }
    if (edit.dropInputs) {
      const inputs = new Map(readSafetensors(join(dir, 'inputs.safetensors')).tensors);
      for (const name of edit.dropInputs) assert.ok(inputs.delete(name), name);
      writeSafetensors(join(dir, 'inputs.safetensors'), inputs);
    }
    run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const TRAINING_ONLY = { skip: new Set(['forward', 'debug', 'nlvr2', 'pretrain'] as const) };

test("each fixture task's batch derives from its registry type and process, as the generator formed it", () => {
  const scalars = JSON.parse(readFileSync(join(fixtures, 'scalars.json'), 'utf8')) as {
    train: Record<string, { type: TaskType; process: TaskProcess; batch: Record<string, string> }>;
  };
  const registry = loadTaskRegistry();
  assert.ok(Object.keys(scalars.train).length >= 7);
  for (const [task, spec] of Object.entries(scalars.train)) {
    const entry = registry.get(task)!;
    assert.equal(entry.type, spec.type, task);
    assert.equal(entry.process, spec.process, task);
    assert.deepEqual(fixtureBatch(entry.type, entry.process), spec.batch, task);
  }
  assert.equal(fixtureBatch('V-logit-mc', 'normal'), undefined);
  assert.equal(fixtureBatch('VL-logit', 'dialog'), undefined);
  assert.equal(fixtureBatch('VL-binary-classifier', 'normal'), undefined);
});

test('an optimiser task with no train-step entry is replayed from the task registry (it crashed with a TypeError)', () => {
  withEditedFixtures({ scalars: (scalars) => delete scalars.train.TASK9 }, (dir) => {
    const report = verifyParity(dir, TRAINING_ONLY);
    assert.deepEqual(
      report.rows.filter((row) => !row.ok).map((row) => row.name),
      [],
    );
    assert.deepEqual(report.unchecked, []);
    const names = new Set(report.rows.map((row) => row.name));
    // The replay ran every step of both schedules, TASK9's included, and TASK9's own train-step tensors were compared.
    for (const name of [
      'scalars:optimizer.warmup_linear.step3.loss_scaled',
      'scalars:optimizer.mannul.step1.loss_scaled',
      'optimizer:mannul.step3.vision_logit.bias',
      'train_step:TASK9.loss',
      'train_step:TASK9.grad.vision_logit.weight',
    ]) {
      assert.ok(names.has(name), name);
    }
    assert.ok(![...names].some((name) => name.startsWith('scalars:train.TASK9.')), 'no scalars of the dropped entry');
  });
});

test('an optimiser task that neither the folder nor the fixture layouts can form leaves that scenario unchecked, naming the task', () => {
  withEditedFixtures(
    {
      scalars: (scalars) => {
        delete scalars.train.TASK9;
        scalars.optimizer.tasks = ['TASK1', 'TASK4'];
        for (const scenario of Object.values(scalars.optimizer.scenarios)) {
          for (const step of scenario.steps) if (step.task === 'TASK9') step.task = 'TASK4';
        }
      },
    },
    (dir) => {
      const report = verifyParity(dir, TRAINING_ONLY);
      assert.deepEqual(
        report.rows.filter((row) => !row.ok).map((row) => row.name),
        [],
      );
      assert.ok(!report.rows.some((row) => row.family === 'optimizer'), 'nothing of the replay was compared');
      const optimizer = report.unchecked.filter((item) => item.family === 'optimizer');
      assert.ok(optimizer.some((item) => item.name === 'optimizer:warmup_linear.step0.vision_logit.bias'));
      assert.ok(optimizer.some((item) => item.name === 'scalars:optimizer.mannul'));
      for (const item of optimizer) assert.match(item.reason, /TASK4: .*no train\.TASK4 entry.*'V-logit-mc'/);
      assert.ok(report.unchecked.every((item) => item.family === 'optimizer'));
    },
  );
});

test('an input tensor missing from inputs.safetensors leaves the checks that need it unchecked, naming the tensor', () => {
  withEditedFixtures({ dropInputs: ['target.refer'] }, (dir) => {
    const report = verifyParity(dir, TRAINING_ONLY);
    assert.deepEqual(
      report.rows.filter((row) => !row.ok).map((row) => row.name),
      [],
    );
    assert.ok(report.unchecked.length > 0);
    for (const item of report.unchecked) {
      assert.match(item.reason, /inputs\.safetensors has no input 'target\.refer'/, item.name);
      assert.match(item.name, /^(train_step:TASK9\.|optimizer:|scalars:(train\.TASK9|optimizer\.))/, item.name);
    }
    const names = new Set(report.unchecked.map((item) => item.name));
    for (const name of [
      'train_step:TASK9.loss',
      'scalars:train.TASK9',
      'optimizer:mannul.step0.vision_logit.bias',
      'scalars:optimizer.warmup_linear',
    ])
      assert.ok(names.has(name), name);
    // The other tasks were still compared.
    assert.ok(report.rows.some((row) => row.name === 'train_step:TASK13.loss'));
    assert.ok(!report.rows.some((row) => row.name.startsWith('train_step:TASK9.')));
  });
});
