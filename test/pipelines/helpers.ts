// A tiny random multi-task model saved as a model folder, and the kit's settings per pipeline.
import { mock } from 'node:test';
import { Command } from 'commander';
import { registerPredict } from '../../src/cli/predict.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadConfig, type ViLBertConfig } from '../../src/model/config.js';
import { VILBertForVLTasks } from '../../src/model/vilbert.js';
import { loadTaskRegistry } from '../../src/data/task-registry.js';
import {
  saveModelFolder,
  type LabelTable,
  type PipelineTask,
  type TaskTable,
} from '../../src/pipelines/model-folder.js';
import { PickleCall, PickleGlobalRef, pickle } from '../../src/io/pickle-writer.js';
import { fixture } from '../io/fixtures.js';

export const KIT = fixture('datasets', 'kit');
export const kitPath = (...parts: string[]): string => join(KIT, ...parts);

/** The parity fixtures' tiny config, with task tokens, the bundled vocabulary and room for the longest task text (56). */
export function tinyConfig(overrides: Partial<ViLBertConfig> = {}): ViLBertConfig {
  return loadConfig(fixture('parity', 'config.json'), {
    task_specific_tokens: true,
    vocab_size: 30522,
    max_position_embeddings: 64,
    initializer_range: 0.5,
    ...overrides,
  }).config;
}

export function tinyModel(seed = 7, config = tinyConfig()): VILBertForVLTasks {
  torch.manualSeed(seed);
  return new VILBertForVLTasks(config).eval();
}

/** `known` first, then made-up names up to the head's class count. */
export function answerList(count: number, known: readonly string[] = []): string[] {
  return Array.from({ length: count }, (_, index) => known[index] ?? `answer ${index}`);
}

export const LABELS: LabelTable = {
  vil_prediction: answerList(3129, ['yes', 'no', '2']),
  vil_prediction_gqa: answerList(1533, ['yes', 'no', 'left']),
};

const REGISTRY_KEYS: Record<PipelineTask, string> = {
  vqa: 'TASK1',
  gqa: 'TASK15',
  ground: 'TASK9',
  retrieve: 'TASK7',
  verify: 'TASK12',
  entail: 'TASK13',
};

/**
 * The registry's settings per pipeline, except verify's max_region_num: the kit's NLVR2 left
 * image has 13 rows, and only when it fills max_region_num does the reference loader's
 * packing give each image its own row (see src/pipelines/verify.ts).
 */
export const NLVR2_KIT_REGIONS = 13;
export function kitTasks(): TaskTable {
  const registry = loadTaskRegistry();
  const tasks: TaskTable = {};
  for (const [task, key] of Object.entries(REGISTRY_KEYS) as [PipelineTask, string][]) {
    const entry = registry.get(key)!;
    tasks[task] = {
      task_id: entry.task_id,
      max_seq_length: entry.max_seq_length,
      max_region_num: task === 'verify' ? NLVR2_KIT_REGIONS : entry.max_region_num,
    };
  }
  return tasks;
}

export function tempDir(prefix = 'vilbert-pipelines-'): { dir: string; dispose: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A tiny random model saved as a model folder in a fresh temp dir; the model stays open for comparisons. */
export function tinyFolder(seed = 7): { dir: string; model: VILBertForVLTasks; dispose: () => void } {
  const temp = tempDir();
  const dir = join(temp.dir, 'model');
  const model = tinyModel(seed);
  saveModelFolder(dir, { model, config: model.config, labels: LABELS, tasks: kitTasks() });
  return {
    dir,
    model,
    dispose: () => {
      model.dispose();
      temp.dispose();
    },
  };
}

/** A reference-style working folder under `dir` with the VQA answer lists (datasets/VQA/cache) and no GQA ones. */
export function labelsRoot(dir: string, count = 3129): string {
  const root = join(dir, `labels-${count}`);
  const cache = join(root, 'datasets', 'VQA', 'cache');
  mkdirSync(cache, { recursive: true });
  const answers = answerList(count, ['yes', 'no']);
  writeFileSync(join(cache, 'trainval_label2ans.pkl'), pickle(answers));
  const ans2label = new PickleCall(
    new PickleGlobalRef('collections', 'OrderedDict'),
    [],
    answers.map((answer, label) => [answer, label]),
  );
  writeFileSync(join(cache, 'trainval_ans2label.pkl'), pickle(ans2label));
  return root;
}

/** The tiny config as a file under `dir`, without task_specific_tokens (a checkpoint's task table turns them on). */
export function configFile(dir: string): string {
  const path = join(dir, 'tiny_config.json');
  const json = JSON.parse(readFileSync(fixture('parity', 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(
    path,
    JSON.stringify({ ...json, vocab_size: 30522, max_position_embeddings: 64, initializer_range: 0.5 }),
  );
  return path;
}

/** Runs `vilbert <args>` on a program with the predict commands only; returns what it printed. */
export async function vilbert(...args: string[]): Promise<string> {
  const program = new Command('vilbert').exitOverride();
  registerPredict(program);
  const log = mock.method(console, 'log', () => undefined);
  try {
    await program.parseAsync(['node', 'vilbert', ...args]);
    return log.mock.calls.map((call) => call.arguments.join(' ')).join('\n');
  } finally {
    log.mock.restore();
  }
}
