// Sentence-image pair classification: NLVR2 (one sentence, two images packed into 2R rows)
// and SNLI-VE VisualEntailment (hypothesis vs. a Flickr30k image), as the reference's
// NLVR2Dataset and VisualEntailmentDataset return them (MANIFEST: TASK12, TASK13).
import { join, resolve } from 'node:path';
import { rawTensor1d, tokenCachePath } from '../token-cache.js';
import {
  type DatasetFactory,
  type DatasetItem,
  type DatasetOptions,
  type TaskDataset,
  QUESTION_ITEM_ORDER,
  float32Tensor,
  int64Tensor,
  zeroCoAttentionMask,
} from '../dataset.js';
import { DatasetError } from '../dataset-error.js';
import { FEATURE_WIDTH, LOCATION_WIDTH, type PaddedRegions, type Regions, padRegions } from '../features.js';
import {
  type CacheRecord,
  cacheNumbers,
  cachedEntries,
  cachedSentence,
  dictField,
  pythonInt,
  readJsonLines,
  removedImageIds,
  requireFeatures,
  sentenceForCache,
  stringField,
} from '../annotations.js';
import type { EncodedSentence } from '../../text/index.js';

/** Split names the NLVR2 and SNLI-VE loaders know (they assert on any other). */
const PAIR_SPLITS = new Set(['train', 'dev', 'test']);

function checkSplit(options: DatasetOptions): void {
  if (!PAIR_SPLITS.has(options.split))
    throw new DatasetError(options.task.name, `data split '${options.split}' is not recognized (train, dev, test)`);
}

interface PairEntry {
  questionId: number;
  imageIds: (string | number)[];
  /** The sentence (NLVR2) or hypothesis (VE) text, kept for the cache. */
  text: string;
  sentence: EncodedSentence;
  /** `target.scatter_(0, labels, scores)`; both empty for VE gold label '-' (an all-zero target). */
  labels: number[];
  scores: number[];
}

const QUESTION_KEYS = ['q_token', 'q_input_mask', 'q_segment_ids'] as const;

/** The answer dict of the caches: labels / scores tensors, None when there are none. */
function answerForCache(entry: PairEntry, fields: Record<string, unknown>): Record<string, unknown> {
  const empty = entry.labels.length === 0;
  return {
    ...fields,
    labels: empty ? null : rawTensor1d('int64', entry.labels),
    scores: empty ? null : rawTensor1d('float32', entry.scores),
  };
}

function answerFromCache(record: CacheRecord, where: string): { labels: number[]; scores: number[] } {
  const answer = dictField(record, 'answer', where);
  if (!(answer instanceof Map)) throw new DatasetError(where, "'answer' is not a dict");
  if (answer.get('labels') === null) return { labels: [], scores: [] };
  return {
    labels: cacheNumbers(answer, 'labels', `${where}: answer`),
    scores: cacheNumbers(answer, 'scores', `${where}: answer`),
  };
}

function questionIdFromCache(record: CacheRecord, where: string): number {
  const id = dictField(record, 'question_id', where);
  if (!Number.isSafeInteger(id)) throw new DatasetError(where, `'question_id' is ${String(id)}, expected an int`);
  return id as number;
}

/** The shared item: [R or 2R] regions, sentence, one-hot target, question_id. */
function pairDataset(
  options: DatasetOptions,
  entries: PairEntry[],
  numLabels: number,
  regionRows: number,
): TaskDataset {
  const features = requireFeatures(options);
  const L = options.task.max_seq_length;
  return {
    length: entries.length,
    numLabels,
    item(index: number): DatasetItem {
      const entry = entries[index];
      if (entry === undefined)
        throw new RangeError(`${options.task.name} ${options.split}: index ${index} outside [0, ${entries.length})`);
      const regions = packRegions(
        entry.imageIds.map((id) => features.get(id)),
        regionRows,
      );
      const target = new Float32Array(numLabels);
      entry.labels.forEach((label, position) => {
        if (!(label >= 0 && label < numLabels))
          throw new RangeError(
            `${options.task.name} ${options.split} item ${index}: label ${label} outside [0, ${numLabels})`,
          );
        target[label] = entry.scores[position]!;
      });
      return {
        order: QUESTION_ITEM_ORDER,
        values: {
          features: float32Tensor([regionRows, FEATURE_WIDTH], regions.features),
          spatials: float32Tensor([regionRows, LOCATION_WIDTH], regions.spatials),
          image_mask: int64Tensor([regionRows], regions.imageMask),
          question: int64Tensor([L], entry.sentence.inputIds),
          target: float32Tensor([numLabels], target),
          input_mask: int64Tensor([L], entry.sentence.inputMask),
          segment_ids: int64Tensor([L], entry.sentence.segmentIds),
          co_attention_mask: zeroCoAttentionMask([regionRows, L]),
          question_id: entry.questionId,
        },
      };
    },
  };
}

/**
 * The images' rows (each with its own whole-image row) one after another, cut to `rows`:
 * NLVR2 starts image 1 right after image 0's real rows, not at row R.
 */
function packRegions(images: Regions[], rows: number): PaddedRegions {
  if (images.length === 1) return padRegions(images[0]!, rows);
  const concat = (pick: (image: Regions) => Float32Array): Float32Array => {
    const out = new Float32Array(images.reduce((total, image) => total + pick(image).length, 0));
    let offset = 0;
    for (const image of images) {
      out.set(pick(image), offset);
      offset += pick(image).length;
    }
    return out;
  };
  return padRegions(
    {
      numBoxes: images.reduce((total, image) => total + image.numBoxes, 0),
      features: concat((image) => image.features),
      imageLocation: concat((image) => image.imageLocation),
      imageLocationOri: concat((image) => image.imageLocationOri),
    },
    rows,
  );
}

