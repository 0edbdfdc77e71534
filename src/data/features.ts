// Region features of the downstream tasks: the reference's ImageFeaturesH5Reader over a
// feature LMDB (b"keys" -> pickled key list; per image a pickled dict of image_h, image_w,
// boxes, features; the mean row prepended), the GT-box merge of the pointing and
// referring-expression datasets (GT rows without their global row after the detector rows),
// and truncation / padding to max_region_num.
//
// Arithmetic is float32 in the reference's order (numpy adds the rows of the mean one after
// another; areas and normalised boxes are float32 ops), so every value is bit-exact. A
// Float32Array element store rounds a double result to float32, which equals the float32
// operation for +, -, * and / of float32 operands.
import { native } from '../torch/native.js';
import { LmdbReader } from '../io/lmdb.js';
import { CheckpointFormatError } from '../io/format-error.js';
import { PYTHON_DATA_GLOBALS } from '../io/pickle-builtins.js';
import { NUMPY_GLOBALS } from '../io/pickle-numpy.js';
import { combineAllowLists, describe, unpickle } from '../io/pickle.js';
import { isRawTensor } from '../io/raw-tensor.js';
import { VilbertError } from '../vilbert-error.js';

/** Width of a detector (fc6) feature row. */
export const FEATURE_WIDTH = 2048;
/** Columns of a location row: x1, y1, x2, y2, area. */
export const LOCATION_WIDTH = 5;
/** The LMDB entry holding the pickled list of every image key. */
export const KEYS_ENTRY = 'keys';

const FEATURE_PICKLE_GLOBALS = combineAllowLists(PYTHON_DATA_GLOBALS, NUMPY_GLOBALS);

/** A feature store that cannot be read: names the store's path and the image key. */
export class FeatureStoreError extends VilbertError {
  override readonly name = 'FeatureStoreError';
  override readonly code = 'E_FEATURE_STORE';

  constructor(
    readonly path: string,
    readonly problem: string,
    readonly key?: string,
  ) {
    super(`${path}: ${key === undefined ? '' : `image '${key}': `}${problem}`);
  }
}

/** Regions of one image, row 0 the whole-image region. Rows are row-major. */
export interface Regions {
  /** Number of rows, the whole-image row included (the reference's `num_boxes`). */
  numBoxes: number;
  /** [numBoxes, 2048]; row 0 is the mean of the stored rows. */
  features: Float32Array;
  /**
   * [numBoxes, 5] `x1/W, y1/H, x2/W, y2/H, area/(W*H)`; row 0 `[0, 0, 1, 1, 1]`. The
   * reader's `image_location`, which the datasets call `boxes` and return as `spatials`.
   * Not clipped, as in the reference: a box outside the image gives values outside [0, 1],
   * a reversed one (x2 < x1) a negative area.
   */
  imageLocation: Float32Array;
  /**
   * [numBoxes, 5] pixel `x1, y1, x2, y2` and the same normalised area; row 0
   * `[0, 0, W, H, W*H]`. The reader's `image_location_ori` (the datasets' `boxes_ori`,
   * used for IoU targets). Float32: the reference's float64 holds float32 values here,
   * except W*H, which is exact in float32 up to 2^24 pixels.
   */
  imageLocationOri: Float32Array;
}

/** What `ImageFeatureReader.get` returns: the regions and the image they belong to. */
export interface ImageFeatures extends Regions {
  /** The LMDB key (`str(image_id)`). */
  key: string;
  imageWidth: number;
  imageHeight: number;
}

export interface ImageFeatureReaderOptions {
  /**
   * Keep every decoded image after its first read (the reference's `in_memory`). Cached
   * results are shared between calls: do not write into them.
   */
  inMemory?: boolean;
}

/** A region-feature LMDB read as the reference's `ImageFeaturesH5Reader`. */
export class ImageFeatureReader {
  private readonly cache: Map<string, ImageFeatures> | undefined;

  private constructor(
    private readonly store: LmdbReader,
    /** Image keys in the order of the `keys` entry, each mapped to its first position. */
    private readonly keyIndex: Map<string, number>,
    options: ImageFeatureReaderOptions,
  ) {
    this.cache = options.inMemory === true ? new Map() : undefined;
  }

