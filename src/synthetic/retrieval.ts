// Caption-image retrieval (TASK7 RetrievalCOCO, TASK8 RetrievalFlickr30k): captions listing a
// scene's objects, the jsonline annotation files and the hard-negative pools (hard_negative.pkl:
// train_image_list and, per image, the indices of its nearest images by mean feature, itself
// first). A caption matches one image: the objects' colours and shapes tell the images apart.
import { join } from 'node:path';
import type { RawTensor } from '../io/raw-tensor.js';
import { round } from './baselines.js';
import { sequenceLength, type TaskSummary, type WorldContext } from './context.js';
import { meanFeature, type StoredImage } from './features.js';
import { writeJsonLines, writeNpyInt64, writePickle } from './files.js';
import { captionPhrase, listPhrase } from './language.js';
import { Random } from './random.js';
import type { Scene, ScenePool } from './scenes.js';

/** Columns of the hard-negative pool (script/generate_pool.py queries 100 neighbours). */
const POOL_WIDTH = 100;

const CAPTION_FRAMES = [
  (objects: string) => `${objects}`,
  (objects: string) => `a picture of ${objects}`,
  (objects: string) => `there is ${objects}`,
  (objects: string) => `a scene with ${objects}`,
  (objects: string) => `${objects} on the floor`,
];

/** `count` different captions naming every object of the scene in some order. */
export function captions(random: Random, scene: Scene, count: number): string[] {
  const found = new Set<string>();
  for (let attempt = 0; attempt < 10 * count && found.size < count; attempt++) {
    const objects = listPhrase(random.shuffled(scene.objects).map((object) => captionPhrase(random, object)));
    found.add(random.choice(CAPTION_FRAMES)(objects));
  }
  return [...found];
}

/**
 * `{"train_hard_pool": float64 [n, K], "train_image_list": ids}`: per train image the K
 * images nearest by the Euclidean distance of their mean region features, itself first.
 */
function hardNegatives(images: readonly StoredImage[]): { train_hard_pool: RawTensor; train_image_list: number[] } {
  const means = images.map(meanFeature);
  const width = Math.min(POOL_WIDTH, images.length);
  const pool = new Float64Array(images.length * width);
  means.forEach((anchor, row) => {
    const distances = means.map((other, column) => {
      let sum = 0;
      for (let i = 0; i < anchor.length; i++) sum += (anchor[i]! - other[i]!) ** 2;
      return { column, distance: column === row ? -1 : sum };
    });
    distances.sort((a, b) => a.distance - b.distance || a.column - b.column);
    distances.slice(0, width).forEach(({ column }, k) => (pool[row * width + k] = column));
  });
  return {
    train_hard_pool: { dtype: 'float64', shape: [images.length, width], data: new Uint8Array(pool.buffer) },
    train_image_list: images.map((image) => image.scene.imageId),
  };
}

/**
 * One retrieval task over `pool`: the train jsonline (held-out images included: cleaning
 * drops them), the test_set0 jsonline (the val images), hard_negative.pkl (every train line's
 * image) and hard_negative_cleaned.pkl (without the held-out ones), cache/<prefix>_test_ids.npy.
 */
function writeRetrieval(
  context: WorldContext,
  task: { key: string; name: 'RetrievalCOCO' | 'RetrievalFlickr30k'; dataroot: string; testIds: string },
  pool: ScenePool,
  images: ReadonlyMap<string, StoredImage>,
  featuresPath: string,
): TaskSummary {
  const random = new Random(context.options.seed, `tasks/${task.name}`);
  const root = join(context.root, task.dataroot);
  const count = context.options.captionsPerImage;
  const line = (scene: Scene) => {
    const sentences = captions(random, scene, count);
    return task.name === 'RetrievalCOCO'
      ? { sentences, id: scene.imageId, img_path: `COCO_val2014_${String(scene.imageId).padStart(12, '0')}.jpg` }
      : { sentences, img_path: `${scene.imageId}.jpg` };
  };
  const trainScenes = random.shuffled([...pool.train, ...pool.heldOut]);
  const trainLines = trainScenes.map(line);
  const valLines = pool.val.map(line);
  if (pool.val.length > 1000)
    throw new RangeError(`${task.name}: ${pool.val.length} val images; the ranking buffer holds 1000`);
  const trainPath = `${task.dataroot}/all_data_final_train_2014.jsonline`;
  const valPath = `${task.dataroot}/all_data_final_test_set0_2014.jsonline`;
  writeJsonLines(join(context.root, trainPath), trainLines);
  writeJsonLines(join(context.root, valPath), valLines);
  const heldOut = new Set(pool.heldOut.map((scene) => scene.key));
  writePickle(join(root, 'hard_negative.pkl'), hardNegatives(trainScenes.map((scene) => images.get(scene.key)!)));
  writePickle(
    join(root, 'hard_negative_cleaned.pkl'),
    hardNegatives(trainScenes.filter((scene) => !heldOut.has(scene.key)).map((scene) => images.get(scene.key)!)),
  );
  writeNpyInt64(
    join(root, 'cache', task.testIds),
    pool.heldOut.map((scene) => scene.imageId),
  );
  const captionCount = (lines: { sentences: string[] }[]) =>
    lines.reduce((total, { sentences }) => total + sentences.length, 0);
  const texts = [...trainLines, ...valLines].flatMap(({ sentences }) => sentences);
  return {
    key: task.key,
    name: task.name,
    train: captionCount(trainLines.filter((_, i) => !heldOut.has(trainScenes[i]!.key))),
    val: captionCount(valLines),
    metric: 'R@1 over the val images (4-way accuracy in training)',
    chance: round(1 / pool.val.length),
    candidates: pool.val.length,
    registry: {
      dataroot: task.dataroot,
      features_h5path1: featuresPath,
      features_h5path2: '',
      train_annotations_jsonpath: trainPath,
      val_annotations_jsonpath: valPath,
      max_seq_length: sequenceLength(context, texts),
      max_region_num: context.options.boxes + 1,
    },
  };
}

export function writeRetrievalCoco(
  context: WorldContext,
  pool: ScenePool,
  images: ReadonlyMap<string, StoredImage>,
  featuresPath: string,
): TaskSummary {
  return writeRetrieval(
    context,
    { key: 'TASK7', name: 'RetrievalCOCO', dataroot: 'datasets/cocoRetreival', testIds: 'coco_test_ids.npy' },
    pool,
    images,
    featuresPath,
  );
}

export function writeRetrievalFlickr(
  context: WorldContext,
  pool: ScenePool,
  images: ReadonlyMap<string, StoredImage>,
  featuresPath: string,
): TaskSummary {
  return writeRetrieval(
    context,
    { key: 'TASK8', name: 'RetrievalFlickr30k', dataroot: 'datasets/flickr30k', testIds: 'flickr_test_ids.npy' },
    pool,
    images,
    featuresPath,
  );
}
