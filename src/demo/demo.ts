// The embedded default: generate (or reuse) the synthetic world, train a small
// ViLBERT on its 12 tasks with train-tasks, evaluate every task against its
// chance level, save a model folder for the pipelines, and write the report
// with pictures made through those pipelines.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { assetPath } from '../assets.js';
import { openDataset } from '../data/dataset-spec.js';
import { TaskLoader } from '../data/loader.js';
import { evaluateTask } from '../eval/evaluate.js';
import { evaluateRetrieval } from '../eval/retrieval.js';
import type { VILBertForVLTasks } from '../model/vilbert.js';
import { saveModelFolder, type TaskTable } from '../pipelines/model-folder.js';
import { writeReport } from '../report/html.js';
import { generateWorld, type WorldInfo } from '../synthetic/index.js';
import { loadTaskRegistry, type TaskConfig } from '../data/task-registry.js';
import { datasetClassOf, taskNumber } from '../train/task-data.js';
import { TRAIN_TASKS_DEFAULTS, trainTasks, type TrainTasksArgs, type TrainTasksHooks } from '../train/train-tasks.js';
import { verdict } from './bounds.js';
import { compareSingleTask, type Comparison } from './compare.js';
import { writeDemoExamples } from './examples.js';

/** The 12 tasks of the 12-in-1 command, in its order. */
export const DEMO_TASKS = '1-2-4-7-8-9-10-11-12-13-15-17';

export interface DemoOptions {
  /** Folder for the world, the run, the model folder and the report. */
  dir: string;
  seed: number;
  /** Passes over the largest task (the registry's num_epoch of every task). */
  epochs: number;
  /** lr of every task and of the heads (a model trained from scratch). */
  lr: number;
  /** World size knobs (see make-world); defaults otherwise. */
  world?: Parameters<typeof generateWorld>[1];
  /** Also train one single-task model per task with the same steps and config (12-in-1's Table 3). */
  compare?: boolean;
  /** Train with bfloat16 autocast (train-tasks --bf16). */
  bf16?: boolean;
  hooks?: TrainTasksHooks & { onStage?: (stage: string) => void };
}

export const DEMO_DEFAULTS: Omit<DemoOptions, 'dir'> = { seed: 0, epochs: 8, lr: 4e-4 };

/** The answer classifiers' initial output bias: about -log(3129), a rare answer's prior (see --answer_bias_init). */
export const DEMO_ANSWER_BIAS = -8;

export interface DemoTaskResult {
  key: string;
  task: string;
  type: string;
  metric: string;
  score: number;
  chance: number;
  /** The best val score from the text alone (world.json's textOnly; classification tasks). */
  textOnly?: number;
  /** The best val score from the image alone (world.json's imageOnly, an in-sample upper bound; classification tasks). */
  imageOnly?: number;
  /** Whether the score clears the demo's bounds (src/demo/bounds.ts), in words. */
  verdict: string;
  count: number;
  extra: Record<string, number>;
}

export interface DemoResult {
  status: 'finished' | 'interrupted';
  runDir: string;
  modelDir: string;
  reportPath: string | null;
  results: DemoTaskResult[];
  /** With `compare`: multi-task against single-task scores per task (also in compare.json). */
  comparison?: Comparison;
  seconds: { world: number; training: number; evaluation: number; report: number; compare?: number };
}

/**
 * Tasks whose loss the demo weights up, through the registry's per-task lr as the reference
 * does (train-tasks scales a task's loss by its lr over the smallest one). Retrieval's and
 * SNLI-VE's losses are means over 4 candidates / 3 classes (the answer classifiers' a sum
 * over their answers); from random weights they otherwise learn little in the demo's budget.
 */
export const DEMO_LOSS_WEIGHTS: Readonly<Record<string, number>> = { TASK7: 2, TASK8: 2, TASK13: 5 };

/** The world's registry with the demo's training settings (its paths stay relative to the world). */
export function demoRegistry(
  worldRegistry: string,
  out: string,
  options: Pick<DemoOptions, 'epochs' | 'lr'>,
  /** Per task key a num_epoch other than `epochs`, and the file's name. */
  override: { epochs: Record<string, number>; name: string } = { epochs: {}, name: 'demo_tasks.yml' },
): string {
  const entries: Record<string, unknown> = {};
  for (const [key, task] of loadTaskRegistry(worldRegistry)) {
    const { key: _key, ...fields } = task;
    entries[key] = {
      ...fields,
      lr: options.lr * (DEMO_LOSS_WEIGHTS[key] ?? 1),
      num_epoch: override.epochs[key] ?? options.epochs,
    };
  }
  const path = join(out, override.name);
  writeFileSync(path, stringify(entries));
  return path;
}

