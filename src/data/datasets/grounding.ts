// The region-grounding tasks: refcoco / refcoco+ / refcocog (ReferExpressionDataset),
// Visual7w pointing (Visual7wPointingDataset) and GuessWhat pointing
// (GuessWhatPointingDataset). Each item is an image's regions, one tokenised text and an
// IoU target over the regions (pixel "+1" IoU with the referred box, values below 0.5 set
// to 0, except in refcoco*'s non-train splits). Heads and losses per task: docs/MODEL.md.
//
// All three follow the reference's shape: build entries from the annotations (dropping
// test-set images from train), tokenise them (or read the token cache), and per item
// mix the detector regions with the image's GT regions, score every region by its IoU with
// the referred box, and pad to max_region_num.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isRawTensor } from '../../io/raw-tensor.js';
import {
  type DatasetFactory,
  type DatasetItem,
  type DatasetOptions,
  type ItemTensor,
  type TaskDataset,
  float32Tensor,
  int64Tensor,
  zeroCoAttentionMask,
} from '../dataset.js';
import { LOCATION_WIDTH, mergeGtRegions, padRegions, type ImageFeatureReader, type Regions } from '../features.js';
import { iou } from '../iou.js';
import { DatasetError } from '../dataset-error.js';
import { field, readPickle, readText, removedImageIds } from '../annotations.js';
import {
  itemTensorFromRaw,
  rawTensor1d,
  readTokenCacheEntries,
  tokenCachePath,
  writeTokenCache,
} from '../token-cache.js';

/** An entry as the reference builds it (its dict, keys in its order) and the text it tokenises. */
interface AnnotationEntry {
  record: Map<string, unknown>;
  text: string;
}

/** What an item needs of an entry, from a fresh build or from a token cache. */
interface TokenizedEntry {
  imageId: number;
  /** The referred box as the entry stores it (refcoco* [x, y, w, h], the pointing tasks x1, y1, x2, y2). */
  refBox: number[];
  token: BigInt64Array;
  inputMask: BigInt64Array;
  segmentIds: BigInt64Array;
  /** Pointing tasks: candidate positions among the image's sorted GT boxes. */
  mcIdx: number[];
}

/** Pointing targets are read from the GT rows, which the reference assumes start at row 101. */
const GT_ROWS_START = 101;
/** GuessWhat pads its candidate list to this many slots with this index. */
const GUESSWHAT_CANDIDATES = 204;

// ---------------------------------------------------------------- shared steps

function readers(options: DatasetOptions): { features: ImageFeatureReader; gtFeatures: ImageFeatureReader } {
  const { features, gtFeatures, task } = options;
  if (features === null || gtFeatures === null) {
    throw new DatasetError(
      task.key,
      `${task.name} needs both features_h5path1 and features_h5path2 (detector and GT-box LMDBs)`,
    );
  }
  return { features, gtFeatures };
}

/** `[int(x) for x in np.load(dataroot/cache/<file>)]`, loaded as the reference does only when cleaning (or mteval). */
function testImageIds(dataroot: string, file: string, options: DatasetOptions): Set<number> {
  return removedImageIds(dataroot, file, options.cleanDatasets || options.split === 'mteval');
}

/** The reference's cleaning rule: split 'train' drops removed images; 'mteval' keeps only them. */
function keepImage(split: string, imageId: number, removed: Set<number>): boolean {
  if (split === 'train') return !removed.has(imageId);
  if (split === 'mteval') return removed.has(imageId);
  return true;
}

/** A cached id list (a 1-D int64 tensor or a list of ints) as a BigInt64Array of the sequence length. */
function idTensor(record: Map<string, unknown>, key: string, length: number, where: string): BigInt64Array {
  const value = record.get(key);
  let ids: BigInt64Array | undefined;
  if (isRawTensor(value) && value.shape.length === 1) {
    const tensor = itemTensorFromRaw(value, `${where} '${key}'`);
    if (tensor.data instanceof BigInt64Array) ids = tensor.data;
  } else if (isIntegerList(value)) {
    ids = BigInt64Array.from(value, (id) => BigInt(id));
  }
  if (ids?.length !== length) throw new DatasetError(where, `'${key}' is not ${length} int64 ids`);
  return ids;
}

