// The Conceptual Captions pre-training reader: the reference's ConceptCapLoaderVal over a
// tensorpack LMDB (msgpack-numpy datapoints), BertPreprocessBatch per record and the loader's
// batch assembly (global region prepended). Records are read in LMDB key order, batches of
// `batchSize` consecutive records, the incomplete last batch dropped (tensorpack BatchData).
// The 'train' split reads training_feat_all.lmdb the same way: ConceptCapLoaderTrain's local
// shuffle buffer and worker processes (whose order the reference cannot reproduce either) and
// its per-rank training_feat_part_<rank>.lmdb shards are not reproduced.
//
// Every random draw goes through a PretrainingRandomSource, in the reference's call order, so
// a logged run can be replayed; ReferenceRandom is Python's `random` plus numpy's legacy global
// RandomState (both MT19937) and gives the reference's draws for the same seed.
//
// Arithmetic is float32 in the reference's order (Float32Array stores round every step).
//
// Deviation: the reference needs exactly 36 boxes per image. With fewer it crashes as soon as
// a region is masked (`masked_label` [36] OR-ed with an overlap row of length N), with more at
// `image_feature[:num_boxes] = ...`. Here records with N < 36 work (the overlap row fills the
// first N slots, padding slots stay unmarked) and records with N > 36 keep their first 36 boxes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LmdbReader } from '../io/lmdb.js';
import { CheckpointFormatError } from '../io/format-error.js';
import { isRawTensor, type RawTensor } from '../io/raw-tensor.js';
import type { BertTokenizer } from '../text/index.js';
import { native } from '../torch/native.js';
import { type ItemTensor, float32Tensor, int64Tensor } from './dataset.js';
import { FEATURE_WIDTH, LOCATION_WIDTH } from './features.js';
import { iou } from './iou.js';
import { decodeMsgpackNumpy, type MsgpackValue } from './msgpack-numpy.js';
import { type PretrainingRandomSource, ReferenceRandom } from './random-source.js';
import { VilbertError } from '../vilbert-error.js';

/** Regions per record (the reference's hard-coded region_len). */
export const REGION_LEN = 36;
/** Width of the detector's class distribution (1600 Visual Genome classes + background). */
export const CLASS_PROB_WIDTH = 1601;
/** The batch's tensors, in the order ConceptCapLoaderVal yields them. */
export const CONCEPT_CAPTIONS_ORDER = [
  'input_ids',
  'input_mask',
  'segment_ids',
  'lm_label_ids',
  'is_next',
  'image_feat',
  'image_loc',
  'image_target',
  'image_label',
  'image_mask',
] as const;
export type ConceptCaptionsTensorName = (typeof CONCEPT_CAPTIONS_ORDER)[number];

const KEYS_ENTRY = '__keys__';
const OVERLAP_THRESHOLD = Math.fround(0.4); // numpy compares the float32 IoUs with float32(0.4)

// ---------------------------------------------------------------------------------------
// Records

/** One LMDB record, decoded: N regions of one image and its caption. */
export interface ConceptCaptionsRecord {
  /** [N, 2048] */
  features: Float32Array;
  /** [N, 1601] */
  classProbabilities: Float32Array;
  /** [N, 4] pixel x1, y1, x2, y2 */
  boxes: Float32Array;
  numBoxes: number;
  imageHeight: number;
  imageWidth: number;
  imageId: string;
  caption: string;
}

/** A record or caption file that cannot be used: names the file and the record key. */
export class ConceptCaptionsError extends VilbertError {
  override readonly name = 'ConceptCaptionsError';
  override readonly code = 'E_CONCEPT_CAPTIONS';

  constructor(
    readonly path: string,
    readonly problem: string,
    readonly key?: string,
  ) {
    super(`${path}: ${key === undefined ? '' : `record '${key}': `}${problem}`);
  }
}

function float32Matrix(
  value: MsgpackValue | undefined,
  width: number,
  field: string,
  fail: (problem: string) => never,
): { rows: number; data: Float32Array } {
  if (!isRawTensor(value)) return fail(`${field} is not a numpy array`);
  const tensor: RawTensor = value;
  if (tensor.dtype !== 'float32' || tensor.shape.length !== 2 || tensor.shape[1] !== width) {
    return fail(`${field} is ${tensor.dtype} [${tensor.shape.join(', ')}], expected float32 [N, ${width}]`);
  }
  const bytes = tensor.data.byteOffset % 4 === 0 ? tensor.data : new Uint8Array(tensor.data); // a copy (Buffer.slice would be a view)
  return { rows: tensor.shape[0]!, data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) };
}