/** The demo's train-tasks arguments: its small model from random weights, on a registry written by demoRegistry. */
export function demoTrainArgs(run: {
  tasks: string;
  registry: string;
  worldRoot: string;
  lr: number;
  outputDir: string;
  saveName: string;
  seed: number;
  bf16?: boolean;
}): TrainTasksArgs {
  return {
    ...TRAIN_TASKS_DEFAULTS,
    tasks: run.tasks,
    tasks_config: run.registry,
    datasets_root: run.worldRoot,
    config_file: assetPath('demo', 'vilbert_demo.json'),
    from_pretrained: 'none',
    task_specific_tokens: true,
    lr_scheduler: 'mannul',
    head_lr: run.lr,
    answer_bias_init: DEMO_ANSWER_BIAS,
    // Stop-and-go pauses a task whose score has not moved yet; a model trained from scratch needs every step.
    train_iter_gap: 1,
    num_train_epochs: 1,
    num_workers: 0,
    output_dir: run.outputDir,
    save_name: run.saveName,
    seed: run.seed,
    bf16: run.bf16 ?? false,
  };
}

/** Every task's validation metric: the in-training evaluation's score, R@1 over all images for retrieval. */
async function evaluateAll(
  model: VILBertForVLTasks,
  tasks: TaskConfig[],
  root: string,
  world: WorldInfo,
): Promise<DemoTaskResult[]> {
  const results: DemoTaskResult[] = [];
  for (const task of tasks) {
    const chance = world.tasks[task.key]?.chance ?? Number.NaN;
    const number = taskNumber(task);
    if (task.name.startsWith('Retrieval')) {
      const opened = openDataset({
        className: datasetClassOf(task, 'eval'),
        task,
        split: task.val_split,
        phase: 'eval',
        root,
        cleanDatasets: true,
      });
      try {
        const ranking = evaluateRetrieval(model, opened.dataset, { taskNumber: number });
        const { r1, r5, r10, medr, meanr } = ranking.metrics;
        results.push({
          key: task.key,
          task: task.name,
          type: task.type,
          metric: 'R@1',
          score: r1 / 100,
          chance,
          verdict: verdict({ type: task.type, metric: 'R@1', score: r1 / 100, chance }).words,
          count: ranking.numCaptions,
          extra: { 'R@5': r5 / 100, 'R@10': r10 / 100, medr, meanr, images: ranking.numImages },
        });
      } finally {
        opened.close();
      }
      continue;
    }
    const opened = openDataset({
      className: datasetClassOf(task, 'val'),
      task,
      split: task.val_split,
      phase: 'val',
      root,
      cleanDatasets: true,
    });
    try {
      const loader = TaskLoader.inProcess(opened.dataset, {
        batchSize: task.eval_batch_size ?? task.batch_size,
        shuffle: false,
        seed: 0,
      });
      const evaluation = await evaluateTask(model, loader, { ...task, number }, { collectResults: false });
      const [metric] = Object.keys(evaluation.metrics);
      const { textOnly, imageOnly } = world.tasks[task.key] ?? {};
      const levels = {
        chance,
        ...(textOnly === undefined ? {} : { textOnly }),
        ...(imageOnly === undefined ? {} : { imageOnly }),
      };
      const scored = { type: task.type, metric: metric ?? 'score', score: evaluation.score, ...levels };
      results.push({
        key: task.key,
        task: task.name,
        ...scored,
        verdict: verdict(scored).words,
        count: evaluation.count,
        extra: {},
      });
    } finally {
      opened.close();
    }
  }
  return results;
}

