import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../../src/io/safetensors.js';
import { rawValues } from '../../src/parity/compare.js';
import type { ItemTensor } from '../../src/data/dataset.js';
import {
  CONCEPT_CAPTIONS_ORDER,
  ConceptCaptionsError,
  ConceptCaptionsReader,
  REGION_LEN,
  assembleBatch,
  jsonObjectValues,
  preprocessRecord,
  type ConceptCaptionsBatch,
  type ConceptCaptionsRecord,
  type PreprocessOptions,
} from '../../src/data/concept-captions.js';
import { type PretrainingRandomSource as RandomSource, ReferenceRandom } from '../../src/data/random-source.js';
import { iou } from '../../src/data/iou.js';
import { MsgpackExt, decodeMsgpack, decodeMsgpackNumpy } from '../../src/data/msgpack-numpy.js';
import { BertTokenizer } from '../../src/text/index.js';
import { writeLmdb } from '../../src/io/lmdb.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { encodeMsgpackNumpy } from '../../src/synthetic/msgpack-writer.js';
import { fixture } from '../io/fixtures.js';
import { IMAGE_HEIGHT, IMAGE_WIDTH, READ, REFUSED } from './features-hostile.js';

type Draw =
  ['random.random', number] | ['random.randint', [number, number], number] | ['np.random.randint', [number], number];

interface GoldenRun {
  file: string;
  visualization: boolean;
  rng_log: Draw[];
  image_id_batch: string[];
}
interface SplitMeta {
  batch_size: number;
  len: number;
  deterministic: GoldenRun;
  masked: GoldenRun;
}

const EXPECTED = fixture('datasets', 'expected', 'CC_ConceptualCaptions');
const tokenizer = BertTokenizer.bundled();

/** Replays a logged run: each call must be the logged kind with the logged arguments. */
class ReplayRandom implements RandomSource {
  private next = 0;

  constructor(private readonly log: readonly Draw[]) {}

  private take(kind: Draw[0], args: number[]): number {
    const draw = this.log[this.next];
    assert.ok(draw !== undefined, `draw ${this.next} (${kind}) is past the end of the log`);
    assert.equal(draw[0], kind, `draw ${this.next}`);
    if (draw.length === 3) assert.deepEqual(draw[1], args, `draw ${this.next} arguments`);
    this.next++;
    return draw[draw.length - 1] as number;
  }

  random(): number {
    return this.take('random.random', []);
  }
  randint(a: number, b: number): number {
    return this.take('random.randint', [a, b]);
  }
  npRandint(n: number): number {
    return this.take('np.random.randint', [n]);
  }
  get consumed(): number {
    return this.next;
  }
}

/** Records every draw of another source in the log's format. */
class RecordingRandom implements RandomSource {
  readonly log: Draw[] = [];

  constructor(private readonly source: RandomSource) {}

  random(): number {
    const v = this.source.random();
    this.log.push(['random.random', v]);
    return v;
  }
  randint(a: number, b: number): number {
    const v = this.source.randint(a, b);
    this.log.push(['random.randint', [a, b], v]);
    return v;
  }
  npRandint(n: number): number {
    const v = this.source.npRandint(n);
    this.log.push(['np.random.randint', [n], v]);
    return v;
  }
}

function values(tensor: ItemTensor): number[] {
  return Array.from(tensor.data as ArrayLike<number | bigint>, Number);
}

/** Rows of the last dimension. */
function rows(tensor: ItemTensor): number[][] {
  const width = tensor.shape[tensor.shape.length - 1]!;
  const all = values(tensor);
  return Array.from({ length: all.length / width }, (_, r) => all.slice(r * width, (r + 1) * width));
}

function assertClose(actual: number[], expected: number[], relative: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  expected.forEach((want, i) => {
    const ok =
      relative === 0
        ? Object.is(actual[i], want) || actual[i] === want
        : Math.abs(actual[i]! - want) <= relative * Math.max(1, Math.abs(want));
    assert.ok(ok, `${what}[${i}]: got ${actual[i]}, reference ${want}`);
  });
}

