// Sentence-image pair classification: NLVR2 (TASK12, a statement about two images) and SNLI-VE
// (TASK13, a hypothesis about one image), in their JSON-lines files.
// Labels are drawn first and a sentence is then found that has that label for the images, so
// labels are balanced and the same sentence is true of some images and false of others.
import { join } from 'node:path';
import { complementarySets, type Asked } from './balance.js';
import { blindBaselines, type BaselineItem } from './baselines.js';
import { sequenceLength, type TaskSummary, type WorldContext } from './context.js';
import { touch, writeJsonLines, writeNpyInt64 } from './files.js';
import { article } from './language.js';
import { Random } from './random.js';
import { captions } from './retrieval.js';
import { type Scene, type ScenePool, type SceneObject } from './scenes.js';
import { CATEGORIES, COLORS, NUMBER_WORDS } from './vocabulary.js';

// ---------------------------------------------------------------- NLVR2

interface Statement {
  sentence: string;
  holds: boolean;
  /** The template, for the question-type baseline. */
  type: string;
}

/** Every statement a template makes about a pair (img0 is "the left image", img1 "the right image"). */
type PairTemplate = (left: Scene, right: Scene) => Statement[];

const countWhere = (scene: Scene, test: (object: SceneObject) => boolean) => scene.objects.filter(test).length;
const SIDES = ['left', 'right'] as const;

/** Per ordering of the two images ("the left ... the right", "the right ... the left"). */
const bothOrders = (
  left: Scene,
  right: Scene,
  make: (first: string, second: string, a: Scene, b: Scene) => Statement,
) => [make('left', 'right', left, right), make('right', 'left', right, left)];

const PAIR_TEMPLATES: PairTemplate[] = [
  (left, right) =>
    COLORS.flatMap((color, c) =>
      bothOrders(left, right, (first, second, a, b) => ({
        sentence: `the ${first} image has more ${color.name} objects than the ${second} image`,
        holds: countWhere(a, (object) => object.color === c) > countWhere(b, (object) => object.color === c),
        type: 'more-color',
      })),
    ),
  (left, right) =>
    CATEGORIES.flatMap((category, k) =>
      bothOrders(left, right, (first, second, a, b) => ({
        sentence: `there are more ${category.plural} in the ${first} image than in the ${second} image`,
        holds: countWhere(a, (object) => object.category === k) > countWhere(b, (object) => object.category === k),
        type: 'more-shape',
      })),
    ),
  (left, right) =>
    COLORS.flatMap((color, c) =>
      CATEGORIES.map((category, k) => {
        const test = (object: SceneObject) => object.color === c && object.category === k;
        return {
          sentence: `both images contain ${article(`${color.name} ${category.name}`)}`,
          holds: countWhere(left, test) > 0 && countWhere(right, test) > 0,
          type: 'both',
        };
      }),
    ),
  (left, right) =>
    SIDES.flatMap((side) =>
      COLORS.flatMap((color, c) =>
        [1, 2, 3].map((count) => ({
          sentence: `the ${side} image contains exactly ${NUMBER_WORDS[count]!} ${color.name} ${count === 1 ? 'object' : 'objects'}`,
          holds: countWhere(side === 'left' ? left : right, (object) => object.color === c) === count,
          type: 'exactly',
        })),
      ),
    ),
  (left, right) =>
    bothOrders(left, right, (first, second, a, b) => ({
      sentence: `the ${first} image has more objects than the ${second} image`,
      holds: a.objects.length > b.objects.length,
      type: 'more-objects',
    })),
];

/**
 * TASK12 NLVR2 on its pool (consecutive scenes are a pair; LMDB keys
 * `<split>-<set>-<pair>-img0/1`): train.json and dev.json, JSON lines with identifier
 * `<split>-<set>-<pair>-<n>`, sentence and label "True"/"False". No cleaning; `cache/` exists.
 */
export function writeNlvr2(context: WorldContext, pool: ScenePool, featuresPath: string): TaskSummary {
  const dataroot = 'datasets/nlvr2';
  const random = new Random(context.options.seed, 'tasks/NLVR2');
  type Row = BaselineItem & { line: Record<string, unknown> };
  const rows: Record<'train' | 'dev', Row[]> = { train: [], dev: [] };
  for (const [split, scenes] of [
    ['train', pool.train],
    ['dev', pool.val],
  ] as const) {
    const candidates: (Asked & { left: Scene; right: Scene })[] = [];
    for (let i = 0; i + 1 < scenes.length; i += 2) {
      const [left, right] = [scenes[i]!, scenes[i + 1]!];
      const image = left.key.replace(/-img0$/, '');
      for (const template of PAIR_TEMPLATES)
        for (const { sentence, holds, type } of template(left, right))
          candidates.push({ text: sentence, answer: holds ? 'True' : 'False', type, image, left, right });
    }
    const statements = complementarySets(
      random,
      candidates,
      context.options.statementsPerPair * Math.floor(scenes.length / 2),
    );
    const counter = new Map<string, number>();
    // In the files, each pair's statements together, pairs in order.
    const order = new Map(candidates.map((candidate, index) => [candidate.image, index]));
    statements.sort((a, b) => order.get(a.image)! - order.get(b.image)!);
    for (const { text, answer, type, image, left, right } of statements) {
      const n = counter.get(image) ?? 0;
      counter.set(image, n + 1);
      rows[split].push({
        text,
        image,
        label: answer,
        type,
        line: {
          identifier: `${image}-${n}`,
          sentence: text,
          label: answer,
          left_url: `${left.key}.png`,
          right_url: `${right.key}.png`,
          synset: 'shape',
          query: 'shapes',
        },
      });
    }
  }
  const root = join(context.root, dataroot);
  writeJsonLines(
    join(root, 'train.json'),
    rows.train.map((row) => row.line),
  );
  writeJsonLines(
    join(root, 'dev.json'),
    rows.dev.map((row) => row.line),
  );
  // The reference writes its token cache into cache/ without creating it.
  touch(join(root, 'cache', '.keep'));
  return {
    key: 'TASK12',
    name: 'NLVR2',
    train: rows.train.length,
    val: rows.dev.length,
    metric: 'accuracy',
    answers: 2,
    ...blindBaselines(rows.train, rows.dev),
    registry: {
      dataroot,
      features_h5path1: featuresPath,
      features_h5path2: '',
      max_seq_length: sequenceLength(
        context,
        [...rows.train, ...rows.dev].map((row) => row.text),
      ),
      max_region_num: context.options.boxes + 1,
    },
  };
}

