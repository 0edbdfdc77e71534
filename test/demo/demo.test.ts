// The demo end to end on the default world with a shorter budget (TEST_EPOCHS passes instead of
// the demo's 12): every task evaluated beside its chance level and blind baselines and held to
// bounds measured for that budget, the model folder answering through the pipelines, the
// report with pictures.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { verdict } from '../../src/demo/bounds.js';
import { DEMO_DEFAULTS, DEMO_TASKS, runDemo } from '../../src/demo/demo.js';
import { resultTable } from '../../src/cli/demo.js';
import { createPipeline } from '../../src/pipelines/index.js';
import { scratchDir } from '../synthetic/tiny-world.js';

const TEST_EPOCHS = 3;
/**
 * Points over chance each task must reach after TEST_EPOCHS passes (120 iterations), about half
 * of what one run measured (2026-12-08, seed 0, a loaded 2-core VM, 234 s for this file): refcoco
 * +29.0, refcoco+ +27.9, refcocog +20.8, Visual7w +16.2, GuessWhatPointing +12.5, VQA +11.3,
 * GenomeQA +5.0, GQA +5.0; retrieval (+0.0, +1.2), NLVR2 (+0.0) and SNLI-VE (+0.0) at chance, so
 * only held to it. The bounds (src/demo/bounds.ts) are for the full demo's budget: this
 * run's verdicts are shown, not asserted.
 */
const OVER_CHANCE: Readonly<Record<string, number>> = {
  refcoco: 0.15,
  'refcoco+': 0.15,
  refcocog: 0.1,
  Visual7w: 0.08,
  GuessWhatPointing: 0.06,
  VQA: 0.05,
  GenomeQA: 0.02,
  GQA: 0.02,
};

describe('vilbert demo on the default world, a shorter budget', async () => {
  const dir = scratchDir();
  const stages: string[] = [];
  const result = await runDemo({
    dir,
    seed: DEMO_DEFAULTS.seed,
    epochs: TEST_EPOCHS,
    lr: DEMO_DEFAULTS.lr,
    world: { pointingImages: 20, pointingValImages: 10, conceptCaptionsImages: 2, conceptCaptionsValImages: 2 },
    hooks: { onStage: (stage) => stages.push(stage) },
  });

  it('trains and evaluates the 12 tasks, each beside its chance level', () => {
    assert.equal(result.status, 'finished');
    assert.deepEqual(stages, ['world', 'training', 'evaluation', 'report']);
    assert.equal(result.results.length, DEMO_TASKS.split('-').length);
    for (const entry of result.results) {
      assert.ok(entry.score >= 0 && entry.score <= 1, `${entry.task} score ${entry.score}`);
      assert.ok(entry.chance > 0 && entry.chance < 1, `${entry.task} chance ${entry.chance}`);
      assert.ok(entry.count > 0, `${entry.task} evaluated no items`);
    }
    const retrieval = result.results.find((entry) => entry.task === 'RetrievalCOCO')!;
    assert.equal(retrieval.metric, 'R@1');
    const table = resultTable(result.results);
    assert.match(table, /TASK1 +VQA +vqa_score/);
    assert.equal(table.split('\n').length, 13);
  });

  it(`every task clears the bounds measured for ${TEST_EPOCHS} passes`, (t) => {
    const table = resultTable(result.results);
    t.diagnostic(table);
    const short = result.results.filter((entry) => entry.score < entry.chance + (OVER_CHANCE[entry.task] ?? -0.01));
    assert.deepEqual(
      short.map((entry) => `${entry.task}: ${(100 * (entry.score - entry.chance)).toFixed(1)} over chance`),
      [],
      table,
    );
  });

  it("the table says in words which tasks fall short of the issue's bounds", () => {
    const table = resultTable(result.results).split('\n');
    for (const entry of result.results) {
      const row = table.find((line) => line.startsWith(`${entry.key} `))!;
      assert.ok(row.endsWith(verdict(entry).words), row);
      assert.equal(row.includes('NOT'), !verdict(entry).holds, row);
    }
  });

  it('writes the report with curves and pictures made through the pipelines', () => {
    assert.ok(result.reportPath && existsSync(result.reportPath));
    const html = readFileSync(result.reportPath, 'utf8');
    for (const name of ['VQA', 'refcoco', 'NLVR2', 'GuessWhatPointing'])
      assert.ok(html.includes(name), `${name} missing from the report`);
    const examples = JSON.parse(readFileSync(join(result.runDir, 'examples.json'), 'utf8')) as {
      vqa: { answers: unknown[] }[];
      grounding: { predicted: number[] }[];
      retrieval: { ranked: unknown[] }[];
    };
    assert.ok(examples.vqa.length > 0 && examples.vqa.every((example) => example.answers.length === 3));
    assert.ok(examples.grounding.length > 0 && examples.grounding.every((example) => example.predicted.length === 4));
    assert.ok(examples.retrieval.length > 0 && examples.retrieval.every((example) => example.ranked.length > 1));
    assert.ok(html.includes('<svg'), 'no pictures');
  });

  it('leaves a model folder the pipelines load and answer with', async () => {
    const vqa = await createPipeline('vqa', result.modelDir);
    const questions = JSON.parse(
      readFileSync(join(dir, 'world', 'datasets', 'VQA', 'v2_OpenEnded_mscoco_val2014_questions.json'), 'utf8'),
    ) as { questions: { image_id: number; question: string }[] };
    const question = questions.questions[0]!;
    const store = join(
      dir,
      'world',
      'datasets',
      'coco',
      'features_100',
      'COCO_trainval_resnext152_faster_rcnn_genome.lmdb',
    );
    const answers = await vqa(question.question, { store, imageId: question.image_id }, { topk: 2 });
    assert.equal(answers.length, 2);
    assert.ok(answers[0]!.score >= answers[1]!.score);
    vqa.dispose();
  });
});
