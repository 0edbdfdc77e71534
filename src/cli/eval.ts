// `vilbert eval-tasks` (eval_tasks.py) and `vilbert eval-retrieval` (eval_retrieval.py):
// the reference's flags, defaults and output files.
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import * as torch from '../torch/index.js';
import { openDataset } from '../data/dataset-spec.js';
import type { TaskDataset } from '../data/dataset.js';
import { TaskLoader } from '../data/loader.js';
import { DATASET_CLASSES, DATASET_MAP_EVAL } from '../data/datasets/index.js';
import type { ViLBertConfig } from '../model/config.js';
import { configFromFlags, type ConfigFlags } from '../train/model-from-flags.js';
import { loadPretrainedWeights } from '../model/pretrained.js';
import { cachedPretrained } from '../download/pretrained.js';
import { fetchFromPretrained } from './download.js';
import { BertForMultiModalPreTraining, VILBertForVLTasks } from '../model/vilbert.js';
import { type TaskConfig, loadTaskRegistry } from '../data/task-registry.js';
import { selectTasks as selectRegistryTasks, taskNumber } from '../train/task-data.js';
import { type TaskEvaluation, evaluateTask } from '../eval/evaluate.js';
import { comparePrecisions } from '../eval/precision-agreement.js';
import { PRECISIONS, type Precision } from '../model/precision.js';
import { precisionOption, reportPrecision } from './precision-option.js';
import { evaluateRetrieval } from '../eval/retrieval.js';
import {
  addCommonFlags,
  addModelVariantFlags,
  addTaskDataFlags,
  float,
  positiveInteger,
  refuseUnsupported,
  type CommonFlagSettings,
  type CommonFlags,
  type TaskDataFlags,
} from './flags.js';

interface CommonOptions extends CommonFlags, TaskDataFlags {
  use_chunk: number;
  batch_size: number;
  split: string;
  task_specific_tokens: boolean;
}

interface EvalTasksOptions extends CommonOptions {
  precision?: Precision;
  compare_precisions: boolean;
  dynamic_attention: boolean;
  visual_target: number;
}

interface EvalRetrievalOptions extends CommonOptions {
  precision?: Precision;
  zero_shot: boolean;
  chunk_size: number;
}

const RETRIEVAL_TASKS = new Set(['RetrievalCOCO', 'RetrievalFlickr30k']);

