// A dataset described by plain data, so that a worker thread can open its own copy.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BertTokenizer } from '../text/index.js';
import type { TaskConfig } from './task-registry.js';
import type { TaskDataset } from './dataset.js';
import { ImageFeatureReader } from './features.js';
import { DATASET_CLASSES } from './datasets/index.js';
import { DatasetError } from './dataset-error.js';

export interface DatasetSpec {
  /** The reference's class name (DATASET_CLASSES key), e.g. VQAClassificationDataset. */
  className: string;
  task: TaskConfig;
  split: string;
  phase: 'train' | 'val' | 'eval';
  root: string;
  cleanDatasets: boolean;
  writeCache?: boolean;
}

/** Opens the dataset a spec names, with its own tokenizer and feature readers; close() releases the readers. */
export function openDataset(spec: DatasetSpec): { dataset: TaskDataset; close: () => void } {
  const factory = DATASET_CLASSES[spec.className];
  if (!factory)
    throw new DatasetError(
      '',
      `no dataset class '${spec.className}' (known: ${Object.keys(DATASET_CLASSES).join(', ')})`,
    );
  const open = (path: string) => {
    if (!path) return null;
    const full = join(spec.root, path);
    if (!existsSync(full))
      throw new DatasetError(`${spec.task.key} ${spec.task.name}`, `feature store ${full} does not exist`);
    return ImageFeatureReader.open(full);
  };
  const features = open(spec.task.features_h5path1);
  const gtFeatures = open(spec.task.features_h5path2);
  const dataset = factory({
    task: spec.task,
    split: spec.split,
    phase: spec.phase,
    root: spec.root,
    tokenizer: BertTokenizer.bundled(),
    features,
    gtFeatures,
    cleanDatasets: spec.cleanDatasets,
    writeCache: spec.writeCache ?? true,
  });
  return {
    dataset,
    close: () => {
      features?.close();
      gtFeatures?.close();
    },
  };
}
