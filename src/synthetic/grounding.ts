// The region-grounding tasks: refcoco / refcoco+ / refcocog (TASK9-11, REFER API files and
// GT-box LMDBs), Visual7w pointing (TASK4) and GuessWhat pointing (TASK17). A text names one
// object of its scene; the same text names different boxes in different scenes and one
// scene's texts name different objects.
import { join } from 'node:path';
import { iou } from '../data/iou.js';
import { pyFloat } from '../io/pickle-numpy-writer.js';
import { majorityAccuracy, mean, round } from './baselines.js';
import { sequenceLength, type TaskSummary, type WorldContext } from './context.js';
import { groundTruthRegions, storedImage, writeFeatureLmdb, type StoredImage } from './features.js';
import { writeJson, writeJsonLines, writeNpyInt64, writePickle } from './files.js';
import { article, describe, type Attribute } from './language.js';
import { Random } from './random.js';
import { boxCenter, positionOf, type Box, type Scene, type ScenePool, type SceneObject } from './scenes.js';
import { CATEGORIES, COLORS } from './vocabulary.js';

/** The pointing heads read candidates from row 101 on: the detector rows must be exactly 100 boxes + the mean row. */
export const POINTING_DETECTOR_BOXES = 100;
/** GuessWhatPointing pads its candidates to 204 and reads row 101 + 204: it needs 306 regions. */
const GUESSWHAT_REGIONS = 306;

const xywh = (box: Box): number[] => [box[0], box[1], box[2] - box[0], box[3] - box[1]];

/** Splits of a pool as the annotation files name them; held-out images are train images that cleaning drops. */
function splitScenes(pool: ScenePool, valName: string): { scene: Scene; split: string; heldOut: boolean }[] {
  return [
    ...pool.train.map((scene) => ({ scene, split: 'train', heldOut: false })),
    ...pool.heldOut.map((scene) => ({ scene, split: 'train', heldOut: true })),
    ...pool.val.map((scene) => ({ scene, split: valName, heldOut: false })),
  ];
}

/** GT LMDB rows in the given object order, features from the world's GT stream of the image. */
function gtImage(context: WorldContext, store: string, scene: Scene, objects: readonly SceneObject[]): StoredImage {
  return storedImage(context.options.seed, context.model, store, scene, (random) =>
    groundTruthRegions(random, objects),
  );
}

// ---------------------------------------------------------------- refcoco / refcoco+ / refcocog

type ReferDataset = 'refcoco' | 'refcoco+' | 'refcocog';

const REFER_KEYS: Readonly<Record<ReferDataset, string>> = {
  refcoco: 'TASK9',
  'refcoco+': 'TASK10',
  refcocog: 'TASK11',
};

/** Expressions for one object, as each dataset's annotators wrote them: short with locations, no locations, long with a relation. */
function expressions(random: Random, dataset: ReferDataset, target: SceneObject, scene: Scene): string[] {
  const count = random.int(1, 2);
  const found = new Set<string>();
  for (let attempt = 0; attempt < 6 && found.size < count; attempt++) {
    if (dataset === 'refcocog') {
      const desc = describe(random, target, scene.objects, scene, ['size', 'color', 'category']);
      const others = scene.objects.filter(
        (other) => Math.abs(boxCenter(other.box)[0] - boxCenter(target.box)[0]) > 0.05 * scene.width,
      );
      if (desc === null || others.length === 0) continue;
      const other = random.choice(others);
      const otherDesc = describe(random, other, scene.objects, scene, ['size', 'color', 'category']);
      if (otherDesc === null) continue;
      const side = boxCenter(target.box)[0] < boxCenter(other.box)[0] ? 'left' : 'right';
      found.add(
        random.bernoulli(0.5)
          ? `the ${desc} to the ${side} of the ${otherDesc}`
          : `${article(desc)} that is to the ${side} of ${article(otherDesc)}`,
      );
    } else {
      const allowed: Attribute[] =
        dataset === 'refcoco' ? ['size', 'color', 'category', 'position'] : ['size', 'color', 'category'];
      const desc = describe(random, target, scene.objects, scene, allowed);
      if (desc !== null) found.add(random.bernoulli(0.3) ? `the ${desc}` : desc);
    }
  }
  return [...found];
}

