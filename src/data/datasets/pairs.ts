// Sentence-image pair classification: NLVR2 (one sentence, two images packed into 2R rows)
// and SNLI-VE VisualEntailment (hypothesis vs. a Flickr30k image), as the reference's
// NLVR2Dataset and VisualEntailmentDataset return them (MANIFEST: TASK12, TASK13).
//
// Also holds the small readers the sentence-based loaders share (JSON lines, Python `int()`
// of an id, the test-set image ids), used by retrieval.ts, grounding.ts and vqa.ts too.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { readNpyIntegers } from '../../io/npy.js';
import { type RawTensor, isRawTensor } from '../../io/raw-tensor.js';
import { rawTensor1d, readTokenCacheEntries, tokenCachePath, writeTokenCache } from '../token-cache.js';
import { type DatasetFactory, type DatasetItem, type DatasetOptions, type TaskDataset, float32Tensor, int64Tensor, zeroCoAttentionMask } from '../dataset.js';
import { FEATURE_WIDTH, type ImageFeatureReader, LOCATION_WIDTH, type PaddedRegions, type Regions, padRegions } from '../features.js';
import type { EncodedSentence } from '../../text/index.js';

/** A loader input that does not hold what the reference expects: names the file and line. */
export class DatasetInputError extends Error {
  override readonly name = 'DatasetInputError';

  constructor(readonly path: string, readonly problem: string, readonly line?: number) {
    super(`${path}${line === undefined ? '' : `:${line}`}: ${problem}`);
  }
}

/** One JSON object per line (the `jsonlines` reader: an empty line is an error, a final newline is not). */
export function readJsonLines(path: string): { line: number; value: Record<string, unknown> }[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((text, index) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new DatasetInputError(path, `not a JSON line (${(error as Error).message})`, index + 1);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DatasetInputError(path, 'expected a JSON object', index + 1);
    return { line: index + 1, value: value as Record<string, unknown> };
  });
}

/** A JSON field that must be a string. */
export function stringField(record: Record<string, unknown>, field: string, path: string, line: number): string {
  const value = record[field];
  if (typeof value !== 'string') throw new DatasetInputError(path, `'${field}' is ${value === undefined ? 'missing' : JSON.stringify(value)}, expected a string`, line);
  return value;
}

/** Python's `int(text)` for a decimal id ("1000092795" of "1000092795.jpg"). */
export function pythonInt(text: string, path: string, line: number): number {
  const value = /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value)) throw new DatasetInputError(path, `${JSON.stringify(text)} is not an integer id`, line);
  return value;
}

/** The `clean_datasets` list of test-set image ids (`cache/<prefix>_test_ids.npy`). */
export function readTestImageIds(dataroot: string, file: string): Set<number> {
  return new Set(readNpyIntegers(join(dataroot, 'cache', file)));
}

/** `features_h5path1` of the task, which these loaders need. */
export function requireFeatures(options: DatasetOptions): ImageFeatureReader {
  if (options.features === null) throw new Error(`${options.task.key} ${options.task.name}: features_h5path1 is required`);
  return options.features;
}

/** A token-cache entry as the loaders pickle it: a dict with string keys. */
export type CacheRecord = Map<string, unknown>;

/**
 * The reference's token-cache step: when `path` exists its entries are used and the
 * annotations are not read; otherwise the entries are built and (unless options.writeCache is
 * false) written there. The reference does not create `cache/` and crashes without it
 * (NLVR2's kit has none); it is created here.
 */
export function cachedEntries<T>(
  options: DatasetOptions,
  path: string,
  build: () => T[],
  codec: { toCache: (entry: T) => Record<string, unknown>; fromCache: (record: CacheRecord, where: string) => T },
): T[] {
  if (existsSync(path)) return readTokenCacheEntries(path).map((record, index) => codec.fromCache(record, `${path}: entry ${index}`));
  const entries = build();
  if (options.writeCache !== false) {
    mkdirSync(dirname(path), { recursive: true });
    writeTokenCache(path, entries.map(codec.toCache));
  }
  return entries;
}