/** The key of the NLVR2 pool's index-th image of a split: consecutive images form pair index / 2. */
export function nlvr2Key(split: 'train' | 'dev', index: number): string {
  const pair = Math.floor(index / 2);
  return `${split}-${pair % 10}-${pair}-img${index % 2}`;
}

// ---------------------------------------------------------------- SNLI-VE

type EntailmentLabel = 'entailment' | 'neutral' | 'contradiction';

/**
 * Every hypothesis "there is a <shape> and a <colour> object" with its label in the scene:
 * entailment when the image shows both, contradiction when it shows the shape but nothing of
 * that colour, neutral when it shows no such shape (the premise says nothing about it).
 */
function hypotheses(scene: Scene): { text: string; label: EntailmentLabel }[] {
  const hasShape = (category: number) => scene.objects.some((object) => object.category === category);
  const hasColor = (color: number) => scene.objects.some((object) => object.color === color);
  return CATEGORIES.flatMap((category, k) =>
    COLORS.map((color, c) => ({
      text: `there is ${article(category.name)} and ${article(color.name)} object`,
      label: !hasShape(k) ? 'neutral' : hasColor(c) ? 'entailment' : 'contradiction',
    })),
  );
}

/**
 * TASK13 VisualEntailment on the Flickr30k pool: snli_ve_{train,dev}.jsonl (Flikr30kID,
 * sentence1 = a caption of the image as premise text, sentence2 = hypothesis, gold_label),
 * cache/flickr_test_ids.npy (train lines on those images are dropped by cleaning). Each
 * hypothesis is asked of an image per label it takes (complementary sets).
 */
export function writeVisualEntailment(context: WorldContext, pool: ScenePool, featuresPath: string): TaskSummary {
  const dataroot = 'datasets/visual_entailment';
  const random = new Random(context.options.seed, 'tasks/VisualEntailment');
  const linesOf = (scenes: readonly Scene[]) => {
    const premises = new Map(scenes.map((scene) => [scene.key, captions(random, scene, 1)[0]!]));
    const candidates = scenes.flatMap((scene) =>
      hypotheses(scene).map(({ text, label }) => ({
        text,
        answer: label,
        type: 'hypothesis',
        image: scene.key,
        scene,
      })),
    );
    // Every hypothesis with all three labels, as SNLI-VE's labels are balanced (two in a world too small for three).
    const budget = context.options.questionsPerImage * scenes.length;
    const allThree = complementarySets(random, candidates, budget, 3);
    const chosen = allThree.length > 0 ? allThree : complementarySets(random, candidates, budget, 2);
    const counter = new Map<string, number>();
    return chosen.map(({ text, answer, type, image, scene }) => {
      const n = counter.get(image) ?? 0;
      counter.set(image, n + 1);
      return {
        text,
        image,
        label: answer,
        type,
        line: {
          Flikr30kID: `${scene.imageId}.jpg`,
          sentence1: premises.get(image)!,
          sentence2: text,
          gold_label: answer,
          pairID: `${scene.imageId}.jpg#0r${n}${answer[0]!}`,
        },
      };
    });
  };
  const train = linesOf(pool.train);
  const heldOut = linesOf(pool.heldOut);
  const val = linesOf(pool.val);
  const root = join(context.root, dataroot);
  writeJsonLines(
    join(root, 'snli_ve_train.jsonl'),
    random.shuffled([...train, ...heldOut]).map((row) => row.line),
  );
  writeJsonLines(
    join(root, 'snli_ve_dev.jsonl'),
    val.map((row) => row.line),
  );
  writeNpyInt64(
    join(root, 'cache', 'flickr_test_ids.npy'),
    pool.heldOut.map((scene) => scene.imageId),
  );
  return {
    key: 'TASK13',
    name: 'VisualEntailment',
    train: train.length,
    val: val.length,
    metric: 'accuracy',
    answers: 3,
    ...blindBaselines(train, val),
    registry: {
      dataroot,
      features_h5path1: featuresPath,
      features_h5path2: '',
      max_seq_length: sequenceLength(
        context,
        [...train, ...heldOut, ...val].map((row) => row.text),
      ),
      max_region_num: context.options.boxes + 1,
    },
  };
}
