import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { writeWeights } from '../../src/io/weights.js';
import {
  CONFIG_FILE,
  LABELS_FILE,
  ModelFolderError,
  TASKS_FILE,
  WEIGHTS_FILE,
  loadModelFolder,
  modelFolderFromCheckpoint,
  saveModelFolder,
} from '../../src/pipelines/model-folder.js';
import type { VILBertForVLTasks } from '../../src/model/vilbert.js';
import {
  KIT,
  LABELS,
  configFile,
  kitTasks,
  labelsRoot,
  tempDir,
  tinyConfig,
  tinyFolder,
  tinyModel,
} from './helpers.js';

const saved = tinyFolder();
const scratch = tempDir();
after(() => {
  saved.dispose();
  scratch.dispose();
});

const bytesOf = (tensor: torch.Tensor) => Buffer.from(tensor.toArray().buffer);

function assertSameWeights(actual: VILBertForVLTasks, expected: VILBertForVLTasks): void {
  const want = expected.stateDict();
  const got = actual.stateDict();
  assert.deepEqual([...got.keys()], [...want.keys()]);
  for (const [key, tensor] of want) assert.ok(bytesOf(got.get(key)!).equals(bytesOf(tensor)), `${key} differs`);
}

let copies = 0;
/** A copy of the saved folder, changed by `edit`. */
function brokenCopy(edit: (dir: string) => void): string {
  const dir = join(scratch.dir, `broken-${copies++}`);
  cpSync(saved.dir, dir, { recursive: true });
  edit(dir);
  return dir;
}
const editJson = (file: string, change: (json: Record<string, unknown>) => void) => (dir: string) => {
  const json = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>;
  change(json);
  writeFileSync(join(dir, file), JSON.stringify(json));
};

describe('saveModelFolder / loadModelFolder', () => {
  it('round-trips the weights bit for bit, the config, the labels and the task settings', () => {
    assert.deepEqual(readdirSync(saved.dir).sort(), [CONFIG_FILE, LABELS_FILE, WEIGHTS_FILE, TASKS_FILE].sort());
    assert.deepEqual(readdirSync(dirname(saved.dir)), ['model'], 'no staging folder is left behind');
    const folder = loadModelFolder(saved.dir);
    try {
      assertSameWeights(folder.model, saved.model);
      assert.deepEqual(folder.config, saved.model.config);
      assert.deepEqual(folder.labels, LABELS);
      assert.deepEqual(folder.tasks, kitTasks());
      assert.equal(folder.model.training, false);
      assert.equal(folder.tokenizer.vocabSize, 30522, 'the bundled vocabulary');
      assert.deepEqual(folder.warnings, []);
    } finally {
      folder.model.dispose();
    }
  });

  it('replaces an existing model folder whole, and refuses to replace a folder that is not one', () => {
    const dir = join(scratch.dir, 'replace', 'model');
    saveModelFolder(dir, { model: saved.model, config: saved.model.config, labels: LABELS, tasks: kitTasks() });
    const { vqa } = kitTasks();
    saveModelFolder(dir, {
      model: saved.model,
      config: saved.model.config,
      labels: {},
      tasks: { ground: kitTasks().ground! },
    });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, TASKS_FILE), 'utf8')), { ground: kitTasks().ground });
    assert.deepEqual(readdirSync(dirname(dir)), ['model']);
    // A failed save (the vqa pipeline without its answers) leaves the folder as it was.
    assert.throws(
      () => saveModelFolder(dir, { model: saved.model, config: saved.model.config, labels: {}, tasks: { vqa: vqa! } }),
      /labels\.json: vil_prediction: missing/,
    );
    assert.deepEqual(JSON.parse(readFileSync(join(dir, TASKS_FILE), 'utf8')), { ground: kitTasks().ground });

    const other = join(scratch.dir, 'not-a-model');
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'mine');
    assert.throws(
      () => saveModelFolder(other, { model: saved.model, config: saved.model.config, labels: {}, tasks: {} }),
      /not-a-model: exists and is not a model folder/,
    );
    assert.equal(readFileSync(join(other, 'notes.txt'), 'utf8'), 'mine');
  });

  it('uses a vocab.txt when the folder has one', () => {
    const vocab = join(scratch.dir, 'vocab.txt');
    writeFileSync(vocab, ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'cat'].join('\n') + '\n');
    const dir = join(scratch.dir, 'with-vocab');
    saveModelFolder(dir, {
      model: saved.model,
      config: saved.model.config,
      labels: LABELS,
      tasks: kitTasks(),
      vocabFile: vocab,
    });
    const folder = loadModelFolder(dir);
    folder.model.dispose();
    assert.equal(folder.tokenizer.vocabSize, 7);
    assert.deepEqual(folder.tokenizer.encode('a cat'), [5, 6]);
  });
});

