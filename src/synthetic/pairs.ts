// Sentence-image pair classification: NLVR2 (TASK12, a statement about two images) and SNLI-VE
// (TASK13, a hypothesis about one image), in their JSON-lines files.
// Labels are drawn first and a sentence is then found that has that label for the images, so
// labels are balanced and the same sentence is true of some images and false of others.
import { join } from 'node:path';
import { blindBaselines } from './baselines.js';
import { sequenceLength, type TaskSummary, type WorldContext } from './context.js';
import { touch, writeJsonLines, writeNpyInt64 } from './files.js';
import { article, phrase } from './language.js';
import { Random } from './random.js';
import { captions } from './retrieval.js';
import { type Scene, type ScenePool, type SceneObject } from './scenes.js';
import { CATEGORIES, COLORS, NUMBER_WORDS } from './vocabulary.js';

// ---------------------------------------------------------------- NLVR2

interface Statement {
  sentence: string;
  holds: boolean;
}

type PairTemplate = (random: Random, left: Scene, right: Scene) => Statement;

const countWhere = (scene: Scene, test: (object: SceneObject) => boolean) => scene.objects.filter(test).length;

/** Statements about "the left image" and "the right image" (img0 and img1). */
const PAIR_TEMPLATES: PairTemplate[] = [
  (random, left, right) => {
    const color = random.int(0, COLORS.length - 1);
    const [first, second, firstScene, secondScene] = random.bernoulli(0.5)
      ? ['left', 'right', left, right]
      : ['right', 'left', right, left];
    const test = (object: SceneObject) => object.color === color;
    return {
      sentence: `the ${first} image has more ${COLORS[color]!.name} objects than the ${second} image`,
      holds: countWhere(firstScene, test) > countWhere(secondScene, test),
    };
  },
  (random, left, right) => {
    const category = random.int(0, CATEGORIES.length - 1);
    const [first, second, firstScene, secondScene] = random.bernoulli(0.5)
      ? ['left', 'right', left, right]
      : ['right', 'left', right, left];
    const test = (object: SceneObject) => object.category === category;
    return {
      sentence: `there are more ${CATEGORIES[category]!.plural} in the ${first} image than in the ${second} image`,
      holds: countWhere(firstScene, test) > countWhere(secondScene, test),
    };
  },
  (random, left, right) => {
    const object = random.choice(random.choice([left, right]).objects);
    const test = (other: SceneObject) => other.color === object.color && other.category === object.category;
    return {
      sentence: `both images contain ${article(phrase(object, ['color', 'category'], left))}`,
      holds: countWhere(left, test) > 0 && countWhere(right, test) > 0,
    };
  },
  (random, left, right) => {
    const [side, scene] = random.bernoulli(0.5) ? ['left', left] : ['right', right];
    const color = random.choice(random.choice([left, right]).objects).color;
    const count = random.int(1, 3);
    return {
      sentence: `the ${side} image contains exactly ${NUMBER_WORDS[count]!} ${COLORS[color]!.name} ${count === 1 ? 'object' : 'objects'}`,
      holds: countWhere(scene, (object) => object.color === color) === count,
    };
  },
  (random, left, right) => {
    const [first, second, firstScene, secondScene] = random.bernoulli(0.5)
      ? ['left', 'right', left, right]
      : ['right', 'left', right, left];
    return {
      sentence: `the ${first} image has more objects than the ${second} image`,
      holds: firstScene.objects.length > secondScene.objects.length,
    };
  },
];

/** A statement whose truth for the pair is `wanted` (the last one tried if none is found). */
function statementWithLabel(
  random: Random,
  left: Scene,
  right: Scene,
  wanted: boolean,
  avoid: ReadonlySet<string>,
): Statement {
  let statement = random.choice(PAIR_TEMPLATES)(random, left, right);
  for (let attempt = 0; attempt < 50 && (statement.holds !== wanted || avoid.has(statement.sentence)); attempt++) {
    statement = random.choice(PAIR_TEMPLATES)(random, left, right);
  }
  return statement;
}

/**
 * TASK12 NLVR2 on its pool (consecutive scenes are a pair; LMDB keys
 * `<split>-<set>-<pair>-img0/1`): train.json and dev.json, JSON lines with identifier
 * `<split>-<set>-<pair>-<n>`, sentence and label "True"/"False". No cleaning; `cache/` exists.
 */