/** Per val item, the share of its regions a random pick would score on (IoU > 0.5 with the referred box). */
function referChance(
  images: ReadonlyMap<string, StoredImage>,
  items: readonly { scene: Scene; object: SceneObject }[],
  regionNum: number,
): number {
  return mean(
    items.map(({ scene, object }) => {
      const image = images.get(scene.key)!;
      const kept = image.regions.slice(0, regionNum - 1);
      const rows = [0, 0, scene.width, scene.height, ...kept.flatMap((region) => region.box)];
      return iou(rows, object.box).filter((overlap) => overlap > 0.5).length / (kept.length + 1);
    }),
  );
}

/**
 * TASK9-11 on the COCO pool: `<name>/refs(unc|umd).p` (a protocol-2 Python-2 pickle as the
 * originals), `<name>/instances.json` with every object of the pool, the GT LMDB (rows in
 * instances.json order) under `<name>_<splitBy>/`. The detector features are the COCO LMDB's.
 */
export function writeRefer(
  context: WorldContext,
  dataset: ReferDataset,
  pool: ScenePool,
  detector: ReadonlyMap<string, StoredImage>,
  featuresPath: string,
): TaskSummary {
  const dataroot = 'datasets/refcoco';
  const splitBy = dataset === 'refcocog' ? 'umd' : 'unc';
  const root = join(context.root, dataroot);
  const random = new Random(context.options.seed, `tasks/${dataset}`);
  const scenes = splitScenes(pool, 'val');
  const refs: Record<string, unknown>[] = [];
  const items: { scene: Scene; object: SceneObject; split: string; heldOut: boolean; text: string }[] = [];
  let sentId = 0;
  for (const { scene, split, heldOut } of scenes) {
    for (const object of scene.objects) {
      const sentences = expressions(random, dataset, object, scene);
      if (sentences.length === 0) continue;
      const sentIds = sentences.map(() => ++sentId);
      refs.push({
        image_id: scene.imageId,
        split,
        sentences: sentences.map((raw, i) => ({ tokens: raw.split(' '), raw, sent_id: sentIds[i]!, sent: raw })),
        file_name: `COCO_train2014_${String(scene.imageId).padStart(12, '0')}_${object.id}.jpg`,
        category_id: object.category + 1,
        ann_id: object.id,
        sent_ids: sentIds,
        ref_id: refs.length,
      });
      for (const text of sentences) items.push({ scene, object, split, heldOut, text });
    }
  }
  writePickle(join(root, dataset, `refs(${splitBy}).p`), refs, { protocol: 2, python2Strings: true });
  writeJson(join(root, dataset, 'instances.json'), {
    info: { description: 'vilbert-ts synthetic world' },
    images: scenes.map(({ scene }) => ({
      id: scene.imageId,
      width: scene.width,
      height: scene.height,
      file_name: `COCO_train2014_${String(scene.imageId).padStart(12, '0')}.jpg`,
    })),
    annotations: scenes.flatMap(({ scene }) =>
      scene.objects.map((object) => ({
        id: object.id,
        image_id: scene.imageId,
        category_id: object.category + 1,
        bbox: xywh(object.box),
        area: (object.box[2] - object.box[0]) * (object.box[3] - object.box[1]),
        iscrowd: 0,
        segmentation: [],
      })),
    ),
    categories: CATEGORIES.map((category, i) => ({ id: i + 1, name: category.name, supercategory: 'shape' })),
  });
  writeNpyInt64(
    join(root, 'cache', 'coco_test_ids.npy'),
    pool.heldOut.map((scene) => scene.imageId),
  );
  const gtPath = `${dataroot}/${dataset}_${splitBy}/${dataset}_gt_resnext152_faster_rcnn_genome.lmdb`;
  writeFeatureLmdb(
    join(context.root, gtPath),
    scenes.map(({ scene }) => gtImage(context, 'coco-gt', scene, scene.objects)),
  );

  const regionNum = context.options.boxes + 1;
  const val = items.filter((item) => item.split === 'val');
  return {
    key: REFER_KEYS[dataset],
    name: dataset,
    train: items.filter((item) => item.split === 'train' && !item.heldOut).length,
    val: val.length,
    metric: 'accuracy (IoU > 0.5 of the chosen region)',
    chance: round(referChance(detector, val, regionNum)),
    registry: {
      dataroot,
      features_h5path1: featuresPath,
      features_h5path2: gtPath,
      max_seq_length: sequenceLength(
        context,
        items.map((item) => item.text),
      ),
      max_region_num: regionNum,
    },
  };
}