describe('a broken model folder names the file and key at fault', () => {
  const cases: [string, (dir: string) => void, RegExp][] = [
    [
      'config.json that is not JSON',
      (dir) => writeFileSync(join(dir, CONFIG_FILE), '{'),
      /config\.json: not valid JSON/,
    ],
    [
      'a bad config value',
      editJson(CONFIG_FILE, (json) => {
        json.hidden_size = 'wide';
      }),
      /config\.json: hidden_size: expected a positive integer/,
    ],
    [
      'an unknown pipeline',
      editJson(TASKS_FILE, (json) => {
        json.caption = json.vqa;
      }),
      /tasks\.json: caption: not a pipeline/,
    ],
    [
      'a missing setting',
      editJson(TASKS_FILE, (json) => {
        delete (json.entail as Record<string, unknown>).max_region_num;
      }),
      /tasks\.json: entail\.max_region_num: missing/,
    ],
    [
      'a misspelt setting',
      editJson(TASKS_FILE, (json) => {
        (json.vqa as Record<string, unknown>).max_seq_len = 23;
      }),
      /tasks\.json: vqa\.max_seq_len: unknown setting/,
    ],
    [
      'a task token without a row',
      editJson(TASKS_FILE, (json) => {
        (json.vqa as Record<string, unknown>).task_id = 20;
      }),
      /tasks\.json: vqa\.task_id: 20 has no row in the task-token table/,
    ],
    [
      'a text longer than the position table',
      editJson(TASKS_FILE, (json) => {
        (json.vqa as Record<string, unknown>).max_seq_length = 65;
      }),
      /tasks\.json: vqa\.max_seq_length: 65 is outside 2\.\.64/,
    ],
    [
      'too many answers',
      editJson(LABELS_FILE, (json) => {
        json.vil_prediction = Array.from({ length: 3130 }, (_, i) => `answer ${i}`);
      }),
      /labels\.json: vil_prediction: has 3130 labels but the model's head has 3129 classes/,
    ],
    [
      'no answers for a labelled pipeline',
      editJson(LABELS_FILE, (json) => {
        delete json.vil_prediction_gqa;
      }),
      /labels\.json: vil_prediction_gqa: missing: tasks\.json has the 'gqa' pipeline/,
    ],
    [
      'an unknown head',
      editJson(LABELS_FILE, (json) => {
        json.vil_logit = ['x'];
      }),
      /labels\.json: vil_logit: not a head with named classes/,
    ],
    ['an empty weights file', (dir) => truncateSync(join(dir, WEIGHTS_FILE), 0), /model\.safetensors/],
    [
      'a truncated weights file',
      (dir) => truncateSync(join(dir, WEIGHTS_FILE), statSync(join(dir, WEIGHTS_FILE)).size - 100),
      /model\.safetensors/,
    ],
    [
      'weights of another config',
      editJson(CONFIG_FILE, (json) => {
        json.v_hidden_size = 48;
      }),
      /model\.safetensors: does not fit config\.json: .*size mismatch for bert\.v_embeddings\.image_embeddings\.weight: checkpoint has shape \[24, 2048\], model has shape \[48, 2048\]/s,
    ],
    [
      "a vocabulary larger than the model's",
      editJson(CONFIG_FILE, (json) => {
        json.vocab_size = 1000;
      }),
      /config\.json: vocab_size: 1000 is smaller than the 30522 tokens of the bundled bert-base-uncased vocabulary/,
    ],
  ];
  for (const [what, edit, message] of cases) {
    it(what, () => assert.throws(() => loadModelFolder(brokenCopy(edit)), message));
  }

  it('a missing file or folder', () => {
    assert.throws(
      () => loadModelFolder(join(scratch.dir, 'nowhere')),
      (error: unknown) => error instanceof ModelFolderError && /nowhere: not a folder/.test(error.message),
    );
    for (const file of [CONFIG_FILE, TASKS_FILE, LABELS_FILE, WEIGHTS_FILE]) {
      assert.throws(
        () => loadModelFolder(brokenCopy((dir) => rmSync(join(dir, file)))),
        new RegExp(`${file.replace('.', '\\.')}: missing`),
      );
    }
    assert.throws(
      () => loadModelFolder(brokenCopy((dir) => writeFileSync(join(dir, LABELS_FILE), '[]'))),
      /labels\.json: expected an object of heads/,
    );
  });
});

