// bf16 and int8 against the reference run the way PyTorch users run it: the parity model's
// task-1 forward under torch.autocast('cpu', bfloat16), and after quantize_dynamic with
// per-channel int8 weights on the onednn engine (tools/parity/make_precision_fixture.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as torch from '../../src/torch/index.js';
import { loadConfig } from '../../src/model/config.js';
import { ALL_VL_HEADS, VILBertForVLTasks } from '../../src/model/vilbert.js';
import { readWeights } from '../../src/io/weights.js';
import { precisionNotice } from '../../src/model/precision.js';
import type { BertInputs } from '../../src/model/bert-model.js';

const parity = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/parity/${name}`, import.meta.url));

function parityModel(): { model: VILBertForVLTasks; inputs: BertInputs; reference: Map<string, torch.Tensor> } {
  const { config } = loadConfig(parity('config.json'), { task_specific_tokens: true });
  const model = new VILBertForVLTasks(config);
  const weights = readWeights(parity('weights_vltasks.safetensors'));
  model.loadStateDict(weights, { strict: false });
  for (const tensor of weights.values()) tensor.dispose();
  model.eval();
  const raw = readWeights(parity('inputs.safetensors'));
  const input = (key: string) => raw.get(key)!.keep();
  const inputs: BertInputs = {
    inputIds: input('base.question'),
    imageFeatures: input('base.features'),
    imageLocations: input('base.spatials'),
    tokenTypeIds: input('base.segment_ids'),
    attentionMask: input('base.input_mask'),
    imageAttentionMask: input('base.image_mask'),
    taskIds: input('eval.task_ids.t1'),
  };
  const reference = readWeights(parity('precision.safetensors'));
  for (const tensor of reference.values()) tensor.keep();
  return { model, inputs, reference };
}

/** max |a - b| / max |b| */
const relative = (a: torch.Tensor, b: torch.Tensor): number =>
  torch.scope(() => a.sub(b).abs().max().item() / b.abs().max().item());

function forwardAll(model: VILBertForVLTasks, inputs: BertInputs): Map<string, torch.Tensor> {
  return torch.scope(() =>
    torch.noGrad(() => {
      const out = model.call(inputs);
      return new Map(ALL_VL_HEADS.map((head) => [head, out[head]!.keep()]));
    }),
  );
}

test('int8 with reduceRange equals torch quantize_dynamic (per-channel, onednn) on every head of the parity model', () => {
  const { model, inputs, reference } = parityModel();
  const fp32 = forwardAll(model, inputs);
  model.setPrecision('int8', { reduceRange: true });
  assert.equal(model.precision, 'int8');
  const int8 = forwardAll(model, inputs);
  for (const head of ALL_VL_HEADS) {
    const ours = int8.get(head)!;
    assert.equal(ours.dtype, 'float32', head);
    assert.ok(relative(ours, reference.get(`int8.${head}`)!) < 1e-5, `${head} differs from PyTorch's int8`);
    // The quantized path really ran: the logits moved as PyTorch's did (vision_logit is dominated by its -10000 padding).
    if (head !== 'vision_logit') assert.ok(relative(ours, fp32.get(head)!) > 1e-3, `${head} did not change in int8`);
  }
  // Every Linear weight was released: the state dict keeps the embeddings and LayerNorms only.
  const keys = [...model.stateDict().keys()];
  assert.ok(!keys.includes('vil_prediction.logit_fc.0.weight'));
  assert.ok(keys.includes('bert.embeddings.word_embeddings.weight'));
  assert.throws(() => model.setPrecision('fp32'), /quantized to int8 and released/);
  model.dispose();
});

