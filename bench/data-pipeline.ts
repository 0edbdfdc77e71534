// Feature-store reads and the full VQA batch pipeline (batch 128, 101 regions),
// ours vs the reference's Python loader on the same kit in the same run when
// VILBERT_REFERENCE_DIR is set. One thread each side; ours also with its worker
// prefetching (the main thread then only waits for finished batches).
//   VILBERT_REFERENCE_DIR=/path/to/vilbert-multi-task node dist/bench/data-pipeline.js
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageFeatureReader } from '../src/data/features.js';
import { TaskLoader, collate } from '../src/data/loader.js';
import { openDataset, type DatasetSpec } from '../src/data/dataset-spec.js';
import { loadTaskRegistry } from '../src/tasks/registry.js';
import { ReferenceProcess, median } from './harness.js';

const fixtures = fileURLToPath(new URL('../../test/fixtures/datasets', import.meta.url));
const root = join(mkdtempSync(join(tmpdir(), 'vilbert-data-bench-')), 'kit');
cpSync(join(fixtures, 'kit'), root, { recursive: true });
cpSync(join(fixtures, 'generated_caches', 'datasets', 'VQA'), join(root, 'datasets', 'VQA'), { recursive: true });
const lmdbPath = 'datasets/coco/features_100/COCO_trainval_resnext152_faster_rcnn_genome.lmdb';
const READS = 3000;
const BATCHES = 8;
const BATCH = 128;

const reader = ImageFeatureReader.open(join(root, lmdbPath));
const imageIds = reader.keys();
const spec: DatasetSpec = { className: 'VQAClassificationDataset', task: loadTaskRegistry().get('TASK1')!, split: 'trainval', phase: 'train', root, cleanDatasets: true };
const { dataset, close } = openDataset(spec);

function oursReads(): number {
  const start = performance.now();
  for (let i = 0; i < READS; i++) reader.get(imageIds[i % imageIds.length]!);
  return (performance.now() - start) / 1000;
}

function oursBatches(): number {
  const start = performance.now();
  for (let b = 0; b < BATCHES; b++) {
    const indices = Array.from({ length: BATCH }, (_, i) => (b * BATCH + i) % dataset.length);
    collate(indices.map((index) => dataset.item(index)), indices);
  }
  return (performance.now() - start) / 1000;
}

async function oursPrefetched(): Promise<number> {
  const loader = TaskLoader.inWorker(spec, dataset.length, { batchSize: dataset.length, shuffle: false, seed: 0, prefetch: 2 });
  await loader.next(); // the worker has opened the dataset
  const start = performance.now();
  let items = 0;
  while (items < BATCHES * BATCH) items += (await loader.next()).indices.length;
  const seconds = (performance.now() - start) / 1000;
  await loader.close();
  return (seconds * BATCHES * BATCH) / items;
}

const referenceDir = process.env.VILBERT_REFERENCE_DIR;
const reference = referenceDir
  ? new ReferenceProcess(process.env.VILBERT_PYTHON ?? '/usr/bin/python3', [fileURLToPath(new URL('../../bench/reference/data_pipeline.py', import.meta.url)), root, lmdbPath])
  : null;
if (reference) console.log(`reference: ${await reference.readLine()}`);
console.log(`kit COCO store: ${imageIds.length} images (mostly 100 boxes); VQA trainval: ${dataset.length} items, cycled`);

const rows: [string, number[], number[], number][] = [
  ['feature reads (get + decode + mean row)', [], [], READS],
  [`VQA batches of ${BATCH} (items + collate)`, [], [], BATCHES * BATCH],
];
for (let repeat = 0; repeat < 5; repeat++) {
  rows[0]![1].push(oursReads());
  if (reference) rows[0]![2].push(Number(await reference.time(`reads ${READS}`)) / 1000);
  rows[1]![1].push(oursBatches());
  if (reference) rows[1]![2].push(Number(await reference.time(`batches ${BATCHES} ${BATCH}`)) / 1000);
}
for (const [name, ours, theirs, items] of rows) {
  const oursRate = items / median(ours);
  if (reference) {
    const theirRate = items / (median(theirs) * 1000);
    console.log(`${name.padEnd(44)} ours ${oursRate.toFixed(0).padStart(7)} items/s   reference ${theirRate.toFixed(0).padStart(7)} items/s   ours/reference ${(oursRate / theirRate).toFixed(2)} (target >= 2)`);
  } else {
    console.log(`${name.padEnd(44)} ours ${oursRate.toFixed(0).padStart(7)} items/s (set VILBERT_REFERENCE_DIR for the reference side)`);
  }
}
const prefetched = await oursPrefetched();
console.log(`${'VQA batches, worker-prefetched (wait only)'.padEnd(44)} ours ${((BATCHES * BATCH) / prefetched).toFixed(0).padStart(7)} items/s seen by the training thread`);
reference?.close();
close();
reader.close();
rmSync(join(root, '..'), { recursive: true, force: true });