/** The fields an item reads, from an entry dict (built here or read from a reference cache). */
function tokenizedEntry(record: Map<string, unknown>, seqLength: number, where: string): TokenizedEntry {
  return {
    imageId: field(record, 'image_id', isInteger, 'an integer', where),
    refBox: field(record, 'refBox', isBox, 'a box of 4 numbers', where),
    token: idTensor(record, 'token', seqLength, where),
    inputMask: idTensor(record, 'input_mask', seqLength, where),
    segmentIds: idTensor(record, 'segment_ids', seqLength, where),
    mcIdx: record.has('mc_idx') ? field(record, 'mc_idx', isIntegerList, 'a list of positions', where) : [],
  };
}

/**
 * The reference's cache step: an existing `<dataroot>/cache/<task>_<split>_<L>_<R>[_cleaned].pkl`
 * replaces the annotations' entries (the reference still parses the annotations first and
 * would fail on broken ones; we do not read them). Otherwise the entries are tokenised and
 * the cache is written (creating cache/, where the reference would crash without it).
 */
function loadEntries(dataroot: string, options: DatasetOptions, build: () => AnnotationEntry[]): TokenizedEntry[] {
  const { name, max_seq_length: seqLength, max_region_num: regionNum } = options.task;
  const path = tokenCachePath(dataroot, {
    task: name,
    split: options.split,
    maxSeqLength: seqLength,
    maxRegionNum: regionNum,
    cleaned: options.cleanDatasets,
  });
  if (existsSync(path))
    return readTokenCacheEntries(path).map((record, index) =>
      tokenizedEntry(record, seqLength, `${path} entry ${index}`),
    );
  const records = build().map(({ record, text }) => {
    const encoded = options.tokenizer.encodeSingleSentence(text, seqLength);
    record.set('token', rawTensor1d('int64', encoded.inputIds));
    record.set('input_mask', rawTensor1d('int64', encoded.inputMask));
    record.set('segment_ids', rawTensor1d('int64', encoded.segmentIds));
    return record;
  });
  if (options.writeCache ?? true) {
    mkdirSync(dirname(path), { recursive: true });
    writeTokenCache(path, records);
  }
  return records.map((record, index) =>
    tokenizedEntry(record, seqLength, `${options.task.name} ${options.split} entry ${index}`),
  );
}

/** `[x, y, x + w, y + h]` of an [x, y, w, h] box, added in double as Python floats are. */
function cornerBox(box: readonly number[]): number[] {
  return [box[0]!, box[1]!, box[0]! + box[2]!, box[1]! + box[3]!];
}

/** IoU of the first `rows` region boxes (pixel `boxes_ori` rows) with one x1y1x2y2 box: [rows]. */
function regionOverlaps(regions: Regions, rows: number, box: readonly number[]): Float32Array {
  return iou(regions.imageLocationOri.subarray(0, rows * LOCATION_WIDTH), box, LOCATION_WIDTH);
}

/** `target[target < 0.5] = 0`. */
function threshold(target: Float32Array): Float32Array {
  for (let i = 0; i < target.length; i++) if (target[i]! < 0.5) target[i] = 0;
  return target;
}

/** `target[101:][mc_idx]` as torch indexes it; an index past the end raises there and here. */
function pickCandidates(target: Float32Array, candidates: readonly number[], where: string): Float32Array {
  const available = Math.max(target.length - GT_ROWS_START, 0);
  return Float32Array.from(candidates, (index) => {
    if (index >= available)
      throw new RangeError(
        `${where}: candidate index ${index} is out of range for the ${available} target rows from ${GT_ROWS_START} on`,
      );
    return target[GT_ROWS_START + index]!;
  });
}

interface ItemParts {
  regions: Regions;
  target: ItemTensor;
  entry: TokenizedEntry;
  multipleChoiceIdx?: ItemTensor;
}

