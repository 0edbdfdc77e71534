import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LmdbError } from '../../src/io/lmdb.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import {
  FEATURE_WIDTH,
  FeatureStoreError,
  ImageFeatureReader,
  mergeGtRegions,
  padRegions,
  truncateRegions,
  type ImageFeatures,
} from '../../src/data/features.js';
import { fixture } from '../io/fixtures.js';
import { native } from '../../src/torch/native.js';
import { IMAGE_HEIGHT, IMAGE_WIDTH, READ, REFUSED, ROWS, writeFeatureStore } from './features-hostile.js';

// Fixtures and goldens: test/fixtures/data/README.md.
const STORES: Record<string, string> = {
  vg: fixture('data', 'vg_resnext152_faster_rcnn_genome.lmdb'),
  'refcoco+': fixture('data', 'refcoco+_resnext152_faster_rcnn_genome.lmdb'),
  'refcoco+_gt': fixture('data', 'refcoco+_gt_resnext152_faster_rcnn_genome.lmdb'),
  broken: fixture('data', 'broken.lmdb'),
};

interface ImageGolden {
  numBoxes: number;
  imageWidth: number;
  imageHeight: number;
  featuresSha256: string;
}
interface SplitGolden {
  store: string;
  gtStore: string | null;
  maxRegionNum: number;
  items: Array<{ index: number; imageId: string; featuresSha256?: string }>;
}

const readerGoldens = readSafetensors(fixture('data', 'reader_expected.safetensors'));
const readerMeta = JSON.parse(readerGoldens.metadata.stores!) as Record<
  string,
  { keys: string[]; entries: number; images: Record<string, ImageGolden> }
>;
const datasetGoldens = readSafetensors(fixture('data', 'dataset_expected.safetensors'));

/** A golden tensor's elements (copied: safetensors views need not be aligned). */
function golden(
  content: { tensors: Map<string, RawTensor> },
  name: string,
): Float32Array | Float64Array | BigInt64Array {
  const tensor = content.tensors.get(name);
  assert.ok(tensor !== undefined, `golden ${name} is missing`);
  const buffer = tensor.data.slice().buffer;
  switch (tensor.dtype) {
    case 'float32':
      return new Float32Array(buffer);
    case 'float64':
      return new Float64Array(buffer);
    case 'int64':
      return new BigInt64Array(buffer);
    default:
      throw new Error(`unexpected golden dtype ${tensor.dtype}`);
  }
}

const sha256 = (array: Float32Array): string =>
  createHash('sha256')
    .update(new Uint8Array(array.buffer, array.byteOffset, array.byteLength))
    .digest('hex');

/** x[:, :8] of a [rows, 2048] matrix. */
function head8(features: Float32Array): Float32Array {
  const rows = features.length / FEATURE_WIDTH;
  const out = new Float32Array(rows * 8);
  for (let row = 0; row < rows; row++)
    out.set(features.subarray(row * FEATURE_WIDTH, row * FEATURE_WIDTH + 8), row * 8);
  return out;
}

function assertRowSums(features: Float32Array, expected: Float64Array, what: string): void {
  assert.equal(features.length / FEATURE_WIDTH, expected.length, `${what}: rows`);
  expected.forEach((want, row) => {
    let sum = 0;
    for (const value of features.subarray(row * FEATURE_WIDTH, (row + 1) * FEATURE_WIDTH)) sum += value;
    assert.ok(Math.abs(sum - want) <= 1e-6 * Math.abs(want), `${what}: row ${row} sums to ${sum}, expected ${want}`);
  });
}

function withReader<T>(store: string, run: (reader: ImageFeatureReader) => T, options = {}): T {
  const reader = ImageFeatureReader.open(STORES[store]!, options);
  try {
    return run(reader);
  } finally {
    reader.close();
  }
}

function storeError(store: string, key: string | undefined, pattern: RegExp): (error: unknown) => boolean {
  return (error: unknown) =>
    error instanceof FeatureStoreError &&
    error.path === STORES[store] &&
    error.key === key &&
    pattern.test(error.message) &&
    error.message.startsWith(`${STORES[store]}: ${key === undefined ? '' : `image '${key}': `}`);
}

