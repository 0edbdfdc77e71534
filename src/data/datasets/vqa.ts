// The answer-classification datasets: VQA (TASK1, VQAClassificationDataset), GenomeQA
// (TASK2, GenomeQAClassificationDataset) and GQA (TASK15, GQAClassificationDataset).
//
// All three build the same entries (question id, image id, question, answer labels/scores),
// tokenise the question to max_seq_length, cache the entries in
// `<dataroot>/cache/<Task>_<split>_<L>[_cleaned].pkl`, and return
// (features, spatials, image_mask, question, target, input_mask, segment_ids,
// co_attention_mask, question_id) with `target = zeros(num_labels).scatter_(0, labels, scores)`.
// They differ in where the questions come from, how the splits are cut and which splits
// drop items on test-set images: VQA and GQA cut trainval/minval at 3000 items, GenomeQA
// train/val at 5000, after sorting by question id (GQA's string ids lexicographically);
// cleaning drops VQA's and GQA's train-side items, GenomeQA's in both splits.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe } from '../../io/pickle.js';
import { isRawTensor, type RawTensor } from '../../io/raw-tensor.js';
import {
  type DatasetFactory,
  type DatasetItem,
  type DatasetOptions,
  type ItemTensor,
  type TaskDataset,
  QUESTION_ITEM_ORDER,
  float32Tensor,
  int64Tensor,
  zeroCoAttentionMask,
} from '../dataset.js';
import { FEATURE_WIDTH, LOCATION_WIDTH, type PaddedRegions } from '../features.js';
import { DatasetError } from '../dataset-error.js';
import {
  dictField,
  pythonInt,
  readBytes,
  readPickle,
  readTestImageIds,
  removedImageIds,
  requireFeatures,
} from '../annotations.js';
import {
  itemTensorFromRaw,
  rawTensor1d,
  readTokenCacheEntries,
  tokenCachePath,
  writeTokenCache,
} from '../token-cache.js';

/** The classes' held-out tails: the last 3000 (VQA val, GQA) or 5000 (GenomeQA) sorted items. */
const VQA_MINVAL_SIZE = 3000;
const GQA_MINVAL_SIZE = 3000;
const GENOME_VAL_SIZE = 5000;

/** `cache/trainval_ans2label.pkl` and `cache/trainval_label2ans.pkl`, shared by every split. */
export interface AnswerVocabulary {
  ans2label: Map<string, number>;
  label2ans: string[];
}

/** A classification dataset also carries its answer vocabulary (to turn logits into answers). */
export interface ClassificationDataset extends TaskDataset, AnswerVocabulary {}

export function readAnswerVocabulary(dataroot: string): AnswerVocabulary {
  const ans2labelPath = join(dataroot, 'cache', 'trainval_ans2label.pkl');
  const label2ansPath = join(dataroot, 'cache', 'trainval_label2ans.pkl');
  const ans2label = readPickle(ans2labelPath, { numpy: true });
  const label2ans = readPickle(label2ansPath, { numpy: true });
  if (
    !(ans2label instanceof Map) ||
    ![...ans2label].every(([key, value]) => typeof key === 'string' && Number.isSafeInteger(value))
  ) {
    throw new DatasetError(ans2labelPath, `expected a dict of answer -> label id, found a ${describe(ans2label)}`);
  }
  if (!Array.isArray(label2ans) || !label2ans.every((answer) => typeof answer === 'string')) {
    throw new DatasetError(label2ansPath, `expected a list of answers, found a ${describe(label2ans)}`);
  }
  return { ans2label: ans2label as Map<string, number>, label2ans: label2ans as string[] };
}

/** A dict of a pickle or JSON file, read by key (dictField) with errors naming the file and item. */
type PyDict = Map<string, unknown>;