/** The model folder the pipelines read: which task token and input sizes each pipeline uses. */
function pipelineTasks(tasks: TaskConfig[]): TaskTable {
  const settings = (key: string) => {
    const task = tasks.find((candidate) => candidate.key === key);
    if (!task) throw new Error(`the demo registry has no ${key}`);
    return {
      task_id: taskNumber(task),
      max_seq_length: task.max_seq_length,
      max_region_num: task.max_region_num,
      name: task.name,
    };
  };
  return {
    vqa: settings('TASK1'),
    gqa: settings('TASK15'),
    ground: settings('TASK9'),
    retrieve: settings('TASK7'),
    verify: settings('TASK12'),
    entail: settings('TASK13'),
  };
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true });
  const stage = options.hooks?.onStage ?? (() => {});
  const clock = () => performance.now() / 1000;

  let started = clock();
  stage('world');
  const world = generateWorld(join(dir, 'world'), { seed: options.seed, ...options.world });
  const worldSeconds = clock() - started;

  started = clock();
  stage('training');
  const registry = demoRegistry(world.registryPath, dir, options);
  const trained = await trainTasks(
    demoTrainArgs({
      tasks: DEMO_TASKS,
      registry,
      worldRoot: world.root,
      lr: options.lr,
      outputDir: join(dir, 'runs'),
      saveName: 'demo',
      seed: options.seed,
      bf16: options.bf16 ?? false,
    }),
    options.hooks,
  );
  const trainingSeconds = clock() - started;
  const { model, config, tasks, runDir } = trained;
  try {
    if (trained.status === 'interrupted') {
      return {
        status: 'interrupted',
        runDir,
        modelDir: '',
        reportPath: null,
        results: [],
        seconds: { world: worldSeconds, training: trainingSeconds, evaluation: 0, report: 0 },
      };
    }
    started = clock();
    stage('evaluation');
    const results = await evaluateAll(model, tasks, world.root, world.info);
    writeFileSync(join(runDir, 'eval.json'), `${JSON.stringify(results, null, 2)}\n`);
    const evaluationSeconds = clock() - started;

    let comparison: Comparison | undefined;
    if (options.compare) {
      stage('compare');
      const trainArgs = (task: TaskConfig, path: string) =>
        demoTrainArgs({
          tasks: String(taskNumber(task)),
          registry: path,
          worldRoot: world.root,
          lr: options.lr,
          outputDir: join(dir, 'runs', 'single-task'),
          saveName: 'demo',
          seed: options.seed,
        });
      comparison = await compareSingleTask({
        tasks,
        world: world.info,
        iterations: trained.iterations,
        multiTask: results,
        parameters: model.numParameters(),
        registry: (epochs) => demoRegistry(world.registryPath, dir, options, { epochs, name: 'single_task_tasks.yml' }),
        train: (task, path) => trainTasks(trainArgs(task, path), options.hooks),
        evaluate: async (single, task) => (await evaluateAll(single, [task], world.root, world.info))[0]!,
        ...(options.hooks ? { hooks: options.hooks } : {}),
      });
      writeFileSync(join(runDir, 'compare.json'), `${JSON.stringify(comparison, null, 2)}\n`);
      // The report shows them among each task's other eval metrics.
      for (const entry of comparison.tasks) {
        const result = results.find((candidate) => candidate.key === entry.key)!;
        result.extra['single-task'] = entry.singleTask;
        result.extra['multi minus single'] = entry.difference;
      }
      writeFileSync(join(runDir, 'eval.json'), `${JSON.stringify(results, null, 2)}\n`);
    }

    started = clock();
    stage('report');
    const modelDir = join(dir, 'model');
    const labels = labelLists(tasks, world.root);
    saveModelFolder(modelDir, { model, config, labels, tasks: pipelineTasks(tasks) });
    await writeDemoExamples({
      runDir,
      modelDir,
      tasks,
      root: world.root,
      scenesPath: join(world.root, world.info.scenes),
    });
    const reportPath = writeReport(runDir, { title: 'vilbert-ts demo: 12 tasks on the synthetic world' });
    return {
      status: 'finished',
      runDir,
      modelDir,
      reportPath,
      results,
      ...(comparison ? { comparison } : {}),
      seconds: {
        world: worldSeconds,
        training: trainingSeconds,
        evaluation: evaluationSeconds,
        report: clock() - started,
        ...(comparison ? { compare: comparison.seconds } : {}),
      },
    };
  } finally {
    model.dispose();
  }
}

/** The answer lists of the VQA and GQA heads, from the datasets' label maps. */
function labelLists(tasks: TaskConfig[], root: string) {
  const labelsOf = (key: string): string[] => {
    const task = tasks.find((candidate) => candidate.key === key)!;
    const opened = openDataset({
      className: datasetClassOf(task, 'val'),
      task,
      split: task.val_split,
      phase: 'val',
      root,
      cleanDatasets: true,
    });
    try {
      return [...((opened.dataset as { label2ans?: readonly string[] }).label2ans ?? [])];
    } finally {
      opened.close();
    }
  };
  return { vil_prediction: labelsOf('TASK1'), vil_prediction_gqa: labelsOf('TASK15') };
}
