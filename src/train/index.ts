// `vilbert-ts/train`: the two trainers of the reference, and the parts to write a training
// loop of one's own: a task's batch through the model and its loss, the optimisers and the
// learning-rate schedules, checkpoints (docs/API.md; the flags in docs/TRAINING.md).
//
//   const out = forwardTask(model, toTaskBatch(batch), { type: 'VL-classifier', process: 'normal', number: 1 });
//   out.loss.backward();
//   optimizer.step();
//   model.zeroGrad();

// The trainers: train_tasks.py and train_concap.py, with their flags as arguments.
export {
  /** train_tasks.py's loop (12-in-1 multi-task fine-tuning): round-robin over the tasks, stop-and-go, checkpoints, resume. */
  trainTasks,
  /** Its arguments: train_tasks.py's flags by their names, plus this project's own. */
  type TrainTasksArgs,
  /** The reference's defaults of every TrainTasksArgs field: spread them and set what differs. */
  TRAIN_TASKS_DEFAULTS,
  /** What trainTasks returns: status, run directory, the trained model, its config, the validation scores. */
  type TrainTasksResult,
  /** onEvent (progress), shouldStop (checkpoint and stop), parallel (a distributed run). */
  type TrainTasksHooks,
} from './train-tasks.js';
export {
  /** train_concap.py's loop (Conceptual Captions pre-training, objectives 0/1/2, visual targets 0/1/2). */
  trainConcap,
  /** Its arguments: train_concap.py's flags by their names, plus this project's own. */
  type TrainConcapArgs,
  /** The reference's defaults of every TrainConcapArgs field. */
  TRAIN_CONCAP_DEFAULTS,
  /** What trainConcap returns. */
  type TrainConcapResult,
  /** Its hooks, as TrainTasksHooks. */
  type TrainConcapHooks,
  /** The events trainConcap emits. */
  type ConcapEvent,
} from './train-concap.js';
export {
  /** The events trainTasks emits (setup, train, eval, checkpoint, ...). */
  type TrainEvent,
  /** Thrown when a loss or gradient is NaN or infinite (with check_finite). */
  TrainingDivergedError,
} from './run-log.js';
export {
  /** The registry tasks named by a --tasks string ('1-2-4'), in that order. */
  selectTasks,
  /** The number in 'TASK<n>': the task token and the id the task step uses. */
  taskNumber,
  /** The DATASET_CLASSES name of a registry task's dataset for a phase (for openDataset). */
  datasetClassOf,
  /** The training and validation loaders of registry tasks, as train_tasks.py's LoadDatasets builds them. */
  buildTaskLoaders,
  /** One task's loaders. */
  type TaskLoaders,
  /** buildTaskLoaders' settings. */
  type LoaderSettings,
} from './task-data.js';

// One task's batch through the model (task_utils.py ForwardModelsTrain/Val).
export {
  /** Reshapes a batch for the task's process, runs the model for the task's head and returns loss, score and logits. */
  forwardTask,
  /** The batch reshaping of a task's `process` and its task-token column, as model inputs. */
  prepareBatch,
  /** The loss and batch score of a task `type` from the model's outputs. */
  taskLoss,
  /** The head a task type reads (VL-classifier: vil_prediction, ...). */
  headOf,
  /** A batch in the reference's positional slots (features, spatials, image_mask, question, target, ...). */
  type TaskBatch,
  /** prepareBatch's result: model inputs, batch size, options per sample, target. */
  type PreparedBatch,
  /** taskLoss's result. */
  type TaskLoss,
} from '../task-step/step.js';
export {
  /** A collated loader Batch as engine tensors in TaskBatch's slots. */
  toTaskBatch,
} from '../task-step/batch.js';

// Optimisers and schedules.
export {
  /** AdamW as the reference uses it (no bias correction by default, decoupled decay); one fused native step. */
  AdamW,
  /** AdamW's options (betas, eps, correctBias). */
  type AdamWOptions,
  /** One parameter with its name, lr and weight decay. */
  type ParamGroup,
  /** What trainers and checkpoints need of an optimiser (AdamW, RAdam). */
  type Optimizer,
  /** One group per trainable parameter with lr `lrOf(name)`, weight decay 0.01 except biases and LayerNorms. */
  paramGroups,
  /** The groups train_tasks.py builds: the heads ('vil_') at headLr, the rest at the base lr. */
  referenceParamGroups,
  /** The parameter-name substrings without weight decay. */
  NO_DECAY,
} from './adamw.js';
export {
  /** RAdam as the reference's vilbert/optimization.py has it. */
  RAdam,
} from './radam.js';
export {
  /** The schedules train_tasks.py builds for --lr_scheduler, stepped where its loop steps them. */
  LrPlan,
  /** The --lr_scheduler names. */
  LR_SCHEDULERS,
  /** One of them. */
  type LrSchedulerName,
  /** An LrPlan's saved state. */
  type LrPlanState,
  /** torch's LambdaLR on ParamGroups. */
  LambdaLR,
  /** Linear warm-up then linear decay (WarmupLinearSchedule). */
  warmupLinear,
  /** Linear warm-up then constant (WarmupConstantSchedule). */
  warmupConstant,
  /** step -> lr factor. */
  type LrLambda,
} from './schedules.js';
export {
  /** The per-task dynamic stop-and-go controller. */
  StopAndGo,
  /** Its settings. */
  type StopAndGoOptions,
  /** The settings train_tasks.py uses. */
  REFERENCE_STOP_AND_GO,
} from './stop-and-go.js';
export {
  /** Freezes the text layers up to a BERT layer (--freeze). */
  freezeTextLayers,
} from './param-groups.js';

// Checkpoints.
export {
  /** A model's state dict as a .safetensors file (atomically written): loadPretrainedWeights reads it back. */
  saveModelWeights,
  /** A training checkpoint: weights, optimiser moments and the caller's state in one file. */
  saveTrainingCheckpoint,
  /** Restores weights and moments from a training checkpoint; returns the caller's state. */
  loadTrainingCheckpoint,
} from './checkpoint.js';