/** Every tensor against the golden, in the kit's reduced forms; floats bit-exact, row sums to 1e-9. */
function assertMatchesGolden(batch: ConceptCaptionsBatch, file: string): void {
  const { tensors, metadata } = readSafetensors(file);
  assert.deepEqual(batch.order.join(','), metadata.return_order);
  assert.deepEqual(batch.imageIds, JSON.parse(metadata.image_id!));
  for (const name of batch.order) {
    const tensor = batch.values[name];
    assert.deepEqual(tensor.shape, JSON.parse(metadata[`${name}.shape`]!), `${name} shape`);
    assert.equal(tensor.dtype, metadata[`${name}.dtype`], `${name} dtype`);
    const golden = (suffix: string): number[] | undefined => {
      const raw = tensors.get(name + suffix);
      return raw === undefined ? undefined : rawValues(raw);
    };
    const plain = golden('');
    if (plain !== undefined) {
      assertClose(values(tensor), plain, 0, name);
      continue;
    }
    const head8 = golden('.head8');
    const rowsum = golden('.rowsum');
    assert.ok(head8 !== undefined && rowsum !== undefined, `${name}: golden has no reduced forms`);
    assertClose(
      rows(tensor).flatMap((row) => row.slice(0, 8)),
      head8,
      0,
      `${name}.head8`,
    );
    assertClose(
      rows(tensor).map((row) => row.reduce((a, b) => a + b, 0)),
      rowsum,
      1e-9,
      `${name}.rowsum`,
    );
    const argmax = golden('.argmax');
    if (argmax !== undefined)
      assertClose(
        rows(tensor).map((row) => row.indexOf(Math.max(...row))),
        argmax,
        0,
        `${name}.argmax`,
      );
    const max = golden('.max');
    if (max !== undefined)
      assertClose(
        rows(tensor).map((row) => Math.max(...row)),
        max,
        0,
        `${name}.max`,
      );
  }
}

describe('ConceptCaptionsReader against the reference goldens', () => {
  let corpus: string;
  before(() => {
    corpus = join(mkdtempSync(join(tmpdir(), 'vilbert-cc-')), 'conceptual_caption');
    cpSync(fixture('datasets', 'kit', 'data', 'conceptual_caption'), corpus, { recursive: true });
  });
  after(() => rmSync(join(corpus, '..'), { recursive: true, force: true }));

  for (const split of ['train', 'val'] as const) {
    const meta = JSON.parse(readFileSync(join(EXPECTED, split, 'meta.json'), 'utf8')) as SplitMeta;
    for (const kind of ['deterministic', 'masked'] as const) {
      const run = meta[kind];
      it(`${split} ${run.file}: replaying the rng_log gives the reference batch`, () => {
        const random = new ReplayRandom(run.rng_log);
        const reader = ConceptCaptionsReader.open(corpus, {
          tokenizer,
          split,
          batchSize: meta.batch_size,
          visualization: run.visualization,
          random,
        });
        try {
          assert.equal(reader.numRecords, meta.len);
          assert.equal(reader.length, 1);
          assertMatchesGolden(reader.batch(0), join(EXPECTED, split, run.file));
          assert.equal(random.consumed, run.rng_log.length, 'every logged draw is used');
        } finally {
          reader.close();
        }
      });
    }

    it(`${split}: ReferenceRandom seeded 1000 makes the reference's draws`, () => {
      const random = new RecordingRandom(ReferenceRandom.seeded(1000));
      const reader = ConceptCaptionsReader.open(corpus, { tokenizer, split, batchSize: meta.batch_size, random });
      try {
        assertMatchesGolden(reader.batch(0), join(EXPECTED, split, meta.masked.file));
      } finally {
        reader.close();
      }
      assert.deepEqual(random.log, meta.masked.rng_log);
    });
  }

  it('drops the incomplete last batch and iterates in key order', () => {
    const reader = ConceptCaptionsReader.open(corpus, {
      tokenizer,
      split: 'train',
      batchSize: 3,
      random: ReferenceRandom.seeded(0),
    });
    try {
      assert.equal(reader.length, 1);
      assert.deepEqual(
        [...reader].map((batch) => batch.imageIds),
        [['999701605', '2083931829', '1096183557']],
      );
      assert.throws(() => reader.batch(1), RangeError);
    } finally {
      reader.close();
    }
  });

  it('names the file when a caption file is missing', () => {
    rmSync(join(corpus, '..', 'empty'), { recursive: true, force: true });
    assert.throws(
      () => ConceptCaptionsReader.open(join(corpus, '..', 'empty'), { tokenizer, split: 'val', batchSize: 1 }),
      /caption_val\.json/,
    );
  });
});

