// The generated world through the project's loaders: every task's train and val split opens
// with the world's registry entry, yields the reference's tensors and collates; the answers
// depend on text and image both, and world.json's chance levels are what the items give.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { ConceptCaptionsReader } from '../../src/data/concept-captions.js';
import type { DatasetItem, ItemTensor } from '../../src/data/dataset.js';
import { openDataset } from '../../src/data/dataset-spec.js';
import { collate } from '../../src/data/loader.js';
import { toTaskBatch } from '../../src/task-step/batch.js';
import { loadTaskRegistry, type TaskConfig } from '../../src/data/task-registry.js';
import { BertTokenizer } from '../../src/text/index.js';
import * as torch from '../../src/torch/index.js';
import { majorityAccuracy } from '../../src/synthetic/baselines.js';
import { CATEGORIES, COLORS } from '../../src/synthetic/vocabulary.js';
import { DATASET_CLASS, MULTI_TASK_KEYS, tinyWorld } from './tiny-world.js';

const world = tinyWorld();
const registry = loadTaskRegistry(world.registryPath);
const tokenizer = BertTokenizer.bundled();

interface Split {
  task: TaskConfig;
  items: DatasetItem[];
  /** The answer of each target index (classification tasks). */
  answers: readonly string[];
}

/** The answer names of the pair tasks' target indices (NLVR2Dataset, VisualEntailmentDataset). */
const PAIR_ANSWERS: Readonly<Record<string, readonly string[]>> = {
  NLVR2: ['False', 'True'],
  VisualEntailment: ['contradiction', 'neutral', 'entailment'],
};

function open(task: TaskConfig, which: 'train' | 'val', className = DATASET_CLASS[task.name]!) {
  const { dataset, close } = openDataset({
    className,
    task,
    split: which === 'train' ? task.train_split : task.val_split,
    phase: className === 'RetreivalDatasetVal' ? 'eval' : which,
    root: world.root,
    cleanDatasets: true,
    writeCache: false,
  });
  const answers = 'label2ans' in dataset ? (dataset.label2ans as string[]) : (PAIR_ANSWERS[task.name] ?? []);
  return { length: dataset.length, item: (index: number) => dataset.item(index), close, answers };
}

/** Every item of a split (the tiny world's splits are small). */
function load(key: string, which: 'train' | 'val'): Split {
  const task = registry.get(key)!;
  const dataset = open(task, which);
  try {
    return { task, items: Array.from({ length: dataset.length }, (_, i) => dataset.item(i)), answers: dataset.answers };
  } finally {
    dataset.close();
  }
}

const splits = new Map(MULTI_TASK_KEYS.map((key) => [key, { train: load(key, 'train'), val: load(key, 'val') }]));

const tensor = (item: DatasetItem, name: string) => item.values[name] as ItemTensor;
const numbers = (value: ItemTensor) => Array.from(value.data as ArrayLike<number | bigint>, Number);
const argmax = (values: number[]) => values.reduce((best, value, i) => (value > values[best]! ? i : best), 0);
/** Identifies an image by its features' first row (the mean of its regions). */
const imageKey = (item: DatasetItem, row = 0) =>
  createHash('sha1')
    .update(new Uint8Array((tensor(item, 'features').data as Float32Array).buffer, row * 2048 * 4, 2048 * 4))
    .digest('hex');
const textKey = (item: DatasetItem, name = 'question') => numbers(tensor(item, name)).join(' ');

