// Visual entailment (SNLI-VE, TASK13): does the image entail, contradict or say nothing
// about the hypothesis? vil_tri_prediction's classes are in the reference's label order
// (VisualEntailmentDataset: contradiction 0, neutral 1, entailment 2).
import { ENTAILMENT_CLASSES } from '../data/datasets/pairs.js';
import type { ImageInput } from './image-input.js';
import type { ModelFolder } from './model-folder.js';
import {
  type PipelineHandle,
  type PipelineOptions,
  makePipeline,
  openContext,
  rankIndices,
  sigmoid,
} from './pipeline.js';

export { ENTAILMENT_CLASSES };
export type EntailmentLabel = (typeof ENTAILMENT_CLASSES)[number];

export interface EntailResult {
  label: EntailmentLabel;
  /** sigmoid of each class's logit (the head was trained with binary cross-entropy on one-hot targets). */
  scores: Record<EntailmentLabel, number>;
}

export type EntailPipeline = ((hypothesis: string, image: ImageInput) => Promise<EntailResult>) & PipelineHandle;

export function createEntailPipeline(model: string | ModelFolder, options: PipelineOptions = {}): EntailPipeline {
  const context = openContext('entail', model, options);
  return makePipeline(context, async (hypothesis: string, image: ImageInput) => {
    const sentence = context.encode(hypothesis);
    const { padded } = context.image(image, 'image');
    const values = context.forward([{ sentence, regions: [padded] }], 'vil_tri_prediction'); // [1, 3]
    context.report({ status: 'progress', task: 'entail', done: 1, total: 1 });
    const best = rankIndices(values)[0]!;
    const scores = Object.fromEntries(
      ENTAILMENT_CLASSES.map((name, index) => [name, sigmoid(values[index]!)]),
    ) as Record<EntailmentLabel, number>;
    return { label: ENTAILMENT_CLASSES[best]!, scores };
  });
}
