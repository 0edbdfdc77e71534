import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import {
  ImageInputError,
  createPipeline,
  loadModelFolder,
  type DetectedRegions,
  type ImageInput,
} from '../../src/pipelines/index.js';
import { ImageResolver } from '../../src/pipelines/image-input.js';
import { IMAGE_HEIGHT, IMAGE_WIDTH, READ, REFUSED } from '../data/features-hostile.js';
import { tinyFolder } from './helpers.js';

/** A feature-store value of test/data/features-hostile.ts as the arrays a developer passes in. */
function detected(value: Record<string, unknown>): DetectedRegions {
  const floats = (tensor: unknown): Float32Array => {
    const { data } = tensor as RawTensor;
    return new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
  };
  return { features: floats(value.features), boxes: floats(value.boxes), width: IMAGE_WIDTH, height: IMAGE_HEIGHT };
}

const good = detected(READ.good!);

/** What is refused, with the problem after `<argument>: `. */
const CASES: Record<string, [DetectedRegions, RegExp]> = {
  nan_feature: [detected(REFUSED.nan_feature![0]), /^features row 1, column 7 is NaN$/],
  // Past any max_region_num a test model keeps, but in the mean row.
  infinite_feature_last_row: [
    detected(REFUSED.infinite_feature_not_kept![0]),
    /^features row 4, column 2047 is Infinity$/,
  ],
  opposite_infinities: [detected(REFUSED.opposite_infinities![0]), /^features row 2, column 0 is -Infinity$/],
  overflowing_features: [
    detected(REFUSED.overflowing_features![0]),
    /^features column 3 sums to Infinity in float32 over 5 rows: its values are too large to be detector features$/,
  ],
  nan_box: [detected(REFUSED.nan_box![0]), /^boxes row 2 is \[NaN, 10, 62, 42\]: not finite$/],
  infinite_box_last_row: [
    detected(REFUSED.infinite_box_not_kept![0]),
    /^boxes row 4 is \[14, 12, 64, -Infinity\]: not finite$/,
  ],
  huge_box: [
    detected(REFUSED.huge_box![0]),
    /^boxes row 0 is \[-1\d{20}, -1\d{20}, 1\d{20}, 1\d{20}\]: its float32 area overflows$/,
  ],
  no_boxes: [
    detected(REFUSED.no_boxes![0]),
    /^features must be a non-empty Float32Array of N \* 2048 values, got 0 values$/,
  ],
  partial_row: [
    { ...good, features: good.features.subarray(1) },
    /^features must be a non-empty Float32Array of N \* 2048 values, got 10239 values$/,
  ],
  float64_features: [
    { ...good, features: Float64Array.from(good.features) as unknown as Float32Array },
    /^features must be .*, got a Float64Array$/,
  ],
  fewer_boxes: [
    { ...good, boxes: good.boxes.subarray(4) },
    /^boxes must be a Float32Array of 5 \* 4 values \(one x1, y1, x2, y2 box per feature row\), got 16 values \(4 boxes\)$/,
  ],
  boxes_array: [
    { ...good, boxes: Array.from(good.boxes) as unknown as Float32Array },
    /^boxes must be a Float32Array of 5 \* 4 values .*, got an Array of 20$/,
  ],
  fractional_width: [{ ...good, width: 99.5 }, /^width must be a positive integer \(pixels\), got 99\.5$/],
};

const refusedAs =
  (what: string, problem: RegExp) =>
  (error: unknown): boolean =>
    error instanceof ImageInputError &&
    error.message.startsWith(`${what}: `) &&
    problem.test(error.message.slice(what.length + 2));

describe('region arrays passed in are refused where they would reach the model as NaN or infinity, or do not fit', () => {
  const resolver = new ImageResolver();

  for (const [name, [image, problem]] of Object.entries(CASES)) {
    it(`${name}: refused by regions() and check(), naming the argument`, () => {
      assert.throws(() => resolver.regions(image, 'rightImage'), refusedAs('rightImage', problem));
      assert.throws(() => resolver.check(image, 'images[3]'), refusedAs('images[3]', problem));
    });
  }

  it('reads boxes outside the image as the feature stores read them (not clipped)', () => {
    for (const image of [good, detected(READ.outside_image!)]) {
      resolver.check(image, 'image');
      assert.equal(resolver.regions(image, 'image').numBoxes, 6);
    }
  });

  it("checks a stored image's arguments without reading it", () => {
    resolver.check({ store: '/no/such.lmdb', imageId: 9 }, 'images[0]');
    assert.throws(
      () => resolver.check({ store: 42, imageId: 9 } as unknown as ImageInput, 'images[1]'),
      refusedAs('images[1]', /^store must be an ImageFeatureReader or an LMDB path, got a number$/),
    );
    assert.throws(
      () => resolver.check({ store: '/no/such.lmdb', imageId: null } as unknown as ImageInput, 'images[2]'),
      refusedAs('images[2]', /^imageId must be a string or a number$/),
    );
  });
});

describe('pipelines refuse bad region arrays before the model runs', () => {
  const saved = tinyFolder();
  const folder = loadModelFolder(saved.dir);
  after(() => {
    folder.model.dispose();
    saved.dispose();
  });
  let forwards = 0;
  const model = folder.model as unknown as { call: (...args: unknown[]) => unknown };
  const call = model.call.bind(model);
  model.call = (...args) => {
    forwards++;
    return call(...args);
  };
  const [bad, problem] = CASES.nan_feature!;

  it('vqa, ground and entail name `image`; verify `leftImage` / `rightImage`', async () => {
    const vqa = await createPipeline('vqa', folder);
    const ground = await createPipeline('ground', folder);
    const entail = await createPipeline('entail', folder);
    const verify = await createPipeline('verify', folder);
    try {
      await vqa('what is it?', good);
      assert.equal(forwards, 1, 'a good image runs the model');
      forwards = 0;
      await assert.rejects(vqa('what is it?', bad), refusedAs('image', problem));
      await assert.rejects(ground('the dog', bad), refusedAs('image', problem));
      await assert.rejects(entail('a dog', bad), refusedAs('image', problem));
      await assert.rejects(verify('two dogs', bad, good), refusedAs('leftImage', problem));
      await assert.rejects(verify('two dogs', good, bad), refusedAs('rightImage', problem));
      assert.equal(forwards, 0);
    } finally {
      for (const pipeline of [vqa, ground, entail, verify]) pipeline.dispose();
    }
  });

  it("retrieve names the image's index and refuses before its first batch", async () => {
    const retrieve = await createPipeline('retrieve', folder, { batchSize: 1 });
    try {
      forwards = 0;
      for (const [name, [image, refused]] of Object.entries(CASES)) {
        await assert.rejects(retrieve('a dog', [good, good, image]), refusedAs('images[2]', refused), name);
      }
      assert.equal(forwards, 0, 'no batch ran');
      assert.equal((await retrieve('a dog', [good, good, good])).length, 3);
      assert.equal(forwards, 3);
    } finally {
      retrieve.dispose();
    }
  });
});