  static open(path: string, options: ImageFeatureReaderOptions = {}): ImageFeatureReader {
    const store = LmdbReader.open(path);
    try {
      return new ImageFeatureReader(store, readKeyIndex(store), options);
    } catch (error) {
      store.close();
      throw error;
    }
  }

  get path(): string {
    return this.store.path;
  }

  /** Number of images listed in the `keys` entry. */
  get length(): number {
    return this.keyIndex.size;
  }

  /** The image keys, in `keys` order. */
  keys(): string[] {
    return [...this.keyIndex.keys()];
  }

  has(imageId: string | number): boolean {
    return this.keyIndex.has(String(imageId));
  }

  /** The image's regions; its id is looked up as `str(image_id)` in the `keys` list. */
  get(imageId: string | number): ImageFeatures {
    const key = String(imageId);
    const cached = this.cache?.get(key);
    if (cached !== undefined) return cached;
    const features = this.#decode(key, (bytes) => decodeImage(bytes, this.path, key));
    this.cache?.set(key, features);
    return features;
  }

  /**
   * `padRegions(get(imageId), maxRegionNum)`, decoded straight into the padded arrays (one
   * copy of the features, not two).
   *
   * With `into` (arrays of exactly maxRegionNum rows, e.g. the last call's result or rows
   * of a batch), the regions are written there and nothing is allocated: the caller owns the
   * memory and may reuse it for the next image. This is the fast path for reading many
   * images: a fresh result is ~0.4-0.8 MB that V8 frees only at its next collection, so
   * every read writes into memory last touched long ago and the collections run often,
   * where Python's reference count hands the last array's warm memory straight back.
   */
  getPadded(imageId: string | number, maxRegionNum: number, into?: PaddedRegions): PaddedRegions {
    if (!Number.isSafeInteger(maxRegionNum) || maxRegionNum < 1)
      throw new RangeError(`max_region_num must be a positive integer, got ${maxRegionNum}`);
    if (into !== undefined) checkPaddedTarget(into, maxRegionNum);
    if (this.cache) {
      const padded = padRegions(this.get(imageId), maxRegionNum);
      if (into === undefined) return padded;
      into.features.set(padded.features);
      into.spatials.set(padded.spatials);
      into.imageMask.set(padded.imageMask);
      return { ...into, numBoxes: padded.numBoxes };
    }
    const key = String(imageId);
    const buffers = into && {
      features: into.features,
      imageLocation: into.spatials,
      imageLocationOri: this.#scratchLocations(maxRegionNum),
    };
    const regions = this.#decode(key, (bytes) => decodeImage(bytes, this.path, key, maxRegionNum, buffers));
    const imageMask = into?.imageMask ?? new BigInt64Array(maxRegionNum);
    imageMask.fill(1n, 0, regions.numBoxes);
    if (into !== undefined) {
      imageMask.fill(0n, regions.numBoxes);
      return { numBoxes: regions.numBoxes, features: into.features, spatials: into.spatials, imageMask };
    }
    return { numBoxes: regions.numBoxes, features: regions.features, spatials: regions.imageLocation, imageMask };
  }

  #scratch: Float32Array | undefined;

  /** Pixel locations are computed with the normalised ones but not returned by getPadded. */
  #scratchLocations(rows: number): Float32Array {
    if (this.#scratch === undefined || this.#scratch.length < rows * LOCATION_WIDTH)
      this.#scratch = new Float32Array(rows * LOCATION_WIDTH);
    return this.#scratch.subarray(0, rows * LOCATION_WIDTH);
  }

  /**
   * Decodes the stored value in place, from the LMDB memory map: decodeImage copies out
   * everything it keeps, so no copy of the ~1 MB value is made first.
   */
  #decode<T>(key: string, decode: (bytes: Uint8Array) => T): T {
    if (!this.keyIndex.has(key))
      throw new FeatureStoreError(this.path, `not in the store's '${KEYS_ENTRY}' list (${this.length} images)`, key);
    const result = this.store.withValue(key, decode);
    if (result === null)
      throw new FeatureStoreError(this.path, `listed in '${KEYS_ENTRY}' but the LMDB has no entry for it`, key);
    return result;
  }

  close(): void {
    this.store.close();
    this.cache?.clear();
  }
}

