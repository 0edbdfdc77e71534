// The two ways a pipeline is given an image: the region features of its detector boxes
// (what the reference's extract_features.py saves per image) or an image of a region-feature
// LMDB. Both become the feature reader's Regions: the whole-image mean row first, then the
// boxes with their 5-d normalised locations.
import { resolve } from 'node:path';
import { FEATURE_WIDTH, ImageFeatureReader, type Regions, regionsOf } from '../data/features.js';

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
export class ImageInputError extends TypeError {
  override readonly name = 'ImageInputError';
}

function isStored(image: ImageInput): image is StoredImage {
  return typeof image === 'object' && image !== null && 'store' in image;
}

/**
 * ImageFeaturesH5Reader.__getitem__ on region arrays: the mean row and the 5-d locations,
 * in float32 and in the same order of operations as src/data/features.ts, so an image
 * passed in gives the bits its LMDB entry gives.
 */
function detectionRegions(input: DetectedRegions, what: string): ImageRegions {
  const { features, boxes, width, height } = input;
  if (!(features instanceof Float32Array) || features.length === 0 || features.length % FEATURE_WIDTH !== 0) {
    throw new ImageInputError(`${what}: features must be a non-empty Float32Array of N * ${FEATURE_WIDTH} values`);
  }
  const rows = features.length / FEATURE_WIDTH;
  if (!(boxes instanceof Float32Array) || boxes.length !== rows * 4) {
    throw new ImageInputError(`${what}: boxes must be a Float32Array of ${rows} * 4 values (one x1, y1, x2, y2 box per feature row), got ${boxes?.length ?? 'none'}`);
  }
  for (const [name, size] of [['width', width], ['height', height]] as const) {
    if (!Number.isSafeInteger(size) || size <= 0) throw new ImageInputError(`${what}: ${name} must be a positive integer (pixels), got ${size}`);
  }
  const bytes = new Uint8Array(features.buffer, features.byteOffset, features.byteLength);
  return { ...regionsOf(bytes, boxes, rows, width, height), width, height };
}

/** Turns pipeline image arguments into regions, opening each LMDB path once. */
export class ImageResolver {
  readonly #opened = new Map<string, ImageFeatureReader>();

  regions(image: ImageInput, what = 'image'): ImageRegions {
    if (typeof image !== 'object' || image === null) throw new ImageInputError(`${what}: expected { features, boxes, width, height } or { store, imageId }`);
    if (!isStored(image)) return detectionRegions(image, what);
    if (typeof image.imageId !== 'string' && typeof image.imageId !== 'number') {
      throw new ImageInputError(`${what}: imageId must be a string or a number`);
    }
    const stored = this.#reader(image.store).get(image.imageId);
    return { ...stored, width: stored.imageWidth, height: stored.imageHeight, imageId: stored.key };
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
