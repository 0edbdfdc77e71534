// Precision through the library's and the CLI's doors: a model folder storing bfloat16
// weights, pipelines and `predict` in bf16 and int8, `model-folder --precision`, and
// `eval-tasks --compare_precisions` writing each task's agreement with fp32.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../../src/io/safetensors.js';
import { writeWeights } from '../../src/io/weights.js';
import { createPipeline, loadModelFolder, saveModelFolder } from '../../src/pipelines/index.js';
import type { PrecisionRow } from '../../src/eval/precision-agreement.js';
import { LABELS, KIT, kitPath, kitTasks, tempDir, tinyFolder, vilbert } from './helpers.js';
import { fixture, packageRoot } from '../io/fixtures.js';

const saved = tinyFolder(11);
const scratch = tempDir('vilbert-precision-');
after(() => {
  saved.dispose();
  scratch.dispose();
});
const COCO = kitPath('datasets', 'coco', 'features_100', 'COCO_trainval_resnext152_faster_rcnn_genome.lmdb');
const image = { store: COCO, imageId: '30' };

describe('precision in model folders and pipelines', () => {
  it('a folder of bfloat16 weights is half the size and loads in bf16 unless told otherwise', async () => {
    const dir = join(scratch.dir, 'bf16-folder');
    saveModelFolder(dir, {
      model: saved.model,
      config: saved.model.config,
      labels: LABELS,
      tasks: kitTasks(),
      weightsDtype: 'bfloat16',
    });
    const stored = readSafetensors(join(dir, 'model.safetensors'));
    const dtypes = new Set([...stored.tensors.values()].map((tensor) => tensor.dtype));
    assert.deepEqual([...dtypes], ['bfloat16']);
    const ratio = statSync(join(dir, 'model.safetensors')).size / statSync(join(saved.dir, 'model.safetensors')).size;
    assert.ok(ratio > 0.45 && ratio < 0.55, `bf16 folder is ${ratio} of the fp32 one`);

    const folder = loadModelFolder(dir);
    assert.equal(folder.precision, 'bf16');
    assert.equal(folder.weightsDtype, 'bfloat16');
    assert.equal(folder.model.precision, 'bf16');
    folder.model.dispose();
    const asked = loadModelFolder(dir, { precision: 'fp32' });
    assert.equal(asked.model.precision, 'fp32');
    asked.model.dispose();
  });

  it('pipelines answer in every precision; the top answer agrees with fp32 on this image', async () => {
    const answers = new Map<string, string[]>();
    for (const precision of ['fp32', 'bf16', 'int8'] as const) {
      const vqa = await createPipeline('vqa', saved.dir, { precision });
      assert.equal(vqa.folder.model.precision, precision);
      const result = await vqa('what is on the table?', image, { topk: 3 });
      answers.set(
        precision,
        result.map((answer) => answer.answer),
      );
      vqa.dispose();
    }
    assert.equal(answers.get('bf16')![0], answers.get('fp32')![0]);
    assert.equal(answers.get('int8')![0], answers.get('fp32')![0]);
  });

  it('an int8 model cannot be saved: its float32 weights are gone', () => {
    const folder = loadModelFolder(saved.dir, { precision: 'int8' });
    assert.throws(
      () => saveModelFolder(join(scratch.dir, 'int8'), { ...folder, labels: LABELS }),
      /int8 model's float32 weights were released/,
    );
    folder.model.dispose();
  });

  it('predict --precision and model-folder --precision', async () => {
    const printed = await vilbert(
      'predict',
      ...['--task', 'vqa', '--model', saved.dir, '--text', 'what is on the table?'],
      ...['--features', COCO, '--image', '30', '--precision', 'int8', '--json'],
    );
    assert.ok(Array.isArray(JSON.parse(printed)));
    await assert.rejects(
      vilbert(
        'predict',
        '--task',
        'vqa',
        '--model',
        saved.dir,
        '--text',
        'x',
        '--features',
        COCO,
        '--precision',
        'fp8',
      ),
      /Allowed choices are fp32, bf16, int8/,
    );
    const checkpoint = join(scratch.dir, 'checkpoint.safetensors');
    writeWeights(checkpoint, saved.model.stateDict(), 'safetensors');
    await assert.rejects(
      vilbert('model-folder', '--from_pretrained', checkpoint, '--out', join(scratch.dir, 'q'), '--precision', 'int8'),
      /int8 quantizes them when loaded/,
    );
  });
});

describe('eval-tasks --compare_precisions', () => {
  it('evaluates each task in fp32, bf16 and int8 and writes the agreement with fp32', () => {
    const kit = tempDir('vilbert-precision-kit-');
    cpSync(KIT, kit.dir, { recursive: true });
    const bin = join(packageRoot(), 'bin', 'vilbert.js');
    const common = [
      '--config_file',
      fixture('train', 'tiny-config.json'),
      '--tasks',
      '9-12',
      '--datasets_root',
      kit.dir,
    ];
    const trained = spawnSync(
      process.execPath,
      [
        bin,
        'train-tasks',
        ...common,
        '--from_pretrained',
        'none',
        '--task_specific_tokens',
        '--num_workers',
        '0',
      ].concat([
        '--batch_size',
        '2',
        '--num_train_epochs',
        '1',
        '--threads',
        '1',
        '--quiet',
        '--output_dir',
        kit.dir + '/runs',
      ]),
      { encoding: 'utf8' },
    );
    assert.equal(trained.status, 0, trained.stderr);
    const [run] = readdirSync(join(kit.dir, 'runs'));
    const weights = join(kit.dir, 'runs', run!, 'pytorch_model_0.safetensors');
    const evaluated = spawnSync(
      process.execPath,
      [
        bin,
        'eval-tasks',
        ...common,
        '--from_pretrained',
        weights,
        '--task_specific_tokens',
        '--batch_size',
        '4',
      ].concat(['--output_dir', join(kit.dir, 'eval'), '--compare_precisions']),
      { encoding: 'utf8' },
    );
    assert.equal(evaluated.status, 0, evaluated.stderr);
    assert.match(evaluated.stdout, /same as fp32 \(%\)/);
    const [folder] = readdirSync(join(kit.dir, 'eval'));
    const rows = JSON.parse(readFileSync(join(kit.dir, 'eval', folder!, 'precision.json'), 'utf8')) as PrecisionRow[];
    assert.deepEqual(
      rows.map((row) => row.task),
      ['TASK9 refcoco', 'TASK12 NLVR2'],
    );
    for (const row of rows) {
      assert.equal(row.agreement.fp32, 1);
      for (const precision of ['bf16', 'int8'] as const) {
        assert.ok(row.agreement[precision]! >= 0 && row.agreement[precision]! <= 1);
        assert.ok(Number.isFinite(row.scores[precision]));
      }
    }
    kit.dispose();
  });
});