function readKeyIndex(store: LmdbReader): Map<string, number> {
  const bytes = store.get(KEYS_ENTRY);
  if (bytes === null) throw new FeatureStoreError(store.path, `no '${KEYS_ENTRY}' entry: not a region-feature LMDB`);
  const keys = decodePickle(bytes, store.path, KEYS_ENTRY);
  if (!Array.isArray(keys))
    throw new FeatureStoreError(store.path, `'${KEYS_ENTRY}' holds a ${describe(keys)}, expected a list of bytes`);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const index = new Map<string, number>();
  keys.forEach((key: unknown, position) => {
    if (!(key instanceof Uint8Array))
      throw new FeatureStoreError(store.path, `'${KEYS_ENTRY}'[${position}] is a ${describe(key)}, expected bytes`);
    let text: string;
    try {
      text = decoder.decode(key);
    } catch {
      throw new FeatureStoreError(store.path, `'${KEYS_ENTRY}'[${position}] is not UTF-8`);
    }
    // list.index() finds the first occurrence.
    if (!index.has(text)) index.set(text, position);
  });
  return index;
}

function decodePickle(bytes: Uint8Array, path: string, key: string): unknown {
  try {
    return unpickle(bytes, { allow: FEATURE_PICKLE_GLOBALS, source: path });
  } catch (error) {
    const problem = error instanceof CheckpointFormatError ? error.problem : (error as Error).message;
    throw new FeatureStoreError(path, `value is not a readable pickle: ${problem}`, key);
  }
}

/** `int(value)` of the reference, for `image_h` / `image_w`; must be positive. */
function positiveInt(item: Map<unknown, unknown>, field: string, path: string, key: string): number {
  const value = item.get(field);
  let result = Number.NaN;
  if (typeof value === 'number' || typeof value === 'bigint') result = Math.trunc(Number(value));
  else if (typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value)) result = Number(value);
  if (!Number.isSafeInteger(result) || result <= 0) {
    throw new FeatureStoreError(
      path,
      `'${field}' is ${value === undefined ? 'missing' : JSON.stringify(typeof value === 'bigint' ? String(value) : value)}, expected a positive integer`,
      key,
    );
  }
  return result;
}

/**
 * A float32 array field reshaped to [rows, width] (numpy's `reshape(-1, width)` of a
 * [..., width] array), as its little-endian bytes: they may sit at any offset of the
 * pickle, so callers copy them where they need aligned floats.
 */
function float32RowBytes(
  item: Map<unknown, unknown>,
  field: string,
  width: number,
  path: string,
  key: string,
): { rows: number; bytes: Uint8Array } {
  const tensor = item.get(field);
  if (!isRawTensor(tensor))
    throw new FeatureStoreError(
      path,
      `'${field}' is ${tensor === undefined ? 'missing' : `a ${describe(tensor)}`}, expected a numpy array`,
      key,
    );
  const { dtype, shape } = tensor;
  if (dtype !== 'float32') throw new FeatureStoreError(path, `'${field}' has dtype ${dtype}, expected float32`, key);
  if (shape.length === 0 || shape[shape.length - 1] !== width) {
    throw new FeatureStoreError(path, `'${field}' has shape [${shape.join(', ')}], expected [N, ${width}]`, key);
  }
  return { rows: tensor.data.byteLength / 4 / width, bytes: tensor.data };
}

function alignedFloats(bytes: Uint8Array): Float32Array {
  return bytes.byteOffset % 4 === 0
    ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
    : new Float32Array(bytes.slice().buffer);
}

/**
 * `num_boxes` is not read by the reference (the arrays' rows are used). The detector writes
 * the number of its kept boxes with a non-zero confidence there, which may be fewer than
 * the rows, never more: more means the arrays lost rows.
 */
function checkNumBoxes(item: Map<unknown, unknown>, rows: number, path: string, key: string): void {
  const value = item.get('num_boxes');
  if (value === undefined) return;
  // Read as int() reads image_h: a number, or a decimal string.
  const count =
    typeof value === 'bigint' || (typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value)) ? Number(value) : value;
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0 || count > rows) {
    const shown =
      typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string'
        ? JSON.stringify(String(value))
        : `a ${describe(value)}`;
    throw new FeatureStoreError(
      path,
      `'num_boxes' is ${shown}, but 'features' and 'boxes' have ${rows} rows (expected a count of at most ${rows})`,
      key,
    );
  }
}

