// Visual question answering: VQA (TASK1, the 3129 answers of vil_prediction) and GQA
// (TASK15, the 1533 answers of vil_prediction_gqa). The heads were trained with
// binary cross-entropy on soft answer scores, so each answer's score is its sigmoid.
import type { ImageInput } from './image-input.js';
import type { ModelFolder } from './model-folder.js';
import {
  type PipelineHandle,
  type PipelineOptions,
  checkTopk,
  makePipeline,
  openContext,
  rankIndices,
  sigmoid,
} from './pipeline.js';

export interface VqaAnswer {
  answer: string;
  /** sigmoid of the answer's logit, in [0, 1] */
  score: number;
}

export interface VqaCallOptions {
  /** How many answers, best first (default 5). */
  topk?: number;
}

export type VqaPipeline = ((question: string, image: ImageInput, options?: VqaCallOptions) => Promise<VqaAnswer[]>) &
  PipelineHandle;

const HEAD = { vqa: 'vil_prediction', gqa: 'vil_prediction_gqa' } as const;

export function createVqaPipeline(
  task: 'vqa' | 'gqa',
  model: string | ModelFolder,
  options: PipelineOptions = {},
): VqaPipeline {
  const context = openContext(task, model, options);
  const head = HEAD[task];
  const labels = context.folder.labels[head];
  if (labels === undefined) {
    context.dispose();
    throw new Error(`${context.folder.dir}: labels.json has no ${head} answers, which the ${task} pipeline needs`);
  }
  return makePipeline(context, async (question: string, image: ImageInput, { topk = 5 }: VqaCallOptions = {}) => {
    checkTopk(topk, task);
    const sentence = context.encode(question);
    const { padded } = context.image(image, 'image');
    const values = context.forward([{ sentence, regions: [padded] }], head); // [1, answers]
    context.report({ status: 'progress', task, done: 1, total: 1 });
    // Outputs past the label list (a head wider than the trained answers) are never answers.
    return rankIndices(values, labels.length)
      .slice(0, topk)
      .map((label) => ({ answer: labels[label]!, score: sigmoid(values[label]!) }));
  });
}
