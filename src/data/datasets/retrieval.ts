// Caption-image retrieval on COCO and Flickr30k (MANIFEST: TASK7, TASK8): the reference's
// RetreivalDataset (training: one positive and three negatives per caption) and
// RetreivalDatasetVal (ranking one caption against every test image, 500 at a time).
import { join, resolve } from 'node:path';
import { type RawTensor, isRawTensor } from '../../io/raw-tensor.js';
import {
  type DatasetFactory,
  type DatasetItem,
  type DatasetOptions,
  type TaskDataset,
  float32Tensor,
  int64Tensor,
  zeroCoAttentionMask,
} from '../dataset.js';
import { FEATURE_WIDTH, LOCATION_WIDTH, truncateRegions } from '../features.js';
import { type RandomSource, ReferenceRandomSource } from '../random-source.js';
import type { EncodedSentence } from '../../text/index.js';
import { tokenCachePath } from '../token-cache.js';
import { DatasetError } from '../dataset-error.js';
import {
  cachedEntries,
  cachedSentence,
  dictField,
  pythonInt,
  readJsonLines,
  readPickle,
  removedImageIds,
  requireFeatures,
  sentenceForCache,
  stringField,
} from '../annotations.js';

/** The reference's fixed image buffer of the ranking dataset: a test set of up to 1000 images. */
const RANKING_IMAGE_SLOTS = 1000;
const RANKING_HALF = RANKING_IMAGE_SLOTS / 2;

interface Caption {
  imageId: number;
  text: string;
  sentence: EncodedSentence;
}

const TOKEN_KEYS = ['token', 'input_mask', 'segment_ids'] as const;

/** One annotation line per image: its id (COCO `id`, Flickr30k the number of `img_path`) and captions. */
function readImageCaptions(
  options: DatasetOptions,
  path: string,
): { line: number; imageId: number; sentences: string[] }[] {
  const flickr = options.task.name === 'RetrievalFlickr30k';
  if (!flickr && options.task.name !== 'RetrievalCOCO')
    throw new DatasetError(
      options.task.key,
      `retrieval loaders know RetrievalCOCO and RetrievalFlickr30k, not '${options.task.name}'`,
    );
  return readJsonLines(path).map(({ line, value }) => {
    let imageId: number;
    if (flickr) imageId = pythonInt(stringField(value, 'img_path', path, line).split('.')[0]!, path, line);
    else if (typeof value.id === 'number' && Number.isSafeInteger(value.id)) imageId = value.id;
    else throw new DatasetError(path, `'id' is ${JSON.stringify(value.id)}, expected an integer image id`, line);
    const sentences = value.sentences;
    if (!Array.isArray(sentences) || sentences.some((sentence) => typeof sentence !== 'string')) {
      throw new DatasetError(path, "'sentences' must be a list of strings", line);
    }
    return { line, imageId, sentences: sentences as string[] };
  });
}

function annotationsPath(options: DatasetOptions): string {
  const relative =
    options.split === 'train' ? options.task.train_annotations_jsonpath : options.task.val_annotations_jsonpath;
  if (relative === '')
    throw new DatasetError(
      `${options.task.key} ${options.task.name}`,
      `no annotations path for split '${options.split}'`,
    );
  return resolve(options.root, relative);
}

/** `hard_negative[_cleaned].pkl`: per train image a row of candidate indices into train_image_list (row i starts with i). */
interface HardNegatives {
  path: string;
  pool: Float64Array;
  /** Columns K of the pool. */
  width: number;
  imageList: number[];
  /** image id -> its pool row (the last position wins, as the reference's dict comprehension). */
  rowOf: Map<number, number>;
}

