// Dataset classes by the reference's names: DatasetMapTrain (train and
// in-training validation) and DatasetMapEval (stand-alone evaluation).
import type { DatasetFactory } from '../dataset.js';
import { guessWhatPointingDataset, referExpressionDataset, visual7wDataset } from './grounding.js';
import { nlvr2Dataset, visualEntailmentDataset } from './pairs.js';
import { retrievalDataset, retrievalEvalDataset } from './retrieval.js';
import { genomeQaDataset, gqaDataset, vqaDataset } from './vqa.js';

/** By the reference's class name (as the data kit's expected/ folders name them). */
export const DATASET_CLASSES: Readonly<Record<string, DatasetFactory>> = {
  VQAClassificationDataset: vqaDataset,
  GenomeQAClassificationDataset: genomeQaDataset,
  GQAClassificationDataset: gqaDataset,
  ReferExpressionDataset: referExpressionDataset,
  Visual7wPointingDataset: visual7wDataset,
  GuessWhatPointingDataset: guessWhatPointingDataset,
  RetreivalDataset: retrievalDataset,
  RetreivalDatasetVal: retrievalEvalDataset,
  NLVR2Dataset: nlvr2Dataset,
  VisualEntailmentDataset: visualEntailmentDataset,
};

/** DatasetMapTrain: task name (vilbert_tasks.yml `name`) -> dataset. */
export const DATASET_MAP_TRAIN: Readonly<Record<string, DatasetFactory>> = {
  VQA: vqaDataset,
  GenomeQA: genomeQaDataset,
  GQA: gqaDataset,
  refcoco: referExpressionDataset,
  'refcoco+': referExpressionDataset,
  refcocog: referExpressionDataset,
  Visual7w: visual7wDataset,
  GuessWhatPointing: guessWhatPointingDataset,
  RetrievalCOCO: retrievalDataset,
  RetrievalFlickr30k: retrievalDataset,
  NLVR2: nlvr2Dataset,
  VisualEntailment: visualEntailmentDataset,
};

/** DatasetMapEval: as DatasetMapTrain but retrieval ranks the 1000-image test set. */
export const DATASET_MAP_EVAL: Readonly<Record<string, DatasetFactory>> = {
  ...DATASET_MAP_TRAIN,
  RetrievalCOCO: retrievalEvalDataset,
  RetrievalFlickr30k: retrievalEvalDataset,
};
