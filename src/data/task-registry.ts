// The task registry: the reference's vilbert_tasks.yml (bundled), or a file of the same shape.
import { assetPath } from '../assets.js';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { DatasetError } from './dataset-error.js';

/** How a task's output is read: which head, loss and score (the yml's `type`). */
export type TaskType =
  | 'VL-classifier'
  | 'VL-classifier-GQA'
  | 'VL-logit'
  | 'V-logit'
  | 'V-logit-mc'
  | 'VL-binary-classifier'
  | 'VL-tri-classifier';
/** How a task's batch is reshaped before the model (the yml's `process`). */
export type TaskProcess = 'normal' | 'expand' | 'retrieval' | 'nlvr' | 'dialog';

export interface TaskConfig {
  /** 'TASK1' ... 'TASK18' */
  key: string;
  name: string;
  type: TaskType;
  loss: 'BCEWithLogitLoss' | 'CrossEntropyLoss';
  process: TaskProcess;
  task_id: number;
  dataroot: string;
  features_h5path1: string;
  features_h5path2: string;
  train_annotations_jsonpath: string;
  val_annotations_jsonpath: string;
  max_seq_length: number;
  max_region_num: number;
  batch_size: number;
  eval_batch_size?: number;
  train_split: string;
  val_split: string;
  lr: number;
  num_epoch: number;
}

const REQUIRED: (keyof TaskConfig)[] = [
  'name',
  'type',
  'loss',
  'process',
  'task_id',
  'dataroot',
  'features_h5path1',
  'features_h5path2',
  'max_seq_length',
  'max_region_num',
  'batch_size',
  'train_split',
  'val_split',
  'lr',
  'num_epoch',
];

export function bundledTasksPath(): string {
  return assetPath('tasks', 'vilbert_tasks.yml');
}

/** Every task of a registry file, keyed 'TASK<n>'; errors name the file, task and key. */
export function loadTaskRegistry(path = bundledTasksPath()): Map<string, TaskConfig> {
  let document: unknown;
  try {
    document = parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new DatasetError(
      path,
      `not a readable YAML task registry (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  if (typeof document !== 'object' || document === null)
    throw new DatasetError(path, 'expected a mapping of TASK<n> entries');
  const tasks = new Map<string, TaskConfig>();
  for (const [key, value] of Object.entries(document)) {
    if (!/^TASK\d+$/.test(key)) throw new DatasetError(path, `'${key}' is not a task key (TASK<n>)`);
    if (typeof value !== 'object' || value === null) throw new DatasetError(path, `${key} is not a mapping`);
    const entry = value as Record<string, unknown>;
    for (const field of REQUIRED) {
      if (entry[field] === undefined) throw new DatasetError(path, `${key} has no '${field}'`);
    }
    const annotations = {
      train_annotations_jsonpath: String(entry.train_annotations_jsonpath ?? ''),
      val_annotations_jsonpath: String(entry.val_annotations_jsonpath ?? ''),
    };
    tasks.set(key, { ...(entry as Omit<TaskConfig, 'key'>), ...annotations, key, lr: Number(entry.lr) });
  }
  return tasks;
}
