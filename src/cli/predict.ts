// `vilbert predict`: one prediction of a pipeline on images of a feature LMDB, and
// `vilbert model-folder`: a model folder from a reference checkpoint (docs/INFERENCE.md).
import { type Command, Option } from 'commander';
import { createPipeline, type PipelineOfTask, type ProgressEvent } from '../pipelines/index.js';
import {
  DEFAULT_PIPELINE_TASKS,
  PIPELINE_TASKS,
  modelFolderFromCheckpoint,
  type PipelineTask,
} from '../pipelines/model-folder.js';
import { ImageFeatureReader } from '../data/features.js';
import type { GroundingResult } from '../pipelines/ground.js';
import type { RetrievalResult } from '../pipelines/retrieve.js';
import type { VqaAnswer } from '../pipelines/vqa.js';
import type { EntailResult } from '../pipelines/entail.js';
import type { VerifyResult } from '../pipelines/verify.js';
import { fetchFromPretrained } from './download.js';
import { precisionOption, reportPrecision } from './precision-option.js';
import { PRECISIONS, type Precision } from '../model/precision.js';

interface PredictOptions {
  task: string;
  model: string;
  features: string;
  image: string[];
  text: string;
  topk?: string;
  batch_size?: string;
  json: boolean;
  precision?: Precision;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function positiveInteger(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 1)
    throw new Error(`${flag} must be a positive integer, got '${value}'`);
  return parsed;
}

/** How many --image ids a task takes: [min, max]. retrieve with none ranks every image of the store. */
const IMAGE_COUNTS: Record<PipelineTask, [number, number]> = {
  vqa: [1, 1],
  gqa: [1, 1],
  ground: [1, 1],
  entail: [1, 1],
  verify: [2, 2],
  retrieve: [0, Infinity],
};

/** Images printed by retrieve over a whole store when --topk is not given. */
export const STORE_RANKING_TOPK = 10;

const fixed = (value: number) => value.toFixed(4);

function printResult(task: PipelineTask, result: unknown, imageIds: string[]): void {
  switch (task) {
    case 'vqa':
    case 'gqa':
      (result as VqaAnswer[]).forEach(({ answer, score }, rank) =>
        console.log(`${rank + 1}. ${answer}\t${fixed(score)}`),
      );
      break;
    case 'ground':
      (result as GroundingResult[]).forEach(({ box, score, regionIndex }, rank) => {
        const region = regionIndex === 0 ? 'whole image' : `box ${regionIndex - 1}`;
        console.log(`${rank + 1}. ${region}\t[${box.map((value) => value.toFixed(1)).join(', ')}]\t${fixed(score)}`);
      });
      break;
    case 'retrieve':
      (result as RetrievalResult[]).forEach(({ index, score }, rank) =>
        console.log(`${rank + 1}. image ${imageIds[index]}\t${fixed(score)}`),
      );
      break;
    case 'verify': {
      const { label, score } = result as VerifyResult;
      console.log(`${label}\t${fixed(score)}`);
      break;
    }
    case 'entail': {
      const { label, scores } = result as EntailResult;
      console.log(
        `${label}\t${Object.entries(scores)
          .map(([name, score]) => `${name} ${fixed(score)}`)
          .join(', ')}`,
      );
      break;
    }
  }
}

