// `vilbert eval-tasks` (eval_tasks.py) and `vilbert eval-retrieval` (eval_retrieval.py):
// the reference's flags, defaults and output files.
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import * as torch from '../torch/index.js';
import { openDataset } from '../data/dataset-spec.js';
import type { TaskDataset } from '../data/dataset.js';
import { TaskLoader } from '../data/loader.js';
import { DATASET_CLASSES, DATASET_MAP_EVAL } from '../data/tasks/index.js';
import type { ViLBertConfig } from '../model/config.js';
import { configFromFlags, type ConfigFlags } from '../model/from-flags.js';
import { loadPretrainedWeights } from '../model/pretrained.js';
import { BertForMultiModalPreTraining, VILBertForVLTasks } from '../model/vilbert.js';
import { type TaskConfig, loadTaskRegistry } from '../tasks/registry.js';
import { selectTasks as selectRegistryTasks, taskNumber } from '../train/task-data.js';
import { evaluateTask } from '../eval/evaluate.js';
import { evaluateRetrieval } from '../eval/retrieval.js';
import {
  addCommonFlags, addModelVariantFlags, addTaskDataFlags, float, positiveInteger, refuseUnsupported,
  type CommonFlagSettings, type CommonFlags, type TaskDataFlags,
} from './flags.js';

interface CommonOptions extends CommonFlags, TaskDataFlags {
  use_chunk: number;
  batch_size: number;
  split: string;
  task_specific_tokens: boolean;
}

interface EvalTasksOptions extends CommonOptions {
  dynamic_attention: boolean;
  visual_target: number;
}

interface EvalRetrievalOptions extends CommonOptions {
  zero_shot: boolean;
  chunk_size: number;
}

const RETRIEVAL_TASKS = new Set(['RetrievalCOCO', 'RetrievalFlickr30k']);

/** The eval scripts' settings of the flags every reference script has. */
const COMMON: CommonFlagSettings = {
  fromPretrained: { default: 'bert-base-uncased', help: 'weights to evaluate (.bin in either torch format, or .safetensors), loaded as the reference\'s from_pretrained' },
  outputDir: 'results',
  configFile: 'config/bert_config.json',
  seed: 42,
  numWorkers: { default: 16, help: 'no effect: batches are built in this process' },
  fp16: 'unused',
};

/** The flags eval_tasks.py and eval_retrieval.py share, with their defaults. */
function addEvalFlags(command: Command, batchSizeDefault: number): Command {
  return addTaskDataFlags(addCommonFlags(command, COMMON), '1-12')
    .option('--use_chunk <x>', 'no effect (unused by the reference)', float, 0)
    .option('--batch_size <n>', 'evaluation batch size of every task', positiveInteger, batchSizeDefault)
    .option('--split <name>', 'split to evaluate instead of each task\'s val_split (e.g. test, testA)', '')
    .option('--task_specific_tokens', 'the model has task tokens (config.task_specific_tokens = true); the multi-task checkpoint needs it', false);
}

/** The config file with the flags' edits; its warnings go to stderr. */
function readModelConfig(flags: ConfigFlags, extra: Partial<ViLBertConfig> = {}): ViLBertConfig {
  const parsed = configFromFlags(flags, extra);
  for (const warning of parsed.warnings) console.error(`warning: ${warning.message}`);
  return parsed.config;
}

function deviceFor(options: CommonOptions): string {
  return !options.no_cuda && torch.buildInfo().cuda ? 'cuda' : 'cpu';
}

/** Builds the model on the device and loads --from_pretrained into it. */
function loadModel<M extends torch.Module>(options: CommonOptions, build: () => M): M {
  const file = options.from_pretrained;
  if (!existsSync(file)) throw new Error(`--from_pretrained ${file}: no such weights file (.bin or .safetensors)`);
  torch.manualSeed(options.seed);
  const model = torch.withDefaultDevice(deviceFor(options), build);
  const report = loadPretrainedWeights(model, file);
  console.log(`loaded ${file}: ${report.missingKeys.length} keys missing (left at their initialisation), ${report.unexpectedKeys.length} unexpected (ignored)`);
  return model;
}

