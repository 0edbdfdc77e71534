// The answer-classification tasks: VQA (TASK1), GenomeQA (TASK2) and GQA (TASK15), in the
// files their loaders read (questions JSON, the cache/ target and answer-label pickles).
// Questions are about the objects of one scene; the same question has different answers in
// different scenes and one scene's questions have different answers, so neither the question nor the image alone decides.
import { join } from 'node:path';
import { pyFloat } from '../io/pickle-numpy-writer.js';
import { blindBaselines } from './baselines.js';
import { sequenceLength, type TaskSummary, type WorldContext } from './context.js';
import { writeJson, writeNpyInt64, writePickle } from './files.js';
import { describe, type Attribute } from './language.js';
import { Random } from './random.js';
import { boxCenter, positionOf, type Scene, type ScenePool, type SceneObject } from './scenes.js';
import { CATEGORIES, COLORS } from './vocabulary.js';

interface Question {
  question: string;
  answer: string;
}

type Template = (random: Random, scene: Scene) => Question | null;

const colorName = (object: SceneObject) => COLORS[object.color]!.name;
const categoryName = (object: SceneObject) => CATEGORIES[object.category]!.name;

/** A question about one object, named without the attribute asked for. */
function aboutObject(
  allowed: Attribute[],
  ask: (desc: string) => string,
  answer: (object: SceneObject, scene: Scene) => string,
): Template {
  return (random, scene) => {
    const target = random.choice(scene.objects);
    const desc = describe(random, target, scene.objects, scene, allowed);
    return desc === null ? null : { question: ask(desc), answer: answer(target, scene) };
  };
}

/** Two distinct objects, the first left of the second by a clear margin, or null. */
function horizontalPair(random: Random, scene: Scene): [SceneObject, SceneObject] | null {
  const [a, b] = random.sample(scene.objects, 2);
  if (a === undefined || b === undefined) return null;
  const dx = boxCenter(a.box)[0] - boxCenter(b.box)[0];
  if (Math.abs(dx) < 0.05 * scene.width) return null;
  return dx < 0 ? [a, b] : [b, a];
}

/** Two objects named with the `allowed` attributes only, the pair chosen so that `same` holds half the time when it can. */
function comparedPair(
  random: Random,
  scene: Scene,
  allowed: Attribute[],
  same: (a: SceneObject, b: SceneObject) => boolean,
): { a: SceneObject; b: SceneObject; descA: string; descB: string } | null {
  const pairs = scene.objects.flatMap((a, i) => scene.objects.slice(i + 1).map((b) => [a, b] as const));
  const wantSame = random.bernoulli(0.5);
  const matching = pairs.filter(([a, b]) => same(a, b) === wantSame);
  const [a, b] = random.shuffled(random.choice(matching.length > 0 ? matching : pairs)) as [SceneObject, SceneObject];
  const descA = describe(random, a, scene.objects, scene, allowed);
  const descB = describe(random, b, scene.objects, scene, allowed);
  return descA === null || descB === null ? null : { a, b, descA, descB };
}

const VQA_TEMPLATES: Template[] = [
  aboutObject(['size', 'category', 'position'], (desc) => `what color is the ${desc}?`, colorName),
  aboutObject(['size', 'color', 'position'], (desc) => `what shape is the ${desc}?`, categoryName),
  aboutObject(
    ['color', 'category', 'position'],
    (desc) => `is the ${desc} small or large?`,
    (object) => object.size,
  ),
  (random, scene) => {
    const present = random.bernoulli(0.6);
    const color = present ? random.choice(scene.objects).color : random.int(0, COLORS.length - 1);
    const count = scene.objects.filter((object) => object.color === color).length;
    return { question: `how many ${COLORS[color]!.name} objects are there?`, answer: String(count) };
  },
  (random, scene) => {
    if (random.bernoulli(0.5)) {
      const object = random.choice(scene.objects);
      return { question: `is there a ${colorName(object)} ${categoryName(object)}?`, answer: 'yes' };
    }
    const color = random.int(0, COLORS.length - 1);
    const category = random.int(0, CATEGORIES.length - 1);
    const present = scene.objects.some((object) => object.color === color && object.category === category);
    return {
      question: `is there a ${COLORS[color]!.name} ${CATEGORIES[category]!.name}?`,
      answer: present ? 'yes' : 'no',
    };
  },
];