/** The expected shape of every tensor of an item, from the task's type and registry lengths. */
function expectedShapes(key: string, task: TaskConfig): Record<string, number[]> {
  const { max_region_num: R, max_seq_length: L } = task;
  const info = world.info.tasks[key]!;
  const text = { input_mask: [L], segment_ids: [L] };
  switch (task.type) {
    case 'VL-classifier':
    case 'VL-classifier-GQA':
    case 'VL-binary-classifier':
    case 'VL-tri-classifier': {
      const rows = task.process === 'nlvr' ? 2 * R : R;
      const answers = task.type === 'VL-binary-classifier' ? 2 : task.type === 'VL-tri-classifier' ? 3 : info.answers!;
      return {
        features: [rows, 2048],
        spatials: [rows, 5],
        image_mask: [rows],
        question: [L],
        target: [answers],
        ...text,
        co_attention_mask: [rows, L],
      };
    }
    case 'VL-logit':
      return {
        features: [4, R, 2048],
        spatials: [4, R, 5],
        image_mask: [4, R],
        caption: [4, L],
        input_mask: [4, L],
        segment_ids: [4, L],
        co_attention_mask: [4, R, L],
      };
    case 'V-logit':
      return {
        features: [R, 2048],
        spatials: [R, 5],
        image_mask: [R],
        caption: [L],
        target: [R, 1],
        ...text,
        co_attention_mask: [R, L],
      };
    case 'V-logit-mc': {
      const candidates = task.name === 'Visual7w' ? 4 : 204;
      return {
        features: [R, 2048],
        spatials: [R, 5],
        image_mask: [R],
        caption: [L],
        target: [candidates, 1],
        ...text,
        multiple_choice_idx: [candidates],
        co_attention_mask: [R, L],
      };
    }
  }
}

describe('the world through the loaders', () => {
  for (const key of MULTI_TASK_KEYS) {
    it(`${key}: train and val open with the world's registry entry, have world.json's sizes, the reference's tensors, and collate`, () => {
      const { train, val } = splits.get(key)!;
      const info = world.info.tasks[key]!;
      assert.equal(train.items.length, info.train, `${key} train length`);
      assert.equal(val.items.length, info.val, `${key} val length`);
      const shapes = expectedShapes(key, train.task);
      for (const { items } of [train, val]) {
        for (const item of items.slice(0, 6)) {
          for (const [name, shape] of Object.entries(shapes))
            assert.deepEqual(tensor(item, name).shape, shape, `${key} ${name}`);
        }
        const batch = collate(items.slice(0, 3), [0, 1, 2].slice(0, items.length));
        torch.scope(() => {
          const slots = toTaskBatch(batch);
          assert.deepEqual(slots.features.shape, [Math.min(3, items.length), ...shapes.features!]);
          if (train.task.type === 'V-logit-mc')
            assert.deepEqual(slots.multiple_choice_ids!.shape, [
              Math.min(3, items.length),
              ...shapes.multiple_choice_idx!,
            ]);
        });
      }
    });
  }

  it('writes every text in whole bert-base-uncased tokens (no word pieces, no [UNK])', () => {
    for (const [key, { train, val }] of splits) {
      for (const item of [...train.items, ...val.items]) {
        const name = 'question' in item.values ? 'question' : 'caption';
        const tokens = tokenizer.convertIdsToTokens(numbers(tensor(item, name)).filter((id) => id > 0));
        const pieces = tokens.filter((token) => token.startsWith('##') || token === '[UNK]');
        assert.deepEqual(pieces, [], `${key}: ${tokens.join(' ')}`);
      }
    }
  });

  it('fills the regions the heads expect: 100 detector boxes before the pointing candidates, NLVR2 images of exactly R rows', () => {
    for (const key of ['TASK4', 'TASK17']) {
      for (const item of splits.get(key)!.train.items) {
        const target = numbers(tensor(item, 'target'));
        // A candidate row outside 101.. would score 0: exactly one candidate (the answer) overlaps its box.
        assert.equal(target.filter((value) => value >= 0.5).length, 1, `${key} one right candidate`);
      }
    }
    const nlvr2 = splits.get('TASK12')!.train;
    for (const item of nlvr2.items)
      assert.equal(
        numbers(tensor(item, 'image_mask')).reduce((a, b) => a + b, 0),
        2 * nlvr2.task.max_region_num,
      );
  });

  it('reads the Conceptual Captions files with the pre-training reader (36 regions per image)', () => {
    for (const split of ['train', 'val'] as const) {
      const reader = ConceptCaptionsReader.open(join(world.root, world.info.conceptCaptions.path), {
        tokenizer,
        batchSize: 2,
        split,
      });
      try {
        assert.equal(reader.numRecords, world.info.conceptCaptions[split]);
        const batch = reader.batch(0);
        assert.deepEqual(batch.values.image_feat.shape, [2, 37, 2048]);
        assert.deepEqual(batch.values.image_target.shape, [2, 36, 1601]);
        assert.deepEqual(batch.values.input_ids.shape, [2, 36]);
      } finally {
        reader.close();
      }
    }
  });
});

