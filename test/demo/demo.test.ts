// The demo end to end on a tiny world, a few iterations: every task evaluated with its
// chance level, the model folder answering through the pipelines, the report with pictures.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_TASKS, runDemo } from '../../src/demo/demo.js';
import { resultTable } from '../../src/cli/demo.js';
import { createPipeline } from '../../src/pipelines/index.js';
import { TINY_WORLD, scratchDir } from '../synthetic/tiny-world.js';

describe('vilbert demo on a tiny world', async () => {
  const dir = scratchDir();
  const stages: string[] = [];
  const result = await runDemo({
    dir,
    seed: 3,
    epochs: 1,
    lr: 1e-3,
    world: TINY_WORLD,
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
