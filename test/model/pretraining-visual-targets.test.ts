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
import { BertForMultiModalPreTraining } from '../../src/model/vilbert.js';
import { getNumerics, type Numerics, setNumerics } from '../../src/model/layers.js';
import { compare, type Tolerance, TOLERANCES } from '../../src/parity/compare.js';
import {
  checkVisualTargetLosses,
  checkVisualTargetScores,
  pretrainInputs,
  seededPretrainingLosses,
  visualTargetLabels,
  visualTargetModel,
  visualTargetSeed,
  VISUAL_TARGETS_FILE,
} from '../../src/parity/visual-targets.js';

const parity = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/parity/${name}`, import.meta.url));
const fixture = readSafetensors(parity(VISUAL_TARGETS_FILE));
const inputsRaw = readSafetensors(parity('inputs.safetensors')).tensors;

function want(name: string): RawTensor {
  const raw = fixture.tensors.get(name);
  assert.ok(raw, `the fixture has ${name}`);
  return raw;
}

function input(key: string): torch.Tensor {
  const raw = inputsRaw.get(key);
  assert.ok(raw, `inputs.safetensors has ${key}`);
  return rawToTensor(raw);
}

function expectClose(name: string, got: torch.Tensor | undefined, tolerance: Tolerance): void {
  assert.ok(got, `${name}: produced`);
  const result = compare(got, want(name), tolerance);
  assert.ok(result.ok, `${name}: max |diff| ${result.maxAbsDiff} over ${result.bound} ${result.problem ?? ''}`);
}

/** The parity weights with the 2048-way image decoder the generator drew (visual targets 1 and 2 regress features). */
function buildModel(visualTarget: 1 | 2): BertForMultiModalPreTraining {
  const weights = readWeights(parity('weights_vltasks.safetensors'));
  try {
    const { model, missingKeys } = visualTargetModel(parity('config.json'), weights, fixture.tensors, visualTarget);
    assert.equal(
      model.config.num_negative,
      128,
      'the BertConfig default: train_concap never copies --num_negative into the config',
    );
    assert.deepEqual(missingKeys, []);
    return model;
  } finally {
    for (const tensor of weights.values()) tensor.dispose();
  }
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

const inputs = () => pretrainInputs(input);
const labels = () => visualTargetLabels(input, rawToTensor(want('image_target')));

const nceSeed = visualTargetSeed(fixture.metadata)!;

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
          torch.scope(() => {
            checkVisualTargetScores(model, inputs(), expectClose);
            const gradients = checkVisualTargetLosses(
              model,
              visualTarget,
              inputs(),
              labels(),
              nceSeed,
              fixture.tensors.keys(),
              expectClose,
            );
            assert.equal(gradients.length, 5);
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
        assert.ok(
          Math.abs(reference - otherSeed) > 100 * bound(reference),
          'another seed gives another reference loss',
        );
        const before = torch.getRngState();
        const again = seededPretrainingLosses(model, inputs(), labels(), nceSeed).masked_img_loss.item();
        assert.ok(Math.abs(again - reference) <= bound(reference), `same seed: ${again} vs ${reference}`);
        const other = seededPretrainingLosses(model, inputs(), labels(), nceSeed + 1).masked_img_loss.item();
        assert.ok(
          Math.abs(other - otherSeed) <= bound(otherSeed),
          `seed + 1: ${other} vs the reference's ${otherSeed}`,
        );
        assert.ok(Math.abs(other - reference) > 100 * bound(reference));
        assert.deepEqual(
          torch.getRngState(),
          before,
          "the seeded forward leaves the caller's generator state as it was",
        );
      }),
    );
  } finally {
    model.dispose();
  }
});