async function predict(options: PredictOptions): Promise<void> {
  const task = options.task as PipelineTask;
  if (!PIPELINE_TASKS.includes(task))
    throw new Error(`--task must be one of ${PIPELINE_TASKS.join(', ')}, got '${options.task}'`);
  const [least, most] = IMAGE_COUNTS[task];
  if (options.image.length < least || options.image.length > most) {
    const wanted = least === most ? `exactly ${least}` : `at least ${least}`;
    throw new Error(
      `--task ${task} takes ${wanted} --image id${least === 1 && most === 1 ? '' : 's'}, got ${options.image.length}`,
    );
  }
  const topk = positiveInteger('--topk', options.topk);
  const batchSize = positiveInteger('--batch_size', options.batch_size);
  // Progress goes to stderr, and only to a terminal: stdout stays the result alone.
  const onProgress = process.stderr.isTTY
    ? (event: ProgressEvent) => {
        if (event.status === 'loading') process.stderr.write(`reading ${event.file}\n`);
        if (event.status === 'progress' && event.total > 1)
          process.stderr.write(`\rscored ${event.done}/${event.total} images${event.done === event.total ? '\n' : ''}`);
      }
    : undefined;
  reportPrecision(options.precision);
  const store = ImageFeatureReader.open(options.features);
  let pipeline: PipelineOfTask[PipelineTask] | undefined;
  try {
    pipeline = await createPipeline(task, options.model, {
      ...(onProgress && { onProgress }),
      ...(batchSize && { batchSize }),
      ...(options.precision && { precision: options.precision }),
    });
    // retrieve without --image: every image of the store, in its keys order. Only the ids are
    // held; the pipeline reads regions batch by batch (--batch_size images per forward).
    const imageIds = task === 'retrieve' && options.image.length === 0 ? store.keys() : options.image;
    if (imageIds.length === 0) throw new Error(`${options.features}: the store has no images to rank`);
    const images = imageIds.map((imageId) => ({ store, imageId }));
    const wholeStore = imageIds !== options.image;
    const topkOption = topk === undefined ? (wholeStore ? { topk: STORE_RANKING_TOPK } : {}) : { topk };
    let result: unknown;
    switch (task) {
      case 'vqa':
      case 'gqa':
        result = await (pipeline as PipelineOfTask['vqa'])(options.text, images[0]!, topkOption);
        break;
      case 'ground':
        result = await (pipeline as PipelineOfTask['ground'])(options.text, images[0]!, topkOption);
        break;
      case 'retrieve':
        result = await (pipeline as PipelineOfTask['retrieve'])(options.text, images, topkOption);
        break;
      case 'verify':
        result = await (pipeline as PipelineOfTask['verify'])(options.text, images[0]!, images[1]!);
        break;
      case 'entail':
        result = await (pipeline as PipelineOfTask['entail'])(options.text, images[0]!);
        break;
    }
    if (options.json) console.log(JSON.stringify(result, null, 2));
    else printResult(task, result, imageIds);
  } finally {
    pipeline?.dispose();
    store.close();
  }
}

interface ModelFolderOptions {
  from_pretrained: string;
  config_file?: string;
  labels_from?: string;
  out: string;
  vocab?: string;
  ground_task?: string;
  retrieve_task?: string;
  precision?: Precision;
}

function taskKey(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const key = /^\d+$/.test(value) ? `TASK${value}` : value;
  if (!/^TASK\d+$/.test(key)) throw new Error(`${flag} must be a task number or key (9, TASK9), got '${value}'`);
  return key;
}

/** A folder stores float32 or bfloat16 weights; int8 is made from either when a folder is loaded. */
function storedDtype(precision: Precision): 'float32' | 'bfloat16' {
  if (precision === 'int8')
    throw new Error(
      'model-folder --precision int8: a folder stores fp32 or bf16 weights; int8 quantizes them when loaded (predict --precision int8)',
    );
  return precision === 'bf16' ? 'bfloat16' : 'float32';
}