describe('ConceptCaptionsReader refuses values that would reach the model as NaN or infinity', () => {
  const float32 = (data: Float32Array, width: number): RawTensor => ({
    dtype: 'float32',
    shape: [data.length / width, width],
    data: new Uint8Array(data.buffer),
  });
  /** A datapoint as tensorpack stores it; the numbers as strings, as the converter writes them. */
  const datapoint = (
    features: RawTensor,
    boxes: RawTensor,
    sizes: { height?: string; width?: string; classes?: (classes: Float32Array) => void } = {},
  ): unknown[] => {
    const rows = features.shape[0]!;
    const classes = Float32Array.from({ length: rows * 1601 }, (_, i) => (i % 1601 === 0 ? 0.5 : 0.5 / 1600));
    sizes.classes?.(classes);
    return [
      features,
      float32(classes, 1601),
      boxes,
      String(rows),
      sizes.height ?? String(IMAGE_HEIGHT),
      sizes.width ?? String(IMAGE_WIDTH),
      'image',
      'a dog',
    ];
  };
  /** The feature stores' hostile values (test/data/features-hostile.ts) as datapoints. */
  const fromFeatureStore = (value: Record<string, unknown>, sizes?: Parameters<typeof datapoint>[2]): unknown[] =>
    datapoint(value.features as RawTensor, value.boxes as RawTensor, sizes);
  const good = READ.good!;
  /** `rows` boxes of the good value's pattern; feature column 0 set from `column0` (then zero). */
  const wide = (rows: number, edit: (features: Float32Array) => void): unknown[] => {
    const features = Float32Array.from({ length: rows * 2048 }, (_, i) => (i % 97) / 8);
    edit(features);
    return datapoint(
      float32(features, 2048),
      float32(
        Float32Array.from({ length: rows * 4 }, (_, i) => [10, 8, 60, 40][i % 4]! + Math.floor(i / 4)),
        4,
      ),
    );
  };

  // The refused values of the feature stores that are about the arrays (CC refuses any num_boxes other than the rows already).
  const REFUSED_HERE: Record<string, [unknown[], RegExp]> = {
    nan_feature: [fromFeatureStore(REFUSED.nan_feature![0]), /^features row 1, column 7 is NaN$/],
    infinite_feature: [
      fromFeatureStore(REFUSED.infinite_feature_not_kept![0]),
      /^features row 4, column 2047 is Infinity$/,
    ],
    opposite_infinities: [fromFeatureStore(REFUSED.opposite_infinities![0]), /^features row 2, column 0 is -Infinity$/],
    overflowing_features: [
      fromFeatureStore(REFUSED.overflowing_features![0]),
      /^features column 3 sums to Infinity in float32 over the 5 kept rows/,
    ],
    nan_box: [fromFeatureStore(REFUSED.nan_box![0]), /^boxes row 2 is \[NaN, 10, 62, 42\]: not finite$/],
    infinite_box: [
      fromFeatureStore(REFUSED.infinite_box_not_kept![0]),
      /^boxes row 4 is \[14, 12, 64, -Infinity\]: not finite$/,
    ],
    huge_box: [
      fromFeatureStore(REFUSED.huge_box![0]),
      /^boxes row 0 is \[-1\d+, -1\d+, 1\d+, 1\d+\]: its float32 location \[x1\/W, y1\/H, x2\/W, y2\/H, area\/\(W\*H\)\] is \[[^\]]*, Infinity\] with image_w 100, image_h 80$/,
    ],
    nan_class_probability: [
      fromFeatureStore(good, { classes: (classes) => (classes[3 * 1601 + 1600] = Number.NaN) }),
      /^cls_prob row 3, column 1600 is NaN$/,
    ],
    zero_width: [fromFeatureStore(good, { width: '0' }), /^image_w is "0", expected a positive number$/],
    // A positive height below float32's normal range: y / H overflows.
    tiny_height: [
      fromFeatureStore(good, { height: '1e-40' }),
      /^boxes row 0 is \[10, 8, 60, 40\]: its float32 location .* is \[0\.1\d*, Infinity, 0\.6\d*, Infinity, Infinity\] with image_w 100, image_h 1e-40$/,
    ],
    // Row 36 is past the 36 kept rows, but the NaN of row 35 is not.
    nan_feature_last_kept: [
      wide(40, (features) => (features[35 * 2048 + 9] = Number.NaN)),
      /^features row 35, column 9 is NaN$/,
    ],
  };
  const READ_HERE: Record<string, unknown[]> = {
    good: fromFeatureStore(good),
    // Not clipped, as the reference: x1 < 0, y2 > image_h, x2 < x1 (a negative area).
    outside_image: fromFeatureStore(READ.outside_image!),
    // Rows past the 36 kept are never read.
    nan_feature_not_kept: wide(40, (features) => (features[36 * 2048 + 9] = Number.NaN)),
    // Column 0 sums to 3e38 in full, but to 6e38 once masking zeroes row 1.
    cancelling_features: wide(5, (features) =>
      [3e38, -3e38, 3e38, 0, 0].forEach((value, row) => (features[row * 2048] = value)),
    ),
  };
  const values = {
    ...READ_HERE,
    ...Object.fromEntries(Object.entries(REFUSED_HERE).map(([key, [value]]) => [key, value])),
  };
  const keys = Object.keys(values).sort(); // the cursor's (byte) order
  const dir = mkdtempSync(join(tmpdir(), 'vilbert-cc-hostile-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const corpus = join(dir, 'conceptual_caption');
  const path = join(corpus, 'validation_feat_all.lmdb');
  mkdirSync(corpus);
  writeFileSync(join(corpus, 'caption_val.json'), JSON.stringify({ image: 'a dog' }));
  writeLmdb(
    path,
    [
      ...keys.map((key) => [key, encodeMsgpackNumpy(values[key])] as const),
      ['__keys__', encodeMsgpackNumpy(keys.map((key) => Buffer.from(key)))],
    ],
    { subdir: false },
  );
  /** Every draw keeps the caption, the tokens and the regions, but region 1 is zeroed (0.01 / 0.15 < 0.9). */
  const zeroRegion1 = (): RandomSource => {
    const draws = [0.1, 0.5, 0.5, 0.5, 0.01];
    return { random: () => draws.shift() ?? 0.5, randint: (a) => a, npRandint: () => 0 };
  };
  const withReader = <T>(run: (reader: ConceptCaptionsReader) => T, random: RandomSource = zeroRegion1()): T => {
    const reader = ConceptCaptionsReader.open(corpus, { tokenizer, split: 'val', batchSize: 1, random });
    try {
      return run(reader);
    } finally {
      reader.close();
    }
  };

  for (const [key, [, problem]] of Object.entries(REFUSED_HERE)) {
    it(`${key}: refused by record() and batch(), naming the store and the record`, () =>
      withReader((reader) => {
        const refused = (error: unknown): boolean =>
          error instanceof ConceptCaptionsError &&
          error.path === path &&
          error.key === key &&
          error.message === `${path}: record '${key}': ${error.problem}` &&
          problem.test(error.problem);
        assert.throws(() => reader.record(keys.indexOf(key)), refused);
        assert.throws(() => reader.batch(keys.indexOf(key)), refused);
      }));
  }

  it('reads the other values as the reference: boxes outside the image unclipped, rows past the 36 kept unread', () =>
    withReader((reader) => {
      for (const key of ['good', 'outside_image', 'nan_feature_not_kept']) reader.batch(keys.indexOf(key));
      const { imageLoc } = preprocessRecord(reader.record(keys.indexOf('outside_image')), preprocessOptions(selectAll));
      const f = Math.fround;
      const area = (x1: number, y1: number, x2: number, y2: number): number =>
        f(f(f(y2 - y1) * f(x2 - x1)) / f(IMAGE_WIDTH * IMAGE_HEIGHT));
      assert.deepEqual(
        [...imageLoc.subarray(0, 10)],
        [
          f(-20 / 100),
          f(5 / 80),
          f(150 / 100),
          f(90 / 80),
          area(-20, 5, 150, 90),
          f(50 / 100),
          f(10 / 80),
          f(30 / 100),
          f(20 / 80),
          area(50, 10, 30, 20),
        ],
      );
      assert.equal(reader.record(keys.indexOf('nan_feature_not_kept')).numBoxes, 40);
    }));

  it('refuses a batch whose global region overflows only after masking zeroed a row, naming the record', () =>
    withReader((reader) => {
      const index = keys.indexOf('cancelling_features');
      assert.equal(reader.record(index).numBoxes, 5, 'the kept rows sum to 3e38');
      assert.throws(
        () => reader.batch(index),
        (error: unknown) =>
          error instanceof ConceptCaptionsError &&
          error.path === path &&
          error.key === 'cancelling_features' &&
          /^features column 0 sums to Infinity in float32 over the rows left after masking/.test(error.problem),
      );
      withReader((unmasked) => assert.ok(unmasked.batch(index)), {
        random: () => 0.5,
        randint: (a) => a,
        npRandint: () => 0,
      });
    }));
});

describe('ReferenceRandom', () => {
  it('equals CPython random.seed(0) / numpy np.random.seed(0)', () => {
    const random = ReferenceRandom.seeded(0);
    // python3 -c "import random; random.seed(0); print(random.random(), random.randint(0, 9))"
    assert.equal(random.random(), 0.8444218515250481);
    assert.equal(random.randint(0, 9), 6);
    // python3 -c "import numpy as np; np.random.seed(0); print(np.random.randint(30522), np.random.randint(10))"
    assert.equal(random.npRandint(30522), 2732);
    assert.equal(random.npRandint(10), 5);
  });

  it('resumes the exact sequence from a saved state', () => {
    const random = ReferenceRandom.seeded(7);
    for (let i = 0; i < 700; i++) random.random(); // crosses a state regeneration
    const saved = JSON.parse(JSON.stringify(random.state())) as ReturnType<ReferenceRandom['state']>;
    const draw = (source: ReferenceRandom): number[] => [
      source.random(),
      source.randint(0, 5),
      source.npRandint(30522),
      source.random(),
    ];
    const first = draw(random);
    assert.deepEqual(draw(ReferenceRandom.fromState(saved)), first);
  });

  it('rejects seeds numpy rejects', () => {
    assert.throws(() => ReferenceRandom.seeded(-1), RangeError);
    assert.throws(() => ReferenceRandom.seeded(2 ** 32), RangeError);
  });
});

/** A source that selects every region (and keeps every token) with fixed draws. */
const selectAll: RandomSource = { random: () => 0.01, randint: (a) => a, npRandint: () => 0 };

function syntheticRecord(numBoxes: number): ConceptCaptionsRecord {
  const boxes = new Float32Array(numBoxes * 4);
  for (let r = 0; r < numBoxes; r++) boxes.set([r * 10, 0, r * 10 + 9, 9], r * 4); // disjoint 10x10 boxes
  return {
    features: new Float32Array(numBoxes * 2048).fill(1),
    classProbabilities: new Float32Array(numBoxes * 1601).fill(0.5),
    boxes,
    numBoxes,
    imageHeight: 100,
    imageWidth: 1000,
    imageId: 'synthetic',
    caption: 'a dog',
  };
}

const preprocessOptions = (random: RandomSource): PreprocessOptions => ({
  tokenizer,
  seqLen: 36,
  captions: ['a cat'],
  numCaptions: 1,
  random,
  visualization: false,
  objective: 0,
  visualTarget: 0,
  captionPath: 'captions.json',
});

describe('preprocessRecord / assembleBatch', () => {
  it('works with fewer than 36 boxes (the reference crashes there)', () => {
    const example = preprocessRecord(syntheticRecord(3), preprocessOptions(selectAll));
    assert.deepEqual(example.imageMask, [1, 1, 1, ...new Array(33).fill(0)]);
    assert.deepEqual(example.imageLabel, [1, 1, 1, ...new Array(33).fill(-1)]);
    assert.deepEqual(Array.from(example.maskedLabel), [1, 1, 1, ...new Array(33).fill(0)]);
    assert.ok(
      example.imageFeat.every((v) => v === 0),
      'p = 0.01 / 0.15 < 0.9 zeroes every selected region',
    );
    assert.equal(example.imageTarget[0], 0.5, 'the target is copied before masking');
    const batch = assembleBatch([example]);
    assert.deepEqual(batch.values.image_mask.shape, [1, 37]);
    assert.deepEqual(values(batch.values.image_loc).slice(0, 10), [
      0,
      0,
      1,
      1,
      1,
      0,
      0,
      Math.fround(9 / 1000),
      Math.fround(9 / 100),
      Math.fround(81 / 100000),
    ]);
  });

  it('keeps the first 36 of more boxes', () => {
    const example = preprocessRecord(
      syntheticRecord(40),
      preprocessOptions({ random: () => 0.99, randint: (a) => a, npRandint: () => 0 }),
    );
    assert.ok(example.imageMask.every((v) => v === 1));
    assert.equal(example.imageFeat.length, REGION_LEN * 2048);
  });

  it('divides the global row by the regions not overlapping a masked one, padding included', () => {
    // Draws: caption (0.99 > 0.5: negative caption, randint -> 0), 2 tokens kept, then region 0 selected and kept (p/0.15 >= 0.9), region 1 not.
    const draws = [0.99, 0.5, 0.5, 0.149, 0.5];
    const random: RandomSource = { random: () => draws.shift()!, randint: (a) => a, npRandint: () => 0 };
    const example = preprocessRecord(syntheticRecord(2), preprocessOptions(random));
    assert.equal(example.isNext, 1);
    assert.deepEqual(example.inputIds.slice(0, 4), [101, ...tokenizer.encode('a cat'), 102]);
    const batch = assembleBatch([example]);
    const mean = values(batch.values.image_feat).slice(0, 2048);
    assert.ok(
      mean.every((v) => v === Math.fround(2 / 35)),
      `2 feature rows of ones / 35 unmarked slots, got ${mean[0]}`,
    );
  });

  it('throws naming the caption file when a negative index has no caption', () => {
    const options = {
      ...preprocessOptions({ random: () => 0.99, randint: () => 3, npRandint: () => 0 }),
      numCaptions: 4,
    };
    assert.throws(
      () => preprocessRecord(syntheticRecord(1), options),
      (error: unknown) => error instanceof ConceptCaptionsError && /captions\.json/.test(error.message),
    );
  });

  it('overlaps are the reference numpy float32 iou() of concept_cap_dataset.py', () => {
    const boxes = new Float32Array([
      0, 0, 9, 9, 5, 5, 14, 14, 0.5, 0.25, 3.75, 8.125, 2.3, 1.7, 30.1, 20.9, 10, 10, 9, 9,
    ]);
    // np.float32 boxes through concept_cap_dataset.iou: rows 2, 3, 4
    const row = (i: number): number[] => Array.from(iou(boxes.subarray(i * 4, i * 4 + 4), boxes));
    assert.deepEqual(row(2), [0.37718749046325684, 0, 1, 0.030253831297159195, 0]);
    assert.deepEqual(row(3), [0.1034393385052681, 0.1718921810388565, 0.030253831297159195, 1, 0]);
    assert.deepEqual(row(4), [0, 0, 0, 0, Number.NaN]);
  });

  it('names all ten tensors in the loader order', () => {
    assert.deepEqual(
      [...CONCEPT_CAPTIONS_ORDER],
      [
        'input_ids',
        'input_mask',
        'segment_ids',
        'lm_label_ids',
        'is_next',
        'image_feat',
        'image_loc',
        'image_target',
        'image_label',
        'image_mask',
      ],
    );
  });
});

describe('msgpack-numpy', () => {
  it('keeps bin keys apart from str keys and decodes ndarray maps', () => {
    // {b"nd": True, b"type": "<f4", b"kind": b"", b"shape": [2], b"data": <2 floats>}
    const data = new Uint8Array(new Float32Array([1.5, -2]).buffer);
    const bytes = Uint8Array.from([
      0x85,
      0xc4,
      2,
      0x6e,
      0x64,
      0xc3,
      0xc4,
      4,
      0x74,
      0x79,
      0x70,
      0x65,
      0xa3,
      0x3c,
      0x66,
      0x34,
      0xc4,
      4,
      0x6b,
      0x69,
      0x6e,
      0x64,
      0xc4,
      0,
      0xc4,
      5,
      0x73,
      0x68,
      0x61,
      0x70,
      0x65,
      0x91,
      2,
      0xc4,
      4,
      0x64,
      0x61,
      0x74,
      0x61,
      0xc4,
      8,
      ...data,
    ]);
    const tensor = decodeMsgpackNumpy(bytes) as { dtype: string; shape: number[]; data: Uint8Array };
    assert.equal(tensor.dtype, 'float32');
    assert.deepEqual(tensor.shape, [2]);
    assert.deepEqual(Array.from(new Float32Array(tensor.data.slice().buffer)), [1.5, -2]);
    // The same map with a str key "nd" is not an array.
    const strKeyed = decodeMsgpackNumpy(Uint8Array.from([0x81, 0xa2, 0x6e, 0x64, 0xc3]));
    assert.ok(strKeyed instanceof Map && strKeyed.get('nd') === true);
  });

  it('decodes scalars, 64-bit ints and ext values', () => {
    assert.deepEqual(decodeMsgpack(Uint8Array.from([0x93, 0xff, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xc0])), [
      -1,
      1.5,
      null,
    ]);
    assert.equal(
      decodeMsgpack(Uint8Array.from([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])),
      2n ** 64n - 1n,
    );
    assert.equal(decodeMsgpack(Uint8Array.from([0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])), -2);
    const ext = decodeMsgpack(Uint8Array.from([0xd4, 5, 9]));
    assert.ok(ext instanceof MsgpackExt && ext.type === 5 && ext.data[0] === 9);
  });

  it('reports truncated input with its position', () => {
    assert.throws(
      () => decodeMsgpack(Uint8Array.from([0xa3, 0x61]), 'x.lmdb'),
      /x\.lmdb: msgpack at byte 1: needs 3 bytes/,
    );
    assert.throws(() => decodeMsgpack(Uint8Array.from([0xc1])), /reserved type byte 0xc1/);
  });
});

describe('jsonObjectValues', () => {
  it('keeps file order for integer-like keys, as Python dicts do', () => {
    assert.deepEqual(jsonObjectValues('{"9": "a", "1": {"x": [1, "}"]}, "5": "c\\"", "9": "d"}', 'f.json'), [
      'd',
      { x: [1, '}'] },
      'c"',
    ]);
    assert.deepEqual(jsonObjectValues(' {} ', 'f.json'), []);
    assert.throws(() => jsonObjectValues('{"a": 1,}', 'f.json'), /f\.json/);
  });
});