const GENOME_TEMPLATES: Template[] = [
  aboutObject(['size', 'category', 'position'], (desc) => `what color is the ${desc}?`, colorName),
  aboutObject(['size', 'color', 'position'], (desc) => `what is the ${desc}?`, categoryName),
  aboutObject(
    ['size', 'color', 'category'],
    (desc) => `where is the ${desc}?`,
    (object, scene) => positionOf(object, scene),
  ),
  (random, scene) => {
    const category = random.bernoulli(0.7)
      ? random.choice(scene.objects).category
      : random.int(0, CATEGORIES.length - 1);
    const count = scene.objects.filter((object) => object.category === category).length;
    return { question: `how many ${CATEGORIES[category]!.plural} are there?`, answer: String(count) };
  },
];

const GQA_TEMPLATES: Template[] = [
  (random, scene) => {
    const pair = horizontalPair(random, scene);
    if (pair === null) return null;
    const swap = random.bernoulli(0.5);
    const [subject, reference] = swap ? [pair[1], pair[0]] : pair;
    const descA = describe(random, subject, scene.objects, scene, ['size', 'color', 'category']);
    const descB = describe(random, reference, scene.objects, scene, ['size', 'color', 'category']);
    if (descA === null || descB === null) return null;
    return {
      question: `is the ${descA} to the left or to the right of the ${descB}?`,
      answer: swap ? 'right' : 'left',
    };
  },
  (random, scene) => {
    const pair = comparedPair(random, scene, ['size', 'category', 'position'], (a, b) => a.color === b.color);
    return (
      pair && {
        question: `are the ${pair.descA} and the ${pair.descB} the same color?`,
        answer: pair.a.color === pair.b.color ? 'yes' : 'no',
      }
    );
  },
  (random, scene) => {
    const pair = comparedPair(random, scene, ['size', 'color', 'position'], (a, b) => a.category === b.category);
    return (
      pair && {
        question: `are the ${pair.descA} and the ${pair.descB} the same shape?`,
        answer: pair.a.category === pair.b.category ? 'yes' : 'no',
      }
    );
  },
  (random, scene) => {
    const pair = comparedPair(random, scene, ['color', 'category', 'position'], (a, b) => a.size !== b.size);
    if (pair === null || pair.a.size === pair.b.size) return null;
    return {
      question: `is the ${pair.descA} bigger than the ${pair.descB}?`,
      answer: pair.a.size === 'large' ? 'yes' : 'no',
    };
  },
  aboutObject(['size', 'category', 'position'], (desc) => `what color is the ${desc}?`, colorName),
];

/** Up to `count` different questions about a scene, templates taken in turn from a random start. */
function askAbout(random: Random, scene: Scene, templates: readonly Template[], count: number): Question[] {
  const questions: Question[] = [];
  const start = random.int(0, templates.length - 1);
  for (let attempt = 0; questions.length < count && attempt < 8 * count; attempt++) {
    const asked = templates[(start + attempt) % templates.length]!(random, scene);
    if (asked && !questions.some((q) => q.question === asked.question)) questions.push(asked);
  }
  return questions;
}

interface AskedQuestion extends Question {
  scene: Scene;
}

function askPool(
  random: Random,
  scenes: readonly Scene[],
  templates: readonly Template[],
  count: number,
): AskedQuestion[] {
  return scenes.flatMap((scene) =>
    askAbout(random, scene, templates, count).map((question) => ({ ...question, scene })),
  );
}

/** ans2label / label2ans over every answer, sorted (stable for a seed). */
function answerVocabulary(questions: readonly Question[]): { ans2label: Map<string, number>; label2ans: string[] } {
  const label2ans = [...new Set(questions.map((q) => q.answer))].sort();
  return { ans2label: new Map(label2ans.map((answer, label) => [answer, label])), label2ans };
}

