// train_concap's --visual_target 1 (MSE regression of region features) and 2 (NCE over
// negatives sampled inside forward) against outputs of the reference code:
// test/fixtures/parity/pretrain_visual_targets.safetensors, written by
// tools/parity/make_visual_target_fixture.py (MANIFEST.md section 9a).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as torch from '../../src/torch/index.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { rawToTensor, readWeights } from '../../src/io/weights.js';
import { loadConfig } from '../../src/model/config.js';
import type { BertInputs } from '../../src/model/bert-model.js';
import { BertForMultiModalPreTraining } from '../../src/model/vilbert.js';
import { getNumerics, type Numerics, setNumerics } from '../../src/model/layers.js';
import { compare, type Tolerance, TOLERANCES } from '../../src/parity/compare.js';

const parity = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/parity/${name}`, import.meta.url));
const fixture = readSafetensors(parity('pretrain_visual_targets.safetensors'));
const inputsRaw = readSafetensors(parity('inputs.safetensors')).tensors;
const DECODER = ['cls.imagePredictions.decoder.weight', 'cls.imagePredictions.decoder.bias'];
const LOSSES = ['masked_lm_loss', 'masked_img_loss', 'next_sentence_loss', 'loss'] as const;

function want(name: string): RawTensor {
  const raw = fixture.tensors.get(name);
  assert.ok(raw, `the fixture has ${name}`);
  return raw;
}

function input(name: string): torch.Tensor {
  const raw = name === 'image_target' ? want(name) : inputsRaw.get(`pretrain.${name}`);
  assert.ok(raw, `inputs.safetensors has pretrain.${name}`);
  return rawToTensor(raw);
}

function expectClose(name: string, got: torch.Tensor, tolerance: Tolerance): void {
  const result = compare(got, want(name), tolerance);
  assert.ok(result.ok, `${name}: max |diff| ${result.maxAbsDiff} over ${result.bound} ${result.problem ?? ''}`);
}

/** The parity weights with the 2048-way image decoder the generator drew (visual targets 1 and 2 regress features). */
function buildModel(visualTarget: 1 | 2): BertForMultiModalPreTraining {
  const { config } = loadConfig(parity('config.json'), { visual_target: visualTarget, v_target_size: 2048 });
  assert.equal(config.num_negative, 128, 'the BertConfig default: train_concap never copies --num_negative into the config');
  const model = new BertForMultiModalPreTraining(config);
  const weights = readWeights(parity('weights_vltasks.safetensors'));
  for (const key of DECODER) {
    weights.get(key)!.dispose();
    weights.set(key, rawToTensor(want(key)).keep());
  }
  const result = model.loadStateDict(weights, { strict: false });
  for (const tensor of weights.values()) tensor.dispose();
  assert.deepEqual(result.missingKeys, []);
  model.eval();
  return model;
}

function withNumerics<T>(numerics: Numerics, body: () => T): T {
  const previous = getNumerics();
  setNumerics(numerics);
  try {
    return body();
  } finally {
    setNumerics(previous);
  }
}

const inputs = (): BertInputs => ({
  inputIds: input('input_ids'),
  imageFeatures: input('image_feat'),
  imageLocations: input('image_loc'),
  tokenTypeIds: input('segment_ids'),
  attentionMask: input('input_mask'),
  imageAttentionMask: input('image_mask'),
});

/** train_concap's objective-0 step, seeding torch's generator just before forward as the generator did. */
function lossesWithSeed(model: BertForMultiModalPreTraining, seed: number) {
  const batch = inputs();
  const labels = {
    maskedLmLabels: input('lm_label_ids'),
    imageLabel: input('image_label'),
    imageTarget: input('image_target'),
    nextSentenceLabel: input('is_next'),
  };
  model.zeroGrad(true);
  torch.manualSeed(seed);
  const losses = model.call(batch, labels);
  const total = losses.maskedLmLoss.add(losses.maskedImageLoss).add(losses.nextSentenceLoss);
  return { masked_lm_loss: losses.maskedLmLoss, masked_img_loss: losses.maskedImageLoss, next_sentence_loss: losses.nextSentenceLoss, loss: total };
}

const nceSeed = Number(fixture.metadata.nce_seed);

test('the fixture is what the MANIFEST describes: torch 1.13 reference, seeds, 127 negatives per masked region', () => {
  assert.match(fixture.metadata.torch ?? '', /^1\.13/);
  assert.equal(nceSeed, 1237);
  assert.deepEqual(want('vt2.neg_index').shape, [4, 127]);
  assert.deepEqual(want('image_target').shape, [3, 3, 2048]);
});

for (const numerics of ['reference', 'fused'] as const) {
  for (const visualTarget of [1, 2] as const) {
    test(`visual_target ${visualTarget}: scores, the three losses, the total and gradients match the reference (${numerics} numerics)`, () => {
      withNumerics(numerics, () => {
        const model = buildModel(visualTarget);
        try {
          torch.scope(() =>
            torch.noGrad(() => {
              const scores = model.scores(inputs());
              expectClose('scores.prediction_scores_t', scores.predictionScoresText, TOLERANCES.forward);
              expectClose('scores.prediction_scores_v', scores.predictionScoresImage, TOLERANCES.forward);
              expectClose('scores.seq_relationship_score', scores.seqRelationshipScore, TOLERANCES.forward);
            }),
          );
          torch.scope(() => {
            const losses = lossesWithSeed(model, nceSeed);
            for (const name of LOSSES) expectClose(`vt${visualTarget}.${name}`, losses[name], TOLERANCES.loss);
            losses.loss.backward();
            const parameters = new Map(model.namedParameters());
            const prefix = `vt${visualTarget}.grad.`;
            const gradients = [...fixture.tensors.keys()].filter((key) => key.startsWith(prefix));
            assert.equal(gradients.length, 5);
            for (const key of gradients) {
              const parameter = parameters.get(key.slice(prefix.length));
              assert.ok(parameter?.grad, `${key}: the parameter has a gradient`);
              expectClose(key, parameter.grad, TOLERANCES.gradient);
            }
          });
        } finally {
          model.dispose();
        }
      });
    });
  }
}

test('visual_target 2: the loss depends on the drawn negatives, so the match above pins the draw', () => {
  const model = buildModel(2);
  try {
    torch.scope(() =>
      torch.noGrad(() => {
        const reference = Number(fixture.metadata['vt2.masked_img_loss.f32']);
        const otherSeed = Number(fixture.metadata['vt2.masked_img_loss.f32_with_nce_seed_plus_1']);
        const bound = (value: number) => TOLERANCES.loss.atol + TOLERANCES.loss.rtol * Math.abs(value);
        assert.ok(Math.abs(reference - otherSeed) > 100 * bound(reference), 'another seed gives another reference loss');
        const again = lossesWithSeed(model, nceSeed).masked_img_loss.item();
        assert.ok(Math.abs(again - reference) <= bound(reference), `same seed: ${again} vs ${reference}`);
        const other = lossesWithSeed(model, nceSeed + 1).masked_img_loss.item();
        assert.ok(Math.abs(other - otherSeed) <= bound(otherSeed), `seed + 1: ${other} vs the reference's ${otherSeed}`);
        assert.ok(Math.abs(other - reference) > 100 * bound(reference));
      }),
    );
  } finally {
    model.dispose();
  }
});