/** A field of a cache entry; throws naming the entry and key when it is missing. */
export function cacheField(record: CacheRecord, key: string, where: string): unknown {
  if (!record.has(key)) throw new Error(`${where}: no '${key}'`);
  return record.get(key);
}

/** A 1-D tensor field of a cache entry as numbers. */
export function cacheNumbers(record: CacheRecord, key: string, where: string): number[] {
  const value = cacheField(record, key, where);
  if (!isRawTensor(value) || value.shape.length !== 1) throw new Error(`${where}: '${key}' is not a 1-d tensor`);
  return tensorNumbers(value, `${where}: '${key}'`);
}

function tensorNumbers(tensor: RawTensor, where: string): number[] {
  const bytes = tensor.data.slice();
  switch (tensor.dtype) {
    case 'int64': return Array.from(new BigInt64Array(bytes.buffer), Number);
    case 'float32': return Array.from(new Float32Array(bytes.buffer));
    case 'float64': return Array.from(new Float64Array(bytes.buffer));
    default: throw new Error(`${where}: tensor of ${tensor.dtype}, expected int64, float32 or float64`);
  }
}

/** The three token tensors of a cache entry, under the loader's key names. */
export function cachedSentence(record: CacheRecord, keys: readonly [string, string, string], where: string): EncodedSentence {
  return { inputIds: cacheNumbers(record, keys[0], where), inputMask: cacheNumbers(record, keys[1], where), segmentIds: cacheNumbers(record, keys[2], where) };
}

/** The same three as cache tensors (int64, as `torch.from_numpy(np.array(ints))`). */
export function sentenceForCache(sentence: EncodedSentence, keys: readonly [string, string, string]): Record<string, RawTensor> {
  return {
    [keys[0]]: rawTensor1d('int64', sentence.inputIds),
    [keys[1]]: rawTensor1d('int64', sentence.inputMask),
    [keys[2]]: rawTensor1d('int64', sentence.segmentIds),
  };
}

/** Split names the NLVR2 and SNLI-VE loaders know (they assert on any other). */
const PAIR_SPLITS = new Set(['train', 'dev', 'test']);

function checkSplit(options: DatasetOptions): void {
  if (!PAIR_SPLITS.has(options.split)) throw new Error(`${options.task.name}: data split '${options.split}' is not recognized (train, dev, test)`);
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
  return { ...fields, labels: empty ? null : rawTensor1d('int64', entry.labels), scores: empty ? null : rawTensor1d('float32', entry.scores) };
}

function answerFromCache(record: CacheRecord, where: string): { labels: number[]; scores: number[] } {
  const answer = cacheField(record, 'answer', where);
  if (!(answer instanceof Map)) throw new Error(`${where}: 'answer' is not a dict`);
  if (answer.get('labels') === null) return { labels: [], scores: [] };
  return { labels: cacheNumbers(answer, 'labels', `${where}: answer`), scores: cacheNumbers(answer, 'scores', `${where}: answer`) };
}

function questionIdFromCache(record: CacheRecord, where: string): number {
  const id = cacheField(record, 'question_id', where);
  if (!Number.isSafeInteger(id)) throw new Error(`${where}: 'question_id' is ${String(id)}, expected an int`);
  return id as number;
}