/** Python's `int(s)` / `float(s)` of the numbers the converter stored as strings. */
function parseNumber(
  value: MsgpackValue | undefined,
  integer: boolean,
  field: string,
  fail: (problem: string) => never,
): number {
  const text = typeof value === 'string' ? value.trim() : typeof value === 'number' ? String(value) : undefined;
  const valid =
    text !== undefined && (integer ? /^[+-]?\d+$/.test(text) : text !== '' && Number.isFinite(Number(text)));
  if (!valid || (integer && typeof value === 'number' && !Number.isInteger(value)))
    return fail(`${field} is ${JSON.stringify(value)}, expected ${integer ? 'an integer' : 'a number'}`);
  return Number(text);
}

/** `image_h` / `image_w`: a location divides by them, so 0 would give NaN or infinity. */
function imageSize(value: MsgpackValue | undefined, field: string, fail: (problem: string) => never): number {
  const size = parseNumber(value, false, field, fail);
  return size > 0 ? size : fail(`${field} is ${JSON.stringify(value)}, expected a positive number`);
}

/**
 * The float32 column sums of the first `rows` rows of [N, width] `values` (row by row, as
 * the global region sums them), through the feature readers' native kernel: non-finite
 * where a column holds a NaN or an infinity, or its finite values overflow float32. On the
 * kit's 36-box records it adds about a quarter to a read; a pass in JS took twice a read.
 */
function columnSums(values: Float32Array, width: number, rows: number): { sums: Float32Array; finite: boolean } {
  const sums = new Float32Array(width); // [width] the mean, finite exactly where the sum is
  const bytes = new Uint8Array(values.buffer, values.byteOffset, rows * width * 4);
  const finite = native.copyRowsWithMeanF32(bytes, rows, width, 0, sums, false);
  return { sums, finite };
}

/** Refuses a NaN, an infinity or a float32 overflow in the column sums of the first `rows` rows of `field`, naming the value. */
function checkColumns(
  values: Float32Array,
  width: number,
  rows: number,
  field: string,
  fail: (problem: string) => never,
): void {
  const { sums, finite } = columnSums(values, width, rows);
  if (finite) return;
  const at = values.subarray(0, rows * width).findIndex((value) => !Number.isFinite(value));
  if (at >= 0) fail(`${field} row ${Math.floor(at / width)}, column ${at % width} is ${values[at]}`);
  const column = sums.findIndex((sum) => !Number.isFinite(sum));
  // An overflowing sum is an infinity, and so is its mean.
  fail(
    `${field} column ${column} sums to ${sums[column]} in float32 over the ${rows} kept rows: its values are too large for the global region`,
  );
}

/**
 * Refuses what the kept rows (the first REGION_LEN; later ones are never read) would hand
 * the model or its visual target as NaN or infinity: a NaN or infinite feature, class
 * probability or box coordinate, a feature column whose float32 sum overflows (the global
 * region is their mean), and a box whose float32 location overflows. Masking zeroes rows
 * before the global region is summed, so sums that cancel only in full are caught per batch.
 */
function checkKeptRows(record: ConceptCaptionsRecord, fail: (problem: string) => never): void {
  const kept = Math.min(record.numBoxes, REGION_LEN);
  if (kept === 0) return;
  checkColumns(record.features, FEATURE_WIDTH, kept, 'features', fail);
  checkColumns(record.classProbabilities, CLASS_PROB_WIDTH, kept, 'cls_prob', fail);
  // The area uses all four coordinates, so finite locations mean finite boxes: one sum checks both.
  let total = 0;
  for (let row = 0; row < kept; row++) {
    const [x1, y1, x2, y2, area] = boxLocation(record, row);
    total += x1 + y1 + x2 + y2 + area;
  }
  if (Number.isFinite(total)) return;
  for (let row = 0; row < kept; row++) {
    const box = record.boxes.subarray(row * 4, row * 4 + 4);
    if (!box.every(Number.isFinite)) fail(`boxes row ${row} is [${box.join(', ')}]: not finite`);
    const location = boxLocation(record, row);
    if (!location.every(Number.isFinite)) {
      fail(
        `boxes row ${row} is [${box.join(', ')}]: its float32 location [x1/W, y1/H, x2/W, y2/H, area/(W*H)] is [${location.join(', ')}] with image_w ${record.imageWidth}, image_h ${record.imageHeight}`,
      );
    }
  }
}

