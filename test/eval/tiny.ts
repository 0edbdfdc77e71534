// What the evaluation tests share: a tiny random ViLBERT that reads the kit's
// word pieces, and the kit's datasets opened read-only.
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import { openDataset } from '../../src/data/dataset-spec.js';
import type { TaskDataset } from '../../src/data/dataset.js';
import { type ViLBertConfig, parseConfig } from '../../src/model/config.js';
import { VILBertForVLTasks } from '../../src/model/vilbert.js';
import { loadTaskRegistry, type TaskConfig } from '../../src/data/task-registry.js';
import { fixture } from '../io/fixtures.js';

export const KIT = fixture('datasets', 'kit');

/**
 * The parity fixture's tiny sizes with the full BERT vocabulary (the kit's token ids) and
 * room for NLVR2's 40 tokens plus a task token.
 */
export function tinyConfigJson(): Record<string, unknown> {
  const json = JSON.parse(readFileSync(fixture('parity', 'config.json'), 'utf8')) as Record<string, unknown>;
  return { ...json, vocab_size: 30522, max_position_embeddings: 64, task_specific_tokens: true };
}

export function tinyConfig(overrides: Partial<ViLBertConfig> = {}): ViLBertConfig {
  return parseConfig(tinyConfigJson(), 'tiny test config', overrides).config;
}

export function tinyModel(seed = 5, overrides: Partial<ViLBertConfig> = {}): VILBertForVLTasks {
  torch.manualSeed(seed);
  return new VILBertForVLTasks(tinyConfig(overrides));
}

export function kitTask(key: string): TaskConfig {
  const task = loadTaskRegistry().get(key);
  if (!task) throw new Error(`no ${key} in the bundled registry`);
  return task;
}

/** A kit dataset in its eval phase, without writing token caches into the fixture. */
export function openKit(className: string, key: string, split: string): { dataset: TaskDataset; close: () => void } {
  return openDataset({
    className,
    task: kitTask(key),
    split,
    phase: 'eval',
    root: KIT,
    cleanDatasets: true,
    writeCache: false,
  });
}

/**
 * The kit's answer lists are short (VQA 24, GQA 17) next to the heads' fixed 3129 / 1533
 * classes: placeholder names for the other labels, so that every prediction has an answer.
 */
export function placeholderAnswers(label2ans: readonly string[], width: number): string[] {
  return [...label2ans, ...Array.from({ length: width - label2ans.length }, (_, i) => `unused_${i}`)];
}