describe('ImageFeatureReader: the reference ImageFeaturesH5Reader', () => {
  for (const [store, meta] of Object.entries(readerMeta)) {
    it(`${store}: keys, and every image bit-exact against numpy`, () =>
      withReader(store, (reader) => {
        assert.deepEqual(reader.keys(), meta.keys);
        assert.equal(reader.length, meta.keys.length);
        for (const [key, want] of Object.entries(meta.images)) {
          const image = reader.get(key);
          const prefix = `${store}/${key}/`;
          assert.deepEqual(
            { key: image.key, numBoxes: image.numBoxes, imageWidth: image.imageWidth, imageHeight: image.imageHeight },
            { key, numBoxes: want.numBoxes, imageWidth: want.imageWidth, imageHeight: want.imageHeight },
            prefix,
          );
          assert.equal(image.features.length, want.numBoxes * FEATURE_WIDTH);
          assert.deepEqual(
            image.features.subarray(0, FEATURE_WIDTH),
            golden(readerGoldens, `${prefix}features.row0`),
            `${prefix} mean row`,
          );
          assert.deepEqual(head8(image.features), golden(readerGoldens, `${prefix}features.head8`), `${prefix} head8`);
          assert.equal(sha256(image.features), want.featuresSha256, `${prefix} features`);
          assert.deepEqual(
            image.imageLocation,
            golden(readerGoldens, `${prefix}imageLocation`),
            `${prefix} imageLocation`,
          );
          assert.deepEqual(
            image.imageLocationOri,
            golden(readerGoldens, `${prefix}imageLocationOri`),
            `${prefix} imageLocationOri`,
          );
        }
      }));
  }

  it('reads pickle protocols 2, 3 and 4 and string image sizes alike', () =>
    withReader('broken', (reader) => {
      const protocol2 = reader.get('p2');
      assert.deepEqual(reader.get('p4'), { ...protocol2, key: 'p4' });
      assert.deepEqual(reader.get('strings'), { ...protocol2, key: 'strings' });
    }));

  it('looks numeric ids up as str(image_id)', () =>
    withReader('vg', (reader) => {
      assert.equal(reader.has(3), true);
      assert.equal(reader.has('5'), false);
      assert.deepEqual(reader.get(3), reader.get('3'));
    }));

  it('caches decoded images only with inMemory', () => {
    withReader('vg', (reader) => assert.notEqual(reader.get('1'), reader.get('1')));
    withReader('vg', (reader) => assert.equal(reader.get('1'), reader.get('1')), { inMemory: true });
  });
});

describe('region merge, truncation and padding against the reference datasets (expected/)', () => {
  for (const [split, text] of Object.entries(datasetGoldens.metadata)) {
    const { store, gtStore, maxRegionNum, items } = JSON.parse(text) as SplitGolden;
    it(`${split}: ${gtStore === null ? 'detector rows' : 'detector + GT rows'}, max_region_num ${maxRegionNum}`, () => {
      const detector = ImageFeatureReader.open(STORES[store]!);
      const groundTruth = gtStore === null ? undefined : ImageFeatureReader.open(STORES[gtStore]!);
      try {
        for (const { index, imageId, featuresSha256 } of items) {
          const prefix = `${split}/${index}/`;
          const image = detector.get(imageId);
          const regions = groundTruth === undefined ? image : mergeGtRegions(image, groundTruth.get(imageId));
          const padded = padRegions(regions, maxRegionNum);
          assert.deepEqual(
            head8(padded.features),
            golden(datasetGoldens, `${prefix}features.head8`),
            `${prefix} head8`,
          );
          assertRowSums(padded.features, golden(datasetGoldens, `${prefix}features.rowsum`) as Float64Array, prefix);
          assert.deepEqual(padded.spatials, golden(datasetGoldens, `${prefix}spatials`), `${prefix} spatials`);
          assert.deepEqual(padded.imageMask, golden(datasetGoldens, `${prefix}image_mask`), `${prefix} image_mask`);
          if (featuresSha256 !== undefined) {
            assert.deepEqual(
              padded.features.subarray(0, FEATURE_WIDTH),
              golden(datasetGoldens, `${prefix}features.row0`),
              `${prefix} mean row`,
            );
            assert.equal(sha256(padded.features), featuresSha256, `${prefix} all features`);
          }
        }
      } finally {
        detector.close();
        groundTruth?.close();
      }
    });
  }

  it('merges detector rows (whole-image row included) with GT rows 1.., then truncates', () => {
    const detector = ImageFeatureReader.open(STORES['refcoco+']!);
    const groundTruth = ImageFeatureReader.open(STORES['refcoco+_gt']!);
    try {
      const image = detector.get('581857');
      const gt = groundTruth.get('581857');
      const merged = mergeGtRegions(image, gt);
      assert.equal(merged.numBoxes, image.numBoxes + gt.numBoxes - 1);
      assert.deepEqual(merged.imageLocationOri.subarray(0, image.numBoxes * 5), image.imageLocationOri);
      assert.deepEqual(merged.imageLocationOri.subarray(image.numBoxes * 5), gt.imageLocationOri.subarray(5));
      assert.deepEqual(merged.features.subarray(image.numBoxes * FEATURE_WIDTH), gt.features.subarray(FEATURE_WIDTH));

      const capped = truncateRegions(merged, image.numBoxes + 1);
      assert.equal(capped.numBoxes, image.numBoxes + 1);
      assert.deepEqual(capped.imageLocation, merged.imageLocation.subarray(0, (image.numBoxes + 1) * 5));
      assert.equal(truncateRegions(merged, 1000).numBoxes, merged.numBoxes);
    } finally {
      detector.close();
      groundTruth.close();
    }
  });

  it('keeps the mean of all boxes in row 0 when truncating', () =>
    withReader('vg', (reader) => {
      const image: ImageFeatures = reader.get('4');
      const kept = truncateRegions(image, 10);
      assert.equal(kept.numBoxes, 10);
      assert.deepEqual(kept.features, image.features.subarray(0, 10 * FEATURE_WIDTH));
      const padded = padRegions(image, 10);
      assert.deepEqual([...padded.imageMask], Array<bigint>(10).fill(1n));
      assert.throws(() => truncateRegions(image, 0), /max_region_num must be a positive integer, got 0/);
    }));
});