/** Decodes one msgpack datapoint `[features, cls_prob, boxes, num_boxes, image_h, image_w, image_id, caption]`. */
export function decodeRecord(bytes: Uint8Array, path: string, key: string): ConceptCaptionsRecord {
  const fail = (problem: string): never => {
    throw new ConceptCaptionsError(path, problem, key);
  };
  let value: MsgpackValue;
  try {
    value = decodeMsgpackNumpy(bytes, path);
  } catch (error) {
    throw new ConceptCaptionsError(path, error instanceof CheckpointFormatError ? error.problem : String(error), key);
  }
  if (!Array.isArray(value) || value.length !== 8)
    return fail(
      'expected a list of 8 fields [features, cls_prob, boxes, num_boxes, image_h, image_w, image_id, caption]',
    );
  const features = float32Matrix(value[0], FEATURE_WIDTH, 'features', fail);
  const classes = float32Matrix(value[1], CLASS_PROB_WIDTH, 'cls_prob', fail);
  const boxes = float32Matrix(value[2], 4, 'boxes', fail);
  const numBoxes = parseNumber(value[3], true, 'num_boxes', fail);
  if (features.rows !== numBoxes || classes.rows !== numBoxes || boxes.rows !== numBoxes) {
    fail(
      `num_boxes is ${numBoxes} but features, cls_prob, boxes have ${features.rows}, ${classes.rows}, ${boxes.rows} rows`,
    );
  }
  const imageId = value[6];
  const caption = value[7];
  if (typeof imageId !== 'string' && typeof imageId !== 'number')
    return fail(`image_id is ${String(imageId)}, expected a string`);
  if (typeof caption !== 'string') return fail('caption is not a string');
  const record: ConceptCaptionsRecord = {
    features: features.data,
    classProbabilities: classes.data,
    boxes: boxes.data,
    numBoxes,
    imageHeight: imageSize(value[4], 'image_h', fail),
    imageWidth: imageSize(value[5], 'image_w', fail),
    imageId: String(imageId),
    caption,
  };
  checkKeptRows(record, fail);
  return record;
}

/**
 * The values of a JSON object in file order, as Python's `list(json.load(f).values())`
 * (JSON.parse would move integer-like keys such as image ids to the front). A repeated
 * key keeps its first position and its last value, as a dict does.
 */
export function jsonObjectValues(text: string, path: string): unknown[] {
  let at = 0;
  const fail = (problem: string): never => {
    throw new ConceptCaptionsError(path, `${problem} at character ${at}`);
  };
  const space = (): void => {
    while (/\s/.test(text[at] ?? '')) at++;
  };
  const expect = (char: string): void => {
    space();
    if (text[at] !== char) fail(`expected '${char}'`);
    at++;
  };
  /** The extent of the JSON value starting at `at` (strings and nesting respected). */
  const valueText = (): string => {
    space();
    const start = at;
    let depth = 0;
    while (at < text.length) {
      const char = text[at]!;
      if (char === '"') {
        for (at++; at < text.length && text[at] !== '"'; at++) if (text[at] === '\\') at++;
      } else if (char === '{' || char === '[') depth++;
      else if (char === '}' || char === ']') {
        if (depth === 0) break;
        depth--;
      } else if (char === ',' && depth === 0) break;
      at++;
      if (depth === 0 && (char === '"' || char === '}' || char === ']')) break;
    }
    return text.slice(start, at);
  };
  const parse = (json: string): unknown => {
    try {
      return JSON.parse(json);
    } catch {
      return fail(`invalid JSON value ${json.slice(0, 40)}`);
    }
  };
  const entries = new Map<string, unknown>();
  expect('{');
  space();
  if (text[at] === '}') at++;
  else {
    for (;;) {
      const key = parse(valueText());
      if (typeof key !== 'string') fail('expected a string key');
      expect(':');
      entries.set(key as string, parse(valueText()));
      space();
      if (text[at] === '}') {
        at++;
        break;
      }
      expect(',');
    }
  }
  space();
  if (at !== text.length) fail('unexpected text after the object');
  return [...entries.values()];
}

