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
import { TaskLoader, collateFrom, type Sampler, type SamplerState } from '../src/data/loader.js';
import { openDataset, type DatasetSpec } from '../src/data/dataset-spec.js';
import { loadTaskRegistry } from '../src/data/task-registry.js';
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
const spec: DatasetSpec = {
  className: 'VQAClassificationDataset',
  task: loadTaskRegistry().get('TASK1')!,
  split: 'trainval',
  phase: 'train',
  root,
  cleanDatasets: true,
};
const { dataset, close } = openDataset(spec);

function oursReads(): number {
  const start = performance.now();
  for (let i = 0; i < READS; i++) reader.get(imageIds[i % imageIds.length]!);
  return (performance.now() - start) / 1000;
}

// The same reads into one caller-owned result (getPadded with `into`, 101 rows: the kit's
// largest image has 100 boxes), reused for every image.
function oursReadsInto(): number {
  const into = reader.getPadded(imageIds[0]!, 101);
  const start = performance.now();
  for (let i = 0; i < READS; i++) reader.getPadded(imageIds[i % imageIds.length]!, 101, into);
  return (performance.now() - start) / 1000;
}

function oursBatches(): number {
  const start = performance.now();
  for (let b = 0; b < BATCHES; b++) {
    const indices = Array.from({ length: BATCH }, (_, i) => (b * BATCH + i) % dataset.length);
    // As TaskLoader builds a batch: transient items, each copied in before the next.
    collateFrom(indices, (index) => dataset.item(index, true));
  }
  return (performance.now() - start) / 1000;
}

// The same batches of 128 (cycled indices, as above) built in TaskLoader's worker, two
// ahead; the timed span is what this thread waits for them, after two untimed batches
// (the worker's JIT and heap).
class CycledSampler implements Sampler {
  readonly length = Number.MAX_SAFE_INTEGER;
  #position = 0;
  next(): number[] {
    const start = this.#position++ * BATCH;
    return Array.from({ length: BATCH }, (_, i) => (start + i) % dataset.length);
  }
  state(): SamplerState {
    return { seed: 0, epoch: 0, position: this.#position };
  }
  restore(state: SamplerState): void {
    this.#position = state.position;
  }
}

async function oursPrefetched(): Promise<number> {
  const loader = TaskLoader.inWorker(spec, dataset.length, {
    batchSize: BATCH,
    shuffle: false,
    seed: 0,
    prefetch: 2,
    sampler: new CycledSampler(),
  });
  for (let warm = 0; warm < 2; warm++) await loader.next();
  const start = performance.now();
  for (let b = 0; b < BATCHES; b++) await loader.next();
  const seconds = (performance.now() - start) / 1000;
  await loader.close();
  return seconds;
}

const referenceDir = process.env.VILBERT_REFERENCE_DIR;
const reference = referenceDir
  ? new ReferenceProcess(process.env.VILBERT_PYTHON ?? '/usr/bin/python3', [
      fileURLToPath(new URL('../../bench/reference/data_pipeline.py', import.meta.url)),
      root,
      lmdbPath,
    ])
  : null;
if (reference) console.log(`reference: ${await reference.readLine()}`);
console.log(
  `kit COCO store: ${imageIds.length} images (mostly 100 boxes); VQA trainval: ${dataset.length} items, cycled`,
);

// Warm-up first, untimed, on both sides: a round of batches, then a round of reads. Both
// matter for the reference too: until a large block has been freed, glibc serves every
// ~0.4-0.8 MB numpy array with its own mmap (its dynamic mmap threshold starts at 128 KB),
// which made its reads here 5-7x slower than after a round of batches. Ours needs the JIT
// and a grown heap. Then each row is its own phase, alternating ours and theirs, reads
// first: the batch phase leaves hundreds of MB of garbage that V8 collects later (Python
// frees at once), and timing reads straight after it measures that collection.
const REPEATS = 7;
interface Row {
  name: string;
  items: number;
  ours: () => number;
  theirs: string;
}
const rows: Row[] = [
  { name: 'feature reads (get + decode + mean row)', items: READS, ours: oursReads, theirs: `reads ${READS}` },
  { name: 'feature reads into a reused result', items: READS, ours: oursReadsInto, theirs: `reads ${READS}` },
  {
    name: `VQA batches of ${BATCH} (items + collate)`,
    items: BATCHES * BATCH,
    ours: oursBatches,
    theirs: `batches ${BATCHES} ${BATCH}`,
  },
];
for (const row of [...rows].reverse()) {
  row.ours();
  if (reference) await reference.time(row.theirs);
}
for (const row of rows) {
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    ours.push(row.ours());
    if (reference) theirs.push(Number(await reference.time(row.theirs)));
  }
  const oursRate = row.items / median(ours);
  const spread = (seconds: number[]): string => seconds.map((s) => (row.items / s).toFixed(0)).join(' ');
  if (reference) {
    const theirRate = row.items / median(theirs);
    console.log(
      `${row.name.padEnd(44)} ours ${oursRate.toFixed(0).padStart(7)} items/s   reference ${theirRate.toFixed(0).padStart(7)} items/s   ours/reference ${(oursRate / theirRate).toFixed(2)} (target >= 2)`,
    );
    console.log(`${''.padEnd(44)} (each run, items/s: ours ${spread(ours)} | reference ${spread(theirs)})`);
  } else {
    console.log(
      `${row.name.padEnd(44)} ours ${oursRate.toFixed(0).padStart(7)} items/s (set VILBERT_REFERENCE_DIR for the reference side)   (each run: ${spread(ours)})`,
    );
  }
}
const prefetched = await oursPrefetched();
console.log(
  `${`VQA batches of ${BATCH}, worker-prefetched (wait)`.padEnd(44)} ours ${((BATCHES * BATCH) / prefetched).toFixed(0).padStart(7)} items/s seen by the training thread`,
);
reference?.close();
close();
reader.close();
rmSync(join(root, '..'), { recursive: true, force: true });