describe('ImageFeatureReader errors name the store and the image', () => {
  it('a missing store', () => {
    const missing = fixture('data', 'no-such-features.lmdb');
    assert.throws(
      () => ImageFeatureReader.open(missing),
      (error: unknown) =>
        error instanceof LmdbError && error.message.startsWith(`${missing}: `) && /No such file/.test(error.message),
    );
  });

  it('a store without the keys entry', () => {
    const plain = fixture('data', 'plain.lmdb');
    assert.throws(
      () => ImageFeatureReader.open(plain),
      (error: unknown) =>
        error instanceof FeatureStoreError && error.path === plain && /no 'keys' entry/.test(error.message),
    );
  });

  const cases: Array<[string, string, RegExp]> = [
    ['vg', '5', /not in the store's 'keys' list \(4 images\)/],
    ['broken', 'listed_only', /listed in 'keys' but the LMDB has no entry for it/],
    [
      'broken',
      'corrupt',
      /value is not a readable pickle: truncated pickle: needs 24576 bytes at offset 336, only 4664 left/,
    ],
    ['broken', 'wrong_width', /'features' has shape \[3, 1024\], expected \[N, 2048\]/],
    ['broken', 'not_a_dict', /value is a tuple\/list, expected a dict/],
    ['broken', 'boxes_mismatch', /'boxes' has 2 rows but 'features' has 3/],
    ['broken', 'zero_height', /'image_h' is 0, expected a positive integer/],
  ];
  for (const [store, key, pattern] of cases) {
    it(`${store} '${key}'`, () =>
      withReader(store, (reader) => {
        assert.throws(() => reader.get(key), storeError(store, key, pattern));
      }));
  }
});

describe('ImageFeatureReader refuses values that would reach the model as NaN or infinity', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vilbert-features-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'hostile_resnext152_faster_rcnn_genome.lmdb');
  writeFeatureStore(path, {
    ...READ,
    ...Object.fromEntries(Object.entries(REFUSED).map(([key, [value]]) => [key, value])),
  });
  // A read of 3 rows keeps the mean row and boxes 0 and 1: rows 2..4 are summed, not kept.
  const KEPT = 3;

  for (const [key, [, problem]] of Object.entries(REFUSED)) {
    it(`${key}: refused by get and getPadded (fresh, into, cached), naming the store and the image`, () => {
      const refused = (error: unknown): boolean =>
        error instanceof FeatureStoreError &&
        error.path === path &&
        error.key === key &&
        error.message === `${path}: image '${key}': ${error.problem}` &&
        problem.test(error.problem);
      const reader = ImageFeatureReader.open(path);
      const cached = ImageFeatureReader.open(path, { inMemory: true });
      try {
        const into = {
          numBoxes: 0,
          features: new Float32Array(KEPT * FEATURE_WIDTH),
          spatials: new Float32Array(KEPT * 5),
          imageMask: new BigInt64Array(KEPT),
        };
        assert.throws(() => reader.get(key), refused);
        assert.throws(() => reader.getPadded(key, KEPT), refused);
        assert.throws(() => reader.getPadded(key, KEPT, into), refused);
        assert.throws(() => cached.get(key), refused);
        assert.throws(() => cached.get(key), refused, 'a refused value is not cached');
      } finally {
        reader.close();
        cached.close();
      }
    });
  }

  it('reads a num_boxes below the rows, or none, as the reference (which ignores it): every row', () =>
    withStore(path, (reader) => {
      const good = reader.get('good');
      assert.equal(good.numBoxes, ROWS + 1);
      for (const key of ['fewer_num_boxes', 'no_num_boxes']) assert.deepEqual(reader.get(key), { ...good, key });
    }));

  it('normalises boxes outside the image without clipping, as the reference: a reversed box has a negative area', () =>
    withStore(path, (reader) => {
      const { imageLocation, imageLocationOri } = reader.get('outside_image');
      const f = Math.fround;
      const area = (x1: number, y1: number, x2: number, y2: number): number =>
        f(f(f(y2 - y1) * f(x2 - x1)) / f(IMAGE_WIDTH * IMAGE_HEIGHT));
      const [w, h] = [IMAGE_WIDTH, IMAGE_HEIGHT];
      assert.deepEqual(
        [...imageLocation.subarray(5, 15)],
        [
          f(-20 / w),
          f(5 / h),
          f(150 / w),
          f(90 / h),
          area(-20, 5, 150, 90),
          f(50 / w),
          f(10 / h),
          f(30 / w),
          f(20 / h),
          area(50, 10, 30, 20),
        ],
      );
      assert.ok(area(50, 10, 30, 20) < 0);
      assert.deepEqual([...imageLocationOri.subarray(5, 9)], [-20, 5, 150, 90]);
    }));
});