/** The return tuple shared by the three classes; the pointing tasks add multiple_choice_idx. */
function groundingItem({ regions, target, entry, multipleChoiceIdx }: ItemParts, options: DatasetOptions): DatasetItem {
  const { max_region_num: regionNum, max_seq_length: seqLength } = options.task;
  const padded = padRegions(regions, regionNum);
  const values = {
    features: float32Tensor([regionNum, 2048], padded.features),
    spatials: float32Tensor([regionNum, LOCATION_WIDTH], padded.spatials),
    image_mask: int64Tensor([regionNum], padded.imageMask),
    caption: int64Tensor([entry.token.length], entry.token),
    target,
    input_mask: int64Tensor([entry.inputMask.length], entry.inputMask),
    segment_ids: int64Tensor([entry.segmentIds.length], entry.segmentIds),
    ...(multipleChoiceIdx === undefined ? {} : { multiple_choice_idx: multipleChoiceIdx }),
    co_attention_mask: zeroCoAttentionMask([regionNum, seqLength]),
    image_id: entry.imageId,
  };
  return { order: Object.keys(values), values };
}

function dataset(entries: TokenizedEntry[], item: (entry: TokenizedEntry, index: number) => DatasetItem): TaskDataset {
  return {
    length: entries.length,
    numLabels: 1,
    item(index: number): DatasetItem {
      const entry = entries[index];
      if (entry === undefined) throw new RangeError(`index ${index} is out of range for ${entries.length} items`);
      return item(entry, index);
    },
  };
}

// ---------------------------------------------------------------- file readers

function readJson(path: string): unknown {
  const text = readText(path);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new DatasetError(path, `is not valid JSON (${(error as Error).message})`);
  }
}

const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
const isInteger = (value: unknown): value is number => Number.isSafeInteger(value);
const isString = (value: unknown): value is string => typeof value === 'string';
const isArray = (value: unknown): value is unknown[] => Array.isArray(value);
const isBox = (value: unknown): value is number[] =>
  Array.isArray(value) && value.length === 4 && value.every(isNumber);
const isIntegerList = (value: unknown): value is number[] => Array.isArray(value) && value.every(isInteger);

/** `sorted(list(set(ids)))` of integer ids. */
function sortedUnique(ids: readonly number[]): number[] {
  return [...new Set(ids)].sort((a, b) => a - b);
}

/** `[sorted_ids.index(id) for id in sorted(wanted)]`; list.index raises for a missing id. */
function positionsIn(sortedIds: readonly number[], wanted: readonly number[], where: string): number[] {
  return [...wanted]
    .sort((a, b) => a - b)
    .map((id) => {
      const position = sortedIds.indexOf(id);
      if (position < 0)
        throw new DatasetError(where, `box ${id} is not among the image's boxes [${sortedIds.join(', ')}]`);
      return position;
    });
}

// ---------------------------------------------------------------- refcoco / refcoco+ / refcocog

/** What the REFER API's `getRefIds(split=...)` selects. */
function inReferSplit(refSplit: string, split: string, where: string): boolean {
  if (split === 'testA' || split === 'testB' || split === 'testC') return refSplit.includes(split[split.length - 1]!);
  if (split === 'testAB' || split === 'testBC' || split === 'testAC' || split === 'train' || split === 'val')
    return refSplit === split;
  if (split === 'test') return refSplit.includes('test');
  throw new DatasetError(
    where,
    `no such split '${split}' (train, val, test, testA, testB, testC, testAB, testBC, testAC)`,
  );
}

/**
 * One entry per sentence of every ref in the split, in refs-file order, as the REFER API
 * (lichengunc/refer) indexes `refs(<splitBy>).p` and `instances.json`: ref and annotation ids
 * that repeat resolve to their last occurrence.
 */