interface Labelled {
  text: string;
  image: string;
  label: string;
  form?: string;
}

/** Texts and images that come with more than one label: neither decides the answer alone. */
function ambiguity(items: readonly Labelled[]): { texts: number; images: number } {
  const labelsBy = (key: (item: Labelled) => string) => {
    const table = new Map<string, Set<string>>();
    for (const item of items) table.set(key(item), (table.get(key(item)) ?? new Set()).add(item.label));
    return [...table.values()].filter((labels) => labels.size > 1).length;
  };
  return { texts: labelsBy((item) => item.text), images: labelsBy((item) => item.image) };
}

const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual} vs world.json ${expected}`);

describe('answers need both the text and the image', () => {
  /** The text with its colour and shape words blanked: what is left is the sentence's form. */
  const form = (item: DatasetItem) => {
    const names = new Set([...COLORS.map((color) => color.name), ...CATEGORIES.map((category) => category.name)]);
    return tokenizer
      .convertIdsToTokens(numbers(tensor(item, 'question')))
      .map((token) => (names.has(token) ? '_' : token))
      .join(' ');
  };
  const classification: Record<string, (item: DatasetItem, answers: readonly string[]) => Labelled> =
    Object.fromEntries(
      ['TASK1', 'TASK2', 'TASK15', 'TASK13', 'TASK12'].map((key) => [
        key,
        (item: DatasetItem, answers: readonly string[]) => ({
          text: textKey(item),
          // NLVR2: both images of the pair (each starts with its mean row).
          image: key === 'TASK12' ? imageKey(item) + imageKey(item, registry.get(key)!.max_region_num) : imageKey(item),
          label: answers[argmax(numbers(tensor(item, 'target')))]!,
          form: form(item),
        }),
      ]),
    );
  for (const [key, view] of Object.entries(classification)) {
    it(`${key} ${world.info.tasks[key]!.name}: every text takes each of its answers equally often; blind baselines as world.json`, () => {
      const { train, val } = splits.get(key)!;
      const info = world.info.tasks[key]!;
      const fit = train.items.map((item) => view(item, train.answers));
      const test = val.items.map((item) => view(item, val.answers));
      // Complementary sets: given the text, the answer is uniform over the answers the text takes.
      for (const [name, items] of [
        ['train', fit],
        ['val', test],
      ] as const) {
        const byText = new Map<string, Map<string, number>>();
        for (const { text, label } of items) {
          const counts = byText.get(text) ?? new Map<string, number>();
          byText.set(text, counts.set(label, (counts.get(label) ?? 0) + 1));
        }
        for (const [text, counts] of byText) {
          assert.ok(
            counts.size >= 2,
            `${key} ${name}: text ${text} has the single answer ${[...counts.keys()].join()}`,
          );
          assert.equal(new Set(counts.values()).size, 1, `${key} ${name}: text ${text} answers ${[...counts]}`);
        }
      }
      const by = (items: Labelled[], pick: (item: Labelled) => string) =>
        items.map((item) => ({ key: pick(item), label: item.label }));
      const chance = majorityAccuracy(
        by(test, () => ''),
        by(test, () => ''),
      );
      const imageOnly = majorityAccuracy(
        by(test, (item) => item.image),
        by(test, (item) => item.image),
      );
      close(chance, info.chance, 'chance');
      close(imageOnly, info.imageOnly!, 'image only');
      if (info.questionType !== undefined)
        assert.ok(
          info.textOnly! <= info.questionType + 0.05,
          `${key}: text only ${info.textOnly} vs question type ${info.questionType}`,
        );
      // SNLI-VE hypotheses rarely repeat word for word: there the sentence form (colours and shapes blanked) must not decide.
      const both = ambiguity(
        [...fit, ...test].map((item) => (key === 'TASK13' ? { ...item, text: item.form! } : item)),
      );
      assert.ok(
        both.texts > 0 && both.images > 0,
        `${key}: ${both.texts} texts and ${both.images} images with several answers`,
      );
    });
  }

  for (const key of ['TASK9', 'TASK10', 'TASK11']) {
    it(`${key} ${world.info.tasks[key]!.name}: one image's expressions point at different boxes, one expression at different boxes in different images; chance as world.json`, () => {
      const { val, train } = splits.get(key)!;
      const targetBox = (item: DatasetItem) => {
        const best = argmax(numbers(tensor(item, 'target')));
        return numbers(tensor(item, 'spatials'))
          .slice(best * 5, best * 5 + 4)
          .join(',');
      };
      const items = [...train.items, ...val.items].map((item) => ({
        text: textKey(item, 'caption'),
        image: imageKey(item),
        label: targetBox(item),
      }));
      const both = ambiguity(items);
      assert.ok(
        both.images > 0 && both.texts > 0,
        `${key}: ${both.images} images, ${both.texts} texts with several boxes`,
      );
      const shares = val.items.map((item) => {
        const mask = numbers(tensor(item, 'image_mask'));
        const target = numbers(tensor(item, 'target'));
        return target.filter((value, row) => value > 0.5 && mask[row] === 1).length / mask.reduce((a, b) => a + b, 0);
      });
      close(shares.reduce((a, b) => a + b, 0) / shares.length, world.info.tasks[key]!.chance, 'chance');
    });
  }

  for (const key of ['TASK4', 'TASK17']) {
    it(`${key} ${world.info.tasks[key]!.name}: the right candidate varies within an image; chance as world.json`, () => {
      const { train, val } = splits.get(key)!;
      const slot = (item: DatasetItem) => String(argmax(numbers(tensor(item, 'target'))));
      const items = [...train.items, ...val.items].map((item) => ({
        text: textKey(item, 'caption'),
        image: imageKey(item),
        label: slot(item),
      }));
      assert.ok(ambiguity(items).images > 0, `${key}: an image whose questions have different answers`);
      const test = val.items.map((item) => ({ key: '', label: slot(item) }));
      close(majorityAccuracy(test, test), world.info.tasks[key]!.chance, 'chance');
      assert.ok(world.info.tasks[key]!.chance <= 0.5);
    });
  }

  it('TASK7 / TASK8 retrieval: every val caption matches exactly one of the val images (chance = 1 / #images)', () => {
    for (const key of ['TASK7', 'TASK8']) {
      const task = registry.get(key)!;
      const ranking = open(task, 'val', 'RetreivalDatasetVal');
      try {
        const info = world.info.tasks[key]!;
        assert.equal(ranking.length, 2 * info.val);
        const captions = new Set<string>();
        for (let i = 0; i < ranking.length; i += 2) {
          const matches =
            numbers(tensor(ranking.item(i), 'target_all')).reduce((a, b) => a + b, 0) +
            numbers(tensor(ranking.item(i + 1), 'target_all')).reduce((a, b) => a + b, 0);
          assert.equal(matches, 1, `${key} caption ${i / 2}`);
          captions.add(textKey(ranking.item(i), 'caption'));
        }
        assert.ok(captions.size > 0.9 * info.val, `${key}: ${captions.size} distinct captions of ${info.val}`);
        close(1 / info.candidates!, info.chance, 'chance');
        assert.equal(info.candidates, world.info.options.valImages);
      } finally {
        ranking.close();
      }
    }
  });
});