/** The eval scripts' settings of the flags every reference script has. */
const COMMON: CommonFlagSettings = {
  fromPretrained: {
    default: 'bert-base-uncased',
    help: "weights to evaluate (.bin in either torch format, or .safetensors), loaded as the reference's from_pretrained",
  },
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
    .option('--split <name>', "split to evaluate instead of each task's val_split (e.g. test, testA)", '')
    .addOption(precisionOption())
    .option(
      '--task_specific_tokens',
      'the model has task tokens (config.task_specific_tokens = true); the multi-task checkpoint needs it',
      false,
    );
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

function missingWeights(options: CommonOptions): string | undefined {
  const file = options.from_pretrained;
  return existsSync(cachedPretrained(file))
    ? undefined
    : `--from_pretrained ${file}: no such weights file (.bin or .safetensors)`;
}

/** Builds the model on the device and loads --from_pretrained into it. */
function loadModel<M extends torch.Module>(options: CommonOptions, build: () => M): M {
  const file = options.from_pretrained;
  const missing = missingWeights(options);
  if (missing) throw new Error(missing);
  torch.manualSeed(options.seed);
  const model = torch.withDefaultDevice(deviceFor(options), build);
  const report = loadPretrainedWeights(model, file);
  console.log(
    `loaded ${file}: ${report.missingKeys.length} keys missing (left at their initialisation), ${report.unexpectedKeys.length} unexpected (ignored)`,
  );
  return model;
}

/** `--tasks 1-12` as registry entries, in the order given. */
function selectTasks(options: CommonOptions): { key: string; number: number; task: TaskConfig }[] {
  const tasks = selectRegistryTasks(
    loadTaskRegistry(options.tasks_config),
    options.tasks,
    options.tasks_config ?? 'bundled vilbert_tasks.yml',
  );
  return tasks.map((task) => ({ key: task.key, number: taskNumber(task), task }));
}

/** DatasetMapEval's dataset for a task, opened from the registry paths. */
function openEvalDataset(
  task: TaskConfig,
  split: string,
  options: CommonOptions,
): { dataset: TaskDataset; close: () => void } {
  const factory = DATASET_MAP_EVAL[task.name];
  const className = Object.entries(DATASET_CLASSES).find(([, candidate]) => candidate === factory)?.[0];
  if (!factory || !className)
    throw new Error(`no evaluation dataset for '${task.name}' (known: ${Object.keys(DATASET_MAP_EVAL).join(', ')})`);
  return openDataset({
    className,
    task,
    split,
    phase: 'eval',
    root: options.datasets_root,
    cleanDatasets: options.clean_train_sets,
  });
}

interface SelectedTask {
  key: string;
  number: number;
  task: TaskConfig;
}

interface OpenedTask extends SelectedTask {
  split: string;
  dataset: TaskDataset;
  close: () => void;
}

/**
 * Every requested task's dataset, opened before anything is evaluated (as the
 * reference's LoadDatasetEval builds them all first): a split a dataset does
 * not know, a missing annotation file or feature store, a task of the wrong
 * command, a task named twice. `problems` holds what the caller found already
 * (weights, config). Nothing is evaluated unless every task can be: the error
 * lists every problem, one task per line.
 */
function openEvalDatasets(
  selected: SelectedTask[],
  options: CommonOptions,
  problems: string[],
  wrongCommand: (task: TaskConfig) => string | undefined,
): OpenedTask[] {
  const opened: OpenedTask[] = [];
  const seen = new Set<string>();
  for (const { key, number, task } of selected) {
    const split = options.split || task.val_split;
    const label = `${key} ${task.name}`;
    if (seen.has(key)) {
      problems.push(`${label}: named twice in --tasks (its results would be written twice to the same folder)`);
      continue;
    }
    seen.add(key);
    const wrong = wrongCommand(task);
    if (wrong !== undefined) {
      problems.push(`${label}: ${wrong}`);
      continue;
    }
    try {
      opened.push({ key, number, task, split, ...openEvalDataset(task, split, options) });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // The datasets' messages often start with the task's name or key: not twice.
      const own = [`${label}: `, `${task.name}: `, `${task.name} ${split}: `].find((prefix) =>
        message.startsWith(prefix),
      );
      problems.push(`${label}, split '${split}': ${own ? message.slice(own.length) : message}`);
    }
  }
  if (problems.length > 0) {
    for (const task of opened) task.close();
    const count = problems.length === 1 ? 'a problem' : `${problems.length} problems`;
    throw new Error(
      `nothing was evaluated: ${count} with the ${selected.length} requested task${selected.length === 1 ? '' : 's'} (all are checked before any is run):\n  ${problems.join('\n  ')}`,
    );
  }
  return opened;
}

/** A config problem as a line of the problem list instead of a throw. */
function tryConfig(problems: string[], read: () => ViLBertConfig): ViLBertConfig | undefined {
  try {
    return read();
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
    return undefined;
  }
}

/** A progress counter on stderr when it is a terminal, like the reference's `i/n\r`. */
function progress(label: string): (done: number, total: number) => void {
  if (!process.stderr.isTTY) return () => {};
  return (done, total) => process.stderr.write(`\r${label} ${done}/${total}${done === total ? '\n' : ''}`);
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value));
}

/**
 * The folder of one task's result files inside the run's: `<TASKn>_<name>`, the
 * name as eval.txt spells it ('+' as 'plus'), other characters outside
 * [A-Za-z0-9._-] as '_'. The reference writes <split>_result.json straight
 * into the run's folder, so tasks evaluating the same split overwrote each other.
 */
