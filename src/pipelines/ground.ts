// Referring-expression grounding (refcoco / refcoco+ / refcocog, TASK9-11): vision_logit
// scores every region of the image for the expression; region 0 is the whole image, a legal
// answer as in the reference's evaluation.
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
import { LOCATION_WIDTH } from '../data/features.js';

export interface GroundingResult {
  /** x1, y1, x2, y2 in pixels of the original image. */
  box: [number, number, number, number];
  /** sigmoid of the region's vision_logit (trained with binary cross-entropy against IoU >= 0.5). */
  score: number;
  /** The model's region row: 0 the whole image, i >= 1 the image's box i - 1. */
  regionIndex: number;
}

export interface GroundCallOptions {
  /** How many regions, best first (default 1). */
  topk?: number;
}

export type GroundPipeline = ((
  expression: string,
  image: ImageInput,
  options?: GroundCallOptions,
) => Promise<GroundingResult[]>) &
  PipelineHandle;

export function createGroundPipeline(model: string | ModelFolder, options: PipelineOptions = {}): GroundPipeline {
  const context = openContext('ground', model, options);
  return makePipeline(context, async (expression: string, image: ImageInput, { topk = 1 }: GroundCallOptions = {}) => {
    checkTopk(topk, 'ground');
    const sentence = context.encode(expression);
    const { regions, padded } = context.image(image, 'image');
    const values = context.forward([{ sentence, regions: [padded] }], 'vision_logit'); // [1, R, 1]
    context.report({ status: 'progress', task: 'ground', done: 1, total: 1 });
    // Padded rows carry -10000 and are not candidates.
    return rankIndices(values, padded.numBoxes)
      .slice(0, topk)
      .map((row) => {
        const at = row * LOCATION_WIDTH;
        const [x1, y1, x2, y2] = regions.imageLocationOri.subarray(at, at + 4);
        return { box: [x1!, y1!, x2!, y2!], score: sigmoid(values[row]!), regionIndex: row };
      });
  });
}
