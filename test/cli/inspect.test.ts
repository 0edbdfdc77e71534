// `vilbert inspect`: which bundled config and model a weights file fits. Files of the
// released sizes are written sparse (a safetensors header over a hole), so nothing large is
// stored or written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundledConfig } from '../../src/model/config.js';
import { stateDictShapes, variantShapes } from '../../src/model/shapes.js';

const bin = fileURLToPath(new URL('../../../bin/vilbert.js', import.meta.url));
const parity = fileURLToPath(new URL('../../../test/fixtures/parity', import.meta.url));
const inspect = (file: string) => spawnSync(process.execPath, [bin, 'inspect', file], { encoding: 'utf8' });

/** A float16 safetensors file with these shapes whose data is a hole in the file. */
function writeSparseWeights(path: string, shapes: Map<string, number[]>): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [key, shape] of shapes) {
    const bytes = shape.reduce((product, size) => product * size, 1) * 2;
    header[key] = { dtype: 'F16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([length, Buffer.from(json)]));
  truncateSync(path, 8 + json.length + offset);
}

const released = { ...bundledConfig('bert_base_6layer_6conect').config, task_specific_tokens: true };

test('every variant rankConfigFits derives has the shapes of the model built for it', () => {
  const config = bundledConfig('bert_base_2layer_2conect').config;
  for (const kind of ['VILBertForVLTasks', 'BertForMultiModalPreTraining'] as const) {
    const withTokens = kind === 'VILBertForVLTasks';
    const base = stateDictShapes(
      { ...config, task_specific_tokens: withTokens, visual_target: 0, v_target_size: 1601 },
      kind,
    );
    for (const taskTokens of withTokens ? [true, false] : [false]) {
      for (const visualTarget of [0, 1] as const) {
        const built = stateDictShapes(
          {
            ...config,
            task_specific_tokens: taskTokens,
            visual_target: visualTarget,
            v_target_size: visualTarget === 0 ? 1601 : 2048,
          },
          kind,
        );
        assert.deepEqual(
          [...variantShapes(base, taskTokens, visualTarget)],
          [...built],
          `${kind} tokens ${taskTokens} target ${visualTarget}`,
        );
      }
    }
  }
});

test('the released 12-in-1 layout fits bert_base_6layer_6conect exactly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'inspect-'));
  try {
    const file = join(dir, 'multi_task_model.safetensors');
    writeSparseWeights(file, stateDictShapes(released, 'VILBertForVLTasks'));
    const run = inspect(file);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /: 560 tensors, 291,469,755 elements \(560 float16\)\n/);
    assert.match(
      run.stdout,
      /^fits exactly: VILBertForVLTasks, config bert_base_6layer_6conect, task tokens on, visual_target 0$/m,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file that fits no bundled config names the closest, with its missing and mismatched keys', () => {
  const dir = mkdtempSync(join(tmpdir(), 'inspect-'));
  try {
    const shapes = stateDictShapes(released, 'VILBertForVLTasks');
    shapes.delete('vil_logit.bias');
    shapes.set('vil_prediction.logit_fc.3.weight', [3000, 2048]);
    const file = join(dir, 'edited.safetensors');
    writeSparseWeights(file, shapes);
    const run = inspect(file);
    assert.equal(run.status, 0, run.stderr);
    assert.match(
      run.stdout,
      /^fits no bundled config exactly; closest: VILBertForVLTasks, config bert_base_6layer_6conect, task tokens on, visual_target 0 \(1 missing, 0 unexpected, 1 shape mismatches\)$/m,
    );
    assert.match(run.stdout, /^ {2}shape mismatch: vil_prediction\.logit_fc\.3\.weight$/m);
    assert.match(run.stdout, /^ {2}missing: vil_logit\.bias$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the tiny parity model fits no bundled config', () => {
  const run = inspect(join(parity, 'weights_vltasks.safetensors'));
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /224 tensors, 321,329 elements \(224 float32\)/);
  assert.match(run.stdout, /^fits no bundled config exactly; closest: /m);
  assert.doesNotMatch(run.stdout, /fits exactly/);
});