export function taskResultsFolder(key: string, name: string): string {
  return `${key}_${name.replaceAll('+', 'plus').replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

/** Writes <savePath>/<task folder>/<split>_result.json and <split>_others.json (the reference's names); returns the folder. */
function writeTaskResults(
  savePath: string,
  task: SelectedTask,
  split: string,
  results: unknown,
  others: unknown,
): string {
  const folder = join(savePath, taskResultsFolder(task.key, task.task.name));
  mkdirSync(folder, { recursive: true });
  writeJson(join(folder, `${split}_result.json`), results);
  writeJson(join(folder, `${split}_others.json`), others);
  return folder;
}

async function runEvalTasks(options: EvalTasksOptions): Promise<void> {
  refuseUnsupported(options, COMMON);
  const selected = selectTasks(options);
  // Everything a task needs is checked for every task before the first is evaluated.
  const problems: string[] = [];
  await fetchFromPretrained(options.from_pretrained);
  const weightsProblem = missingWeights(options);
  if (weightsProblem) problems.push(weightsProblem);
  const config = tryConfig(problems, () => readModelConfig(options));
  const opened = openEvalDatasets(selected, options, problems, (task) =>
    RETRIEVAL_TASKS.has(task.name) ? 'image retrieval is ranked by `vilbert eval-retrieval`' : undefined,
  );
  const savePath = join(options.output_dir, `${options.from_pretrained.split('/').pop()}-${options.save_name}`);
  const rows: string[][] = [];
  const byPrecision = new Map<Precision, Map<string, TaskEvaluation>>();
  try {
    mkdirSync(savePath, { recursive: true });
    // --compare_precisions: every task in fp32, bf16 and int8 (a fresh model each: int8 is for good).
    const precisions: Precision[] = options.compare_precisions ? [...PRECISIONS] : [options.precision ?? 'fp32'];
    const evalTxt = join(savePath, 'eval.txt');
    writeFileSync(evalTxt, '');
    for (const precision of precisions) {
      const first = precision === precisions[0];
      const model = loadModel(options, () => new VILBertForVLTasks(config!));
      reportPrecision(precision);
      model.eval().setPrecision(precision);
      const evaluations = new Map<string, TaskEvaluation>();
      for (const entry of opened) {
        const { key, number, task, split, dataset } = entry;
        const loader = TaskLoader.inProcess(dataset, {
          batchSize: options.batch_size,
          shuffle: false,
          seed: options.seed,
        });
        const label2ans = 'label2ans' in dataset ? (dataset.label2ans as string[]) : undefined;
        const evaluation = await evaluateTask(
          model,
          loader,
          { name: task.name, type: task.type, process: task.process, number },
          {
            label2ans,
            onProgress: progress(`${key} ${task.name}${precisions.length > 1 ? ` ${precision}` : ''}`),
          },
        );
        evaluations.set(`${key} ${task.name}`, evaluation);
        if (!first) continue;
        const line = `Validation [${task.name.replaceAll('+', 'plus')}]: loss ${evaluation.loss.toFixed(3)} score ${(100 * evaluation.score).toFixed(3)} `;
        appendFileSync(evalTxt, `${line}\n`);
        console.log(line);
        writeTaskResults(savePath, entry, split, evaluation.results, evaluation.others);
        const metrics = Object.entries(evaluation.metrics)
          .map(([name, value]) => `${name} ${(100 * value).toFixed(2)}`)
          .join(', ');
        rows.push([
          `${key} ${task.name}`,
          split,
          String(evaluation.count),
          evaluation.loss.toFixed(4),
          (100 * evaluation.score).toFixed(2),
          metrics,
        ]);
        if (precisions.length === 1) entry.close();
      }
      model.dispose();
      byPrecision.set(precision, evaluations);
    }
  } finally {
    for (const entry of opened) entry.close();
  }
  printTable(['task', 'split', 'samples', 'loss', 'score', 'metrics (%)'], rows);
  if (byPrecision.size > 1) {
    const compared = comparePrecisions(byPrecision);
    const percent = (value: number | undefined) => (value === undefined ? '-' : (100 * value).toFixed(2));
    printTable(
      ['task', 'samples', 'fp32', 'bf16', 'same as fp32 (%)', 'int8', 'same as fp32 (%)'],
      compared.map((row) => [
        row.task,
        String(row.samples),
        percent(row.scores.fp32),
        percent(row.scores.bf16),
        percent(row.agreement.bf16),
        percent(row.scores.int8),
        percent(row.agreement.int8),
      ]),
    );
    writeFileSync(join(savePath, 'precision.json'), `${JSON.stringify(compared, null, 2)}\n`);
    console.log(`wrote ${join(savePath, 'precision.json')} (scores and agreement with fp32, per task)`);
  }
  console.log(`wrote ${savePath} (eval.txt; per task <TASKn>_<name>/<split>_result.json and <split>_others.json)`);
}

async function runEvalRetrieval(options: EvalRetrievalOptions): Promise<void> {
  refuseUnsupported(options, COMMON);
  if (options.batch_size !== 1)
    throw new Error(
      `--batch_size ${options.batch_size}: retrieval ranks one caption at a time (the reference requires 1); --chunk_size sets images per forward`,
    );
  if (options.zero_shot && options.task_specific_tokens)
    throw new Error(
      '--zero_shot scores with the pre-training model, which has no task tokens: drop --task_specific_tokens',
    );
  const selected = selectTasks(options);
  const problems: string[] = [];
  await fetchFromPretrained(options.from_pretrained);
  const weightsProblem = missingWeights(options);
  if (weightsProblem) problems.push(weightsProblem);
  const config = tryConfig(problems, () =>
    readModelConfig(
      {
        config_file: options.config_file,
        bert_model: options.bert_model,
        task_specific_tokens: options.task_specific_tokens,
      },
      { fast_mode: true },
    ),
  );
  const opened = openEvalDatasets(selected, options, problems, (task) =>
    RETRIEVAL_TASKS.has(task.name)
      ? undefined
      : 'eval-retrieval ranks RetrievalCOCO and RetrievalFlickr30k only; use `vilbert eval-tasks`',
  );
  // The reference names the directory by the second path component (the run directory of save/<run>/pytorch_model_N.bin).
  const from = options.from_pretrained;
  const savePath = join(options.output_dir, from.includes('/') ? from.split('/')[1]! : from);
  const rows: string[][] = [];
  try {
    mkdirSync(savePath, { recursive: true });
    const model = options.zero_shot
      ? loadModel(options, () => new BertForMultiModalPreTraining(config!))
      : loadModel(options, () => new VILBertForVLTasks(config!));
    reportPrecision(options.precision);
    model.eval().setPrecision(options.precision ?? 'fp32');
    for (const entry of opened) {
      const { key, number, task, split, dataset } = entry;
      const evaluation = evaluateRetrieval(model, dataset, {
        taskNumber: number,
        chunkSize: options.chunk_size,
        onProgress: progress(`${key} ${task.name}`),
      });
      const { r1, r5, r10, medr, meanr } = evaluation.metrics;
      console.log(
        `Final r1:${r1.toFixed(3)}, r5:${r5.toFixed(3)}, r10:${r10.toFixed(3)}, mder:${medr.toFixed(3)}, meanr:${meanr.toFixed(3)}`,
      );
      writeTaskResults(savePath, entry, split, evaluation.results, []);
      rows.push([
        `${key} ${task.name}`,
        split,
        String(evaluation.numCaptions),
        String(evaluation.numImages),
        ...[r1, r5, r10].map((x) => x.toFixed(2)),
        String(medr),
        meanr.toFixed(2),
      ]);
      entry.close();
    }
  } finally {
    for (const entry of opened) entry.close();
  }
  printTable(['task', 'split', 'captions', 'images', 'R@1', 'R@5', 'R@10', 'medr', 'meanr'], rows);
  console.log(`wrote ${savePath} (per task <TASKn>_<name>/<split>_result.json and <split>_others.json)`);
}

export function registerEval(program: Command): void {
  addModelVariantFlags(addEvalFlags(program.command('eval-tasks'), 30))
    .description(
      'evaluate a model on tasks of the registry (eval_tasks.py): loss and score per task in <output_dir>/<weights name>-<save_name>/eval.txt, ' +
        "each task's predictions in <TASKn>_<name>/<split>_result.json and <split>_others.json there (e.g. TASK10_refcocoplus/val_result.json); " +
        "every task's split, annotations and features are checked before any task is evaluated",
    )
    .option(
      '--compare_precisions',
      'ours: evaluate every task in fp32, bf16 and int8 and print each score with its agreement with fp32 (precision.json); results files are fp32',
      false,
    )
    .action((options: EvalTasksOptions) => runEvalTasks(options));

  addEvalFlags(program.command('eval-retrieval'), 1)
    .description(
      'rank every test caption against the test images (eval_retrieval.py): R@1/5/10, median and mean rank; ' +
        'top-20 images per caption in <output_dir>/<run>/<TASKn>_<name>/<split>_result.json; every task is checked before any is ranked',
    )
    .option(
      '--zero_shot',
      'score pairs with the pre-training alignment head (a pre-trained, not fine-tuned, checkpoint)',
      false,
    )
    .option('--chunk_size <n>', 'images per forward pass (not in the reference, which runs 500)', positiveInteger, 500)
    .action((options: EvalRetrievalOptions) => runEvalRetrieval(options));
}