function withStore<T>(path: string, run: (reader: ImageFeatureReader) => T): T {
  const reader = ImageFeatureReader.open(path);
  try {
    return run(reader);
  } finally {
    reader.close();
  }
}

it('getPadded(id, R) equals padRegions(get(id), R), truncated or padded, and keeps the mean of all boxes', () => {
  for (const store of ['vg', 'refcoco+'] as const) {
    const reader = ImageFeatureReader.open(STORES[store]!);
    try {
      for (const id of reader.keys()) {
        const rows = reader.get(id).numBoxes;
        for (const R of [1, 2, Math.max(1, rows - 3), rows, rows + 7]) {
          const slow = padRegions(reader.get(id), R);
          const fast = reader.getPadded(id, R);
          assert.equal(fast.numBoxes, slow.numBoxes, `${store} ${id} R=${R}`);
          assert.deepEqual(
            Buffer.from(fast.features.buffer, fast.features.byteOffset, fast.features.byteLength),
            Buffer.from(slow.features.buffer, slow.features.byteOffset, slow.features.byteLength),
            `${store} ${id} R=${R} features`,
          );
          assert.deepEqual(Array.from(fast.spatials), Array.from(slow.spatials), `${store} ${id} R=${R} spatials`);
          assert.deepEqual(Array.from(fast.imageMask), Array.from(slow.imageMask), `${store} ${id} R=${R} mask`);
        }
      }
      assert.throws(() => reader.getPadded(reader.keys()[0]!, 0), /max_region_num must be a positive integer/);
      // Into one reused result, dirtied first: every image, in turn, equals its fresh read.
      for (const R of [1, 4, 40]) {
        const into = {
          numBoxes: 0,
          features: new Float32Array(R * FEATURE_WIDTH).fill(Number.NaN),
          spatials: new Float32Array(R * 5).fill(Number.NaN),
          imageMask: new BigInt64Array(R).fill(7n),
        };
        for (const id of [...reader.keys(), ...reader.keys().reverse()]) {
          const fresh = reader.getPadded(id, R);
          const reused = reader.getPadded(id, R, into);
          assert.equal(reused.features, into.features, "the caller's arrays are returned");
          assert.equal(reused.numBoxes, fresh.numBoxes);
          assert.ok(
            Buffer.from(reused.features.buffer, reused.features.byteOffset, reused.features.byteLength).equals(
              Buffer.from(fresh.features.buffer, fresh.features.byteOffset, fresh.features.byteLength),
            ),
            `${store} ${id} R=${R} features into`,
          );
          assert.deepEqual(
            Array.from(reused.spatials),
            Array.from(fresh.spatials),
            `${store} ${id} R=${R} spatials into`,
          );
          assert.deepEqual(
            Array.from(reused.imageMask),
            Array.from(fresh.imageMask),
            `${store} ${id} R=${R} mask into`,
          );
        }
      }
      const wrong = {
        numBoxes: 0,
        features: new Float32Array(3 * FEATURE_WIDTH),
        spatials: new Float32Array(2 * 5),
        imageMask: new BigInt64Array(2),
      };
      assert.throws(
        () => reader.getPadded(reader.keys()[0]!, 2, wrong),
        /'features' holds 6144 elements, expected 2 x 2048/,
      );
    } finally {
      reader.close();
    }
  }
});

