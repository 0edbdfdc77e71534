// The world's promise, checked on a model: GQA answers need both the question and the scene.
// The demo's small ViLBERT is trained on the world's GQA task three times, for the same steps:
// as generated; with every question moved to another image of its split (shuffled features:
// the scene no longer matches the question); and with every question replaced by one
// constant text (blanked text). Only the first may beat the blind baselines: the shuffled run
// can learn the answer prior of each question text (the text-only baseline, world.json's
// textOnly) and the blanked run the answer prior over all questions (world.json's chance).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { demoRegistry, demoTrainArgs, DEMO_DEFAULTS } from '../../src/demo/demo.js';
import { NUMPY_GLOBALS, PYTHON_DATA_GLOBALS, combineAllowLists, unpickle } from '../../src/io/index.js';
import { pyFloat } from '../../src/io/pickle-numpy-writer.js';
import { generateWorld, type GeneratedWorld } from '../../src/synthetic/index.js';
import { writePickle } from '../../src/synthetic/files.js';
import { Random } from '../../src/synthetic/random.js';
import { trainTasks } from '../../src/train/train-tasks.js';
import { scratchDir } from './tiny-world.js';

/** The default world; the pools GQA does not read kept small. */
const WORLD = { pointingImages: 2, pointingValImages: 2, conceptCaptionsImages: 2, conceptCaptionsValImages: 2 };
const SPLITS = ['train', 'val'] as const;
const BLANK_QUESTION = 'what is the answer?';

/** GQA's cache/<split>_target.pkl entry (question and image ids are strings). */
interface Entry { question_id: unknown; image_id: string; question: string; labels: unknown; scores: number[] }

/** Rewrites the GQA questions of a world (before any loader caches their tokens). */
function rewriteGqa(world: GeneratedWorld, change: (entries: Entry[]) => void): void {
  for (const split of SPLITS) {
    const path = join(world.root, 'datasets', 'gqa', 'cache', `${split}_target.pkl`);
    const read = unpickle(readFileSync(path), { allow: combineAllowLists(PYTHON_DATA_GLOBALS, NUMPY_GLOBALS), source: path }) as Map<string, unknown>[];
    const entries = read.map((entry): Entry => ({
      question_id: entry.get('question_id'), image_id: entry.get('image_id') as string, question: entry.get('question') as string,
      labels: entry.get('labels'), scores: entry.get('scores') as number[],
    }));
    assert.ok(entries.length > 100, `${path}: ${entries.length} questions`);
    change(entries);
    writePickle(path, entries.map((entry) => ({ ...entry, scores: entry.scores.map(pyFloat) })));
  }
}

/** Every question moved to another image of its split (a seeded shuffle of the image ids by question). */
function shuffleImages(world: GeneratedWorld): void {
  const random = new Random(1, 'ablation/shuffle');
  rewriteGqa(world, (entries) => {
    const images = entries.map((entry) => entry.image_id);
    const moved = random.shuffled(images);
    entries.forEach((entry, i) => { entry.image_id = moved[i]!; });
    assert.ok(entries.filter((entry, i) => entry.image_id === images[i]).length <= entries.length / 10);
  });
}

function blankText(world: GeneratedWorld): void {
  rewriteGqa(world, (entries) => entries.forEach((entry) => { entry.question = BLANK_QUESTION; }));
}

/** The GQA val score after training the demo's model, with the demo's settings, on the world's GQA alone (320 steps). */
async function trainGqa(world: GeneratedWorld, name: string): Promise<number> {
  const dir = join(world.root, '..');
  const registry = demoRegistry(world.registryPath, dir, { lr: DEMO_DEFAULTS.lr, epochs: 8 });
  const trained = await trainTasks(demoTrainArgs({
    tasks: '15', registry, worldRoot: world.root, lr: DEMO_DEFAULTS.lr, outputDir: join(dir, 'runs'), saveName: name, seed: 0,
  }));
  trained.model.dispose();
  return trained.valScores.TASK15!;
}

describe('GQA answers need both the question and the scene (a trained model)', async () => {
  const full = generateWorld(join(scratchDir(), 'world'), WORLD);
  const copy = (): GeneratedWorld => {
    const root = join(scratchDir(), 'world');
    cpSync(full.root, root, { recursive: true });
    return { ...full, root, registryPath: join(root, basename(full.registryPath)) };
  };
  const worlds = { full, shuffled: copy(), blanked: copy() };
  shuffleImages(worlds.shuffled);
  blankText(worlds.blanked);
  const { chance, textOnly } = worlds.full.info.tasks.TASK15!;
  const scores = {
    full: await trainGqa(worlds.full, 'full'),
    shuffled: await trainGqa(worlds.shuffled, 'shuffled'),
    blanked: await trainGqa(worlds.blanked, 'blanked'),
  };
  const summary = `val scores ${JSON.stringify(scores)}; chance ${chance}, text-only baseline ${textOnly}`;

  it('the model trained on the world as generated beats the text-only baseline', (t) => {
    t.diagnostic(summary);
    assert.ok(scores.full >= textOnly! + 0.04, summary);
  });

  it('with shuffled features it learns no more than the text-only baseline', () => {
    assert.ok(scores.shuffled <= textOnly! + 0.03, summary);
    assert.ok(scores.full - scores.shuffled >= 0.04, summary);
  });

  it('with blanked text it stays near chance', () => {
    assert.ok(scores.blanked <= chance + 0.05, summary);
    assert.ok(scores.full - scores.blanked >= 0.05, summary);
  });
});