/** `sorted(items, key=lambda x: x["question_id"])`: stable; strings sort by code point, as Python's. */
function sortedByQuestionId(items: PyDict[], where: string): PyDict[] {
  const keyOf = (item: PyDict): number | string => {
    const id = dictField(item, 'question_id', where);
    if (typeof id !== 'number' && typeof id !== 'string')
      throw new DatasetError(where, `question_id ${JSON.stringify(id)} is neither an int nor a str`);
    return id;
  };
  const keyed = items.map((item) => ({ item, key: keyOf(item) }));
  if (new Set(keyed.map(({ key }) => typeof key)).size > 1)
    throw new DatasetError(where, 'question ids mix ints and strs (Python cannot sort them)');
  return keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map(({ item }) => item);
}

/** Python's `items[:-n]` and `items[-n:]` (all of a list shorter than n goes to the tail). */
const headWithoutLast = <T>(items: T[], n: number): T[] => items.slice(0, Math.max(0, items.length - n));
const lastN = <T>(items: T[], n: number): T[] => items.slice(Math.max(0, items.length - n));

function readRecordList(path: string): PyDict[] {
  const value = readPickle(path, { numpy: true });
  if (!Array.isArray(value) || !value.every((item) => item instanceof Map))
    throw new DatasetError(path, `expected a list of dicts, found a ${describe(value)}`);
  return value as PyDict[];
}

function readQuestions(path: string): PyDict[] {
  const document = JSON.parse(new TextDecoder().decode(readBytes(path))) as { questions?: unknown };
  if (!Array.isArray(document.questions)) throw new DatasetError(path, "no 'questions' list");
  return document.questions.map((question: unknown, index) => {
    if (typeof question !== 'object' || question === null)
      throw new DatasetError(path, `questions[${index}] is not an object`);
    return new Map(Object.entries(question));
  });
}

/** An entry before tokenisation, with the reference's keys and key order. */
interface RawEntry {
  question_id: unknown;
  image_id: unknown;
  question: unknown;
  /** null for the answer-less test splits. */
  answer: PyDict | null;
  /** Test splits: the entry's keys as the reference keeps them (VQA keeps the whole question dict). */
  keys?: PyDict;
}

/** VQA test: the test2015 question dicts themselves, sorted by question id, no answers. */
function testEntries(questions: PyDict[], where: string): RawEntry[] {
  return questions.map((question, index) => ({
    question_id: question.get('question_id'),
    image_id: question.get('image_id'),
    question: dictField(question, 'question', `${where} question ${index}`),
    answer: null,
    keys: question,
  }));
}

/** The reference's assertion for unknown splits, naming the ones it knows. */
function splitNotRecognized(task: string, split: string, known: string[]): never {
  throw new DatasetError(task, `data split '${split}' is not recognized (supported: ${known.join(', ')})`);
}

/**
 * VQA: questions from v2_OpenEnded_mscoco_<train|val>2014_questions.json, answers from
 * cache/<train|val>_target.pkl, both sorted by question id and paired 1:1. trainval = train +
 * val[:-3000], minval = val[-3000:]. Cleaning (coco_test_ids) only for splits named *train*,
 * which includes trainval's val part.
 */