function readHardNegatives(path: string): HardNegatives {
  const value = readPickle(path, { numpy: true });
  if (!(value instanceof Map))
    throw new DatasetError(path, 'expected a dict with train_hard_pool and train_image_list');
  const pool = value.get('train_hard_pool') as RawTensor | undefined;
  const imageList = value.get('train_image_list') as unknown;
  if (!isRawTensor(pool) || pool.shape.length !== 2 || (pool.dtype !== 'float64' && pool.dtype !== 'int64')) {
    throw new DatasetError(path, "'train_hard_pool' must be a 2-d float64 (or int64) array");
  }
  if (!Array.isArray(imageList) || imageList.some((id) => !Number.isSafeInteger(id)))
    throw new DatasetError(path, "'train_image_list' must be a list of int image ids");
  const [rows, width] = pool.shape as [number, number];
  const bytes = pool.data.slice();
  const values =
    pool.dtype === 'float64'
      ? new Float64Array(bytes.buffer)
      : Float64Array.from(new BigInt64Array(bytes.buffer), Number);
  if (width < 2)
    throw new DatasetError(
      path,
      `'train_hard_pool' has ${width} columns; at least 2 are needed (column 0 is the image itself)`,
    );
  const ids = imageList as number[];
  if (rows < ids.length) throw new DatasetError(path, `'train_hard_pool' has ${rows} rows for ${ids.length} images`);
  return { path, pool: values, width, imageList: ids, rowOf: new Map(ids.map((id, row) => [id, row])) };
}

/** `torch.stack` of equally long slots into `out`. */
function stackSlots<T extends Float32Array | BigInt64Array>(slots: T[], out: T): T {
  slots.forEach((slot, position) => (out as Float32Array).set(slot as Float32Array, position * slot.length));
  return out;
}

export interface RetrievalOptions extends DatasetOptions {
  /** Where the negatives' draws come from; a ReferenceRandomSource(0) when absent. */
  random?: RandomSource;
}

/**
 * `RetreivalDataset` (train / val phase). Item = 4 pairs: 0 the caption with its image; 1 its
 * image with a caption of another random image; 2 another random image with its caption; 3
 * its image with a caption of a hard-negative image (train) or of another random image (val).
 */