function referEntries(dataroot: string, options: DatasetOptions): AnnotationEntry[] {
  const name = options.task.name;
  if (name !== 'refcoco' && name !== 'refcoco+' && name !== 'refcocog') {
    throw new DatasetError(options.task.key, `no refer dataset is called '${name}' (refcoco, refcoco+, refcocog)`);
  }
  const refsPath = join(dataroot, name, `refs(${name === 'refcocog' ? 'umd' : 'unc'}).p`);
  const instancesPath = join(dataroot, name, 'instances.json');
  const refs = readPickle(refsPath, { python2: true });
  if (!Array.isArray(refs)) throw new DatasetError(refsPath, 'expected a pickled list of refs');
  const annotations = field(readJson(instancesPath), 'annotations', isArray, 'a list', instancesPath);
  const boxOfAnnotation = new Map<number, number[]>();
  annotations.forEach((annotation, i) => {
    const where = `${instancesPath} annotations[${i}]`;
    boxOfAnnotation.set(
      field(annotation, 'id', isInteger, 'an integer', where),
      field(annotation, 'bbox', isBox, '[x, y, w, h]', where),
    );
  });

  const refById = new Map<number, { ref: unknown; box: number[] }>();
  const order: { refId: number; split: string }[] = [];
  refs.forEach((ref, i) => {
    const where = `${refsPath} [${i}]`;
    const refId = field(ref, 'ref_id', isInteger, 'an integer', where);
    const annId = field(ref, 'ann_id', isInteger, 'an integer', where);
    const box = boxOfAnnotation.get(annId);
    if (box === undefined) throw new DatasetError(where, `ann_id ${annId} is not an annotation of ${instancesPath}`);
    refById.set(refId, { ref, box });
    order.push({ refId, split: field(ref, 'split', isString, 'a string', where) });
  });

  const split = options.split === 'mteval' ? 'train' : options.split;
  const removed = testImageIds(dataroot, 'coco_test_ids.npy', options);
  const entries: AnnotationEntry[] = [];
  for (const { refId, split: refSplit } of order) {
    if (!inReferSplit(refSplit, split, refsPath)) continue;
    const { ref, box } = refById.get(refId)!;
    const where = `${refsPath} ref ${refId}`;
    const imageId = field(ref, 'image_id', isInteger, 'an integer', where);
    if (!keepImage(options.split, imageId, removed)) continue;
    const sentences = field(ref, 'sentences', isArray, 'a list', where);
    const sentIds = field(ref, 'sent_ids', isArray, 'a list', where);
    // zip(sentences, sent_ids): the shorter list decides.
    sentences.slice(0, sentIds.length).forEach((sentence, j) => {
      const caption = field(sentence, 'raw', isString, 'a string', `${where} sentences[${j}]`);
      entries.push({
        text: caption,
        record: new Map<string, unknown>([
          ['caption', caption],
          ['sent_id', sentIds[j]],
          ['image_id', imageId],
          ['refBox', box],
          ['ref_id', refId],
        ]),
      });
    });
  }
  return entries;
}

/**
 * refcoco / refcoco+ / refcocog (ReferExpressionDataset). Train items mix detector and GT
 * regions and threshold the IoU target at 0.5; every other split uses the detector
 * regions alone and the raw IoU, the whole-image row 0 included.
 */
export const referExpressionDataset: DatasetFactory = (options) => {
  const { features, gtFeatures } = readers(options);
  const dataroot = join(options.root, options.task.dataroot);
  const entries = loadEntries(dataroot, options, () => referEntries(dataroot, options));
  const regionNum = options.task.max_region_num;
  return dataset(entries, (entry) => {
    const detector = features.get(entry.imageId);
    const train = options.split === 'train';
    const regions = train ? mergeGtRegions(detector, gtFeatures.get(entry.imageId)) : detector;
    const kept = Math.min(regions.numBoxes, regionNum);
    const overlaps = regionOverlaps(regions, kept, cornerBox(entry.refBox));
    const target = new Float32Array(regionNum); // [R, 1]
    target.set(train ? threshold(overlaps) : overlaps);
    return groundingItem({ regions, entry, target: float32Tensor([regionNum, 1], target) }, options);
  });
};

// ---------------------------------------------------------------- Visual7w

