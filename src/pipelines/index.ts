// Inference pipelines over a model folder, in the style of transformers.js:
//
//   const vqa = await createPipeline('vqa', 'models/12-in-1');
//   const answers = await vqa('what is the man holding?', { store: 'coco.lmdb', imageId: 9 });
//   vqa.dispose();
import type { ModelFolder, PipelineTask } from './model-folder.js';
import type { PipelineOptions } from './pipeline.js';
import { type VqaPipeline, createVqaPipeline } from './vqa.js';
import { type GroundPipeline, createGroundPipeline } from './ground.js';
import { type RetrievePipeline, createRetrievePipeline } from './retrieve.js';
import { type VerifyPipeline, createVerifyPipeline } from './verify.js';
import { type EntailPipeline, createEntailPipeline } from './entail.js';

export interface PipelineOfTask {
  vqa: VqaPipeline;
  gqa: VqaPipeline;
  ground: GroundPipeline;
  retrieve: RetrievePipeline;
  verify: VerifyPipeline;
  entail: EntailPipeline;
}

const FACTORIES: { [K in PipelineTask]: (model: string | ModelFolder, options: PipelineOptions) => PipelineOfTask[K] } =
  {
    vqa: (model, options) => createVqaPipeline('vqa', model, options),
    gqa: (model, options) => createVqaPipeline('gqa', model, options),
    ground: createGroundPipeline,
    retrieve: createRetrievePipeline,
    verify: createVerifyPipeline,
    entail: createEntailPipeline,
  };

/**
 * A pipeline of `task` over a model folder's path (loaded here, freed by the pipeline's
 * dispose()) or over a folder already loaded with loadModelFolder, which several pipelines can
 * share (the 12-in-1 model answers every task; the caller then disposes folder.model).
 */
export async function createPipeline<K extends PipelineTask>(
  task: K,
  model: string | ModelFolder,
  options: PipelineOptions = {},
): Promise<PipelineOfTask[K]> {
  const factory = FACTORIES[task];
  if (factory === undefined)
    throw new Error(`unknown pipeline task '${String(task)}' (${Object.keys(FACTORIES).join(', ')})`);
  return factory(model, options);
}

export {
  DEFAULT_PIPELINE_TASKS,
  ModelFolderError,
  PIPELINE_TASKS,
  loadModelFolder,
  modelFolderFromCheckpoint,
  saveModelFolder,
  type CheckpointFolderOptions,
  type CheckpointFolderReport,
  type LabelTable,
  type ModelFolder,
  type ModelFolderContents,
  type PipelineTask,
  type TaskSettings,
  type TaskTable,
} from './model-folder.js';
export { ImageInputError, type DetectedRegions, type ImageInput, type StoredImage } from './image-input.js';
export type { PipelineHandle, PipelineOptions, ProgressEvent } from './pipeline.js';
export type { VqaAnswer, VqaCallOptions, VqaPipeline } from './vqa.js';
export type { GroundCallOptions, GroundingResult, GroundPipeline } from './ground.js';
export type { RetrievalResult, RetrieveCallOptions, RetrievePipeline } from './retrieve.js';
export type { VerifyPipeline, VerifyResult } from './verify.js';
export { ENTAILMENT_CLASSES, type EntailmentLabel, type EntailPipeline, type EntailResult } from './entail.js';