/** Every coordinate of every stored box (kept or not) must be finite. */
function checkFiniteBoxes(boxes: Float32Array, path: string, key: string): void {
  for (let at = 0; at < boxes.length; at++) {
    if (Number.isFinite(boxes[at]!)) continue;
    const row = Math.floor(at / 4);
    throw new FeatureStoreError(
      path,
      `'boxes' row ${row} is [${[...boxes.subarray(row * 4, row * 4 + 4)].join(', ')}]: not finite`,
      key,
    );
  }
}

/**
 * The mean row sums every stored feature row (kept or not) column by column, and a float32
 * sum that met a NaN or an infinity stays non-finite: the native copy reports whether the
 * mean row is finite, which proves every feature finite without a second pass. A non-finite
 * one is either a stored NaN/infinity or finite values whose float32 sum overflows
 * (magnitudes near 3.4e38 / rows, which no detector gives); both would reach the model as
 * infinities or NaN, so both are refused. Only then are the rows scanned, to say which.
 */
function refuseNonFiniteFeatures(
  mean: Float32Array,
  stored: Uint8Array,
  rows: number,
  path: string,
  key: string,
): never {
  const column = mean.subarray(0, FEATURE_WIDTH).findIndex((value) => !Number.isFinite(value));
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  for (let row = 0; row < rows; row++) {
    const value = view.getFloat32((row * FEATURE_WIDTH + column) * 4, true);
    if (!Number.isFinite(value))
      throw new FeatureStoreError(path, `'features' row ${row}, column ${column} is ${value}`, key);
  }
  throw new FeatureStoreError(
    path,
    `'features' column ${column} sums to ${mean[column]} in float32 over ${rows} rows: its values are too large to be detector features`,
    key,
  );
}

/**
 * The locations of the kept boxes: x1/W etc. of finite coordinates are finite, but the
 * float32 area (y2 - y1) * (x2 - x1) overflows for coordinates beyond ~1.8e19.
 */
function checkFiniteAreas(imageLocation: Float32Array, numBoxes: number, path: string, key: string): void {
  for (let row = 1; row < numBoxes; row++) {
    const at = row * LOCATION_WIDTH;
    if (!Number.isFinite(imageLocation[at + 4]!)) {
      throw new FeatureStoreError(
        path,
        `'boxes' row ${row - 1}'s area overflows float32: its coordinates are too large to be pixels of the image`,
        key,
      );
    }
  }
}

/**
 * One stored value as the reference reads it, refusing what the reference would turn into
 * non-finite model inputs: NaN or infinite boxes or features, a float32 overflow, an image
 * without boxes (its mean row would be 0/0), and a `num_boxes` above the rows. Boxes outside
 * the image (negative coordinates, x2 > image_w, x2 < x1) are kept as the reference keeps
 * them: normalised by the image size without clipping, a reversed box giving a negative
 * area. Detector boxes lie inside the image, and such a box is a bad box, not a bad number.
 */
function decodeImage(
  bytes: Uint8Array,
  path: string,
  key: string,
  capacity?: number,
  into?: RegionBuffers,
): ImageFeatures {
  const item = decodePickle(bytes, path, key);
  if (!(item instanceof Map)) throw new FeatureStoreError(path, `value is a ${describe(item)}, expected a dict`, key);
  const imageHeight = positiveInt(item, 'image_h', path, key);
  const imageWidth = positiveInt(item, 'image_w', path, key);
  const stored = float32RowBytes(item, 'features', FEATURE_WIDTH, path, key);
  const boxes = float32RowBytes(item, 'boxes', 4, path, key);
  if (boxes.rows !== stored.rows)
    throw new FeatureStoreError(path, `'boxes' has ${boxes.rows} rows but 'features' has ${stored.rows}`, key);
  if (stored.rows === 0)
    throw new FeatureStoreError(
      path,
      `has no boxes ('features' has 0 rows): its whole-image row, their mean, would be NaN`,
      key,
    );
  checkNumBoxes(item, stored.rows, path, key);
  const boxValues = alignedFloats(boxes.bytes);
  checkFiniteBoxes(boxValues, path, key);
  const regions = regionsOf(stored.bytes, boxValues, stored.rows, imageWidth, imageHeight, capacity, into, (mean) =>
    refuseNonFiniteFeatures(mean, stored.bytes, stored.rows, path, key),
  );
  checkFiniteAreas(regions.imageLocation, regions.numBoxes, path, key);
  return { key, imageWidth, imageHeight, ...regions };
}

