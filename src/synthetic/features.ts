// Region features of the synthetic world, laid out as the reference's feature LMDBs
// (per image a pickled dict image_id, image_h, image_w, num_boxes, boxes float32 [N, 4]
// pixel x1 y1 x2 y2, features float32 [N, 2048]; key b"keys" -> the pickled list of image
// keys).
//
// A region's feature is relu(s * (sum of E_a over its object's attributes a and pairs of
// attributes) + (1 - s) * E_background + noise * gaussian), with fixed seeded embeddings E
// (one 2048-d vector per attribute value: shape, colour, size, position = the third of the
// image the object's centre is in; and one per pair of values, "red ball", "large ball on
// the left", as a detector's features respond to the whole object, not to each word apart)
// and s the region's overlap with its object (1 for a GT box, ~0.9 for a tight detection,
// ~0.6 for a loose one, 0 for background). Non-negative like fc6 features, never all zero.
// The detector proposes a tight box per object, then loose ones, then background boxes, in
// that order (its confidence order), so truncation to max_region_num keeps the objects.
import { writeLmdb } from '../io/lmdb.js';
import { pickleData } from '../io/pickle-numpy-writer.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { Random } from './random.js';
import { positionOf, type Box, type Scene, type SceneObject } from './scenes.js';
import { BACKGROUNDS, CATEGORIES, COLORS, POSITIONS, SIZES } from './vocabulary.js';

export const FEATURE_WIDTH = 2048;
/** The detector's class distribution width (1600 Visual Genome classes + background), for Conceptual Captions. */
export const CLASS_WIDTH = 1601;

/** An object's attributes as indices: shape, colour, size, position. */
const ATTRIBUTE_COUNTS = [CATEGORIES.length, COLORS.length, SIZES.length, POSITIONS.length] as const;

export interface FeatureModel {
  /** Per attribute (shape, colour, size, position), one embedding per value. */
  single: Float32Array[][];
  /** Per pair of attributes i < j (in that order), one embedding per pair of values (value_i * count_j + value_j). */
  pairs: Float32Array[][];
  background: Float32Array[];
  /** Standard deviation of the per-region gaussian noise. */
  noise: number;
}

/** The world's fixed attribute embeddings. */
export function featureModel(seed: number, noise: number): FeatureModel {
  const random = new Random(seed, 'features/embeddings');
  const table = (count: number) =>
    Array.from({ length: count }, () => Float32Array.from({ length: FEATURE_WIDTH }, () => random.gaussian()));
  const single = ATTRIBUTE_COUNTS.map((count) => table(count));
  const pairs = ATTRIBUTE_COUNTS.flatMap((first, i) =>
    ATTRIBUTE_COUNTS.slice(i + 1).map((second) => table(first * second)),
  );
  return { single, pairs, background: table(BACKGROUNDS.length), noise };
}

/** One region: its box and what it shows. */
export interface Region {
  box: Box;
  /** The object it covers, or null for background. */
  object: SceneObject | null;
  /** How much of the object the box holds (1 = exactly its box). */
  strength: number;
  background: number;
}

const clamp = (value: number, low: number, high: number) => Math.min(high, Math.max(low, value));

/** The box with each edge moved by up to `jitter` of the box's size, kept inside the image. */
function jittered(random: Random, box: Box, jitter: number, scene: Scene): Box {
  const w = box[2] - box[0];
  const h = box[3] - box[1];
  const edge = (value: number, size: number, limit: number) =>
    clamp(Math.round((value + random.between(-jitter, jitter) * size) * 10) / 10, 0, limit);
  const x1 = edge(box[0], w, scene.width - 2);
  const y1 = edge(box[1], h, scene.height - 2);
  return [
    x1,
    y1,
    Math.max(x1 + 1, edge(box[2], w, scene.width - 1)),
    Math.max(y1 + 1, edge(box[3], h, scene.height - 1)),
  ];
}

