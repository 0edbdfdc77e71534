// The world's task registry: vilbert_tasks.yml in the shape of the bundled one (same TASK
// keys, names, types, losses, processes and task ids), its paths relative to the world root,
// with the sequence and region lengths the generated data needs and small batches.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadTaskRegistry, type TaskConfig } from '../data/task-registry.js';
import type { TaskSummary } from './context.js';

export const REGISTRY_FILE = 'vilbert_tasks.yml';

/** Batch sizes for a tiny model on a few CPU cores: items per batch (retrieval items are 4 pairs, NLVR2 items 2 images). */
const BATCH_SIZE: Readonly<Record<string, number>> = {
  RetrievalCOCO: 8,
  RetrievalFlickr30k: 8,
  GuessWhatPointing: 8,
  NLVR2: 16,
};
const DEFAULT_BATCH = 16;
const EVAL_BATCH = 32;

/** The reference's key order of a task entry. */
const FIELD_ORDER: readonly (keyof TaskConfig)[] = [
  'name',
  'type',
  'loss',
  'process',
  'task_id',
  'dataroot',
  'features_h5path1',
  'features_h5path2',
  'train_annotations_jsonpath',
  'val_annotations_jsonpath',
  'max_seq_length',
  'max_region_num',
  'batch_size',
  'eval_batch_size',
  'train_split',
  'val_split',
  'lr',
  'num_epoch',
];

export type RegistryEntry = Omit<TaskConfig, 'key' | 'eval_batch_size'> & { eval_batch_size: number };

/** The registry entries of the world's tasks, in task-number order. */
export function worldRegistry(summaries: readonly TaskSummary[]): Record<string, RegistryEntry> {
  const bundled = loadTaskRegistry();
  const entries = summaries.map((summary): [number, string, RegistryEntry] => {
    const reference = bundled.get(summary.key);
    if (!reference || reference.name !== summary.name)
      throw new Error(`the bundled registry has no ${summary.key} ${summary.name}`);
    const merged: TaskConfig = {
      ...reference,
      train_annotations_jsonpath: '',
      val_annotations_jsonpath: '',
      ...summary.registry,
      batch_size: BATCH_SIZE[summary.name] ?? DEFAULT_BATCH,
      eval_batch_size: EVAL_BATCH,
    };
    return [
      merged.task_id,
      summary.key,
      Object.fromEntries(FIELD_ORDER.map((field) => [field, merged[field]])) as RegistryEntry,
    ];
  });
  return Object.fromEntries(entries.sort((a, b) => a[0] - b[0]).map(([, key, entry]) => [key, entry]));
}

export function writeRegistry(root: string, registry: Record<string, RegistryEntry>, header: string): void {
  writeFileSync(
    join(root, REGISTRY_FILE),
    `${header
      .split('\n')
      .map((line) => `# ${line}`.trimEnd())
      .join('\n')}\n${stringify(registry)}`,
  );
}
