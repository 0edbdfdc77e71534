// `vilbert-ts/data`: the reference's data, read as its loaders read it (docs/API.md). Region
// features from LMDB stores, the task registry, the 12 task datasets, batching, and the
// Conceptual Captions pre-training batches.
//
//   const store = ImageFeatureReader.open('datasets/coco/features_100/COCO_trainval_resnext152_faster_rcnn_genome.lmdb');
//   const { features, spatials, imageMask, numBoxes } = store.getPadded(store.keys()[0]!, 101);
//   store.close();

// Region features.
export {
  /** A region-feature LMDB (the reference's ImageFeaturesH5Reader): get(id), getPadded(id, R), keys(), close(). */
  ImageFeatureReader,
  /** Its options (inMemory: keep decoded images, as the reference's in_memory). */
  type ImageFeatureReaderOptions,
  /** One image's regions, row 0 the whole image, with its size and key. */
  type ImageFeatures,
  /** Rows of features, normalised boxes (the model's `spatials`) and pixel boxes. */
  type Regions,
  /** Regions zero-padded to max_region_num rows, with the image mask: what the datasets feed the model. */
  type PaddedRegions,
  /** Pads (and truncates) an image's regions to a row count. */
  padRegions,
  /** Width of a feature row (2048). */
  FEATURE_WIDTH,
  /** Width of a location row (5: x1/W, y1/H, x2/W, y2/H, area). */
  LOCATION_WIDTH,
  /** A feature store that cannot be opened or an image that cannot be read; names the store and the image. */
  FeatureStoreError,
} from './features.js';

// The task registry (vilbert_tasks.yml).
export {
  /** Every task of a registry file by key ('TASK1' ...); the bundled vilbert_tasks.yml by default. */
  loadTaskRegistry,
  /** The path of the bundled registry. */
  bundledTasksPath,
  /** One registry entry, by the yml's keys. */
  type TaskConfig,
  /** How a task's output is read: its head, loss and score. */
  type TaskType,
  /** How a task's batch is reshaped before the model. */
  type TaskProcess,
} from './task-registry.js';

// What a dataset is.
export {
  /** A dataset: length, numLabels, item(index) in the reference's tuple order. Implement it for a custom task. */
  type TaskDataset,
  /** One item: element names in order and their values. */
  type DatasetItem,
  /** A tensor element of an item (typed array, dtype, shape). */
  type ItemTensor,
  /** An element: an ItemTensor or a Python scalar (ids). */
  type ItemValue,
  /** What a dataset factory takes: the task, split, phase, root, tokenizer and feature readers. */
  type DatasetOptions,
  /** (options) => TaskDataset: each of the 12 datasets. */
  type DatasetFactory,
  /** An int64 ItemTensor from numbers. */
  int64Tensor,
  /** A float32 ItemTensor. */
  float32Tensor,
  /** The all-zero co_attention_mask every downstream dataset returns. */
  zeroCoAttentionMask,
  /** The reference's return order of a question-style item (the slots ForwardModelsTrain unpacks). */
  QUESTION_ITEM_ORDER,
} from './dataset.js';
export {
  /** Opens a registry task's dataset with its own tokenizer and feature readers (what a loader worker runs). */
  openDataset,
  /** Plain data naming a dataset: class, task, split, phase, root. */
  type DatasetSpec,
} from './dataset-spec.js';

// The 12 task datasets.
export {
  /** Every dataset factory by the reference's class name (VQAClassificationDataset, ...). */
  DATASET_CLASSES,
  /** DatasetMapTrain: task name (vilbert_tasks.yml `name`) -> factory. */
  DATASET_MAP_TRAIN,
  /** DatasetMapEval: the same, but retrieval ranks the 1000-image test set. */
  DATASET_MAP_EVAL,
} from './datasets/index.js';
export {
  /** VQAClassificationDataset (TASK1). */
  vqaDataset,
  /** GenomeQAClassificationDataset (TASK2). */
  genomeQaDataset,
  /** GQAClassificationDataset (TASK15). */
  gqaDataset,
  /** A dataroot's answer vocabulary (cache/trainval_ans2label.pkl, trainval_label2ans.pkl). */
  readAnswerVocabulary,
  /** ans2label and label2ans. */
  type AnswerVocabulary,
  /** A classification dataset with its answer vocabulary. */
  type ClassificationDataset,
} from './datasets/vqa.js';
export {
  /** ReferExpressionDataset (refcoco, refcoco+, refcocog). */
  referExpressionDataset,
  /** Visual7wPointingDataset. */
  visual7wDataset,
  /** GuessWhatPointingDataset. */
  guessWhatPointingDataset,
} from './datasets/grounding.js';
export {
  /** RetreivalDataset (sic), train and val: four caption-image pairs per item. */
  retrievalDataset,
  /** RetreivalDatasetVal (sic): every caption against every image of the test set. */
  retrievalEvalDataset,
  /** retrievalDataset's options (a random source for the negatives). */
  type RetrievalOptions as RetrievalDatasetOptions,
} from './datasets/retrieval.js';
export {
  /** NLVR2Dataset: a sentence and an image pair. */
  nlvr2Dataset,
  /** VisualEntailmentDataset (SNLI-VE). */
  visualEntailmentDataset,
} from './datasets/pairs.js';

// Batching.
export {
  /** Batches of a dataset: in process, or prefetched in a worker thread; seedable and resumable. */
  TaskLoader,
  /** The per-epoch order of a (seed, epoch): a saved state resumes it exactly. */
  BatchSampler,
  /** Stacks items into a batch, in the reference's tuple order. */
  collate,
  /** A collated batch: element names and stacked typed arrays. */
  type Batch,
  /** TaskLoader's options. */
  type LoaderOptions,
  /** What TaskLoader needs of a sampler. */
  type Sampler,
  /** A sampler's seed, epoch and position. */
  type SamplerState,
} from './loader.js';
export {
  /** One rank's shard of each epoch, as torch's DistributedSampler. */
  ShardedBatchSampler,
  /** Its options. */
  type ShardOptions,
} from './distributed-sampler.js';

// Conceptual Captions (pre-training).
export {
  /** The reference's ConceptCapLoaderVal over a data/conceptual_caption folder: masked, batched records. */
  ConceptCaptionsReader,
  /** Its options. */
  type ConceptCaptionsReaderOptions,
  /** One batch: the ten tensors in the loader's order, and the image ids. */
  type ConceptCaptionsBatch,
  /** One decoded LMDB record. */
  type ConceptCaptionsRecord,
  /** A Conceptual Captions record or caption file that cannot be used. */
  ConceptCaptionsError,
} from './concept-captions.js';
export {
  /** The reference's Python and numpy random draws (Mersenne Twister), for reproducible masking. */
  ReferenceRandom,
} from './random-source.js';

export {
  /** A dataset file (annotations, caches, registry) that cannot be used; names the file and the entry. */
  DatasetError,
} from './dataset-error.js';