/** NLVR2 (`NLVR2Dataset`): `<dataroot>/<split>.json`, no cleaning, question_id = line number. */
export const nlvr2Dataset: DatasetFactory = (options) => {
  checkSplit(options);
  const dataroot = resolve(options.root, options.task.dataroot);
  const L = options.task.max_seq_length;
  // No `_cleaned` in this loader's cache name.
  const cachePath = tokenCachePath(dataroot, {
    task: options.task.name,
    split: options.split,
    maxSeqLength: L,
    cleaned: false,
  });
  const build = (): PairEntry[] => {
    const path = join(dataroot, `${options.split}.json`);
    return readJsonLines(path).map(({ line, value }, count): PairEntry => {
      const identifier = stringField(value, 'identifier', path, line);
      const pairName = identifier.split('-').slice(0, -1).join('-');
      const text = String(value.sentence);
      return {
        questionId: count,
        imageIds: [`${pairName}-img0`, `${pairName}-img1`],
        text,
        sentence: options.tokenizer.encodeSingleSentence(text, L),
        // The reference maps everything but the string "False" to 1.
        labels: [String(value.label) === 'False' ? 0 : 1],
        scores: [1],
      };
    });
  };
  const entries = cachedEntries(options, cachePath, build, {
    toCache: (entry) => {
      const fields = {
        question_id: entry.questionId,
        image_id_0: entry.imageIds[0],
        image_id_1: entry.imageIds[1],
        sentence: entry.text,
      };
      return { ...fields, answer: answerForCache(entry, fields), ...sentenceForCache(entry.sentence, QUESTION_KEYS) };
    },
    fromCache: (record, where) => ({
      questionId: questionIdFromCache(record, where),
      imageIds: [String(dictField(record, 'image_id_0', where)), String(dictField(record, 'image_id_1', where))],
      text: String(dictField(record, 'sentence', where)),
      sentence: cachedSentence(record, QUESTION_KEYS, where),
      ...answerFromCache(record, where),
    }),
  });
  return pairDataset(options, entries, 2, 2 * options.task.max_region_num);
};

/** SNLI-VE's gold labels in class-index order of vil_tri_prediction. */
export const ENTAILMENT_CLASSES = ['contradiction', 'neutral', 'entailment'] as const;
const ENTAILMENT_LABELS: Readonly<Record<string, number>> = Object.fromEntries(
  ENTAILMENT_CLASSES.map((name, index) => [name, index]),
);

/** SNLI-VE (`VisualEntailmentDataset`): `snli_ve_<split>.jsonl`, train cleaned of Flickr30k test images. */
export const visualEntailmentDataset: DatasetFactory = (options) => {
  checkSplit(options);
  const dataroot = resolve(options.root, options.task.dataroot);
  const L = options.task.max_seq_length;
  const cachePath = tokenCachePath(dataroot, {
    task: options.task.name,
    split: options.split,
    maxSeqLength: L,
    cleaned: options.cleanDatasets,
  });
  const build = (): PairEntry[] => {
    const path = join(dataroot, `snli_ve_${options.split}.jsonl`);
    // The reference loads the id list for every split when cleaning, and crashes on dev when
    // it is missing; only train uses it, so only train reads it.
    const removed = removedImageIds(
      dataroot,
      'flickr_test_ids.npy',
      options.cleanDatasets && options.split === 'train',
    );
    const entries: PairEntry[] = [];
    for (const { line, value } of readJsonLines(path)) {
      const imageId = pythonInt(stringField(value, 'Flikr30kID', path, line).split('.')[0]!, path, line);
      if (removed.has(imageId)) continue;
      const gold = String(value.gold_label);
      const label = gold === '-' ? null : ENTAILMENT_LABELS[gold];
      if (label === undefined)
        throw new DatasetError(
          path,
          `gold_label ${JSON.stringify(gold)} is not one of contradiction, neutral, entailment, -`,
          line,
        );
      const text = String(value.sentence2);
      entries.push({
        questionId: entries.length,
        imageIds: [imageId],
        text,
        sentence: options.tokenizer.encodeSingleSentence(text, L),
        labels: label === null ? [] : [label],
        scores: label === null ? [] : [1],
      });
    }
    return entries;
  };
  const entries = cachedEntries(options, cachePath, build, {
    toCache: (entry) => {
      const fields = { question_id: entry.questionId, image_id: entry.imageIds[0], hypothesis: entry.text };
      return { ...fields, answer: answerForCache(entry, fields), ...sentenceForCache(entry.sentence, QUESTION_KEYS) };
    },
    fromCache: (record, where) => {
      const imageId = dictField(record, 'image_id', where);
      if (!Number.isSafeInteger(imageId))
        throw new DatasetError(where, `'image_id' is ${String(imageId)}, expected an int`);
      return {
        questionId: questionIdFromCache(record, where),
        imageIds: [imageId as number],
        text: String(dictField(record, 'hypothesis', where)),
        sentence: cachedSentence(record, QUESTION_KEYS, where),
        ...answerFromCache(record, where),
      };
    },
  });
  return pairDataset(options, entries, 3, options.task.max_region_num);
};