/** Caller-owned arrays for regionsOf: at least `capacity` rows each; every element of the first `capacity` rows is written. */
export type RegionBuffers = Omit<Regions, 'numBoxes'>;

/**
 * ImageFeaturesH5Reader.__getitem__ on decoded arrays: the mean row and the 5-d locations.
 * With a capacity below N+1 (a dataset's max_region_num) only the first `capacity` rows are
 * written, into zero-padded arrays of that many rows: `padRegions(get(id), R)` in one pass.
 * The mean row is always the mean of all N stored rows. With `into`, the rows are written
 * there with ordinary stores (reused memory is warm); fresh arrays get streaming stores.
 * The readers and the pipelines' passed-in arrays share this. `onNonFiniteMean` is called
 * with the mean row when an element of it is not finite (a NaN or an infinity among the
 * stored features, or a float32 overflow of a column's sum).
 */
export function regionsOf(
  storedBytes: Uint8Array,
  boxes: Float32Array,
  rows: number,
  width: number,
  height: number,
  capacity = rows + 1,
  into?: RegionBuffers,
  onNonFiniteMean?: (mean: Float32Array) => void,
): Regions {
  const numBoxes = Math.min(rows + 1, capacity);
  let features: Float32Array;
  let imageLocation: Float32Array; // [capacity, 5]
  let imageLocationOri: Float32Array; // [capacity, 5]
  if (into === undefined) {
    // [capacity, 2048], not zeroed: every element is written by the native copy.
    const bytes = Buffer.allocUnsafeSlow(capacity * FEATURE_WIDTH * 4);
    features = new Float32Array(bytes.buffer, bytes.byteOffset, capacity * FEATURE_WIDTH);
    imageLocation = new Float32Array(capacity * LOCATION_WIDTH);
    imageLocationOri = new Float32Array(capacity * LOCATION_WIDTH);
  } else {
    features = into.features.subarray(0, capacity * FEATURE_WIDTH);
    imageLocation = into.imageLocation.subarray(0, capacity * LOCATION_WIDTH);
    imageLocationOri = into.imageLocationOri.subarray(0, capacity * LOCATION_WIDTH);
    if (
      features.length < capacity * FEATURE_WIDTH ||
      imageLocation.length < capacity * LOCATION_WIDTH ||
      imageLocationOri.length < capacity * LOCATION_WIDTH
    ) {
      throw new RangeError(`region arrays hold fewer than the ${capacity} rows to write`);
    }
    imageLocation.fill(0, numBoxes * LOCATION_WIDTH);
    imageLocationOri.fill(0, numBoxes * LOCATION_WIDTH);
  }
  // Row 0 the mean of all stored rows (0 rows: NaN, as numpy), rows 1.. the kept ones in one
  // pass, the padding rows cleared.
  const meanFinite = native.copyRowsWithMeanF32(
    storedBytes,
    rows,
    FEATURE_WIDTH,
    numBoxes - 1,
    features,
    into === undefined,
  );
  if (!meanFinite) onNonFiniteMean?.(features.subarray(0, FEATURE_WIDTH));

  const w = Math.fround(width);
  const h = Math.fround(height);
  const imageArea = Math.fround(width * height);
  imageLocation.set([0, 0, 1, 1, 1]);
  imageLocationOri.set([0, 0, width, height, width * height]);
  for (let row = 0; row < numBoxes - 1; row++) {
    const x1 = boxes[row * 4]!;
    const y1 = boxes[row * 4 + 1]!;
    const x2 = boxes[row * 4 + 2]!;
    const y2 = boxes[row * 4 + 3]!;
    const area = Math.fround(Math.fround(Math.fround(y2 - y1) * Math.fround(x2 - x1)) / imageArea);
    const at = (row + 1) * LOCATION_WIDTH;
    imageLocationOri[at] = x1;
    imageLocationOri[at + 1] = y1;
    imageLocationOri[at + 2] = x2;
    imageLocationOri[at + 3] = y2;
    imageLocationOri[at + 4] = area;
    imageLocation[at] = x1 / w;
    imageLocation[at + 1] = y1 / h;
    imageLocation[at + 2] = x2 / w;
    imageLocation[at + 3] = y2 / h;
    imageLocation[at + 4] = area;
  }
  return { numBoxes, features, imageLocation, imageLocationOri };
}

