// NLVR2 (TASK12): is a statement true of a pair of images? The pair goes through the model
// as two rows (statement with the left image, then with the right), whose pooled vectors
// vil_binary_prediction reads side by side, as the reference's 'nlvr' step pairs them.
//
// Each image is padded to max_region_num on its own. The reference's NLVR2 loader packs the
// right image straight after the left one's real regions; the two agree whenever the left
// image fills max_region_num rows, as every image of the released NLVR2 features does (100
// boxes and the whole-image row), and the loader's packing would mix the two images otherwise.
import type { ImageInput } from './image-input.js';
import type { ModelFolder } from './model-folder.js';
import { type PipelineHandle, type PipelineOptions, makePipeline, openContext, sigmoid } from './pipeline.js';

export interface VerifyResult {
  /** The head's class 1 ("True" in NLVR2's labels) beat class 0. */
  label: boolean;
  /** sigmoid of the winning class's logit (the head was trained with binary cross-entropy). */
  score: number;
}

export type VerifyPipeline = ((
  statement: string,
  leftImage: ImageInput,
  rightImage: ImageInput,
) => Promise<VerifyResult>) &
  PipelineHandle;

export function createVerifyPipeline(model: string | ModelFolder, options: PipelineOptions = {}): VerifyPipeline {
  const context = openContext('verify', model, options);
  return makePipeline(context, async (statement: string, leftImage: ImageInput, rightImage: ImageInput) => {
    const sentence = context.encode(statement);
    const left = context.image(leftImage, 'leftImage').padded;
    const right = context.image(rightImage, 'rightImage').padded;
    const values = context.forward([{ sentence, regions: [left, right] }], 'vil_binary_prediction', 'nlvr'); // [1, 2]
    context.report({ status: 'progress', task: 'verify', done: 1, total: 1 });
    // argmax, the first index on a tie
    const label = values[1]! > values[0]!;
    return { label, score: sigmoid(values[label ? 1 : 0]!) };
  });
}