function overlap(a: Box, b: Box): number {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  const inter = w > 0 && h > 0 ? w * h : 0;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

/** A background proposal: mostly away from the objects (IoU under 0.3 with each). */
function backgroundBox(random: Random, scene: Scene): Box {
  let box: Box = [0, 0, scene.width - 1, scene.height - 1];
  for (let attempt = 0; attempt < 30; attempt++) {
    const w = random.between(0.1, 0.6) * scene.width;
    const h = random.between(0.1, 0.6) * scene.height;
    const x1 = Math.round(random.between(0, scene.width - w - 1) * 10) / 10;
    const y1 = Math.round(random.between(0, scene.height - h - 1) * 10) / 10;
    box = [x1, y1, Math.round((x1 + w) * 10) / 10, Math.round((y1 + h) * 10) / 10];
    if (scene.objects.every((object) => overlap(box, object.box) < 0.3)) break;
  }
  return box;
}

/** `count` detector proposals: a tight box per object, a loose one per object while there is room, then background. */
export function detectorRegions(random: Random, scene: Scene, count: number): Region[] {
  if (count < scene.objects.length)
    throw new RangeError(
      `image ${scene.key}: ${count} detector boxes cannot cover its ${scene.objects.length} objects`,
    );
  const order = random.shuffled(scene.objects);
  const regions: Region[] = order.map((object) => ({
    box: jittered(random, object.box, 0.04, scene),
    object,
    strength: 0.9,
    background: random.int(0, BACKGROUNDS.length - 1),
  }));
  for (const object of order) {
    if (regions.length >= count) break;
    regions.push({
      box: jittered(random, object.box, 0.18, scene),
      object,
      strength: 0.6,
      background: random.int(0, BACKGROUNDS.length - 1),
    });
  }
  while (regions.length < count)
    regions.push({
      box: backgroundBox(random, scene),
      object: null,
      strength: 0,
      background: random.int(0, BACKGROUNDS.length - 1),
    });
  return regions;
}

/** The GT regions of `objects`, in the given order. */
export function groundTruthRegions(random: Random, objects: readonly SceneObject[]): Region[] {
  return objects.map((object) => ({
    box: [...object.box],
    object,
    strength: 1,
    background: random.int(0, BACKGROUNDS.length - 1),
  }));
}

/** [regions, 2048] float32 features. */
export function regionFeatures(
  random: Random,
  model: FeatureModel,
  regions: readonly Region[],
  scene: Scene,
): Float32Array {
  const out = new Float32Array(regions.length * FEATURE_WIDTH);
  regions.forEach((region, r) => {
    const row = out.subarray(r * FEATURE_WIDTH, (r + 1) * FEATURE_WIDTH);
    const background = model.background[region.background]!;
    const object = region.object;
    const parts: Float32Array[] = [];
    if (object) {
      const values = [
        object.category,
        object.color,
        SIZES.indexOf(object.size),
        POSITIONS.indexOf(positionOf(object, scene)),
      ];
      values.forEach((value, a) => parts.push(model.single[a]![value]!));
      let pair = 0;
      for (let a = 0; a < values.length; a++)
        for (let b = a + 1; b < values.length; b++)
          parts.push(model.pairs[pair++]![values[a]! * ATTRIBUTE_COUNTS[b]! + values[b]!]!);
    }
    // Unit variance per dimension for the object's part, as for the background's.
    const scale = region.strength / Math.sqrt(Math.max(1, parts.length) / 3);
    for (let i = 0; i < FEATURE_WIDTH; i++) {
      let objectPart = 0;
      for (const part of parts) objectPart += part[i]!;
      const value = scale * objectPart + (1 - region.strength) * background[i]! + model.noise * random.gaussian();
      row[i] = value > 0 ? value : 0;
    }
    if (row.every((value) => value === 0)) row[0] = 1e-3;
  });
  return out;
}

/** The detector's class of a region: a shape class, or one of the background classes. */
function classOf(region: Region): number {
  return region.object ? 1 + 17 * region.object.category : 1 + 17 * CATEGORIES.length + 11 * region.background;
}

/** [regions, 1601] float32 class distributions, peaked at the region's class (Conceptual Captions' cls_prob). */
export function classDistributions(random: Random, regions: readonly Region[]): Float32Array {
  const out = new Float32Array(regions.length * CLASS_WIDTH);
  regions.forEach((region, r) => {
    const peak = region.object ? 0.5 + 0.4 * region.strength * random.uniform() : random.between(0.2, 0.5);
    const runnerUp = random.int(1, CLASS_WIDTH - 1);
    const second = (1 - peak) / 2;
    const rest = (1 - peak - second) / CLASS_WIDTH;
    const row = out.subarray(r * CLASS_WIDTH, (r + 1) * CLASS_WIDTH);
    row.fill(rest);
    row[runnerUp]! += second;
    row[classOf(region)]! += peak;
  });
  return out;
}

/** [regions, 4] float32 pixel boxes. */
export function regionBoxes(regions: readonly Region[]): Float32Array {
  return Float32Array.from(regions.flatMap((region) => region.box));
}

export function float32Raw(data: Float32Array, shape: number[]): RawTensor {
  return { dtype: 'float32', shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** One image's regions as stored: the boxes and features, plus what the world knows of them. */
export interface StoredImage {
  scene: Scene;
  regions: Region[];
  /** [N, 2048] */
  features: Float32Array;
}

/** Regions and features of an image, drawn from the image's own stream (independent of every other image). */
export function storedImage(
  seed: number,
  model: FeatureModel,
  store: string,
  scene: Scene,
  regions: (random: Random) => Region[],
): StoredImage {
  const random = new Random(seed, `features/${store}/${scene.key}`);
  const chosen = regions(random);
  return { scene, regions: chosen, features: regionFeatures(random, model, chosen, scene) };
}

/**
 * A feature LMDB as script/convert_to_lmdb.py writes it: per image the pickled dict (protocol
 * 3, insertion order image_id, image_h, image_w, num_boxes, boxes, features), then b"keys".
 * `imageIdOf` gives the dict's image_id (an int, or the key string where the reference has one).
 */
export function writeFeatureLmdb(
  path: string,
  images: readonly StoredImage[],
  imageIdOf: (scene: Scene) => number | string = (scene) => scene.imageId,
): void {
  const entries: [string, Uint8Array][] = images.map(({ scene, regions, features }) => [
    scene.key,
    pickleData({
      image_id: imageIdOf(scene),
      image_h: scene.height,
      image_w: scene.width,
      num_boxes: regions.length,
      boxes: float32Raw(regionBoxes(regions), [regions.length, 4]),
      features: float32Raw(features, [regions.length, FEATURE_WIDTH]),
    }),
  ]);
  const keys = entries.map(([key]) => Buffer.from(key, 'utf8'));
  writeLmdb(path, [...entries, ['keys', pickleData(keys)]]);
}

/** The mean of an image's stored rows (what script/generate_pool.py ranks images by). */
export function meanFeature(image: StoredImage): Float64Array {
  const mean = new Float64Array(FEATURE_WIDTH);
  const rows = image.regions.length;
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < FEATURE_WIDTH; i++) mean[i]! += image.features[r * FEATURE_WIDTH + i]! / rows;
  return mean;
}
