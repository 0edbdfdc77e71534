import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import { bundledConfig, loadConfig } from '../../src/model/config.js';
import { stateDictShapes } from '../../src/model/shapes.js';
import { BertForMultiModalPreTraining, VILBertForVLTasks } from '../../src/model/vilbert.js';
import { loadPretrainedWeights } from '../../src/model/pretrained.js';

const fixture = (name: string) => new URL(`../../../test/fixtures/${name}`, import.meta.url);

test('bert_base_6layer_6conect with task tokens has exactly the reference state-dict keys and shapes', () => {
  const golden = JSON.parse(readFileSync(fixture('model/full_config_state_dict.json'), 'utf8')) as {
    state_dict: { name: string; shape: number[] }[];
    num_parameters_unique: number;
  };
  const { config } = bundledConfig('bert_base_6layer_6conect', {
    task_specific_tokens: true,
    visual_target: 0,
    v_target_size: 1601,
  });
  const shapes = stateDictShapes(config, 'VILBertForVLTasks');
  assert.equal(shapes.size, 560);
  assert.deepEqual([...shapes.keys()].sort(), golden.state_dict.map((entry) => entry.name).sort());
  for (const entry of golden.state_dict) assert.deepEqual(shapes.get(entry.name), entry.shape, entry.name);
  const count = torch.scope(() =>
    torch.withDefaultDevice('meta', () => {
      const model = new VILBertForVLTasks(config);
      const parameters = model.numParameters();
      model.dispose();
      return parameters;
    }),
  );
  assert.equal(count, 268_028_859);
  assert.equal(golden.num_parameters_unique, 268_028_859);
});

test('the pre-training model has the 533 keys of the reference', () => {
  const { config } = bundledConfig('bert_base_6layer_6conect', { visual_target: 0, v_target_size: 1601 });
  const shapes = stateDictShapes(config, 'BertForMultiModalPreTraining');
  assert.equal(shapes.size, 533);
  assert.ok(!shapes.has('bert.embeddings.task_embeddings.weight'));
  assert.ok(shapes.has('cls.predictions.decoder.weight'));
});

const tinyConfig = () =>
  loadConfig(fileURLToPathString(fixture('parity/config.json')), { task_specific_tokens: true }).config;

function fileURLToPathString(url: URL): string {
  return decodeURIComponent(url.pathname);
}

function tinyInputs(B = 2, T = 5, R = 3) {
  torch.manualSeed(3);
  return {
    inputIds: torch.randint(4, 60, [B, T]),
    imageFeatures: torch.randn([B, R, 2048]),
    imageLocations: torch.rand([B, R, 5]),
    imageAttentionMask: torch.tensor(
      [
        [1, 1, 1],
        [1, 1, 0],
      ].slice(0, B),
      { dtype: 'int64' },
    ),
    taskIds: torch.full([B, 1], 1, { dtype: 'int64' }),
  };
}

test('the MLM decoder is tied to the word embeddings: one parameter, two state-dict keys', () => {
  const model = new VILBertForVLTasks(tinyConfig());
  const state = model.stateDict();
  assert.equal(state.get('cls.predictions.decoder.weight'), state.get('bert.embeddings.word_embeddings.weight'));
  assert.equal(state.size, 224);
  assert.equal(model.parameters().length, 223);
  model.dispose();
});

test('a forward under inference mode or noGrad allocates no autograd state', () => {
  const model = new VILBertForVLTasks(tinyConfig()).eval();
  const inputs = tinyInputs();
  for (const mode of [torch.inferenceMode, torch.noGrad]) {
    torch.scope(() =>
      mode(() => {
        const out = model.call(inputs);
        for (const tensor of [
          out.vil_prediction!,
          out.vision_logit!,
          out.linguisic_prediction!,
          out.bert.sequenceOutputText,
        ]) {
          assert.equal(tensor.requiresGrad, false);
          assert.equal(tensor.hasGradFn, false);
        }
      }),
    );
  }
  const trained = torch.scope(() => model.call(inputs).vil_logit!.hasGradFn);
  assert.equal(trained, true, 'outside those modes the graph is recorded');
  model.dispose();
});