export const retrievalDataset = (options: RetrievalOptions): TaskDataset => {
  const features = requireFeatures(options);
  let random = options.random ?? new ReferenceRandomSource(0);
  const { max_seq_length: L, max_region_num: R } = options.task;
  const dataroot = resolve(options.root, options.task.dataroot);
  const train = options.split === 'train';
  const removed = removedImageIds(
    dataroot,
    options.task.name === 'RetrievalCOCO' ? 'coco_test_ids.npy' : 'flickr_test_ids.npy',
    options.cleanDatasets && train,
  );

  const annotated: Omit<Caption, 'sentence'>[] = [];
  // Insertion-ordered like the reference's dict: a repeated image keeps its first position
  // but only its last line's captions.
  const captionsOf = new Map<number, number[]>();
  for (const { imageId, sentences } of readImageCaptions(options, annotationsPath(options))) {
    if (removed.has(imageId)) continue;
    const own: number[] = [];
    captionsOf.set(imageId, own);
    for (const text of sentences) {
      own.push(annotated.length);
      annotated.push({ imageId, text });
    }
  }
  // A cache replaces the caption entries only; the image lists always come from the annotations.
  const cachePath = tokenCachePath(dataroot, {
    task: options.task.name,
    split: options.split,
    maxSeqLength: L,
    cleaned: options.cleanDatasets,
  });
  const tokenize = (): Caption[] =>
    annotated.map((caption) => ({ ...caption, sentence: options.tokenizer.encodeSingleSentence(caption.text, L) }));
  const captions = cachedEntries(options, cachePath, tokenize, {
    toCache: (caption) => ({
      caption: caption.text,
      image_id: caption.imageId,
      ...sentenceForCache(caption.sentence, TOKEN_KEYS),
    }),
    fromCache: (record, where) => {
      const imageId = dictField(record, 'image_id', where);
      if (!Number.isSafeInteger(imageId))
        throw new DatasetError(where, `'image_id' is ${String(imageId)}, expected an int`);
      return {
        imageId: imageId as number,
        text: String(dictField(record, 'caption', where)),
        sentence: cachedSentence(record, TOKEN_KEYS, where),
      };
    },
  });
  const imageIds = [...captionsOf.keys()];
  // The reference re-draws "another image" until it differs, which never ends with one image.
  if (imageIds.length < 2)
    throw new DatasetError(
      `${options.task.name} ${options.split}`,
      `negative sampling needs at least 2 images, found ${imageIds.length}`,
    );
  const hardNegatives = train
    ? readHardNegatives(join(dataroot, `hard_negative${options.cleanDatasets ? '_cleaned' : ''}.pkl`))
    : null;

  const otherImage = (imageId: number): number => {
    for (;;) {
      const drawn = random.choice(imageIds);
      if (drawn !== imageId) return drawn;
    }
  };
  const captionOfImage = (imageId: number): Caption => {
    const own = captionsOf.get(imageId);
    if (own === undefined || own.length === 0)
      throw new DatasetError(
        `${options.task.name} ${options.split}`,
        `negative image ${imageId} has no captions in the split`,
      );
    return captions[random.choice(own)]!;
  };
  const hardNegativeImage = (negatives: HardNegatives, imageId: number): number => {
    const row = negatives.rowOf.get(imageId);
    if (row === undefined) throw new DatasetError(negatives.path, `image ${imageId} is not in train_image_list`);
    const candidate = negatives.pool[row * negatives.width + random.randint(1, negatives.width)]!;
    const negative = negatives.imageList[Math.trunc(candidate)];
    if (negative === undefined)
      throw new DatasetError(
        negatives.path,
        `train_hard_pool[${row}] holds ${candidate}, outside train_image_list (${negatives.imageList.length})`,
      );
    return negative;
  };

  return {
    length: captions.length,
    numLabels: 1,
    reseed(seed: number) {
      random = new ReferenceRandomSource(seed);
    },
    item(index: number): DatasetItem {
      const caption = captions[index];
      if (caption === undefined)
        throw new RangeError(`${options.task.name} ${options.split}: index ${index} outside [0, ${captions.length})`);
      const { imageId } = caption;
      const positive = features.getPadded(imageId, R);
      const randomCaption = captionOfImage(otherImage(imageId));
      const randomImage = features.get(otherImage(imageId));
      const hardImage = hardNegatives === null ? otherImage(imageId) : hardNegativeImage(hardNegatives, imageId);
      const hardCaption = captionOfImage(hardImage);

      // Slot 2 is written over the positive's padded buffer, so rows past the random image's
      // boxes keep the positive's features and spatials (MANIFEST oddity 5).
      const kept = truncateRegions(randomImage, R);
      const randomFeatures = positive.features.slice();
      randomFeatures.set(kept.features);
      const randomSpatials = positive.spatials.slice();
      randomSpatials.set(kept.imageLocation);
      // The reference leaves this mask untruncated ([1] * num_boxes), so torch.stack raises for
      // an image with more than R rows; it is cut to R here instead.
      const randomMask = new BigInt64Array(R).fill(1n, 0, Math.min(randomImage.numBoxes, R));

      const sentences = [caption.sentence, randomCaption.sentence, caption.sentence, hardCaption.sentence];
      return {
        order: [
          'features',
          'spatials',
          'image_mask',
          'caption',
          'target',
          'input_mask',
          'segment_ids',
          'co_attention_mask',
          'image_id',
        ],
        values: {
          features: float32Tensor(
            [4, R, FEATURE_WIDTH],
            stackSlots(
              [positive.features, positive.features, randomFeatures, positive.features],
              new Float32Array(4 * R * FEATURE_WIDTH),
            ),
          ),
          spatials: float32Tensor(
            [4, R, LOCATION_WIDTH],
            stackSlots(
              [positive.spatials, positive.spatials, randomSpatials, positive.spatials],
              new Float32Array(4 * R * LOCATION_WIDTH),
            ),
          ),
          image_mask: int64Tensor(
            [4, R],
            stackSlots(
              [positive.imageMask, positive.imageMask, randomMask, positive.imageMask],
              new BigInt64Array(4 * R),
            ),
          ),
          caption: int64Tensor(
            [4, L],
            sentences.flatMap((sentence) => sentence.inputIds),
          ),
          target: 0,
          input_mask: int64Tensor(
            [4, L],
            sentences.flatMap((sentence) => sentence.inputMask),
          ),
          segment_ids: int64Tensor(
            [4, L],
            sentences.flatMap((sentence) => sentence.segmentIds),
          ),
          co_attention_mask: zeroCoAttentionMask([4, R, L]),
          image_id: imageId,
        },
      };
    },
  };
};