function loadVqaEntries(dataroot: string, split: string, clean: boolean): RawEntry[] {
  const part = (name: 'train' | 'val'): { questions: PyDict[]; answers: PyDict[] } => {
    const questionsPath = join(dataroot, `v2_OpenEnded_mscoco_${name}2014_questions.json`);
    const answersPath = join(dataroot, 'cache', `${name}_target.pkl`);
    return {
      questions: sortedByQuestionId(readQuestions(questionsPath), questionsPath),
      answers: sortedByQuestionId(readRecordList(answersPath), answersPath),
    };
  };
  let questions: PyDict[];
  let answers: PyDict[];
  if (split === 'train' || split === 'val') {
    ({ questions, answers } = part(split));
  } else if (split === 'trainval') {
    const train = part('train');
    const val = part('val');
    questions = [...train.questions, ...headWithoutLast(val.questions, VQA_MINVAL_SIZE)];
    answers = [...train.answers, ...headWithoutLast(val.answers, VQA_MINVAL_SIZE)];
  } else if (split === 'minval') {
    const val = part('val');
    questions = lastN(val.questions, VQA_MINVAL_SIZE);
    answers = lastN(val.answers, VQA_MINVAL_SIZE);
  } else if (split === 'test') {
    const path = join(dataroot, 'v2_OpenEnded_mscoco_test2015_questions.json');
    return testEntries(sortedByQuestionId(readQuestions(path), path), path);
  } else if (split === 'mteval') {
    // The training questions on the cleaning list's (test-set) images, whatever --clean_train_sets says.
    const train = part('train');
    const onTestImages = readTestImageIds(dataroot, 'coco_test_ids.npy');
    return train.questions.flatMap((question, index) => {
      const where = `${dataroot} split mteval question ${index}`;
      if (!onTestImages.has(pythonInt(dictField(question, 'image_id', where), where))) return [];
      const answer = train.answers[index];
      if (answer === undefined) throw new DatasetError(where, 'no answer at this position of cache/train_target.pkl');
      const rest = new Map([...answer].filter(([key]) => key !== 'question_id' && key !== 'image_id'));
      return [
        {
          question_id: question.get('question_id'),
          image_id: question.get('image_id'),
          question: dictField(question, 'question', where),
          answer: rest,
        },
      ];
    });
  } else {
    return splitNotRecognized('VQA', split, ['train', 'val', 'trainval', 'minval', 'test', 'mteval']);
  }
  if (questions.length !== answers.length)
    throw new DatasetError(dataroot, `split ${split} has ${questions.length} questions but ${answers.length} answers`);
  const removed = removedImageIds(dataroot, 'coco_test_ids.npy', clean);
  const entries: RawEntry[] = [];
  questions.forEach((question, index) => {
    const where = `${dataroot} split ${split} question ${index}`;
    if (split.includes('train') && removed.has(pythonInt(dictField(question, 'image_id', where), where))) return;
    const answer = answers[index]!;
    for (const key of ['question_id', 'image_id']) {
      if (dictField(question, key, where) !== dictField(answer, key, `${where} (answer)`)) {
        throw new DatasetError(
          where,
          `${key} ${String(question.get(key))} of the question vs ${String(answer.get(key))} of its answer`,
        );
      }
    }
    // The reference pops the ids from the answer dict and keeps the rest (labels, scores).
    const rest = new Map([...answer].filter(([key]) => key !== 'question_id' && key !== 'image_id'));
    entries.push({
      question_id: question.get('question_id'),
      image_id: question.get('image_id'),
      question: dictField(question, 'question', where),
      answer: rest,
    });
  });
  return entries;
}

/**
 * GenomeQA: cache/trainval_target.pkl sorted by question id; train = [:-5000], val =
 * [-5000:]; cleaning (genome_test_ids) applies to both splits.
 */
function loadGenomeQaEntries(dataroot: string, split: string, clean: boolean): RawEntry[] {
  const path = join(dataroot, 'cache', 'trainval_target.pkl');
  const sorted = sortedByQuestionId(readRecordList(path), path);
  let items: PyDict[];
  if (split === 'train') items = headWithoutLast(sorted, GENOME_VAL_SIZE);
  else if (split === 'val') items = lastN(sorted, GENOME_VAL_SIZE);
  else return splitNotRecognized('GenomeQA', split, ['train', 'val']);
  const removed = removedImageIds(dataroot, 'genome_test_ids.npy', clean);
  const where = (item: PyDict): string => `${path} question ${String(item.get('question_id'))}`;
  return items
    .filter((item) => !removed.has(pythonInt(dictField(item, 'image_id', where(item)), where(item))))
    .map((item) => ({
      question_id: item.get('question_id'),
      image_id: item.get('image_id'),
      question: dictField(item, 'question', where(item)),
      answer: item,
    }));
}