function writeVocabulary(dataroot: string, vocabulary: { ans2label: Map<string, number>; label2ans: string[] }): void {
  writePickle(join(dataroot, 'cache', 'trainval_ans2label.pkl'), vocabulary.ans2label);
  writePickle(join(dataroot, 'cache', 'trainval_label2ans.pkl'), vocabulary.label2ans);
}

const forBaseline = (questions: readonly AskedQuestion[]) =>
  questions.map((q) => ({ text: q.question, image: q.scene.key, label: q.answer }));

function summary(
  context: WorldContext,
  key: string,
  name: string,
  registry: TaskSummary['registry'],
  train: AskedQuestion[],
  val: AskedQuestion[],
  answers: number,
  allTexts: Iterable<string>,
): TaskSummary {
  return {
    key,
    name,
    train: train.length,
    val: val.length,
    metric: 'accuracy',
    answers,
    ...blindBaselines(forBaseline(train), forBaseline(val)),
    registry: {
      ...registry,
      max_seq_length: sequenceLength(context, allTexts),
      max_region_num: context.options.boxes + 1,
    },
  };
}

/**
 * TASK1 VQA on the COCO pool: questions JSON + cache/{train,val}_target.pkl per COCO split.
 * trainval = the train questions (val has under 3000, so none of it goes to trainval) and
 * minval = the val questions; train questions on held-out images are dropped by cleaning.
 */
export function writeVqa(context: WorldContext, pool: ScenePool, featuresPath: string): TaskSummary {
  const dataroot = 'datasets/VQA';
  const random = new Random(context.options.seed, 'tasks/VQA');
  const count = context.options.questionsPerImage;
  const train = askPool(random, pool.train, VQA_TEMPLATES, count);
  const heldOut = askPool(random, pool.heldOut, VQA_TEMPLATES, count);
  const val = askPool(random, pool.val, VQA_TEMPLATES, count);
  if (val.length > 3000)
    throw new RangeError(
      `VQA: ${val.length} val questions; minval takes the last 3000 and the rest would join trainval (use fewer val images or questions)`,
    );
  const vocabulary = answerVocabulary([...train, ...heldOut, ...val]);
  const root = join(context.root, dataroot);
  let questionId = 0;
  const write = (subtype: 'train2014' | 'val2014', questions: AskedQuestion[]) => {
    const ids = questions.map(() => ++questionId);
    writeJson(join(root, `v2_OpenEnded_mscoco_${subtype}_questions.json`), {
      info: { description: 'vilbert-ts synthetic world' },
      task_type: 'Open-Ended',
      data_type: 'mscoco',
      license: {},
      data_subtype: subtype,
      questions: questions.map((q, i) => ({ image_id: q.scene.imageId, question: q.question, question_id: ids[i]! })),
    });
    writePickle(
      join(root, 'cache', `${subtype.slice(0, -4)}_target.pkl`),
      questions.map((q, i) => ({
        question_id: ids[i]!,
        image_id: q.scene.imageId,
        labels: [vocabulary.ans2label.get(q.answer)!],
        scores: [pyFloat(1)],
      })),
    );
  };
  write('train2014', random.shuffled([...train, ...heldOut]));
  write('val2014', val);
  writeVocabulary(root, vocabulary);
  writeNpyInt64(
    join(root, 'cache', 'coco_test_ids.npy'),
    pool.heldOut.map((scene) => scene.imageId),
  );
  const texts = [...train, ...heldOut, ...val].map((q) => q.question);
  return summary(
    context,
    'TASK1',
    'VQA',
    { dataroot, features_h5path1: featuresPath, features_h5path2: '' },
    train,
    val,
    vocabulary.label2ans.length,
    texts,
  );
}

/** GenomeQA's val split is the last 5000 items by question id. */
const GENOME_VAL_SIZE = 5000;

/**
 * TASK2 GenomeQA on the Visual Genome pool: cache/trainval_target.pkl sorted by question id.
 * The loader's val split is the last 5000 items and cleaning applies to both splits, so the
 * val questions are padded to 5000 with questions on the held-out images, which cleaning
 * drops (as the kit does).
 */