// ---------------------------------------------------------------- Visual7w

/** Blind pointing baseline: always the candidate slot most often right in val (1 / #candidates when balanced). */
function slotChance(val: readonly number[]): number {
  const view = val.map((slot) => ({ key: '', label: String(slot) }));
  return round(majorityAccuracy(view, view));
}

/**
 * TASK4 Visual7w on its pool: dataset_v7w_pointing.json, the detector LMDB (100 boxes per
 * image, keys v7w_<id>, written with the pool) and the GT LMDB (rows: the image's QA boxes by
 * ascending box id). Each question names one of four candidate objects.
 */
export function writeVisual7w(context: WorldContext, pool: ScenePool, featuresPath: string): TaskSummary {
  const dataroot = 'datasets/visual7w';
  const root = join(context.root, dataroot);
  const random = new Random(context.options.seed, 'tasks/Visual7w');
  let qaId = 0;
  const slots: Record<'train' | 'val', number[]> = { train: [], val: [] };
  const texts: string[] = [];
  const usedBoxes = new Map<number, { object: SceneObject }>();
  const gtImages: StoredImage[] = [];
  const images = splitScenes(pool, 'val').map(({ scene, split, heldOut }) => {
    if (scene.objects.length < 4)
      throw new RangeError(
        `Visual7w image ${scene.imageId} has ${scene.objects.length} objects; four candidates are needed`,
      );
    const qaPairs: Record<string, unknown>[] = [];
    const asked = new Set<string>();
    // The right answer's slot (its rank among the four candidates' box ids) in turn from a random start: balanced.
    const firstSlot = random.int(0, 3);
    for (
      let attempt = 0;
      attempt < 4 * context.options.questionsPerImage && qaPairs.length < context.options.questionsPerImage;
      attempt++
    ) {
      const candidates = random.sample(scene.objects, 4).sort((a, b) => a.id - b.id);
      const answer = candidates[(firstSlot + qaPairs.length) % 4]!;
      const choices = random.shuffled(candidates.filter((object) => object !== answer));
      const desc = describe(random, answer, candidates, scene, ['size', 'color', 'category', 'position']);
      if (desc === null) continue;
      const question = random.bernoulli(0.5) ? `which is the ${desc}?` : `which object is the ${desc}?`;
      if (asked.has(question)) continue;
      asked.add(question);
      texts.push(question);
      for (const object of candidates) usedBoxes.set(object.id, { object });
      if (!heldOut) slots[split as 'train' | 'val'].push(candidates.indexOf(answer));
      qaPairs.push({
        qa_id: ++qaId,
        question,
        answer: answer.id,
        multiple_choices: choices.map((object) => object.id),
        type: 'which',
        image_id: scene.imageId,
      });
    }
    const boxIds = new Set(qaPairs.flatMap((qa) => [qa.answer as number, ...(qa.multiple_choices as number[])]));
    const gtObjects = scene.objects.filter((object) => boxIds.has(object.id)).sort((a, b) => a.id - b.id);
    gtImages.push(gtImage(context, 'v7w-gt', scene, gtObjects));
    return {
      image_id: scene.imageId,
      split,
      filename: `v7w_${scene.imageId}.jpg`,
      height: scene.height,
      width: scene.width,
      qa_pairs: qaPairs,
    };
  });
  writeJson(join(root, 'dataset_v7w_pointing.json'), {
    images,
    boxes: [...usedBoxes.values()].map(({ object }) => ({
      box_id: object.id,
      ...Object.fromEntries(['x', 'y', 'width', 'height'].map((k, i) => [k, xywh(object.box)[i]!])),
      name: CATEGORIES[object.category]!.name,
    })),
  });
  writeNpyInt64(
    join(root, 'cache', 'genome_test_ids.npy'),
    pool.heldOut.map((scene) => scene.imageId),
  );
  const gtPath = `${dataroot}/visual7w_gt_resnext152_faster_rcnn_genome.lmdb`;
  writeFeatureLmdb(join(context.root, gtPath), gtImages, (scene) => scene.key);
  const maxGtRows = Math.max(...gtImages.map((image) => image.regions.length));
  return {
    key: 'TASK4',
    name: 'Visual7w',
    train: slots.train.length,
    val: slots.val.length,
    metric: 'accuracy (chosen candidate)',
    chance: slotChance(slots.val),
    candidates: 4,
    registry: {
      dataroot,
      features_h5path1: featuresPath,
      features_h5path2: gtPath,
      max_seq_length: sequenceLength(context, texts),
      max_region_num: POINTING_DETECTOR_BOXES + 1 + maxGtRows,
    },
  };
}