/**
 * Detector regions followed by the GT regions without their whole-image row, as the
 * refcoco*, FlickrGrounding, Visual7w and GuessWhatPointing datasets mix them
 * (`num_boxes + gt_num_boxes - 1` rows). Cap the result with `truncateRegions`.
 */
export function mergeGtRegions(detector: Regions, groundTruth: Regions): Regions {
  const gtRows = groundTruth.numBoxes - 1;
  const concat = (first: Float32Array, second: Float32Array, width: number): Float32Array => {
    const out = new Float32Array((detector.numBoxes + gtRows) * width);
    out.set(first.subarray(0, detector.numBoxes * width));
    out.set(second.subarray(width, groundTruth.numBoxes * width), detector.numBoxes * width);
    return out;
  };
  return {
    numBoxes: detector.numBoxes + gtRows,
    features: concat(detector.features, groundTruth.features, FEATURE_WIDTH),
    imageLocation: concat(detector.imageLocation, groundTruth.imageLocation, LOCATION_WIDTH),
    imageLocationOri: concat(detector.imageLocationOri, groundTruth.imageLocationOri, LOCATION_WIDTH),
  };
}

/** The first `min(numBoxes, maxRegionNum)` rows (views, no copy): row 0 and the first boxes. */
export function truncateRegions(regions: Regions, maxRegionNum: number): Regions {
  if (!Number.isSafeInteger(maxRegionNum) || maxRegionNum < 1)
    throw new RangeError(`max_region_num must be a positive integer, got ${maxRegionNum}`);
  const numBoxes = Math.min(regions.numBoxes, maxRegionNum);
  return {
    numBoxes,
    features: regions.features.subarray(0, numBoxes * FEATURE_WIDTH),
    imageLocation: regions.imageLocation.subarray(0, numBoxes * LOCATION_WIDTH),
    imageLocationOri: regions.imageLocationOri.subarray(0, numBoxes * LOCATION_WIDTH),
  };
}

/** Regions as a dataset item holds them: truncated, zero-padded to maxRegionNum rows. */
export interface PaddedRegions {
  /** Real (kept) rows. */
  numBoxes: number;
  /** [maxRegionNum, 2048] */
  features: Float32Array;
  /** [maxRegionNum, 5] normalised locations (the datasets' `spatials`). */
  spatials: Float32Array;
  /** [maxRegionNum] 1 for real rows, 0 for padding (int64, as the reference's `long`). */
  imageMask: BigInt64Array;
}

function checkPaddedTarget(into: PaddedRegions, maxRegionNum: number): void {
  const sizes: [string, ArrayLike<unknown>, number][] = [
    ['features', into.features, FEATURE_WIDTH],
    ['spatials', into.spatials, LOCATION_WIDTH],
    ['imageMask', into.imageMask, 1],
  ];
  for (const [name, array, width] of sizes) {
    if (array.length !== maxRegionNum * width)
      throw new RangeError(
        `getPadded into: '${name}' holds ${array.length} elements, expected ${maxRegionNum} x ${width}`,
      );
  }
}

export function padRegions(regions: Regions, maxRegionNum: number): PaddedRegions {
  const kept = truncateRegions(regions, maxRegionNum);
  const features = new Float32Array(maxRegionNum * FEATURE_WIDTH);
  const spatials = new Float32Array(maxRegionNum * LOCATION_WIDTH);
  const imageMask = new BigInt64Array(maxRegionNum);
  features.set(kept.features);
  spatials.set(kept.imageLocation);
  imageMask.fill(1n, 0, kept.numBoxes);
  return { numBoxes: kept.numBoxes, features, spatials, imageMask };
}