/**
 * GQA: cache/<split>_target.pkl (train, val) or cache/trainval_target.pkl cut into trainval
 * = [:-3000] and minval = [-3000:], after sorting by the *string* question id; the returned
 * id is int(question_id). Cleaning (genome_test_ids) only for splits named *train*.
 */
function loadGqaEntries(dataroot: string, split: string, clean: boolean): RawEntry[] {
  if (split === 'test') return loadGqaTestEntries(dataroot);
  const file = split === 'train' || split === 'val' ? `${split}_target.pkl` : 'trainval_target.pkl';
  const path = join(dataroot, 'cache', file);
  if (!['train', 'val', 'trainval', 'minval'].includes(split))
    return splitNotRecognized('GQA', split, ['train', 'val', 'trainval', 'minval', 'test']);
  const sorted = sortedByQuestionId(readRecordList(path), path);
  const items =
    split === 'trainval'
      ? headWithoutLast(sorted, GQA_MINVAL_SIZE)
      : split === 'minval'
        ? lastN(sorted, GQA_MINVAL_SIZE)
        : sorted;
  const removed = removedImageIds(dataroot, 'genome_test_ids.npy', clean);
  const where = (item: PyDict): string => `${path} question ${String(item.get('question_id'))}`;
  return items
    .filter(
      (item) =>
        !(split.includes('train') && removed.has(pythonInt(dictField(item, 'image_id', where(item)), where(item)))),
    )
    .map((item) => ({
      question_id: pythonInt(item.get('question_id'), where(item)),
      image_id: item.get('image_id'),
      question: dictField(item, 'question', where(item)),
      answer: item,
    }));
}

/**
 * GQA test: testdev_balanced_questions.json, `{question_id: {imageId, question, ...}}` in
 * file order; question_id int(key), image_id the string imageId, no answers.
 */
function loadGqaTestEntries(dataroot: string): RawEntry[] {
  const path = join(dataroot, 'testdev_balanced_questions.json');
  const document = JSON.parse(new TextDecoder().decode(readBytes(path))) as unknown;
  if (typeof document !== 'object' || document === null || Array.isArray(document))
    throw new DatasetError(path, 'expected an object of question ids');
  return Object.entries(document as Record<string, unknown>).map(([key, value]) => {
    const where = `${path} question ${key}`;
    if (typeof value !== 'object' || value === null) throw new DatasetError(where, 'not an object');
    const record = new Map(Object.entries(value));
    const entry = {
      question_id: pythonInt(key, where),
      image_id: dictField(record, 'imageId', where),
      question: dictField(record, 'question', where),
    };
    return { ...entry, answer: null, keys: new Map(Object.entries(entry)) };
  });
}

/** tokenize() + tensorize(): the cache entry the reference pickles. */
function cacheEntry(entry: RawEntry, options: DatasetOptions, where: string): PyDict {
  if (typeof entry.question !== 'string')
    throw new DatasetError(where, `question is a ${describe(entry.question)}, expected a str`);
  const encoded = options.tokenizer.encodeSingleSentence(entry.question, options.task.max_seq_length);
  const tokens: [string, unknown][] = [
    ['q_token', rawTensor1d('int64', encoded.inputIds)],
    ['q_input_mask', rawTensor1d('int64', encoded.inputMask)],
    ['q_segment_ids', rawTensor1d('int64', encoded.segmentIds)],
  ];
  if (entry.answer === null) return new Map<string, unknown>([...(entry.keys ?? []), ...tokens]);
  const labels = dictField(entry.answer, 'labels', where);
  const scores = dictField(entry.answer, 'scores', where);
  if (
    !Array.isArray(labels) ||
    !Array.isArray(scores) ||
    !labels.every(Number.isSafeInteger) ||
    !scores.every((score) => typeof score === 'number')
  ) {
    throw new DatasetError(where, 'labels / scores are not lists of ints / floats');
  }
  // Empty answers become None: their target stays all zeros.
  entry.answer.set('labels', labels.length > 0 ? rawTensor1d('int64', labels as number[]) : null);
  entry.answer.set('scores', labels.length > 0 ? rawTensor1d('float32', scores as number[]) : null);
  return new Map<string, unknown>([
    ['question_id', entry.question_id],
    ['image_id', entry.image_id],
    ['question', entry.question],
    ['answer', entry.answer],
    ...tokens,
  ]);
}