/** `--tasks 1-12` as registry entries, in the order given. */
function selectTasks(options: CommonOptions): { key: string; number: number; task: TaskConfig }[] {
  const tasks = selectRegistryTasks(loadTaskRegistry(options.tasks_config), options.tasks, options.tasks_config ?? 'bundled vilbert_tasks.yml');
  return tasks.map((task) => ({ key: task.key, number: taskNumber(task), task }));
}

/** DatasetMapEval's dataset for a task, opened from the registry paths. */
function openEvalDataset(task: TaskConfig, options: CommonOptions): { dataset: TaskDataset; split: string; close: () => void } {
  const factory = DATASET_MAP_EVAL[task.name];
  const className = Object.entries(DATASET_CLASSES).find(([, candidate]) => candidate === factory)?.[0];
  if (!factory || !className) throw new Error(`${task.key} ${task.name}: no evaluation dataset (known: ${Object.keys(DATASET_MAP_EVAL).join(', ')})`);
  const split = options.split || task.val_split;
  const { dataset, close } = openDataset({ className, task, split, phase: 'eval', root: options.datasets_root, cleanDatasets: options.clean_train_sets });
  return { dataset, split, close };
}

/** A progress counter on stderr when it is a terminal, like the reference's `i/n\r`. */
function progress(label: string): (done: number, total: number) => void {
  if (!process.stderr.isTTY) return () => {};
  return (done, total) => process.stderr.write(`\r${label} ${done}/${total}${done === total ? '\n' : ''}`);
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value));
}

/** Files of one run, and a warning when a later task overwrites an earlier task's (same split name, as the reference). */
function resultWriter(savePath: string): (split: string, label: string, results: unknown, others: unknown) => void {
  const writtenBy = new Map<string, string>();
  return (split, label, results, others) => {
    const earlier = writtenBy.get(split);
    if (earlier !== undefined) console.error(`warning: ${label} overwrites ${split}_result.json and ${split}_others.json of ${earlier} (the reference names them by split only)`);
    writtenBy.set(split, label);
    writeJson(join(savePath, `${split}_result.json`), results);
    writeJson(join(savePath, `${split}_others.json`), others);
  };
}

async function runEvalTasks(options: EvalTasksOptions): Promise<void> {
  refuseUnsupported(options, COMMON);
  const selected = selectTasks(options);
  for (const { key, task } of selected) {
    if (RETRIEVAL_TASKS.has(task.name)) throw new Error(`${key} ${task.name}: image retrieval is ranked by \`vilbert eval-retrieval\``);
  }
  const savePath = join(options.output_dir, `${options.from_pretrained.split('/').pop()}-${options.save_name}`);
  mkdirSync(savePath, { recursive: true });
  const config = readModelConfig(options);
  const model = loadModel(options, () => new VILBertForVLTasks(config));
  const evalTxt = join(savePath, 'eval.txt');
  writeFileSync(evalTxt, '');
  const writeResults = resultWriter(savePath);
  const rows: string[][] = [];
  for (const { key, number, task } of selected) {
    const { dataset, split, close } = openEvalDataset(task, options);
    try {
      const loader = TaskLoader.inProcess(dataset, { batchSize: options.batch_size, shuffle: false, seed: options.seed });
      const label2ans = 'label2ans' in dataset ? (dataset.label2ans as string[]) : undefined;
      const evaluation = await evaluateTask(model, loader, { name: task.name, type: task.type, process: task.process, number }, {
        label2ans, onProgress: progress(`${key} ${task.name}`),
      });
      const line = `Validation [${task.name.replaceAll('+', 'plus')}]: loss ${evaluation.loss.toFixed(3)} score ${(100 * evaluation.score).toFixed(3)} `;
      appendFileSync(evalTxt, `${line}\n`);
      console.log(line);
      writeResults(split, `${key} ${task.name}`, evaluation.results, evaluation.others);
      const metrics = Object.entries(evaluation.metrics).map(([name, value]) => `${name} ${(100 * value).toFixed(2)}`).join(', ');
      rows.push([`${key} ${task.name}`, split, String(evaluation.count), evaluation.loss.toFixed(4), (100 * evaluation.score).toFixed(2), metrics]);
    } finally {
      close();
    }
  }
  printTable(['task', 'split', 'samples', 'loss', 'score', 'metrics (%)'], rows);
  console.log(`wrote ${savePath}`);
}