// ---------------------------------------------------------------------------------------
// Per-record preprocessing (BertPreprocessBatch)

export interface PreprocessOptions {
  tokenizer: BertTokenizer;
  /** Token positions, [CLS] and [SEP] included (train_concap's --max_seq_length, 36). */
  seqLen: number;
  /** Negative captions: the caption file's values in file order. */
  captions: readonly string[];
  /** Negatives are drawn from captions[0 .. numCaptions-1] (the reference uses the record count). */
  numCaptions: number;
  random: PretrainingRandomSource;
  /** No negative captions and no masking (the draws are still made, as in the reference). */
  visualization: boolean;
  /** 2 = never draw a negative caption. */
  objective: number;
  /** 0: image_target = class distributions; otherwise the unmasked features. */
  visualTarget: number;
  /** Named in errors about the captions. */
  captionPath: string;
}

/** One preprocessed record, before the batch adds the global region. */
export interface ConceptCaptionsExample {
  inputIds: number[];
  inputMask: number[];
  segmentIds: number[];
  lmLabelIds: number[];
  isNext: number;
  /** [36, 2048], selected regions zeroed */
  imageFeat: Float32Array;
  /** [36, 5] */
  imageLoc: Float32Array;
  /** [36, 1601] (or [36, 2048] with visualTarget != 0), copied before masking */
  imageTarget: Float32Array;
  imageLabel: number[];
  imageMask: number[];
  /** [36] 1 where a region overlaps (IoU > 0.4) a selected one */
  maskedLabel: Uint8Array;
  imageId: string;
}

/** Box `row`'s 5-d location in float32: x1/W, y1/H, x2/W, y2/H, area/(W*H), the area from the pixel box. */
function boxLocation(record: ConceptCaptionsRecord, row: number): [number, number, number, number, number] {
  const [x1, y1, x2, y2] = record.boxes.subarray(row * 4, row * 4 + 4) as unknown as [number, number, number, number];
  const w = Math.fround(record.imageWidth);
  const h = Math.fround(record.imageHeight);
  const imageArea = Math.fround(record.imageWidth * record.imageHeight);
  const area = Math.fround(Math.fround(Math.fround(y2 - y1) * Math.fround(x2 - x1)) / imageArea);
  return [Math.fround(x1 / w), Math.fround(y1 / h), Math.fround(x2 / w), Math.fround(y2 / h), area];
}

/** Padded regions and their 5-d locations; no global row yet. */
function paddedRegions(
  record: ConceptCaptionsRecord,
  kept: number,
  visualTarget: number,
): Pick<ConceptCaptionsExample, 'imageFeat' | 'imageLoc' | 'imageTarget'> {
  const imageFeat = new Float32Array(REGION_LEN * FEATURE_WIDTH); // [36, 2048]
  imageFeat.set(record.features.subarray(0, kept * FEATURE_WIDTH));
  let imageTarget: Float32Array;
  if (visualTarget === 0) {
    imageTarget = new Float32Array(REGION_LEN * CLASS_PROB_WIDTH); // [36, 1601]
    imageTarget.set(record.classProbabilities.subarray(0, kept * CLASS_PROB_WIDTH));
  } else {
    imageTarget = imageFeat.slice(); // [36, 2048]
  }
  const imageLoc = new Float32Array(REGION_LEN * LOCATION_WIDTH); // [36, 5]
  for (let r = 0; r < kept; r++) imageLoc.set(boxLocation(record, r), r * LOCATION_WIDTH);
  return { imageFeat, imageLoc, imageTarget };
}

