import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { STORE_RANKING_TOPK } from '../../src/cli/predict.js';
import { writeFeatureLmdb, type StoredImage } from '../../src/synthetic/features.js';
import { writeWeights } from '../../src/io/weights.js';
import { createPipeline, loadModelFolder } from '../../src/pipelines/index.js';
import { configFile, kitPath, labelsRoot, tempDir, tinyFolder, vilbert } from './helpers.js';

const saved = tinyFolder(5);
const scratch = tempDir();
after(() => {
  saved.dispose();
  scratch.dispose();
});
const COCO = kitPath('datasets', 'coco', 'features_100', 'COCO_trainval_resnext152_faster_rcnn_genome.lmdb');

const predict = (task: string, text: string, ...rest: string[]) =>
  vilbert('predict', '--task', task, '--model', saved.dir, '--text', text, ...rest);

describe('vilbert predict', () => {
  it('--json prints what the pipeline returns', async () => {
    const printed = await predict(
      'vqa',
      'what is on the table?',
      '--features',
      COCO,
      '--image',
      '30',
      '--topk',
      '3',
      '--json',
    );
    const folder = loadModelFolder(saved.dir);
    const vqa = await createPipeline('vqa', folder);
    const expected = await vqa('what is on the table?', { store: COCO, imageId: '30' }, { topk: 3 });
    vqa.dispose();
    folder.model.dispose();
    assert.deepEqual(JSON.parse(printed), expected);
  });

  it('prints one line per answer, region or image, and the verdicts', async () => {
    assert.match(
      await predict('vqa', 'what is it?', '--features', COCO, '--image', '9'),
      /^(\d\. .+\t[01]\.\d{4}\n?){5}$/,
    );
    assert.match(
      await predict('ground', 'the dog', '--features', COCO, '--image', '9', '--topk', '2'),
      /^1\. (whole image|box \d+)\t\[[\d., ]+\]\t[01]\.\d{4}\n2\. /,
    );
    const ranked = await predict(
      'retrieve',
      'a cat on a laptop',
      '--features',
      COCO,
      '--image',
      '30',
      '--image',
      '49',
      '--image',
      '9',
      '--batch_size',
      '2',
    );
    assert.deepEqual(
      ranked
        .split('\n')
        .map((line) => line.split('\t')[0]!.replace(/^\d\. image /, ''))
        .sort(),
      ['30', '49', '9'],
    );
    const nlvr2 = kitPath('datasets', 'nlvr2', 'nlvr2_resnext152_faster_rcnn_genome.lmdb');
    assert.match(
      await predict(
        'verify',
        'two dogs',
        '--features',
        nlvr2,
        '--image',
        'dev-850-0-img0',
        '--image',
        'dev-850-0-img1',
      ),
      /^(true|false)\t[01]\.\d{4}$/,
    );
    const flickr = kitPath('datasets', 'flickr30k', 'flickr30k_resnext152_faster_rcnn_genome.lmdb');
    assert.match(
      await predict('entail', 'a man works', '--features', flickr, '--image', '1000344755'),
      /^(entailment|neutral|contradiction)\tcontradiction [01]\.\d{4}, neutral [01]\.\d{4}, entailment [01]\.\d{4}$/,
    );
  });

  it('retrieve with no --image ranks every image of the store, batch by batch, and prints the best 10', async () => {
    // A store larger than the default top 10 and than one batch.
    const store = join(scratch.dir, 'many-images.lmdb');
    const images = Array.from({ length: 23 }, (_, index) => {
      const boxes = 2 + (index % 3);
      const features = Float32Array.from({ length: boxes * 2048 }, (_, i) => Math.abs(Math.sin(index * 7919 + i)));
      const regions = Array.from({ length: boxes }, (_, b) => ({ box: [4 * b, 2 * b, 40 + 10 * b, 30 + 5 * b] }));
      return {
        scene: { imageId: 1000 + index, key: String(1000 + index), width: 200, height: 150, objects: [] },
        regions,
        features,
      };
    }) as unknown as StoredImage[];
    writeFeatureLmdb(store, images);
    const keys = images.map(({ scene }) => scene.key);
    const caption = 'a cat on a laptop';
    const top = await predict('retrieve', caption, '--features', store, '--batch_size', '4');
    const lines = top.split('\n');
    assert.equal(STORE_RANKING_TOPK, 10);
    assert.equal(lines.length, 10);
    for (const [rank, line] of lines.entries())
      assert.match(line, new RegExp(`^${rank + 1}\\. image 10\\d\\d\t-?\\d+\\.\\d{4}$`));
    // The same ranking as naming every image, whatever the batch size.
    const whole = JSON.parse(
      await predict('retrieve', caption, '--features', store, '--topk', '23', '--batch_size', '5', '--json'),
    ) as { index: number; imageId: string; score: number }[];
    const named = JSON.parse(
      await predict('retrieve', caption, '--features', store, ...keys.flatMap((key) => ['--image', key]), '--json'),
    ) as unknown[];
    assert.deepEqual(whole, named);
    assert.deepEqual(whole.map(({ imageId }) => imageId).sort(), [...keys].sort());
    assert.deepEqual(
      lines.map((line) => line.split('\t')[0]!.replace(/^\d+\. image /, '')),
      whole.slice(0, 10).map(({ imageId }) => imageId),
    );
    assert.equal((await predict('retrieve', caption, '--features', COCO, '--topk', '2')).split('\n').length, 2);
  });

  it('says what is wrong with the arguments', async () => {
    await assert.rejects(
      predict('verify', 'x', '--features', COCO, '--image', '30'),
      /--task verify takes exactly 2 --image ids, got 1/,
    );
    await assert.rejects(predict('vqa', 'x', '--features', COCO), /--task vqa takes exactly 1 --image id, got 0/);
    await assert.rejects(
      predict('caption', 'x', '--features', COCO, '--image', '30'),
      /--task must be one of vqa, gqa, ground, retrieve, verify, entail, got 'caption'/,
    );
    await assert.rejects(
      predict('vqa', 'x', '--features', COCO, '--image', '30', '--topk', 'many'),
      /--topk must be a positive integer, got 'many'/,
    );
    await assert.rejects(
      predict('vqa', 'x', '--features', COCO, '--image', '1234'),
      /image '1234': not in the store's 'keys' list/,
    );
  });
});