/**
 * `RetreivalDatasetVal` (eval phase): item i ranks caption i // 2 against half i % 2 of a
 * 1000-slot image buffer (slots 0-499 or 500-999; unused slots are zero). No cleaning, no
 * token cache, no randomness. The buffer is built once (about 0.8 GB at R = 101) and every
 * item returns views into it.
 */
export const retrievalEvalDataset: DatasetFactory = (options) => {
  const features = requireFeatures(options);
  const { max_seq_length: L, max_region_num: R } = options.task;
  const path = annotationsPath(options);
  const lines = readImageCaptions(options, path);
  const imageIds = [...new Set(lines.map((line) => line.imageId))];
  if (imageIds.length > RANKING_IMAGE_SLOTS)
    throw new DatasetError(path, `${imageIds.length} images; the ranking buffer holds ${RANKING_IMAGE_SLOTS}`);
  const captions: Caption[] = lines.flatMap(({ imageId, sentences }) =>
    sentences.map((text) => ({ imageId, text, sentence: options.tokenizer.encodeSingleSentence(text, L) })),
  );

  const allFeatures = new Float32Array(RANKING_IMAGE_SLOTS * R * FEATURE_WIDTH); // [1000, R, 2048]
  const allSpatials = new Float32Array(RANKING_IMAGE_SLOTS * R * LOCATION_WIDTH); // [1000, R, 5]
  const allMasks = new BigInt64Array(RANKING_IMAGE_SLOTS * R); // [1000, R]
  // Each image decoded straight into its slot.
  imageIds.forEach((imageId, slot) => {
    features.getPadded(imageId, R, {
      numBoxes: 0,
      features: allFeatures.subarray(slot * R * FEATURE_WIDTH, (slot + 1) * R * FEATURE_WIDTH),
      spatials: allSpatials.subarray(slot * R * LOCATION_WIDTH, (slot + 1) * R * LOCATION_WIDTH),
      imageMask: allMasks.subarray(slot * R, (slot + 1) * R),
    });
  });
  const half = <T extends Float32Array | BigInt64Array>(all: T, imageIndex: number): T => {
    const perHalf = all.length / 2;
    return all.subarray(imageIndex * perHalf, (imageIndex + 1) * perHalf) as T;
  };

  return {
    length: captions.length * 2,
    numLabels: 1,
    item(index: number): DatasetItem {
      const captionIndex = Math.floor(index / 2);
      const imageIndex = index % 2;
      const caption = captions[captionIndex];
      if (caption === undefined || !Number.isInteger(index))
        throw new RangeError(
          `${options.task.name} ${options.split}: index ${index} outside [0, ${captions.length * 2})`,
        );
      const target = new Float32Array(RANKING_HALF);
      imageIds.slice(imageIndex * RANKING_HALF, (imageIndex + 1) * RANKING_HALF).forEach((imageId, slot) => {
        if (imageId === caption.imageId) target[slot] = 1;
      });
      return {
        order: [
          'features_all',
          'spatials_all',
          'image_mask_all',
          'caption',
          'input_mask',
          'segment_ids',
          'target_all',
          'caption_idx',
          'image_idx',
        ],
        values: {
          features_all: float32Tensor([RANKING_HALF, R, FEATURE_WIDTH], half(allFeatures, imageIndex)),
          spatials_all: float32Tensor([RANKING_HALF, R, LOCATION_WIDTH], half(allSpatials, imageIndex)),
          image_mask_all: int64Tensor([RANKING_HALF, R], half(allMasks, imageIndex)),
          caption: int64Tensor([L], caption.sentence.inputIds),
          input_mask: int64Tensor([L], caption.sentence.inputMask),
          segment_ids: int64Tensor([L], caption.sentence.segmentIds),
          target_all: float32Tensor([RANKING_HALF], target),
          caption_idx: captionIndex,
          image_idx: imageIndex,
        },
      };
    },
  };
};