/** BertPreprocessBatch.__call__ on one record; draws in the reference's order (caption, tokens, regions). */
export function preprocessRecord(record: ConceptCaptionsRecord, options: PreprocessOptions): ConceptCaptionsExample {
  const { tokenizer, seqLen, random, visualization } = options;
  const kept = Math.min(record.numBoxes, REGION_LEN); // the reference crashes unless numBoxes === 36
  const { imageFeat, imageLoc, imageTarget } = paddedRegions(record, kept, options.visualTarget);

  let caption = record.caption;
  let isNext = 0;
  if (!visualization && options.objective !== 2 && random.random() > 0.5) {
    const index = random.randint(0, options.numCaptions - 1);
    const negative = options.captions[index];
    if (negative === undefined)
      throw new ConceptCaptionsError(
        options.captionPath,
        `negative caption ${index} drawn, but the file has ${options.captions.length} captions`,
      );
    caption = negative;
    isNext = 1;
  }

  const tokens = tokenizer.encode(caption).slice(0, seqLen - 2);
  const maskedTokens = [...tokens];
  const tokenLabels = tokens.map((token, i) => {
    let p = random.random();
    if (p >= 0.15 || visualization) return -1;
    p /= 0.15;
    if (p < 0.8) maskedTokens[i] = tokenizer.specialIds.mask;
    else if (p < 0.9) maskedTokens[i] = random.npRandint(tokenizer.vocabSize);
    return token;
  });

  const maskedLabel = new Uint8Array(REGION_LEN); // [36]
  const imageLabel = new Array<number>(REGION_LEN).fill(-1);
  for (let i = 0; i < kept; i++) {
    let p = random.random();
    if (p >= 0.15 || visualization) continue;
    p /= 0.15;
    if (p < 0.9) imageFeat.fill(0, i * FEATURE_WIDTH, (i + 1) * FEATURE_WIDTH);
    iou(record.boxes.subarray(i * 4, (i + 1) * 4), record.boxes.subarray(0, kept * 4)).forEach((overlap, j) => {
      // [kept]
      if (overlap > OVERLAP_THRESHOLD) maskedLabel[j] = 1;
    });
    imageLabel[i] = 1;
  }

  const inputIds = tokenizer.addSpecialTokensSingleSentence(maskedTokens);
  const padding = seqLen - inputIds.length;
  return {
    inputIds: [...inputIds, ...new Array<number>(padding).fill(0)],
    inputMask: [...inputIds.map(() => 1), ...new Array<number>(padding).fill(0)],
    segmentIds: new Array<number>(seqLen).fill(0),
    lmLabelIds: [-1, ...tokenLabels, -1, ...new Array<number>(padding).fill(-1)],
    isNext,
    imageFeat,
    imageLoc,
    imageTarget,
    imageLabel,
    imageMask: Array.from({ length: REGION_LEN }, (_, r) => (r < kept ? 1 : 0)),
    maskedLabel,
    imageId: record.imageId,
  };
}

// ---------------------------------------------------------------------------------------
// Batches (ConceptCapLoaderVal.__iter__)

export interface ConceptCaptionsBatch {
  readonly order: readonly ConceptCaptionsTensorName[];
  readonly values: Readonly<Record<ConceptCaptionsTensorName, ItemTensor>>;
  /** The records' image ids (the loader's trailing `image_id`). */
  readonly imageIds: string[];
}

/**
 * Stacks examples and prepends the global region: the mean of all 36 (masked) feature rows
 * divided by the number of rows not marked in masked_label (padding rows count; at least 1),
 * the location [0, 0, 1, 1, 1] and image mask 1. image_target and image_label keep 36 rows.
 */