/** One entry as the item getter uses it. */
interface QaEntry {
  questionId: number;
  imageId: number | string;
  question: ItemTensor;
  inputMask: ItemTensor;
  segmentIds: ItemTensor;
  /** null: no answer (all-zero target). */
  labels: number[] | null;
  scores: Float32Array | null;
}

function tokenTensor(entry: PyDict, key: string, maxSeqLength: number, where: string): ItemTensor {
  const value = dictField(entry, key, where);
  if (!isRawTensor(value) || value.dtype !== 'int64' || value.shape.length !== 1 || value.shape[0] !== maxSeqLength) {
    throw new DatasetError(where, `'${key}' is not an int64 tensor of ${maxSeqLength} tokens`);
  }
  return itemTensorFromRaw(value, `${where} '${key}'`);
}

function qaEntry(entry: PyDict, maxSeqLength: number, where: string): QaEntry {
  const questionId = dictField(entry, 'question_id', where);
  const imageId = dictField(entry, 'image_id', where);
  if (!Number.isSafeInteger(questionId))
    throw new DatasetError(where, `question_id ${JSON.stringify(questionId)} is not an int`);
  if (typeof imageId !== 'number' && typeof imageId !== 'string')
    throw new DatasetError(where, `image_id ${JSON.stringify(imageId)} is neither an int nor a str`);
  // Test entries have no answer (their target stays all zeros).
  const answer = entry.has('answer')
    ? dictField(entry, 'answer', where)
    : new Map([
        ['labels', null],
        ['scores', null],
      ]);
  if (!(answer instanceof Map)) throw new DatasetError(where, `answer is a ${describe(answer)}, expected a dict`);
  const labels = dictField(answer as PyDict, 'labels', `${where} answer`);
  const scores = dictField(answer as PyDict, 'scores', `${where} answer`);
  let labelList: number[] | null = null;
  let scoreList: Float32Array | null = null;
  if (labels !== null || scores !== null) {
    if (
      !isRawTensor(labels) ||
      !isRawTensor(scores) ||
      labels.shape.length !== 1 ||
      scores.shape.length !== 1 ||
      labels.shape[0] !== scores.shape[0]
    ) {
      throw new DatasetError(where, 'answer labels / scores are not 1-D tensors of one length');
    }
    labelList = Array.from(numericValues(labels, `${where} labels`), Number);
    scoreList = Float32Array.from(numericValues(scores, `${where} scores`), Number);
  }
  return {
    questionId: questionId as number,
    imageId,
    question: tokenTensor(entry, 'q_token', maxSeqLength, where),
    inputMask: tokenTensor(entry, 'q_input_mask', maxSeqLength, where),
    segmentIds: tokenTensor(entry, 'q_segment_ids', maxSeqLength, where),
    labels: labelList,
    scores: scoreList,
  };
}

function numericValues(tensor: RawTensor, where: string): ArrayLike<number | bigint> {
  const data = tensor.data.slice();
  switch (tensor.dtype) {
    case 'int64':
      return new BigInt64Array(data.buffer);
    case 'int32':
      return new Int32Array(data.buffer);
    case 'float32':
      return new Float32Array(data.buffer);
    case 'float64':
      return new Float64Array(data.buffer);
    default:
      throw new DatasetError(where, `tensor of ${tensor.dtype}`);
  }
}

type EntryLoader = (dataroot: string, split: string, clean: boolean) => RawEntry[];

