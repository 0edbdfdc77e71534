// The two ways a pipeline is given an image: the region features of its detector boxes
// (what the reference's extract_features.py saves per image) or an image of a region-feature
// LMDB. Both become the feature reader's Regions: the whole-image mean row first, then the
// boxes with their 5-d normalised locations.
//
// Arrays passed in are refused, naming the argument, where they would reach the model as
// NaN or infinity, as the feature stores refuse their values: a NaN or infinite feature or
// box coordinate (any row, kept or not: the mean row sums them all), a feature column whose
// float32 sum overflows, a box whose float32 area overflows.
import { resolve } from 'node:path';
import { FEATURE_WIDTH, ImageFeatureReader, type Regions, regionsOf } from '../data/features.js';
import { native } from '../torch/native.js';
import { VilbertError } from '../vilbert-error.js';

/** Region features passed in: N detector boxes of one image. */
export interface DetectedRegions {
  /** [N * 2048] the boxes' fc6 features, row-major. */
  features: Float32Array;
  /** [N * 4] the boxes as x1, y1, x2, y2 in pixels of the original image. */
  boxes: Float32Array;
  /** The original image's size in pixels. */
  width: number;
  height: number;
}

/** An image of a region-feature LMDB (the reference's *_resnext152_faster_rcnn_genome.lmdb). */
export interface StoredImage {
  /** An open reader (left open) or the LMDB's path (opened once per pipeline, closed by dispose()). */
  store: ImageFeatureReader | string;
  imageId: string | number;
}

export type ImageInput = DetectedRegions | StoredImage;

/** An image's regions, with what the results report about it. */
export interface ImageRegions extends Regions {
  width: number;
  height: number;
  /** The LMDB image id, when the image came from a store. */
  imageId?: string;
}

/** An image the pipelines cannot use: says which argument and why. */
export class ImageInputError extends VilbertError {
  override readonly name = 'ImageInputError';
  override readonly code = 'E_IMAGE_INPUT';
}

const isImage = (image: unknown): image is ImageInput => typeof image === 'object' && image !== null;

function isStored(image: ImageInput): image is StoredImage {
  return 'store' in image;
}

/** What an argument is, for errors. */
function given(value: unknown): string {
  if (value instanceof Float32Array) return `${value.length} values`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (Array.isArray(value)) return `an Array of ${value.length}`;
  return value === undefined || value === null ? String(value) : `a ${typeof value}`;
}

/**
 * Shapes, sizes and boxes of region arrays passed in; returns their rows. A box is refused
 * when a coordinate is NaN or infinite or its float32 area overflows (the image area it is
 * divided by is at least 1, so a finite area gives a finite location).
 */
function checkDetected(input: DetectedRegions, what: string): number {
  const { features, boxes, width, height } = input;
  if (!(features instanceof Float32Array) || features.length === 0 || features.length % FEATURE_WIDTH !== 0) {
    throw new ImageInputError(
      `${what}: features must be a non-empty Float32Array of N * ${FEATURE_WIDTH} values, got ${given(features)}`,
    );
  }
  const rows = features.length / FEATURE_WIDTH;
  if (!(boxes instanceof Float32Array) || boxes.length !== rows * 4) {
    const count = boxes instanceof Float32Array && boxes.length % 4 === 0 ? ` (${boxes.length / 4} boxes)` : '';
    throw new ImageInputError(
      `${what}: boxes must be a Float32Array of ${rows} * 4 values (one x1, y1, x2, y2 box per feature row), got ${given(boxes)}${count}`,
    );
  }
  for (const [name, size] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (!Number.isSafeInteger(size) || size <= 0)
      throw new ImageInputError(`${what}: ${name} must be a positive integer (pixels), got ${size}`);
  }
  for (let at = 0; at < boxes.length; at += 4) {
    // (y2 - y1) * (x2 - x1) as regionsOf computes it; NaN or infinite when a coordinate is.
    if (
      Number.isFinite(
        Math.fround(Math.fround(boxes[at + 3]! - boxes[at + 1]!) * Math.fround(boxes[at + 2]! - boxes[at]!)),
      )
    )
      continue;
    const box = boxes.subarray(at, at + 4);
    const shown = `${what}: boxes row ${at / 4} is [${box.join(', ')}]`;
    throw new ImageInputError(
      box.every(Number.isFinite) ? `${shown}: its float32 area overflows` : `${shown}: not finite`,
    );
  }
  return rows;
}