describe('modelFolderFromCheckpoint', () => {
  function checkpoint(model: VILBertForVLTasks, name: string, keep: (key: string) => boolean = () => true): string {
    const path = join(scratch.dir, name);
    writeWeights(path, new Map([...model.stateDict()].filter(([key]) => keep(key))), 'torch');
    return path;
  }

  it('builds a folder from a .bin checkpoint, a config file and the answer lists', () => {
    const bin = checkpoint(saved.model, 'multi_task_model.bin');
    const out = join(scratch.dir, 'from-checkpoint');
    const events: string[] = [];
    const report = modelFolderFromCheckpoint({
      checkpoint: bin,
      config: configFile(scratch.dir),
      labelsFrom: labelsRoot(scratch.dir),
      out,
      tasks: { ground: 'TASK11' },
      onProgress: ({ step }) => events.push(step),
    });
    assert.deepEqual(events, ['reading', 'writing']);
    assert.deepEqual(
      report.labels.map(({ head, count }) => [head, count]),
      [['vil_prediction', 3129]],
    );
    assert.deepEqual(
      report.leftOut.map(({ task }) => task),
      ['gqa'],
    );
    assert.deepEqual(report.unexpectedKeys, []);
    const folder = loadModelFolder(out);
    try {
      assert.equal(folder.config.task_specific_tokens, true);
      assertSameWeights(folder.model, saved.model);
      assert.deepEqual(Object.keys(folder.tasks), ['vqa', 'ground', 'retrieve', 'verify', 'entail']);
      assert.deepEqual(folder.tasks.vqa, { name: 'VQA', task_id: 1, max_seq_length: 23, max_region_num: 101 });
      assert.deepEqual(folder.tasks.ground, { name: 'refcocog', task_id: 11, max_seq_length: 20, max_region_num: 101 });
      assert.deepEqual(folder.tasks.verify, { name: 'NLVR2', task_id: 12, max_seq_length: 40, max_region_num: 101 });
      assert.equal(folder.labels.vil_prediction?.[1], 'no');
    } finally {
      folder.model.dispose();
    }
  });

  it('takes an answer list shorter than the head, refuses a labels folder without any and a checkpoint without the task heads', () => {
    const bin = checkpoint(saved.model, 'model.bin');
    // The kit's VQA answer list has 24 answers, the head 3129 outputs: the pipelines rank the 24.
    const short = join(scratch.dir, 'short-labels');
    modelFolderFromCheckpoint({ checkpoint: bin, config: configFile(scratch.dir), labelsFrom: KIT, out: short });
    const folder = loadModelFolder(short);
    assert.equal(folder.labels.vil_prediction?.length, 24);
    folder.model.dispose();
    const out = join(scratch.dir, 'refused');
    assert.throws(
      () =>
        modelFolderFromCheckpoint({ checkpoint: bin, config: configFile(scratch.dir), labelsFrom: scratch.dir, out }),
      /no answer list found \(looked for .*datasets\/VQA\/cache\/trainval_label2ans\.pkl and .*datasets\/gqa\/cache\/trainval_label2ans\.pkl\)/,
    );
    const other = tinyModel(3, tinyConfig());
    const pretrained = checkpoint(
      other,
      'pretrained.bin',
      (key) => !key.startsWith('vil_') && !key.startsWith('vision_logit'),
    );
    other.dispose();
    assert.throws(
      () => modelFolderFromCheckpoint({ checkpoint: pretrained, config: configFile(scratch.dir), out }),
      /pretrained\.bin: lacks 24 of the model's keys \(vil_prediction\.logit_fc\.0\.weight, .*is it a multi-task checkpoint\?/,
    );
    assert.equal(existsSync(out), false);
  });
});