export function writeGenomeQa(context: WorldContext, pool: ScenePool, featuresPath: string): TaskSummary {
  const dataroot = 'datasets/visual_genome';
  const random = new Random(context.options.seed, 'tasks/GenomeQA');
  const count = context.options.questionsPerImage;
  const train = askPool(random, pool.train, GENOME_TEMPLATES, count);
  const heldOutTrain = askPool(random, pool.heldOut, GENOME_TEMPLATES, count);
  const val = askPool(random, pool.val, GENOME_TEMPLATES, count);
  if (val.length > GENOME_VAL_SIZE)
    throw new RangeError(`GenomeQA: ${val.length} val questions; its val split holds ${GENOME_VAL_SIZE}`);
  if (pool.heldOut.length === 0) throw new RangeError('GenomeQA needs held-out images to fill its 5000-item val split');
  // The held-out images' questions, over and over (only a run without cleaning ever sees them).
  const heldOutQuestions = askPool(random, pool.heldOut, GENOME_TEMPLATES, 4 * count);
  const fillers = Array.from(
    { length: GENOME_VAL_SIZE - val.length },
    (_, i) => heldOutQuestions[i % heldOutQuestions.length]!,
  );
  const vocabulary = answerVocabulary([...train, ...heldOutTrain, ...val, ...fillers]);
  const head = random.shuffled([...train, ...heldOutTrain]);
  const tail = random.shuffled([...val, ...fillers]);
  const root = join(context.root, dataroot);
  writePickle(
    join(root, 'cache', 'trainval_target.pkl'),
    [...head, ...tail].map((q, i) => ({
      question_id: i + 1,
      image_id: q.scene.imageId,
      question: q.question,
      labels: [vocabulary.ans2label.get(q.answer)!],
      scores: [pyFloat(1)],
    })),
  );
  writeVocabulary(root, vocabulary);
  writeNpyInt64(
    join(root, 'cache', 'genome_test_ids.npy'),
    pool.heldOut.map((scene) => scene.imageId),
  );
  const texts = [...head, ...val].map((q) => q.question);
  return summary(
    context,
    'TASK2',
    'GenomeQA',
    { dataroot, features_h5path1: featuresPath, features_h5path2: '' },
    train,
    val,
    vocabulary.label2ans.length,
    texts,
  );
}

/**
 * TASK15 GQA on the Visual Genome pool (GQA's images are Visual Genome images; the loader
 * looks them up by the string id, which is the Visual Genome LMDB's key). String question
 * and image ids. Splits train / val (cache/{train,val}_target.pkl): the reference's
 * trainval / minval cut always puts 3000 items, uncleaned, in minval.
 */
export function writeGqa(context: WorldContext, pool: ScenePool, featuresPath: string): TaskSummary {
  const dataroot = 'datasets/gqa';
  const random = new Random(context.options.seed, 'tasks/GQA');
  const count = context.options.questionsPerImage;
  const train = askPool(random, pool.train, GQA_TEMPLATES, count);
  const heldOut = askPool(random, pool.heldOut, GQA_TEMPLATES, count);
  const val = askPool(random, pool.val, GQA_TEMPLATES, count);
  const vocabulary = answerVocabulary([...train, ...heldOut, ...val]);
  const root = join(context.root, dataroot);
  let questionId = 0;
  const write = (split: 'train' | 'val', questions: AskedQuestion[]) =>
    writePickle(
      join(root, 'cache', `${split}_target.pkl`),
      questions.map((q) => ({
        question_id: String(++questionId),
        image_id: String(q.scene.imageId),
        question: q.question,
        labels: [vocabulary.ans2label.get(q.answer)!],
        scores: [pyFloat(1)],
      })),
    );
  write('train', random.shuffled([...train, ...heldOut]));
  write('val', val);
  writeVocabulary(root, vocabulary);
  writeNpyInt64(
    join(root, 'cache', 'genome_test_ids.npy'),
    pool.heldOut.map((scene) => scene.imageId),
  );
  const texts = [...train, ...heldOut, ...val].map((q) => q.question);
  return summary(
    context,
    'TASK15',
    'GQA',
    { dataroot, features_h5path1: featuresPath, features_h5path2: '', train_split: 'train', val_split: 'val' },
    train,
    val,
    vocabulary.label2ans.length,
    texts,
  );
}