export function assembleBatch(examples: readonly ConceptCaptionsExample[]): ConceptCaptionsBatch {
  const B = examples.length;
  const seqLen = examples[0]?.inputIds.length ?? 0;
  const targetWidth = (examples[0]?.imageTarget.length ?? 0) / REGION_LEN;
  const regions = REGION_LEN + 1;
  const imageFeat = new Float32Array(B * regions * FEATURE_WIDTH); // [B, 37, 2048]
  const imageLoc = new Float32Array(B * regions * LOCATION_WIDTH); // [B, 37, 5]
  const imageTarget = new Float32Array(B * REGION_LEN * targetWidth); // [B, 36, W]
  examples.forEach((example, b) => {
    const base = b * regions * FEATURE_WIDTH;
    const mean = imageFeat.subarray(base, base + FEATURE_WIDTH); // [2048], summed in float32 row by row
    for (let r = 0; r < REGION_LEN; r++) {
      for (let c = 0; c < FEATURE_WIDTH; c++) mean[c]! += example.imageFeat[r * FEATURE_WIDTH + c]!;
    }
    const unmarked = Math.max(
      1,
      example.maskedLabel.reduce((count, marked) => count + (marked === 0 ? 1 : 0), 0),
    );
    for (let c = 0; c < FEATURE_WIDTH; c++) mean[c]! /= unmarked;
    imageFeat.set(example.imageFeat, base + FEATURE_WIDTH);
    imageLoc.set([0, 0, 1, 1, 1], b * regions * LOCATION_WIDTH);
    imageLoc.set(example.imageLoc, (b * regions + 1) * LOCATION_WIDTH);
    imageTarget.set(example.imageTarget, b * REGION_LEN * targetWidth);
  });
  const values: Record<ConceptCaptionsTensorName, ItemTensor> = {
    input_ids: int64Tensor(
      [B, seqLen],
      examples.flatMap((e) => e.inputIds),
    ),
    input_mask: int64Tensor(
      [B, seqLen],
      examples.flatMap((e) => e.inputMask),
    ),
    segment_ids: int64Tensor(
      [B, seqLen],
      examples.flatMap((e) => e.segmentIds),
    ),
    lm_label_ids: int64Tensor(
      [B, seqLen],
      examples.flatMap((e) => e.lmLabelIds),
    ),
    is_next: int64Tensor(
      [B],
      examples.map((e) => e.isNext),
    ),
    image_feat: float32Tensor([B, regions, FEATURE_WIDTH], imageFeat),
    image_loc: float32Tensor([B, regions, LOCATION_WIDTH], imageLoc),
    image_target: float32Tensor([B, REGION_LEN, targetWidth], imageTarget),
    image_label: int64Tensor(
      [B, REGION_LEN],
      examples.flatMap((e) => e.imageLabel),
    ),
    image_mask: int64Tensor(
      [B, regions],
      examples.flatMap((e) => [1, ...e.imageMask]),
    ),
  };
  return { order: CONCEPT_CAPTIONS_ORDER, values, imageIds: examples.map((e) => e.imageId) };
}

// ---------------------------------------------------------------------------------------
// The reader

export interface ConceptCaptionsReaderOptions {
  tokenizer: BertTokenizer;
  batchSize: number;
  /** 'train': training_feat_all.lmdb + caption_train.json; 'val': validation_feat_all.lmdb + caption_val.json. */
  split: 'train' | 'val';
  /** Default 36. */
  seqLen?: number;
  /** Default: ReferenceRandom seeded 42 (train_concap.py's default --seed). */
  random?: PretrainingRandomSource;
  visualization?: boolean;
  objective?: number;
  visualTarget?: number;
}

/** A record key as text for errors and comparisons (tensorpack's keys are ASCII). */
const keyLabel = (key: Uint8Array): string =>
  Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');

const SPLIT_FILES = {
  train: { lmdb: 'training_feat_all.lmdb', captions: 'caption_train.json' },
  val: { lmdb: 'validation_feat_all.lmdb', captions: 'caption_val.json' },
} as const;

/**
 * ConceptCapLoaderVal over a `--file_path` folder (data/conceptual_caption). Batches are built
 * on request and draw from the random source in call order: ask for them in order (or restore
 * the source's state) to reproduce a run.
 */
export class ConceptCaptionsReader {
  /** Records per batch. */
  readonly batchSize: number;
  private readonly preprocess: PreprocessOptions;

  private constructor(
    private readonly store: LmdbReader,
    /** Record keys in cursor (byte) order, `__keys__` left out. */
    private readonly recordKeys: Uint8Array[],
    preprocess: PreprocessOptions,
    batchSize: number,
  ) {
    this.preprocess = preprocess;
    this.batchSize = batchSize;
  }