// ---------------------------------------------------------------- GuessWhat

interface OracleQuestion {
  question: string;
  holds: (object: SceneObject) => boolean;
}

function oracleQuestions(scene: Scene): OracleQuestion[] {
  return [
    ...CATEGORIES.map((category, i) => ({
      question: `is it ${article(category.name)}?`,
      holds: (object: SceneObject) => object.category === i,
    })),
    ...COLORS.map((color, i) => ({
      question: `is it ${color.name}?`,
      holds: (object: SceneObject) => object.color === i,
    })),
    { question: 'is it small?', holds: (object: SceneObject) => object.size === 'small' },
    { question: 'is it large?', holds: (object: SceneObject) => object.size === 'large' },
    { question: 'is it on the left?', holds: (object: SceneObject) => positionOf(object, scene) === 'left' },
    { question: 'is it on the right?', holds: (object: SceneObject) => positionOf(object, scene) === 'right' },
    { question: 'is it in the middle?', holds: (object: SceneObject) => positionOf(object, scene) === 'middle' },
  ];
}

/**
 * A questioner narrowing the objects down until only the target fits: every question splits
 * what is left. Like GuessWhat's players, it mostly asks about what it suspects, so most
 * answers are "yes" (a question the target fits is asked 4 times in 5 when there is one).
 */
function dialog(random: Random, scene: Scene, target: SceneObject): { question: string; answer: string }[] {
  const questions = oracleQuestions(scene);
  let remaining = scene.objects;
  const turns: { question: string; answer: string }[] = [];
  while (remaining.length > 1) {
    const splitting = questions.filter(({ holds }) => remaining.some(holds) && !remaining.every(holds));
    const fitting = splitting.filter(({ holds }) => holds(target));
    const { question, holds } = random.choice(fitting.length > 0 && random.bernoulli(0.8) ? fitting : splitting);
    const answer = holds(target);
    turns.push({ question, answer: answer ? 'yes' : 'no' });
    remaining = remaining.filter((object) => holds(object) === answer);
  }
  return turns;
}