async function makeModelFolder(options: ModelFolderOptions): Promise<void> {
  await fetchFromPretrained(options.from_pretrained);
  const ground = taskKey('--ground_task', options.ground_task);
  const retrieve = taskKey('--retrieve_task', options.retrieve_task);
  const report = modelFolderFromCheckpoint({
    checkpoint: options.from_pretrained,
    out: options.out,
    ...(options.config_file === undefined ? {} : { config: options.config_file }),
    ...(options.labels_from === undefined ? {} : { labelsFrom: options.labels_from }),
    ...(options.vocab === undefined ? {} : { vocabFile: options.vocab }),
    ...(options.precision === undefined ? {} : { weightsDtype: storedDtype(options.precision) }),
    tasks: { ...(ground && { ground }), ...(retrieve && { retrieve }) },
    onProgress: ({ step, file }) => console.log(`${step} ${file}`),
  });
  for (const { head, file, count } of report.labels) console.log(`${head}: ${count} answers from ${file}`);
  for (const { task, file } of report.leftOut) {
    console.log(`${task}: left out (${options.labels_from === undefined ? 'no --labels_from' : `no ${file}`})`);
  }
  if (report.unexpectedKeys.length > 0)
    console.log(
      `ignored ${report.unexpectedKeys.length} checkpoint keys the model has no place for: ${report.unexpectedKeys.slice(0, 5).join(', ')}`,
    );
  for (const [task, settings] of Object.entries(report.tasks)) {
    console.log(
      `${task}: ${settings.name} (task token ${settings.task_id}, ${settings.max_seq_length} tokens, ${settings.max_region_num} regions)`,
    );
  }
  console.log(`wrote ${options.out}`);
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('answer, ground, rank, verify or entail with a model folder, on images of a region-feature LMDB')
    .requiredOption('--task <task>', `one of ${PIPELINE_TASKS.join(', ')}`)
    .requiredOption(
      '--model <dir>',
      'model folder (config.json, model.safetensors, labels.json, tasks.json; see vilbert model-folder)',
    )
    .requiredOption(
      '--features <lmdb>',
      'region-feature LMDB holding the images (e.g. COCO_trainval_resnext152_faster_rcnn_genome.lmdb)',
    )
    .option(
      '--image <id>',
      'image id in the LMDB; verify takes two (left, right), retrieve any number (none: every image of the LMDB)',
      collect,
      [],
    )
    .requiredOption('--text <text>', 'the question, expression, caption, statement or hypothesis')
    .option(
      '--topk <n>',
      `answers (vqa, gqa: default 5), regions (ground: default 1) or images (retrieve: default all the --image ids, ${STORE_RANKING_TOPK} when ranking the whole LMDB) to print`,
    )
    .option(
      '--batch_size <n>',
      'images per forward pass for retrieve (default 32); regions are read one batch at a time',
    )
    .option('--json', 'print the result as JSON', false)
    .addOption(precisionOption('the model (default: bf16 for a folder of bf16 weights, else fp32)'))
    .action(predict);

  program
    .command('model-folder')
    .description(
      'make a model folder for predict and the pipelines from a reference checkpoint (e.g. multi_task_model.bin)',
    )
    .requiredOption(
      '--from_pretrained <file>',
      'weights: .bin (either torch format) or .safetensors; or multi-task, pretrained, an http(s) address (fetched into the cache)',
    )
    .option('--config_file <file>', 'model config: a file or a bundled name (default bert_base_6layer_6conect)')
    .option(
      '--labels_from <root>',
      "folder holding the reference's datasets/ (answer lists datasets/VQA/cache/trainval_label2ans.pkl, datasets/gqa/cache/trainval_label2ans.pkl)",
    )
    .requiredOption('--out <dir>', 'model folder to write (replaced if it is one already)')
    .option('--vocab <file>', 'WordPiece vocabulary to put in the folder (default: the bundled bert-base-uncased one)')
    .option(
      '--ground_task <n>',
      `registry task of the ground pipeline: 9 refcoco, 10 refcoco+, 11 refcocog (default ${DEFAULT_PIPELINE_TASKS.ground})`,
    )
    .option(
      '--retrieve_task <n>',
      `registry task of the retrieve pipeline: 7 COCO, 8 Flickr30k (default ${DEFAULT_PIPELINE_TASKS.retrieve})`,
    )
    .addOption(
      new Option(
        '--precision <precision>',
        'how the folder stores its weights: fp32 (default) or bf16 (half the size; the folder then loads in bf16)',
      ).choices(PRECISIONS),
    )
    .action(makeModelFolder);
}