  static open(corpusPath: string, options: ConceptCaptionsReaderOptions): ConceptCaptionsReader {
    if (!Number.isSafeInteger(options.batchSize) || options.batchSize < 1)
      throw new RangeError(`batchSize must be a positive integer, got ${options.batchSize}`);
    const files = SPLIT_FILES[options.split];
    const captionPath = join(corpusPath, files.captions);
    const lmdbPath = join(corpusPath, files.lmdb);
    const captions = jsonObjectValues(readFileSync(captionPath, 'utf8'), captionPath).map((caption, i) => {
      if (typeof caption !== 'string') throw new ConceptCaptionsError(captionPath, `value ${i} is not a string`);
      return caption;
    });
    const store = LmdbReader.open(lmdbPath);
    try {
      const listed = store.get(KEYS_ENTRY);
      if (listed === null)
        throw new ConceptCaptionsError(lmdbPath, `no '${KEYS_ENTRY}' entry: not a tensorpack LMDBSerializer file`);
      const keyList = decodeMsgpackNumpy(listed, lmdbPath);
      if (!Array.isArray(keyList)) throw new ConceptCaptionsError(lmdbPath, `'${KEYS_ENTRY}' is not a list`);
      const recordKeys = store.keys().filter((key) => keyLabel(key) !== KEYS_ENTRY);
      const seqLen = options.seqLen ?? 36;
      if (!Number.isSafeInteger(seqLen) || seqLen < 2)
        throw new RangeError(`seqLen must be an integer >= 2, got ${seqLen}`);
      return new ConceptCaptionsReader(
        store,
        recordKeys,
        {
          tokenizer: options.tokenizer,
          seqLen,
          captions,
          numCaptions: keyList.length, // len(LMDBData) is the length of the __keys__ list
          random: options.random ?? ReferenceRandom.seeded(42),
          visualization: options.visualization ?? false,
          objective: options.objective ?? 0,
          visualTarget: options.visualTarget ?? 0,
          captionPath,
        },
        options.batchSize,
      );
    } catch (error) {
      store.close();
      throw error;
    }
  }

  get path(): string {
    return this.store.path;
  }

  /** Records in the LMDB. */
  get numRecords(): number {
    return this.recordKeys.length;
  }

  /** Full batches (BatchData drops the remainder). */
  get length(): number {
    return Math.floor(this.recordKeys.length / this.batchSize);
  }

  /** Record `index` in key order, decoded. */
  record(index: number): ConceptCaptionsRecord {
    const key = this.recordKeys[index];
    if (key === undefined)
      throw new RangeError(`record ${index} out of range (${this.numRecords} records in ${this.path})`);
    const bytes = this.store.get(key);
    if (bytes === null)
      throw new ConceptCaptionsError(this.path, 'listed by the cursor but not readable', keyLabel(key));
    return decodeRecord(bytes, this.path, keyLabel(key));
  }

  /** Batch `index`: records [index*B, (index+1)*B), preprocessed in order. */
  batch(index: number): ConceptCaptionsBatch {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.length)
      throw new RangeError(`batch ${index} out of range (${this.length} batches of ${this.batchSize})`);
    const examples: ConceptCaptionsExample[] = [];
    for (let i = index * this.batchSize; i < (index + 1) * this.batchSize; i++)
      examples.push(preprocessRecord(this.record(i), this.preprocess));
    const batch = assembleBatch(examples);
    // record() checked the sums of the kept rows; masking zeroed some of them before the
    // global region summed the rest, and finite values that cancel only in full overflow there.
    const imageFeat = batch.values.image_feat.data as Float32Array; // [B, 37, 2048]
    for (let b = 0; b < this.batchSize; b++) {
      const global = imageFeat.subarray(
        b * (REGION_LEN + 1) * FEATURE_WIDTH,
        (b * (REGION_LEN + 1) + 1) * FEATURE_WIDTH,
      ); // [2048]
      let total = 0;
      for (let column = 0; column < FEATURE_WIDTH; column++) total += global[column]!;
      if (!Number.isFinite(total)) {
        const column = global.findIndex((value) => !Number.isFinite(value));
        throw new ConceptCaptionsError(
          this.path,
          `features column ${column} sums to ${global[column]} in float32 over the rows left after masking: its values are too large for the global region`,
          keyLabel(this.recordKeys[index * this.batchSize + b]!),
        );
      }
    }
    return batch;
  }

  *[Symbol.iterator](): IterableIterator<ConceptCaptionsBatch> {
    for (let index = 0; index < this.length; index++) yield this.batch(index);
  }

  close(): void {
    this.store.close();
  }
}
