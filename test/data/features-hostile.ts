// Feature-LMDB values the reader must refuse or read as the reference does, written into a
// fresh store: the feature tests read them in-process, the hostile-file corpus in a child.
import { writeLmdb } from '../../src/io/lmdb.js';
import { pickleData } from '../../src/io/pickle-numpy-writer.js';
import { FEATURE_WIDTH } from '../../src/data/features.js';

/** Rows of every value below; the tests keep fewer to check rows that are not kept. */
export const ROWS = 5;
export const IMAGE_WIDTH = 100;
export const IMAGE_HEIGHT = 80;

interface Value {
  rows: number;
  numBoxes: unknown;
  boxes: Float32Array;
  features: Float32Array;
}

/** A good value of `rows` boxes inside a 100 x 80 image, then `edit`. */
function value(edit: (value: Value) => void = () => {}, rows = ROWS): Record<string, unknown> {
  const boxes = Float32Array.from({ length: rows * 4 }, (_, i) => [10, 8, 60, 40][i % 4]! + Math.floor(i / 4));
  const features = Float32Array.from({ length: rows * FEATURE_WIDTH }, (_, i) => (i % 97) / 8);
  const item: Value = { rows, numBoxes: rows, boxes, features };
  edit(item);
  const raw = (data: Float32Array, width: number) => ({
    dtype: 'float32',
    shape: [data.length / width, width],
    data: new Uint8Array(data.buffer),
  });
  return {
    image_id: 1,
    image_h: IMAGE_HEIGHT,
    image_w: IMAGE_WIDTH,
    ...(item.numBoxes === undefined ? {} : { num_boxes: item.numBoxes }),
    boxes: raw(item.boxes, 4),
    features: raw(item.features, FEATURE_WIDTH),
  };
}

const setFeature = (row: number, column: number, to: number) => (item: Value) => {
  item.features[row * FEATURE_WIDTH + column] = to;
};
const setBox = (row: number, coordinate: number, to: number) => (item: Value) => {
  item.boxes[row * 4 + coordinate] = to;
};

/** Values read as the reference reads them. */
export const READ: Record<string, Record<string, unknown>> = {
  good: value(),
  // The detector counts only boxes with a non-zero confidence; the reference ignores the field.
  fewer_num_boxes: value((item) => (item.numBoxes = ROWS - 2)),
  no_num_boxes: value((item) => (item.numBoxes = undefined)),
  // Not clipped: x1 < 0, y2 > image_h, x2 < x1 (a negative area).
  outside_image: value((item) => item.boxes.set([-20, 5, 150, 90, 50, 10, 30, 20], 0)),
};

/** Values refused, each with what the error must say after `<store>: image '<key>': `. */
export const REFUSED: Record<string, [Record<string, unknown>, RegExp]> = {
  more_num_boxes: [
    value((item) => (item.numBoxes = ROWS + 1)),
    /^'num_boxes' is "6", but 'features' and 'boxes' have 5 rows/,
  ],
  negative_num_boxes: [value((item) => (item.numBoxes = -1)), /^'num_boxes' is "-1"/],
  text_num_boxes: [value((item) => (item.numBoxes = 'many')), /^'num_boxes' is "many"/],
  list_num_boxes: [value((item) => (item.numBoxes = [5])), /^'num_boxes' is a tuple\/list/],
  no_boxes: [value(undefined, 0), /^has no boxes \('features' has 0 rows\)/],
  nan_feature: [value(setFeature(1, 7, Number.NaN)), /^'features' row 1, column 7 is NaN$/],
  // Row 4 is past the rows a read of 3 keeps: the mean still covers it.
  infinite_feature_not_kept: [
    value(setFeature(ROWS - 1, FEATURE_WIDTH - 1, Infinity)),
    /^'features' row 4, column 2047 is Infinity$/,
  ],
  opposite_infinities: [
    value((item) => (setFeature(2, 0, -Infinity)(item), setFeature(3, 0, Infinity)(item))),
    /^'features' row 2, column 0 is -Infinity$/,
  ],
  overflowing_features: [
    value((item) => [0, 1, 2, 3, 4].forEach((row) => setFeature(row, 3, 3e38)(item))),
    /^'features' column 3 sums to Infinity in float32 over 5 rows/,
  ],
  nan_box: [value(setBox(2, 0, Number.NaN)), /^'boxes' row 2 is \[NaN, 10, 62, 42\]: not finite$/],
  infinite_box_not_kept: [
    value(setBox(ROWS - 1, 3, -Infinity)),
    /^'boxes' row 4 is \[14, 12, 64, -Infinity\]: not finite$/,
  ],
  huge_box: [value((item) => item.boxes.set([-1e20, -1e20, 1e20, 1e20], 0)), /^'boxes' row 0's area overflows float32/],
};

/** A feature LMDB (a directory, as the released ones) holding `values` and their `keys` list. */
export function writeFeatureStore(path: string, values: Record<string, Record<string, unknown>>): void {
  const keys = Object.keys(values);
  writeLmdb(path, [
    ...keys.map((key) => [key, pickleData(values[key])] as const),
    ['keys', pickleData(keys.map((key) => Buffer.from(key)))],
  ]);
}