export function writeNlvr2(context: WorldContext, pool: ScenePool, featuresPath: string): TaskSummary {
  const dataroot = 'datasets/nlvr2';
  const random = new Random(context.options.seed, 'tasks/NLVR2');
  const rows: Record<'train' | 'dev', { text: string; image: string; label: string; line: Record<string, unknown> }[]> =
    { train: [], dev: [] };
  for (const [split, scenes] of [
    ['train', pool.train],
    ['dev', pool.val],
  ] as const) {
    for (let i = 0; i + 1 < scenes.length; i += 2) {
      const [left, right] = [scenes[i]!, scenes[i + 1]!];
      const pairName = left.key.replace(/-img0$/, '');
      const said = new Set<string>();
      // Alternating labels: every pair has as many true statements as false ones (one more of either when odd).
      const firstTrue = random.bernoulli(0.5);
      for (let n = 0; n < context.options.statementsPerPair; n++) {
        const statement = statementWithLabel(random, left, right, (n % 2 === 0) === firstTrue, said);
        said.add(statement.sentence);
        const label = statement.holds ? 'True' : 'False';
        rows[split].push({
          text: statement.sentence,
          image: pairName,
          label,
          line: {
            identifier: `${pairName}-${n}`,
            sentence: statement.sentence,
            label,
            left_url: `${left.key}.png`,
            right_url: `${right.key}.png`,
            synset: 'shape',
            query: 'shapes',
          },
        });
      }
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
const ENTAILMENT_LABELS: readonly EntailmentLabel[] = ['entailment', 'neutral', 'contradiction'];

/**
 * A hypothesis "there is a <shape> and a <colour> object" with the wanted label: entailment
 * when the image shows both, contradiction when it shows the shape but nothing of that
 * colour, neutral when it shows no such shape (the premise says nothing about it). The same
 * words take every label in some image, so they alone say little. Null when the scene
 * allows no such pair.
 */
function hypothesis(random: Random, scene: Scene, label: EntailmentLabel): string | null {
  const hasShape = (category: number) => scene.objects.some((object) => object.category === category);
  const hasColor = (color: number) => scene.objects.some((object) => object.color === color);
  const fits = (category: number, color: number) =>
    label === 'neutral' ? !hasShape(category) : hasShape(category) && hasColor(color) === (label === 'entailment');
  const pairs = CATEGORIES.flatMap((_, category) => COLORS.map((_, color) => [category, color] as const)).filter(
    ([category, color]) => fits(category, color),
  );
  if (pairs.length === 0) return null;
  const [category, color] = random.choice(pairs);
  return `there is ${article(CATEGORIES[category]!.name)} and ${article(COLORS[color]!.name)} object`;
}

/**
 * TASK13 VisualEntailment on the Flickr30k pool: snli_ve_{train,dev}.jsonl (Flikr30kID,
 * sentence1 = a caption of the image as premise text, sentence2 = hypothesis, gold_label),
 * cache/flickr_test_ids.npy (train lines on those images are dropped by cleaning).
 */
export function writeVisualEntailment(context: WorldContext, pool: ScenePool, featuresPath: string): TaskSummary {
  const dataroot = 'datasets/visual_entailment';
  const random = new Random(context.options.seed, 'tasks/VisualEntailment');
  const linesOf = (scenes: readonly Scene[]) =>
    scenes.flatMap((scene) => {
      const premise = captions(random, scene, 1)[0]!;
      const out: { text: string; image: string; label: string; line: Record<string, unknown> }[] = [];
      const said = new Set<string>();
      // The labels in turn from a random start: balanced within every image.
      const start = random.int(0, ENTAILMENT_LABELS.length - 1);
      for (
        let attempt = 0;
        out.length < context.options.questionsPerImage && attempt < 4 * context.options.questionsPerImage;
        attempt++
      ) {
        const label = ENTAILMENT_LABELS[(start + out.length) % ENTAILMENT_LABELS.length]!;
        const text = hypothesis(random, scene, label);
        if (text === null || said.has(text)) continue;
        said.add(text);
        out.push({
          text,
          image: scene.key,
          label,
          line: {
            Flikr30kID: `${scene.imageId}.jpg`,
            sentence1: premise,
            sentence2: text,
            gold_label: label,
            pairID: `${scene.imageId}.jpg#0r${out.length}${label[0]!}`,
          },
        });
      }
      return out;
    });
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