/** Per image of the split, per QA: the question, the answer box and the candidates' positions. */
function visual7wEntries(dataroot: string, options: DatasetOptions): AnnotationEntry[] {
  const path = join(dataroot, 'dataset_v7w_pointing.json');
  const document = readJson(path);
  const boxes = new Map<number, number[]>();
  field(document, 'boxes', isArray, 'a list', path).forEach((box, i) => {
    const where = `${path} boxes[${i}]`;
    const corner = ['x', 'y', 'width', 'height'].map((key) => field(box, key, isNumber, 'a number', where));
    boxes.set(field(box, 'box_id', isInteger, 'an integer', where), cornerBox(corner));
  });
  const split = options.split === 'mteval' ? 'train' : options.split;
  const removed = testImageIds(dataroot, 'genome_test_ids.npy', options);
  const entries: AnnotationEntry[] = [];
  field(document, 'images', isArray, 'a list', path).forEach((image, i) => {
    const where = `${path} images[${i}]`;
    if (field(image, 'split', isString, 'a string', where) !== split) return;
    const imageId = field(image, 'image_id', isInteger, 'an integer', where);
    if (!keepImage(options.split, imageId, removed)) return;
    const qaPairs = field(image, 'qa_pairs', isArray, 'a list', where).map((qa, j) => {
      const qaWhere = `${where} qa_pairs[${j}]`;
      return {
        qaId: (qa as Record<string, unknown>).qa_id,
        question: field(qa, 'question', isString, 'a string', qaWhere),
        candidates: [
          ...field(qa, 'multiple_choices', isIntegerList, 'a list of box ids', qaWhere),
          field(qa, 'answer', isInteger, 'a box id', qaWhere),
        ],
        where: qaWhere,
      };
    });
    const imageBoxes = sortedUnique(qaPairs.flatMap((qa) => qa.candidates));
    for (const { qaId, question, candidates, where: qaWhere } of qaPairs) {
      const answer = candidates[candidates.length - 1]!;
      const refBox = boxes.get(answer);
      if (refBox === undefined) throw new DatasetError(qaWhere, `answer box ${answer} is not in 'boxes'`);
      const mcIdx = positionsIn(imageBoxes, candidates, qaWhere);
      entries.push({
        text: question,
        record: new Map<string, unknown>([
          ['caption', question],
          ['sent_id', qaId],
          ['image_id', imageId],
          ['refBox', refBox],
          ['ref_id', answer],
          ['mc_idx', mcIdx],
        ]),
      });
    }
  });
  return entries;
}

/**
 * Visual7w pointing (Visual7wPointingDataset): detector and GT regions mixed on every
 * split; the target is the thresholded IoU of the candidates' GT rows.
 */
export const visual7wDataset: DatasetFactory = (options) => {
  const { features, gtFeatures } = readers(options);
  const dataroot = join(options.root, options.task.dataroot);
  const entries = loadEntries(dataroot, options, () => visual7wEntries(dataroot, options));
  return dataset(entries, (entry, index) => {
    const key = `v7w_${entry.imageId}`;
    const regions = mergeGtRegions(features.get(key), gtFeatures.get(key));
    const candidates = entry.mcIdx;
    // Oddity kept: the IoU covers every mixed row (not only the kept ones) and the GT rows
    // are assumed to start at row 101 (100 detector boxes), whatever the image has.
    const overlaps = threshold(regionOverlaps(regions, regions.numBoxes, entry.refBox));
    const target = pickCandidates(overlaps, candidates, `${options.task.name} ${options.split} item ${index}`);
    return groundingItem(
      {
        regions,
        entry,
        target: float32Tensor([candidates.length, 1], target),
        multipleChoiceIdx: int64Tensor([candidates.length], candidates),
      },
      options,
    );
  });
};

// ---------------------------------------------------------------- GuessWhat pointing