function runEvalRetrieval(options: EvalRetrievalOptions): void {
  refuseUnsupported(options, COMMON);
  if (options.batch_size !== 1) throw new Error(`--batch_size ${options.batch_size}: retrieval ranks one caption at a time (the reference requires 1); --chunk_size sets images per forward`);
  if (options.zero_shot && options.task_specific_tokens) throw new Error('--zero_shot scores with the pre-training model, which has no task tokens: drop --task_specific_tokens');
  const selected = selectTasks(options);
  for (const { key, task } of selected) {
    if (!RETRIEVAL_TASKS.has(task.name)) throw new Error(`${key} ${task.name}: eval-retrieval ranks RetrievalCOCO and RetrievalFlickr30k only; use \`vilbert eval-tasks\``);
  }
  // The reference names the directory by the second path component (the run directory of save/<run>/pytorch_model_N.bin).
  const from = options.from_pretrained;
  const savePath = join(options.output_dir, from.includes('/') ? from.split('/')[1]! : from);
  mkdirSync(savePath, { recursive: true });
  const config = readModelConfig({ config_file: options.config_file, bert_model: options.bert_model, task_specific_tokens: options.task_specific_tokens }, { fast_mode: true });
  const model = options.zero_shot
    ? loadModel(options, () => new BertForMultiModalPreTraining(config))
    : loadModel(options, () => new VILBertForVLTasks(config));
  const writeResults = resultWriter(savePath);
  const rows: string[][] = [];
  for (const { key, number, task } of selected) {
    const { dataset, split, close } = openEvalDataset(task, options);
    try {
      const evaluation = evaluateRetrieval(model, dataset, { taskNumber: number, chunkSize: options.chunk_size, onProgress: progress(`${key} ${task.name}`) });
      const { r1, r5, r10, medr, meanr } = evaluation.metrics;
      console.log(`Final r1:${r1.toFixed(3)}, r5:${r5.toFixed(3)}, r10:${r10.toFixed(3)}, mder:${medr.toFixed(3)}, meanr:${meanr.toFixed(3)}`);
      writeResults(split, `${key} ${task.name}`, evaluation.results, []);
      rows.push([`${key} ${task.name}`, split, String(evaluation.numCaptions), String(evaluation.numImages), ...[r1, r5, r10].map((x) => x.toFixed(2)), String(medr), meanr.toFixed(2)]);
    } finally {
      close();
    }
  }
  printTable(['task', 'split', 'captions', 'images', 'R@1', 'R@5', 'R@10', 'medr', 'meanr'], rows);
  console.log(`wrote ${savePath}`);
}

export function registerEval(program: Command): void {
  addModelVariantFlags(addEvalFlags(program.command('eval-tasks'), 30))
    .description('evaluate a model on tasks of the registry (eval_tasks.py): loss and score per task in <output_dir>/<weights name>-<save_name>/eval.txt, predictions in <split>_result.json')
    .action((options: EvalTasksOptions) => runEvalTasks(options));

  addEvalFlags(program.command('eval-retrieval'), 1)
    .description('rank every test caption against the test images (eval_retrieval.py): R@1/5/10, median and mean rank; top-20 images per caption in <output_dir>/<run>/<split>_result.json')
    .option('--zero_shot', 'score pairs with the pre-training alignment head (a pre-trained, not fine-tuned, checkpoint)', false)
    .option('--chunk_size <n>', 'images per forward pass (not in the reference, which runs 500)', positiveInteger, 500)
    .action((options: EvalRetrievalOptions) => runEvalRetrieval(options));
}