test('asking for some heads computes only those, with the same values', () => {
  const model = new VILBertForVLTasks(tinyConfig()).eval();
  const inputs = tinyInputs();
  torch.scope(() =>
    torch.noGrad(() => {
      const all = model.call(inputs);
      const some = model.call(inputs, { heads: ['vil_prediction', 'vision_logit'] });
      assert.equal(some.linguisic_prediction, undefined);
      assert.equal(some.vision_prediction, undefined);
      assert.deepEqual(some.vil_prediction!.toNumbers(), all.vil_prediction!.toNumbers());
      assert.deepEqual(some.vision_logit!.toNumbers(), all.vision_logit!.toNumbers());
      assert.deepEqual(all.vil_binary_prediction!.shape, [1, 2], 'an even batch pairs rows for NLVR2');
      assert.ok(all.vision_logit!.toNumbers()[5]! < -9000, 'the padded region gets -10000');
    }),
  );
  model.dispose();
});

test('task tokens: missing task ids are refused with a clear message', () => {
  const model = new VILBertForVLTasks(tinyConfig());
  const inputs = { ...tinyInputs(), taskIds: null };
  assert.throws(() => torch.scope(() => model.call(inputs)), /task_ids \[B, 1\] are required/);
  model.dispose();
});

test('from_pretrained rules: gamma/beta renames, a checkpoint without the bert. prefix, missing and unexpected keys', () => {
  const config = tinyConfig();
  const source = new BertForMultiModalPreTraining({ ...config, task_specific_tokens: false });
  // An old-style checkpoint: LayerNorm gamma/beta, no `bert.` prefix, one stray key.
  const old = new Map<string, torch.Tensor>();
  for (const [key, tensor] of source.bert.stateDict())
    old.set(key.replace('LayerNorm.weight', 'LayerNorm.gamma').replace('LayerNorm.bias', 'LayerNorm.beta'), tensor);
  old.set('pooler.dense.weight', torch.zeros([2, 2]).keep());
  const target = new VILBertForVLTasks(config);
  const report = loadPretrainedWeights(target, old);
  assert.ok(report.renames.some((r) => r.rule === 'gamma->weight'));
  assert.ok(report.renames.some((r) => r.rule === 'add bert. prefix'));
  assert.ok(report.missingKeys.includes('bert.embeddings.task_embeddings.weight'));
  assert.ok(report.missingKeys.includes('vil_prediction.logit_fc.0.weight'));
  assert.ok(report.unexpectedKeys.includes('bert.pooler.dense.weight'));
  assert.deepEqual(
    target.bert.embeddings.LayerNorm.weight.toNumbers(),
    source.bert.embeddings.LayerNorm.weight.toNumbers(),
  );
  const bad = new Map([['bert.t_pooler.dense.weight', torch.zeros([3, 3]).keep()]]);
  assert.throws(
    () => loadPretrainedWeights(target, bad),
    /size mismatch for bert\.t_pooler\.dense\.weight: checkpoint has shape \[3, 3\], model has shape \[16, 32\]/,
  );
  source.dispose();
  target.dispose();
});

test('every bundled ViLBERT config builds (on the meta device) with consistent co-attention layers', () => {
  for (const name of [
    'bert_base_2layer_2conect',
    'bert_base_4layer_4conect',
    'bert_base_8layer_8conect',
    'bert_large_6layer_6conect',
    'roberta_base_6layer_6connect',
  ]) {
    const { config } = bundledConfig(name);
    const shapes = stateDictShapes(config, 'VILBertForVLTasks');
    const connections = new Set(
      [...shapes.keys()].filter((k) => k.startsWith('bert.encoder.c_layer.')).map((k) => k.split('.')[3]),
    );
    assert.equal(connections.size, config.v_biattention_id.length, name);
  }
});
