// The answer-classification tasks: VQA (TASK1), GenomeQA (TASK2) and GQA (TASK15), in the
// files their loaders read (questions JSON, the cache/ target and answer-label pickles).
// Questions are about the objects of one scene; the same question has different answers in
// different scenes and one scene's questions have different answers, so neither the question nor the image alone decides.
import { join } from 'node:path';
import { pyFloat } from '../io/pickle-numpy-writer.js';
import { blindBaselines } from './baselines.js';
import { sequenceLength, type TaskSummary, type WorldContext } from './context.js';
import { writeJson, writeNpyInt64, writePickle } from './files.js';
import { complementarySets } from './balance.js';
import { descriptions, type Attribute } from './language.js';
import { Random } from './random.js';
import { boxCenter, positionOf, type Scene, type ScenePool, type SceneObject } from './scenes.js';
import { CATEGORIES, COLORS } from './vocabulary.js';

interface Question {
  question: string;
  answer: string;
  /** The template, for the question-type baseline. */
  type: string;
}

/** Every question a template can ask of a scene (at most one per text). */
type Template = (scene: Scene) => Question[];

const colorName = (object: SceneObject) => COLORS[object.color]!.name;
const categoryName = (object: SceneObject) => CATEGORIES[object.category]!.name;

/** Questions about each object, named in every smallest way the `allowed` attributes single it out. */
function aboutObject(
  type: string,
  allowed: Attribute[],
  ask: (desc: string) => string,
  answer: (object: SceneObject, scene: Scene) => string,
): Template {
  return (scene) =>
    scene.objects.flatMap((target) =>
      descriptions(target, scene.objects, scene, allowed).map((desc) => ({
        question: ask(desc),
        answer: answer(target, scene),
        type,
      })),
    );
}

/** Ordered pairs of distinct objects, each named in its smallest ways, that `keep` accepts. */
function aboutPairs(
  type: string,
  allowed: Attribute[],
  ask: (a: SceneObject, b: SceneObject, descA: string, descB: string, scene: Scene) => Question | null,
): Template {
  return (scene) =>
    scene.objects.flatMap((a) =>
      scene.objects.flatMap((b) => {
        if (a === b) return [];
        const namesB = descriptions(b, scene.objects, scene, allowed);
        return descriptions(a, scene.objects, scene, allowed).flatMap((descA) =>
          namesB.flatMap((descB) => ask(a, b, descA, descB, scene) ?? []),
        );
      }),
    );
}

const centerX = (object: SceneObject) => boxCenter(object.box)[0];
const countWhere = (scene: Scene, test: (object: SceneObject) => boolean) => scene.objects.filter(test).length;

const VQA_TEMPLATES: Template[] = [
  aboutObject('color', ['size', 'category', 'position'], (desc) => `what color is the ${desc}?`, colorName),
  aboutObject('shape', ['size', 'color', 'position'], (desc) => `what shape is the ${desc}?`, categoryName),
  aboutObject(
    'size',
    ['color', 'category', 'position'],
    (desc) => `is the ${desc} small or large?`,
    (object) => object.size,
  ),
  (scene) =>
    COLORS.map((color, c) => ({
      question: `how many ${color.name} objects are there?`,
      answer: String(countWhere(scene, (object) => object.color === c)),
      type: 'count',
    })),
  (scene) =>
    COLORS.flatMap((color, c) =>
      CATEGORIES.map((category, k) => ({
        question: `is there a ${color.name} ${category.name}?`,
        answer: scene.objects.some((object) => object.color === c && object.category === k) ? 'yes' : 'no',
        type: 'exist',
      })),
    ),
];

const GENOME_TEMPLATES: Template[] = [
  aboutObject('color', ['size', 'category', 'position'], (desc) => `what color is the ${desc}?`, colorName),
  aboutObject('shape', ['size', 'color', 'position'], (desc) => `what is the ${desc}?`, categoryName),
  aboutObject(
    'position',
    ['size', 'color', 'category'],
    (desc) => `where is the ${desc}?`,
    (object, scene) => positionOf(object, scene),
  ),
  (scene) =>
    CATEGORIES.map((category, k) => ({
      question: `how many ${category.plural} are there?`,
      answer: String(countWhere(scene, (object) => object.category === k)),
      type: 'count',
    })),
];

const GQA_TEMPLATES: Template[] = [
  aboutPairs('relation', ['size', 'color', 'category'], (a, b, descA, descB, scene) =>
    Math.abs(centerX(a) - centerX(b)) < 0.05 * scene.width
      ? null
      : {
          question: `is the ${descA} to the left or to the right of the ${descB}?`,
          answer: centerX(a) < centerX(b) ? 'left' : 'right',
          type: 'relation',
        },
  ),
  aboutPairs('same-color', ['size', 'category', 'position'], (a, b, descA, descB) => ({
    question: `are the ${descA} and the ${descB} the same color?`,
    answer: a.color === b.color ? 'yes' : 'no',
    type: 'same-color',
  })),
  (scene) =>
    scene.objects.flatMap((target) =>
      descriptions(target, scene.objects, scene, ['size', 'category', 'position']).flatMap((desc) =>
        COLORS.map((color, c) => ({
          question: `is the ${desc} ${color.name}?`,
          answer: target.color === c ? 'yes' : 'no',
          type: 'verify-color',
        })),
      ),
    ),
  (scene) =>
    scene.objects.flatMap((target) =>
      descriptions(target, scene.objects, scene, ['size', 'category', 'position']).flatMap((desc) =>
        COLORS.flatMap((other, c) =>
          c === target.color
            ? []
            : [
                {
                  question:
                    c < target.color
                      ? `is the ${desc} ${other.name} or ${colorName(target)}?`
                      : `is the ${desc} ${colorName(target)} or ${other.name}?`,
                  answer: colorName(target),
                  type: 'choose-color',
                },
              ],
        ),
      ),
    ),
  aboutObject('color', ['size', 'category', 'position'], (desc) => `what color is the ${desc}?`, colorName),
];

interface AskedQuestion extends Question {
  scene: Scene;
}

/** Every question the templates ask of the scenes. */
function allQuestions(scenes: readonly Scene[], templates: readonly Template[]): AskedQuestion[] {
  return scenes.flatMap((scene) => templates.flatMap((template) => template(scene).map((q) => ({ ...q, scene }))));
}

/** The split's questions in complementary sets (see balance.ts): about `count` per image. */
function askPool(
  random: Random,
  scenes: readonly Scene[],
  templates: readonly Template[],
  count: number,
): AskedQuestion[] {
  const candidates = allQuestions(scenes, templates).map((q) => ({ ...q, text: q.question, image: q.scene.key }));
  return complementarySets(random, candidates, count * scenes.length).map(({ question, answer, type, scene }) => ({
    question,
    answer,
    type,
    scene,
  }));
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
  questions.map((q) => ({ text: q.question, image: q.scene.key, label: q.answer, type: q.type }));

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
  const heldOutQuestions = allQuestions(pool.heldOut, GENOME_TEMPLATES);
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
