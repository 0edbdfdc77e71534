// Scenes of the synthetic world: an image size and a few objects, each a shape (category),
// a colour, a size and an integer pixel box. Within a scene no two objects share both colour
// and shape, so "the red ball" always names one object; colours and shapes do repeat, so
// counting and telling objects apart need more than one word.
import { Random } from './random.js';
import { CATEGORIES, COLORS, POSITIONS, type Position, type Size } from './vocabulary.js';

/** Integer pixel box x1, y1, x2, y2. */
export type Box = [number, number, number, number];

export interface SceneObject {
  /** World-unique object id (annotation, box and object ids of the annotation files). */
  id: number;
  /** Index into CATEGORIES. */
  category: number;
  /** Index into COLORS. */
  color: number;
  size: Size;
  box: Box;
}

export interface Scene {
  /** The image id the annotation files use. */
  imageId: number;
  /** The feature LMDB key (`str(image_id)`, `v7w_<id>`, NLVR2 `<split>-<set>-<pair>-img<n>`). */
  key: string;
  width: number;
  height: number;
  objects: SceneObject[];
}

export interface ScenePool {
  name: string;
  train: Scene[];
  val: Scene[];
  /** Images listed in the pool's `*_test_ids.npy`: train annotations on them are dropped by cleaning. */
  heldOut: Scene[];
}

export interface PoolOptions {
  /** Image ids are firstId, firstId + 1, ...; object ids imageId * 10 + k. */
  firstId: number;
  train: number;
  val: number;
  heldOut: number;
  minObjects: number;
  maxObjects: number;
  /** The LMDB key of an image id (default `String(id)`). */
  key?: (imageId: number, split: 'train' | 'val' | 'heldOut', index: number) => string;
}

/** Objects per scene must stay below 10 (object ids are imageId * 10 + k). */
export const MAX_OBJECTS = 9;

export function boxCenter(box: Box): [number, number] {
  return [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2];
}

/** Which third of the image the object's centre is in. */
export function positionOf(object: SceneObject, scene: Scene): Position {
  const [x] = boxCenter(object.box);
  return POSITIONS[Math.min(2, Math.floor((3 * x) / scene.width))]!;
}

/** Box area in pixels (the "+1" convention is not needed for layout). */
const area = (box: Box): number => (box[2] - box[0]) * (box[3] - box[1]);

function intersection(a: Box, b: Box): number {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  return w > 0 && h > 0 ? w * h : 0;
}

/** Objects barely touch: the overlap is under 10% of the smaller box. */
function clear(box: Box, placed: readonly Box[]): boolean {
  return placed.every((other) => intersection(box, other) < 0.1 * Math.min(area(box), area(other)));
}

function sampleBox(random: Random, width: number, height: number, category: number, size: Size): Box {
  const side = Math.min(width, height) * (size === 'small' ? random.between(0.14, 0.2) : random.between(0.28, 0.36));
  const aspect = CATEGORIES[category]!.aspect;
  const w = Math.round(side * Math.sqrt(aspect));
  const h = Math.round(side / Math.sqrt(aspect));
  const x1 = random.int(0, width - w - 1);
  const y1 = random.int(0, height - h - 1);
  return [x1, y1, x1 + w, y1 + h];
}

export function sampleScene(
  random: Random,
  imageId: number,
  key: string,
  minObjects: number,
  maxObjects: number,
): Scene {
  const width = random.int(480, 640);
  const height = random.int(360, 480);
  const count = random.int(minObjects, maxObjects);
  for (;;) {
    const kinds = random.sample(
      Array.from({ length: CATEGORIES.length * COLORS.length }, (_, i) => i),
      count,
    );
    const objects: SceneObject[] = [];
    for (const [k, kind] of kinds.entries()) {
      const category = kind % CATEGORIES.length;
      const size: Size = random.bernoulli(0.5) ? 'small' : 'large';
      let box: Box | null = null;
      for (let attempt = 0; attempt < 100 && box === null; attempt++) {
        const candidate = sampleBox(random, width, height, category, size);
        if (
          clear(
            candidate,
            objects.map((object) => object.box),
          )
        )
          box = candidate;
      }
      if (box === null) break;
      objects.push({ id: imageId * 10 + k, category, color: Math.floor(kind / CATEGORIES.length), size, box });
    }
    // A crowded draw that did not fit starts over (rare: the boxes cover under half the image).
    if (objects.length === count) return { imageId, key, width, height, objects };
  }
}

/** The pool's scenes: train, val, then held-out images, ids consecutive from firstId. */
export function samplePool(seed: number, name: string, options: PoolOptions): ScenePool {
  if (options.maxObjects > MAX_OBJECTS || options.minObjects < 1 || options.minObjects > options.maxObjects) {
    throw new RangeError(
      `${name}: objects per scene must satisfy 1 <= min (${options.minObjects}) <= max (${options.maxObjects}) <= ${MAX_OBJECTS}`,
    );
  }
  const random = new Random(seed, `scenes/${name}`);
  let next = options.firstId;
  const split = (which: 'train' | 'val' | 'heldOut', count: number): Scene[] =>
    Array.from({ length: count }, (_, index) => {
      const imageId = next++;
      return sampleScene(
        random,
        imageId,
        options.key?.(imageId, which, index) ?? String(imageId),
        options.minObjects,
        options.maxObjects,
      );
    });
  const train = split('train', options.train);
  const val = split('val', options.val);
  const heldOut = split('heldOut', options.heldOut);
  return { name, train, val, heldOut };
}