/** One entry per dialog: the dialog text, the target object's box and the objects' positions. */
function guessWhatEntries(dataroot: string, options: DatasetOptions): AnnotationEntry[] {
  const imagesPath = join(dataroot, 'cache', 'image_bbox_list.pkl');
  const boxesPath = join(dataroot, 'cache', 'bboxes_dict.pkl');
  const images = readPickle(imagesPath);
  const boxes = readPickle(boxesPath);
  if (!(images instanceof Map))
    throw new DatasetError(imagesPath, 'expected a pickled dict {image_id: {"bboxes": [...]}}');
  if (!(boxes instanceof Map))
    throw new DatasetError(boxesPath, 'expected a pickled dict {object_id: [x1, y1, x2, y2]}');
  const split = options.split === 'mteval' ? 'train' : options.split;
  const path = join(dataroot, `guesswhat.${split}.jsonl`);
  const removed = testImageIds(dataroot, 'coco_test_ids.npy', options);
  const lines = readText(path).split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const entries: AnnotationEntry[] = [];
  lines.forEach((line, i) => {
    const where = `${path} line ${i + 1}`;
    let dialog: unknown;
    try {
      dialog = JSON.parse(line) as unknown;
    } catch (error) {
      throw new DatasetError(where, `is not valid JSON (${(error as Error).message})`);
    }
    const imageId = field(
      field(
        dialog,
        'image',
        (value): value is object => typeof value === 'object' && value !== null,
        'an object',
        where,
      ),
      'id',
      isInteger,
      'an integer',
      `${where} image`,
    );
    if (!keepImage(options.split, imageId, removed)) return;
    const qas = field(dialog, 'qas', isArray, 'a list', where).map((qa, j) => {
      const qaWhere = `${where} qas[${j}]`;
      return {
        question: field(qa, 'question', isString, 'a string', qaWhere),
        answer: field(qa, 'answer', isString, 'a string', qaWhere),
      };
    });
    const dialogText = qas.map(({ question, answer }) => `start ${question} answer ${answer} stop `).join('');
    const objects = field(dialog, 'objects', isArray, 'a list', where).map((object, j) =>
      field(object, 'id', isInteger, 'an integer', `${where} objects[${j}]`),
    );
    const imageBoxes = images.get(imageId);
    if (imageBoxes === undefined) throw new DatasetError(imagesPath, `no entry for image ${imageId} (${where})`);
    const imageObjects = sortedUnique(
      field(imageBoxes, 'bboxes', isIntegerList, 'a list of object ids', `${imagesPath} image ${imageId}`),
    );
    const objectId = field(dialog, 'object_id', isInteger, 'an integer', where);
    const refBox = boxes.get(objectId) as unknown;
    if (!isBox(refBox))
      throw new DatasetError(
        boxesPath,
        `object ${objectId} (${where}) is ${refBox === undefined ? 'missing' : 'not [x1, y1, x2, y2]'}`,
      );
    const record = new Map<string, unknown>([
      ['questions', qas.map((qa) => qa.question)],
      ['answers', qas.map((qa) => qa.answer)],
      ['dialog_id', (dialog as Record<string, unknown>).id],
      ['image_id', imageId],
      ['refBox', refBox],
      ['ref_id', objectId],
      ['mc_idx', positionsIn(imageObjects, objects, where)],
    ]);
    entries.push({ text: dialogText, record });
  });
  return entries;
}

/**
 * GuessWhat pointing (GuessWhatPointingDataset): detector and GT regions mixed on every
 * split; the candidates (the dialog's objects, padded with index 204) read the thresholded
 * IoU target from row 101 on.
 */
export const guessWhatPointingDataset: DatasetFactory = (options) => {
  const { features, gtFeatures } = readers(options);
  const dataroot = join(options.root, options.task.dataroot);
  const entries = loadEntries(dataroot, options, () => guessWhatEntries(dataroot, options));
  const regionNum = options.task.max_region_num;
  return dataset(entries, (entry, index) => {
    const regions = mergeGtRegions(features.get(entry.imageId), gtFeatures.get(entry.imageId));
    const kept = Math.min(regions.numBoxes, regionNum);
    const target = new Float32Array(regionNum); // [R, 1]
    target.set(threshold(regionOverlaps(regions, kept, entry.refBox)));
    const candidates = [...entry.mcIdx, ...new Array<number>(GUESSWHAT_CANDIDATES).fill(GUESSWHAT_CANDIDATES)].slice(
      0,
      GUESSWHAT_CANDIDATES,
    );
    const picked = pickCandidates(target, candidates, `${options.task.name} ${options.split} item ${index}`);
    return groundingItem(
      {
        regions,
        entry,
        target: float32Tensor([GUESSWHAT_CANDIDATES, 1], picked),
        multipleChoiceIdx: int64Tensor([candidates.length], candidates),
      },
      options,
    );
  });
};