it('the native row copy: mean row in float32 row order, kept rows, the rest zeroed, at any alignment and width, streamed or not', () => {
  // Widths from 64 take the AVX2 column-block kernel where the CPU has it (67 and 130: a
  // block and a tail; 2048 the feature width); narrower ones the row-wise loop.
  for (const width of [1, 3, 4, 7, 64, 67, 130, 2048]) {
    for (const [rows, keep] of [
      [0, 0],
      [1, 1],
      [5, 2],
      [6, 6],
    ] as const) {
      const values = Float32Array.from({ length: rows * width }, (_, i) =>
        Math.fround(Math.sin(i * 12.9898) * 437.5453),
      );
      const expected: number[] = [];
      for (let column = 0; column < width; column++) {
        let sum = 0;
        for (let row = 0; row < rows; row++) sum = Math.fround(sum + values[row * width + column]!);
        expected.push(Math.fround(sum / rows));
      }
      expected.push(...values.subarray(0, keep * width));
      for (const sourceShift of [0, 1, 3]) {
        for (const [targetShift, streaming] of [0, 1, 2, 3, 4, 5, 6, 7].flatMap(
          (shift) =>
            [
              [shift, true],
              [shift, false],
            ] as const,
        )) {
          // Source bytes at an odd offset (as inside a pickle); a dirty target at every 4-byte phase of 32.
          const source = new Uint8Array(values.byteLength + sourceShift).subarray(sourceShift);
          source.set(new Uint8Array(values.buffer));
          const capacity = keep + 1 + 2;
          const target = new Float32Array(capacity * width + targetShift).fill(Number.NaN).subarray(targetShift);
          native.copyRowsWithMeanF32(source, rows, width, keep, target, streaming);
          const label = `width ${width}, rows ${rows}, keep ${keep}, shifts ${sourceShift}/${targetShift}, streaming ${streaming}`;
          assert.deepEqual(Array.from(target.subarray(0, (keep + 1) * width)), expected, label);
          assert.ok(
            target.subarray((keep + 1) * width).every((value) => Object.is(value, 0)),
            `${label}: padding`,
          );
        }
      }
    }
  }
  assert.throws(
    () => native.copyRowsWithMeanF32(new Uint8Array(8), 1, 4, 1, new Float32Array(8)),
    /exceeds the source/,
  );
  assert.throws(
    () => native.copyRowsWithMeanF32(new Uint8Array(16), 1, 4, 1, new Float32Array(7)),
    /keep \+ 1 rows the target/,
  );
});

it('the native row copy reports whether the mean row is finite, whichever row or column is not', () => {
  const width = 2048 + 3; // past the vector chunks, so the tail columns are summed by the scalar loop
  const rows = 5;
  const meanFinite = (poison?: { row: number; column: number; value: number }[]) => {
    const values = new Float32Array(rows * width).map((_, i) => (i % 7) - 3);
    for (const { row, column, value } of poison ?? []) values[row * width + column] = value;
    return native.copyRowsWithMeanF32(
      new Uint8Array(values.buffer),
      rows,
      width,
      2,
      new Float32Array(3 * width),
      false,
    );
  };
  assert.equal(meanFinite(), true);
  // Kept and unkept rows alike (keep is 2), in a vector chunk and in the scalar tail.
  for (const row of [0, 4]) {
    for (const column of [0, 1000, width - 1]) {
      assert.equal(meanFinite([{ row, column, value: Number.NaN }]), false, `NaN at ${row}, ${column}`);
      assert.equal(meanFinite([{ row, column, value: Number.NEGATIVE_INFINITY }]), false, `-Inf at ${row}, ${column}`);
    }
  }
  // Finite values whose float32 sum overflows.
  assert.equal(
    meanFinite([
      { row: 1, column: 5, value: 3e38 },
      { row: 3, column: 5, value: 3e38 },
    ]),
    false,
  );
  assert.equal(
    meanFinite([
      { row: 1, column: 5, value: 3e38 },
      { row: 3, column: 5, value: -3e38 },
    ]),
    true,
  );
  // No rows: the mean is 0/0.
  assert.equal(native.copyRowsWithMeanF32(new Uint8Array(0), 0, 4, 0, new Float32Array(4), false), false);
});
