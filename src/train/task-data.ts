// The training and validation loaders of each requested task, built as
// train_tasks.py's LoadDatasets does: DatasetMapTrain classes, the task's
// train_split and val_split, batch size // gradient accumulation // world size,
// shuffled training order (this rank's shard of it in a distributed run),
// sequential validation over the whole split on every rank.
import { openDataset, type DatasetSpec } from '../data/dataset-spec.js';
import { TaskLoader, type LoaderOptions, type Sampler } from '../data/loader.js';
import type { DataParallel } from '../distributed/index.js';
import { ShardedBatchSampler } from '../data/distributed-sampler.js';
import type { TaskConfig } from '../data/task-registry.js';
import { DATASET_CLASSES, DATASET_MAP_EVAL, DATASET_MAP_TRAIN } from '../data/datasets/index.js';

/** The DATASET_CLASSES name of the class DatasetMapTrain (train, val) or DatasetMapEval (eval) holds for the task. */
export function datasetClassOf(task: TaskConfig, phase: 'train' | 'val' | 'eval'): string {
  const map = phase === 'eval' ? DATASET_MAP_EVAL : DATASET_MAP_TRAIN;
  const factory = map[task.name];
  const className = Object.entries(DATASET_CLASSES).find(([, candidate]) => candidate === factory)?.[0];
  if (!factory || !className)
    throw new Error(`${task.key}: no dataset for task name '${task.name}' (known: ${Object.keys(map).join(', ')})`);
  return className;
}

/** The number in 'TASK<n>': the task token id and the id ForwardModels* use. */
export function taskNumber(task: TaskConfig): number {
  const number = Number(task.key.slice(4));
  if (!Number.isInteger(number)) throw new Error(`task key '${task.key}' is not TASK<n>`);
  return number;
}

/** Parses --tasks ('1-2-4'): the registry entries in the given order. `source` names the registry in errors. */
export function selectTasks(registry: Map<string, TaskConfig>, tasks: string, source: string): TaskConfig[] {
  if (tasks.trim() === '')
    throw new Error('--tasks is required: name the tasks by number joined by -, e.g. --tasks 1-2-4');
  return tasks.split('-').map((part) => {
    const key = `TASK${part.trim()}`;
    const task = registry.get(key);
    if (!task)
      throw new Error(
        `--tasks: ${key} is not in the task registry ${source} (it has ${[...registry.keys()].join(', ')})`,
      );
    return task;
  });
}

export interface TaskLoaders {
  task: TaskConfig;
  number: number;
  train: TaskLoader;
  val: TaskLoader;
}

export interface LoaderSettings {
  root: string;
  cleanDatasets: boolean;
  gradientAccumulation: number;
  seed: number;
  /** Prefetch in worker threads (the reference's num_workers > 0). */
  workers: boolean;
  /** Overrides every task's batch_size (a reduced batch for small machines); 0 keeps the registry's. */
  batchSize: number;
  /** A distributed run: batches are divided by its world size and training batches sharded over its ranks. */
  parallel?: DataParallel;
}

/** A loader over the dataset of `spec`; `sampler` (given the dataset's length) replaces the plain BatchSampler. */
function loaderOf(
  spec: DatasetSpec,
  settings: LoaderSettings,
  options: LoaderOptions,
  sampler?: (length: number) => Sampler,
): TaskLoader {
  const opened = openDataset(spec);
  const length = opened.dataset.length;
  const withSampler = sampler ? { ...options, sampler: sampler(length) } : options;
  if (!settings.workers) return TaskLoader.inProcess(opened.dataset, withSampler);
  opened.close();
  return TaskLoader.inWorker(spec, length, withSampler);
}

export function buildTaskLoaders(tasks: TaskConfig[], settings: LoaderSettings): TaskLoaders[] {
  const parallel = settings.parallel;
  return tasks.map((task, position) => {
    const globalBatch = settings.batchSize || task.batch_size;
    const accumulated = Math.floor(globalBatch / settings.gradientAccumulation);
    const what = `${task.key} ${task.name}: batch size ${globalBatch} // gradient_accumulation_steps ${settings.gradientAccumulation}`;
    if (accumulated < 1) throw new Error(`${what} is 0`);
    const batchSize = parallel ? parallel.localBatchSize(accumulated, `${what} = ${accumulated}`) : accumulated;
    const spec = (split: string, phase: 'train' | 'val'): DatasetSpec => ({
      className: datasetClassOf(task, phase),
      task,
      split,
      phase,
      root: settings.root,
      cleanDatasets: settings.cleanDatasets,
    });
    const seed = (settings.seed * 7919 + position * 104729) >>> 0;
    const options = { batchSize, reseed: true, prefetch: 2 };
    const shard =
      parallel && parallel.worldSize > 1
        ? (length: number) =>
            new ShardedBatchSampler(length, batchSize, {
              shuffle: true,
              seed,
              rank: parallel.rank,
              worldSize: parallel.worldSize,
            })
        : undefined;
    const train = loaderOf(spec(task.train_split, 'train'), settings, { ...options, shuffle: true, seed }, shard);
    const val = loaderOf(spec(task.val_split, 'val'), settings, {
      ...options,
      shuffle: false,
      seed: seed ^ 0x5bd1e995,
    });
    return { task, number: taskNumber(task), train, val };
  });
}