/** The shared item: [R or 2R] regions, sentence, one-hot target, question_id. */
function pairDataset(options: DatasetOptions, entries: PairEntry[], numLabels: number, regionRows: number): TaskDataset {
  const features = requireFeatures(options);
  const L = options.task.max_seq_length;
  return {
    length: entries.length,
    numLabels,
    item(index: number): DatasetItem {
      const entry = entries[index];
      if (entry === undefined) throw new RangeError(`${options.task.name} ${options.split}: index ${index} outside [0, ${entries.length})`);
      const regions = packRegions(entry.imageIds.map((id) => features.get(id)), regionRows);
      const target = new Float32Array(numLabels);
      entry.labels.forEach((label, position) => {
        if (!(label >= 0 && label < numLabels)) throw new RangeError(`${options.task.name} ${options.split} item ${index}: label ${label} outside [0, ${numLabels})`);
        target[label] = entry.scores[position]!;
      });
      return {
        order: ['features', 'spatials', 'image_mask', 'question', 'target', 'input_mask', 'segment_ids', 'co_attention_mask', 'question_id'],
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
  return padRegions({
    numBoxes: images.reduce((total, image) => total + image.numBoxes, 0),
    features: concat((image) => image.features),
    imageLocation: concat((image) => image.imageLocation),
    imageLocationOri: concat((image) => image.imageLocationOri),
  }, rows);
}

/** NLVR2 (`NLVR2Dataset`): `<dataroot>/<split>.json`, no cleaning, question_id = line number. */
export const nlvr2Dataset: DatasetFactory = (options) => {
  checkSplit(options);
  const dataroot = resolve(options.root, options.task.dataroot);
  const L = options.task.max_seq_length;
  // No `_cleaned` in this loader's cache name.
  const cachePath = tokenCachePath(dataroot, { task: options.task.name, split: options.split, maxSeqLength: L, cleaned: false });
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
      const fields = { question_id: entry.questionId, image_id_0: entry.imageIds[0], image_id_1: entry.imageIds[1], sentence: entry.text };
      return { ...fields, answer: answerForCache(entry, fields), ...sentenceForCache(entry.sentence, QUESTION_KEYS) };
    },
    fromCache: (record, where) => ({
      questionId: questionIdFromCache(record, where),
      imageIds: [String(cacheField(record, 'image_id_0', where)), String(cacheField(record, 'image_id_1', where))],
      text: String(cacheField(record, 'sentence', where)),
      sentence: cachedSentence(record, QUESTION_KEYS, where),
      ...answerFromCache(record, where),
    }),
  });
  return pairDataset(options, entries, 2, 2 * options.task.max_region_num);
};

/** SNLI-VE's gold labels in class-index order of vil_tri_prediction. */
export const ENTAILMENT_CLASSES = ['contradiction', 'neutral', 'entailment'] as const;
const ENTAILMENT_LABELS: Readonly<Record<string, number>> = Object.fromEntries(ENTAILMENT_CLASSES.map((name, index) => [name, index]));

/** SNLI-VE (`VisualEntailmentDataset`): `snli_ve_<split>.jsonl`, train cleaned of Flickr30k test images. */
export const visualEntailmentDataset: DatasetFactory = (options) => {
  checkSplit(options);
  const dataroot = resolve(options.root, options.task.dataroot);
  const L = options.task.max_seq_length;
  const cachePath = tokenCachePath(dataroot, { task: options.task.name, split: options.split, maxSeqLength: L, cleaned: options.cleanDatasets });
  const build = (): PairEntry[] => {
    const path = join(dataroot, `snli_ve_${options.split}.jsonl`);
    // The reference loads the id list for every split when cleaning, and crashes on dev when
    // it is missing; only train uses it, so only train reads it.
    const removed = options.cleanDatasets && options.split === 'train' ? readTestImageIds(dataroot, 'flickr_test_ids.npy') : new Set<number>();
    const entries: PairEntry[] = [];
    for (const { line, value } of readJsonLines(path)) {
      const imageId = pythonInt(stringField(value, 'Flikr30kID', path, line).split('.')[0]!, path, line);
      if (removed.has(imageId)) continue;
      const gold = String(value.gold_label);
      const label = gold === '-' ? null : ENTAILMENT_LABELS[gold];
      if (label === undefined) throw new DatasetInputError(path, `gold_label ${JSON.stringify(gold)} is not one of contradiction, neutral, entailment, -`, line);
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
      const imageId = cacheField(record, 'image_id', where);
      if (!Number.isSafeInteger(imageId)) throw new Error(`${where}: 'image_id' is ${String(imageId)}, expected an int`);
      return {
        questionId: questionIdFromCache(record, where),
        imageIds: [imageId as number],
        text: String(cacheField(record, 'hypothesis', where)),
        sentence: cachedSentence(record, QUESTION_KEYS, where),
        ...answerFromCache(record, where),
      };
    },
  });
  return pairDataset(options, entries, 3, options.task.max_region_num);
};