test('bf16 autocast stays within 5% of fp32 and of PyTorch autocast on every head', () => {
  const { model, inputs, reference } = parityModel();
  const fp32 = forwardAll(model, inputs);
  for (const head of ALL_VL_HEADS)
    assert.ok(relative(fp32.get(head)!, reference.get(`fp32.${head}`)!) < 1e-5, `${head}: fp32 baseline`);
  model.setPrecision('bf16');
  const bf16 = forwardAll(model, inputs);
  for (const head of ALL_VL_HEADS) {
    const ours = bf16.get(head)!;
    assert.equal(ours.dtype, 'float32', `${head} comes back as float32`);
    const fromFp32 = relative(ours, fp32.get(head)!);
    const fromTorch = relative(ours, reference.get(`bf16.${head}`)!);
    // Measured 2026-12-08: 1.5e-3 .. 2.5e-2 from fp32 and 1.0e-2 .. 1.6e-2 from torch's bf16
    // (ours normalises in float32 where torch's autocast leaves the reference's LayerNorm in bf16).
    assert.ok(fromFp32 < 0.05 && fromTorch < 0.05, `${head}: ${fromFp32} from fp32, ${fromTorch} from torch bf16`);
    if (head !== 'vision_logit') assert.ok(fromFp32 > 1e-4, `${head} did not change in bf16`);
  }
  // bf16 can be switched back, and fp32 is then exact again.
  model.setPrecision('fp32');
  const again = forwardAll(model, inputs);
  for (const head of ALL_VL_HEADS) assert.equal(relative(again.get(head)!, fp32.get(head)!), 0, head);
  model.dispose();
});

test('bf16 training: gradients reach the float32 weights; int8 refuses training', () => {
  const { model, inputs } = parityModel();
  model.train();
  model.setPrecision('bf16');
  torch.scope(() => {
    const out = model.call(inputs, { heads: ['vil_prediction'] });
    assert.equal(out.vil_prediction!.dtype, 'float32');
    out.vil_prediction!.sum().backward();
  });
  const weight = model.vil_prediction.logit_fc.at(0) as torch.nn.Linear;
  assert.equal(weight.weight.dtype, 'float32');
  const grad = weight.weight.grad;
  assert.ok(grad !== null && grad.dtype === 'float32' && grad.abs().sum().item() > 0);
  assert.throws(() => model.setPrecision('int8'), /call eval\(\)/);
  model.dispose();
});

test('a released or foreign object is refused by the quantized operator, naming it', () => {
  torch.manualSeed(1);
  const layer = new torch.nn.Linear(8, 4).eval().quantizeDynamic_({ releaseWeights: false });
  assert.ok(layer.isQuantized);
  const x = torch.randn([2, 8]);
  assert.deepEqual(layer.call(x).shape, [2, 4]);
  assert.throws(() => torch.op('quantized::linear_dynamic', x, {}, false), /script object/);
  layer.dispose();
  assert.throws(() => layer.call(x), /dispose/);
  x.dispose();
});

test('each precision says what it runs as on this CPU, or nothing when native', () => {
  assert.equal(precisionNotice('fp32'), null);
  const support = torch.cpuPrecisionSupport();
  assert.equal(precisionNotice('bf16') === null, support.mkldnn && support.bf16Native);
  assert.equal(precisionNotice('int8') === null, support.int8Engine !== null && support.int8Native);
});

test('bf16 inference keeps bfloat16 weight copies and remakes them after an in-place write', () => {
  torch.manualSeed(2);
  const layer = new torch.nn.Linear(16, 4).eval();
  const x = torch.randn([3, 16]);
  const infer = () => torch.scope(() => torch.noGrad(() => torch.autocast(() => layer.call(x).float().toNumbers())));
  const first = infer();
  assert.deepEqual(infer(), first, 'the kept copies give the same result');
  torch.noGrad(() => layer.weight.fill_(0));
  const bias = torch.scope(() => layer.bias!.to('bfloat16').float().toNumbers());
  assert.deepEqual(infer(), [...bias, ...bias, ...bias], 'the zeroed weight is seen');
  // With gradients on, autocast casts the float32 weights itself, so the gradient reaches them.
  torch.scope(() =>
    torch
      .autocast(() => layer.call(x))
      .sum()
      .backward(),
  );
  assert.ok(layer.weight.grad !== null && layer.weight.grad.abs().sum().item() > 0);
  layer.dispose();
  x.dispose();
});