/** A DatasetFactory whose datasets also carry the answer vocabulary. */
export type ClassificationDatasetFactory = (options: DatasetOptions) => ClassificationDataset;

function classificationFactory(loadEntries: EntryLoader): ClassificationDatasetFactory {
  return (options: DatasetOptions): ClassificationDataset => {
    const { task, split } = options;
    const dataroot = join(options.root, task.dataroot);
    const vocabulary = readAnswerVocabulary(dataroot);
    const reader = requireFeatures(options);
    const maxSeqLength = task.max_seq_length;
    const maxRegionNum = task.max_region_num;
    const cachePath = tokenCachePath(dataroot, {
      task: task.name,
      split,
      maxSeqLength,
      cleaned: options.cleanDatasets,
    });

    // As the reference: an existing cache wins over the annotation files.
    let cached: PyDict[];
    if (existsSync(cachePath)) {
      cached = readTokenCacheEntries(cachePath);
    } else {
      cached = loadEntries(dataroot, split, options.cleanDatasets).map((entry, index) =>
        cacheEntry(entry, options, `${task.name} ${split} entry ${index}`),
      );
      if (options.writeCache !== false) writeTokenCache(cachePath, cached);
    }
    const entries = cached.map((entry, index) => qaEntry(entry, maxSeqLength, `${cachePath} entry ${index}`));
    const numLabels = vocabulary.ans2label.size;

    // The arrays of transient items, reused from one to the next.
    let scratch: PaddedRegions | undefined;
    const item = (index: number, transient = false): DatasetItem => {
      const entry = entries[index];
      if (!Number.isInteger(index) || entry === undefined)
        throw new RangeError(`${task.name} ${split}: index ${index} outside [0, ${entries.length})`);
      const regions = reader.getPadded(entry.imageId, maxRegionNum, transient ? scratch : undefined);
      if (transient) scratch = regions;
      const target = new Float32Array(numLabels);
      // scatter_: a label listed twice keeps its last score.
      entry.labels?.forEach((label, position) => {
        if (!Number.isInteger(label) || label < 0 || label >= numLabels) {
          throw new RangeError(
            `${task.name} ${split} question ${entry.questionId}: label ${label} outside [0, ${numLabels})`,
          );
        }
        target[label] = entry.scores![position]!;
      });
      const copy = (tensor: ItemTensor): ItemTensor => ({
        ...tensor,
        shape: [...tensor.shape],
        data: tensor.data.slice(),
      });
      return {
        order: QUESTION_ITEM_ORDER,
        values: {
          features: float32Tensor([maxRegionNum, FEATURE_WIDTH], regions.features),
          spatials: float32Tensor([maxRegionNum, LOCATION_WIDTH], regions.spatials),
          image_mask: int64Tensor([maxRegionNum], regions.imageMask),
          question: copy(entry.question),
          target: float32Tensor([numLabels], target),
          input_mask: copy(entry.inputMask),
          segment_ids: copy(entry.segmentIds),
          co_attention_mask: zeroCoAttentionMask([maxRegionNum, maxSeqLength]),
          question_id: entry.questionId,
        },
      };
    };
    return {
      length: entries.length,
      numLabels,
      ans2label: vocabulary.ans2label,
      label2ans: vocabulary.label2ans,
      item,
    };
  };
}

/** TASK1 VQA: VQAClassificationDataset (splits trainval / minval; train, val; test, mteval). */
export const vqaDataset = classificationFactory(loadVqaEntries) satisfies DatasetFactory;
/** TASK2 GenomeQA: GenomeQAClassificationDataset (splits train / val). */
export const genomeQaDataset = classificationFactory(loadGenomeQaEntries) satisfies DatasetFactory;
/** TASK15 GQA: GQAClassificationDataset (splits trainval / minval; train, val; test). */
export const gqaDataset = classificationFactory(loadGqaEntries) satisfies DatasetFactory;
