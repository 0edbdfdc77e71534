// The prefetching worker of TaskLoader.inWorker: opens the dataset once, then
// answers {id, indices} with collated batches (their buffers transferred, not copied).
import { parentPort, workerData } from 'node:worker_threads';
import { openDataset, type DatasetSpec } from './dataset-spec.js';
import { collateFrom } from './loader.js';

const { dataset } = openDataset(workerData as DatasetSpec);

parentPort!.on('message', (message: { id: number; indices: number[]; seed: number | null }) => {
  try {
    if (message.seed !== null) dataset.reseed?.(message.seed);
    const batch = collateFrom(message.indices, (index) => dataset.item(index, true));
    const transfer = Object.values(batch.values).flatMap((value) =>
      Array.isArray(value) ? [] : [value.data.buffer as ArrayBuffer],
    );
    parentPort!.postMessage({ id: message.id, batch }, transfer);
  } catch (error) {
    parentPort!.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) });
  }
});
