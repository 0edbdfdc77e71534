// A tiny world for the tests: a few images per pool, generated into a temporary folder.
import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateWorld, type GeneratedWorld, type WorldOptions } from '../../src/synthetic/index.js';

export const TINY_WORLD: Partial<WorldOptions> = {
  images: 10,
  valImages: 6,
  heldOutImages: 1,
  pointingImages: 3,
  pointingValImages: 3,
  boxes: 8,
  conceptCaptionsImages: 4,
  conceptCaptionsValImages: 2,
};

const scratch: string[] = [];
after(() => scratch.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** A fresh temporary folder, removed when the test file is done. */
export function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vilbert-world-'));
  scratch.push(dir);
  return dir;
}

/** The tiny world (with option overrides) in a fresh folder. */
export function tinyWorld(options: Partial<WorldOptions> = {}): GeneratedWorld {
  return generateWorld(join(scratchDir(), 'world'), { ...TINY_WORLD, ...options });
}

/** The reference's dataset class of each task (DatasetMapTrain; Retrieval's DatasetMapEval class is RetreivalDatasetVal). */
export const DATASET_CLASS: Readonly<Record<string, string>> = {
  VQA: 'VQAClassificationDataset',
  GenomeQA: 'GenomeQAClassificationDataset',
  GQA: 'GQAClassificationDataset',
  Visual7w: 'Visual7wPointingDataset',
  GuessWhatPointing: 'GuessWhatPointingDataset',
  refcoco: 'ReferExpressionDataset',
  'refcoco+': 'ReferExpressionDataset',
  refcocog: 'ReferExpressionDataset',
  RetrievalCOCO: 'RetreivalDataset',
  RetrievalFlickr30k: 'RetreivalDataset',
  NLVR2: 'NLVR2Dataset',
  VisualEntailment: 'VisualEntailmentDataset',
};

/** The 12 tasks of the multi-task command (--tasks 1-2-4-7-8-9-10-11-12-13-15-17). */
export const MULTI_TASK_KEYS = [
  'TASK1',
  'TASK2',
  'TASK4',
  'TASK7',
  'TASK8',
  'TASK9',
  'TASK10',
  'TASK11',
  'TASK12',
  'TASK13',
  'TASK15',
  'TASK17',
];