/**
 * The mean row sums every feature row column by column in float32, and a sum that met a NaN
 * or an infinity, or overflowed, stays non-finite: a finite mean row proves every feature
 * finite without another pass. The rows are scanned only on failure, to name the value.
 */
function refuseNonFiniteMean(mean: Float32Array, features: Float32Array, rows: number, what: string): never {
  const at = features.findIndex((value) => !Number.isFinite(value));
  if (at >= 0)
    throw new ImageInputError(
      `${what}: features row ${Math.floor(at / FEATURE_WIDTH)}, column ${at % FEATURE_WIDTH} is ${features[at]}`,
    );
  const column = mean.findIndex((value) => !Number.isFinite(value));
  // An overflowing sum is an infinity, and so is its mean.
  throw new ImageInputError(
    `${what}: features column ${column} sums to ${mean[column]} in float32 over ${rows} rows: its values are too large to be detector features`,
  );
}

const featureBytes = (features: Float32Array): Uint8Array =>
  new Uint8Array(features.buffer, features.byteOffset, features.byteLength);

/**
 * ImageFeaturesH5Reader.__getitem__ on region arrays: the mean row and the 5-d locations,
 * in float32 and in the same order of operations as src/data/features.ts, so an image
 * passed in gives the bits its LMDB entry gives.
 */
function detectionRegions(input: DetectedRegions, what: string): ImageRegions {
  const rows = checkDetected(input, what);
  const { features, boxes, width, height } = input;
  const regions = regionsOf(featureBytes(features), boxes, rows, width, height, rows + 1, undefined, (mean) =>
    refuseNonFiniteMean(mean, features, rows, what),
  );
  return { ...regions, width, height };
}

function checkStored(image: StoredImage, what: string): void {
  if (!(image.store instanceof ImageFeatureReader) && typeof image.store !== 'string') {
    throw new ImageInputError(
      `${what}: store must be an ImageFeatureReader or an LMDB path, got ${given(image.store)}`,
    );
  }
  if (typeof image.imageId !== 'string' && typeof image.imageId !== 'number') {
    throw new ImageInputError(`${what}: imageId must be a string or a number`);
  }
}

/** Turns pipeline image arguments into regions, opening each LMDB path once. */
export class ImageResolver {
  readonly #opened = new Map<string, ImageFeatureReader>();

  regions(image: ImageInput, what = 'image'): ImageRegions {
    if (!isImage(image))
      throw new ImageInputError(`${what}: expected { features, boxes, width, height } or { store, imageId }`);
    if (!isStored(image)) return detectionRegions(image, what);
    checkStored(image, what);
    const stored = this.#reader(image.store).get(image.imageId);
    return { ...stored, width: stored.imageWidth, height: stored.imageHeight, imageId: stored.key };
  }

  /**
   * What regions() refuses of an argument, without building its regions: a call over many
   * images (retrieve) checks them all before its first forward pass. An image of a store is
   * checked when it is read (the store refuses bad values then; reading every image twice
   * would double the reads).
   */
  check(image: ImageInput, what: string): void {
    if (!isImage(image))
      throw new ImageInputError(`${what}: expected { features, boxes, width, height } or { store, imageId }`);
    if (isStored(image)) return checkStored(image, what);
    const rows = checkDetected(image, what);
    const mean = new Float32Array(FEATURE_WIDTH); // [2048] the mean row, as regionsOf sums it
    if (!native.copyRowsWithMeanF32(featureBytes(image.features), rows, FEATURE_WIDTH, 0, mean, false)) {
      refuseNonFiniteMean(mean, image.features, rows, what);
    }
  }

  #reader(store: ImageFeatureReader | string): ImageFeatureReader {
    if (store instanceof ImageFeatureReader) return store;
    const path = resolve(store);
    let reader = this.#opened.get(path);
    if (reader === undefined) {
      reader = ImageFeatureReader.open(path);
      this.#opened.set(path, reader);
    }
    return reader;
  }

  /** Closes the stores this resolver opened (readers passed in stay open). */
  close(): void {
    for (const reader of this.#opened.values()) reader.close();
    this.#opened.clear();
  }
}