/**
 * TASK17 GuessWhatPointing on its pool (COCO ids; detector rows in the COCO LMDB, 100 boxes
 * each): guesswhat.{train,valid}.jsonl, cache/image_bbox_list.pkl, cache/bboxes_dict.pkl and
 * the GT LMDB (rows: the image's objects by ascending id). One dialog per object of an image.
 */
export function writeGuessWhat(context: WorldContext, pool: ScenePool, featuresPath: string): TaskSummary {
  const dataroot = 'datasets/guesswhat';
  const root = join(context.root, dataroot);
  const random = new Random(context.options.seed, 'tasks/GuessWhatPointing');
  const lines: Record<'train' | 'valid', Record<string, unknown>[]> = { train: [], valid: [] };
  const slots: Record<'train' | 'valid', number[]> = { train: [], valid: [] };
  const candidates: number[] = [];
  const texts: string[] = [];
  const scenes = splitScenes(pool, 'valid');
  for (const { scene, split, heldOut } of scenes) {
    const sortedIds = scene.objects.map((object) => object.id).sort((a, b) => a - b);
    for (const target of scene.objects) {
      const turns = dialog(random, scene, target);
      texts.push(turns.map(({ question, answer }) => `start ${question} answer ${answer} stop `).join(''));
      const file = split as 'train' | 'valid';
      if (!heldOut) slots[file].push(sortedIds.indexOf(target.id));
      if (!heldOut && file === 'valid') candidates.push(scene.objects.length);
      lines[file].push({
        id: lines.train.length + lines.valid.length + 1,
        qas: turns.map((turn, i) => ({ question: turn.question, answer: turn.answer, id: i + 1 })),
        image: {
          id: scene.imageId,
          width: scene.width,
          height: scene.height,
          file_name: `COCO_train2014_${String(scene.imageId).padStart(12, '0')}.jpg`,
        },
        objects: scene.objects.map((object) => ({
          id: object.id,
          category: CATEGORIES[object.category]!.name,
          category_id: object.category + 1,
          bbox: xywh(object.box),
          area: (object.box[2] - object.box[0]) * (object.box[3] - object.box[1]),
        })),
        object_id: target.id,
        status: 'success',
      });
    }
  }
  writeJsonLines(join(root, 'guesswhat.train.jsonl'), random.shuffled(lines.train));
  writeJsonLines(join(root, 'guesswhat.valid.jsonl'), lines.valid);
  writePickle(
    join(root, 'cache', 'image_bbox_list.pkl'),
    new Map(scenes.map(({ scene }) => [scene.imageId, { bboxes: scene.objects.map((object) => object.id) }])),
  );
  writePickle(
    join(root, 'cache', 'bboxes_dict.pkl'),
    new Map(
      scenes.flatMap(({ scene }) => scene.objects.map((object) => [object.id, object.box.map(pyFloat)] as const)),
    ),
  );
  writeNpyInt64(
    join(root, 'cache', 'coco_test_ids.npy'),
    pool.heldOut.map((scene) => scene.imageId),
  );
  const gtPath = `${dataroot}/guesswhat_gt_resnext152_faster_rcnn_genome.lmdb`;
  writeFeatureLmdb(
    join(context.root, gtPath),
    scenes.map(({ scene }) =>
      gtImage(
        context,
        'guesswhat-gt',
        scene,
        [...scene.objects].sort((a, b) => a.id - b.id),
      ),
    ),
  );
  return {
    key: 'TASK17',
    name: 'GuessWhatPointing',
    train: slots.train.length,
    val: slots.valid.length,
    metric: 'accuracy (chosen candidate)',
    chance: slotChance(slots.valid),
    candidates: round(mean(candidates)),
    registry: {
      dataroot,
      features_h5path1: featuresPath,
      features_h5path2: gtPath,
      max_seq_length: sequenceLength(context, texts),
      max_region_num: GUESSWHAT_REGIONS,
    },
  };
}