describe('vilbert model-folder', () => {
  it('makes a model folder from a .bin checkpoint that predict then uses', async () => {
    const bin = join(scratch.dir, 'multi_task_model.bin');
    writeWeights(bin, saved.model.stateDict(), 'torch');
    const out = join(scratch.dir, 'from-bin');
    const printed = await vilbert(
      'model-folder',
      '--from_pretrained',
      bin,
      '--config_file',
      configFile(scratch.dir),
      '--labels_from',
      labelsRoot(scratch.dir),
      '--out',
      out,
      '--ground_task',
      '10',
    );
    assert.match(printed, /^vil_prediction: 3129 answers from .*datasets\/VQA\/cache\/trainval_label2ans\.pkl$/m);
    assert.match(printed, /^gqa: left out \(no .*datasets\/gqa\/cache\/trainval_label2ans\.pkl\)$/m);
    assert.match(printed, /^ground: refcoco\+ \(task token 10, 20 tokens, 101 regions\)$/m);
    const fromBin = JSON.parse(
      await vilbert(
        'predict',
        '--task',
        'vqa',
        '--model',
        out,
        '--features',
        COCO,
        '--image',
        '25',
        '--text',
        'is it sunny?',
        '--json',
      ),
    ) as unknown[];
    const fromSaved = JSON.parse(
      await predict('vqa', 'is it sunny?', '--features', COCO, '--image', '25', '--json'),
    ) as { answer: string; score: number }[];
    // The same weights; the answer names come from the labels folder here.
    assert.deepEqual(
      fromBin.map((answer) => (answer as { score: number }).score),
      fromSaved.map(({ score }) => score),
    );
    await assert.rejects(
      vilbert('model-folder', '--from_pretrained', bin, '--out', out, '--ground_task', 'refcoco'),
      /--ground_task must be a task number or key \(9, TASK9\), got 'refcoco'/,
    );
  });
});
