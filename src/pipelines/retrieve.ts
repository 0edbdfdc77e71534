// Caption-to-image retrieval (RetrievalCOCO / RetrievalFlickr30k, TASK7-8): every image is
// scored against the caption with vil_logit, as eval_retrieval.py ranks its test images
// (raw logits: the head was trained with a softmax over candidates, so only their order and
// differences mean something).
import type { ImageInput } from './image-input.js';
import type { ModelFolder } from './model-folder.js';
import {
  type InputRow,
  type PipelineHandle,
  type PipelineOptions,
  checkTopk,
  makePipeline,
  openContext,
  rankIndices,
  yieldToEventLoop,
} from './pipeline.js';

export interface RetrievalResult {
  /** Position of the image in the argument list. */
  index: number;
  /** The LMDB image id, for images from a store. */
  imageId?: string;
  /** vil_logit of (caption, image). */
  score: number;
}

export interface RetrieveCallOptions {
  /** How many images, best first (default all). */
  topk?: number;
}

export type RetrievePipeline = ((
  caption: string,
  images: readonly ImageInput[],
  options?: RetrieveCallOptions,
) => Promise<RetrievalResult[]>) &
  PipelineHandle;

export function createRetrievePipeline(model: string | ModelFolder, options: PipelineOptions = {}): RetrievePipeline {
  const context = openContext('retrieve', model, options);
  return makePipeline(
    context,
    async (caption: string, images: readonly ImageInput[], { topk }: RetrieveCallOptions = {}) => {
      if (!Array.isArray(images) || images.length === 0)
        throw new TypeError('retrieve: images must be a non-empty array');
      if (topk !== undefined) checkTopk(topk, 'retrieve');
      const sentence = context.encode(caption);
      // A bad argument fails the call before the first batch runs, not after the batches before it.
      images.forEach((image, index) => context.checkImage(image, `images[${index}]`));
      const scores = new Float32Array(images.length);
      const imageIds: (string | undefined)[] = [];
      // Regions are read batch by batch: a 1000-image ranking set does not sit in memory at once.
      for (let start = 0; start < images.length; start += context.batchSize) {
        const rows: InputRow[] = images.slice(start, start + context.batchSize).map((image, offset) => {
          const { regions, padded } = context.image(image, `images[${start + offset}]`);
          imageIds.push(regions.imageId);
          return { sentence, regions: [padded] };
        });
        scores.set(context.forward(rows, 'vil_logit'), start); // [rows, 1]
        context.report({ status: 'progress', task: 'retrieve', done: start + rows.length, total: images.length });
        await yieldToEventLoop();
      }
      return rankIndices(scores)
        .slice(0, topk ?? images.length)
        .map((index) => {
          const imageId = imageIds[index];
          return { index, ...(imageId === undefined ? {} : { imageId }), score: scores[index]! };
        });
    },
  );
}
