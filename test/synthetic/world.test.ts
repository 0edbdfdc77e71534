// The generated world as files: determinism, reuse, the task registry, scenes.json, world.json.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadTaskRegistry } from '../../src/data/task-registry.js';
import { GENERATOR_VERSION, generateWorld, readWorldInfo, resolveWorldOptions } from '../../src/synthetic/index.js';
import { COLORS } from '../../src/synthetic/vocabulary.js';
import { MULTI_TASK_KEYS, TINY_WORLD, scratchDir, tinyWorld } from './tiny-world.js';

/** Every file under root (relative path -> sha256). */
function digests(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.set(relative(root, path), createHash('sha256').update(readFileSync(path)).digest('hex'));
    }
  };
  walk(root);
  return out;
}

/** Smaller still than the tiny world: these tests look at files, not at statistics. */
const MICRO = {
  ...TINY_WORLD,
  images: 4,
  valImages: 2,
  pointingImages: 1,
  pointingValImages: 1,
  boxes: 6,
  conceptCaptionsImages: 2,
  conceptCaptionsValImages: 1,
};
const first = tinyWorld({ ...MICRO, seed: 3 });

describe('generateWorld', () => {
  it('writes byte-identical files for the same seed and different ones for another seed', () => {
    const again = tinyWorld({ ...MICRO, seed: 3 });
    const other = tinyWorld({ ...MICRO, seed: 4 });
    const a = digests(first.root);
    assert.deepEqual([...digests(again.root)], [...a]);
    const b = digests(other.root);
    assert.deepEqual([...b.keys()], [...a.keys()], 'the same files');
    const differing = [...a].filter(([path, digest]) => b.get(path) !== digest).map(([path]) => path);
    for (const path of [
      'datasets/coco/features_100/COCO_trainval_resnext152_faster_rcnn_genome.lmdb/data.mdb',
      'datasets/VQA/v2_OpenEnded_mscoco_train2014_questions.json',
      'scenes.json',
      'data/conceptual_caption/training_feat_all.lmdb',
    ]) {
      assert.ok(differing.includes(path), `${path} differs between seeds`);
    }
    assert.ok(differing.length > 0.8 * a.size, `${differing.length} of ${a.size} files differ`);
  });

  it('reuses a complete world with the same options and replaces one with other options', () => {
    const before = statSync(join(first.root, 'world.json')).mtimeMs;
    const reused = generateWorld(first.root, { ...MICRO, seed: 3 });
    assert.equal(reused.reused, true);
    assert.deepEqual(reused.info, first.info);
    assert.equal(statSync(join(first.root, 'world.json')).mtimeMs, before);

    const root = join(scratchDir(), 'world');
    generateWorld(root, { ...MICRO, seed: 5 });
    const replaced = generateWorld(root, { ...MICRO, seed: 5, questionsPerImage: 2 });
    assert.equal(replaced.reused, false);
    assert.equal(readWorldInfo(root)!.options.questionsPerImage, 2);
    assert.equal(readdirSync(join(root, '..')).length, 1, 'no partial folder is left next to the world');
  });

  it('refuses to replace a folder that holds something else, and checks its options', () => {
    const foreign = join(scratchDir(), 'mine');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'notes.txt'), 'keep me');
    assert.throws(() => generateWorld(foreign, MICRO), /not empty and holds no world.json/);
    assert.equal(readFileSync(join(foreign, 'notes.txt'), 'utf8'), 'keep me');
    assert.throws(() => resolveWorldOptions({ images: 1 }), /'images' must be an integer >= 2/);
    assert.throws(() => resolveWorldOptions({ boxes: 3 }), /'boxes' must be an integer >= maxObjects/);
    assert.throws(() => resolveWorldOptions({ colour: 1 } as never), /unknown world option 'colour'/);
  });

  it("writes a task registry of the reference's 12 tasks whose paths exist under the world root", () => {
    const registry = loadTaskRegistry(first.registryPath);
    const bundled = loadTaskRegistry();
    assert.deepEqual([...registry.keys()], MULTI_TASK_KEYS);
    for (const [key, task] of registry) {
      const reference = bundled.get(key)!;
      for (const field of ['name', 'type', 'loss', 'process', 'task_id'] as const)
        assert.equal(task[field], reference[field], `${key} ${field}`);
      for (const path of [
        task.dataroot,
        task.features_h5path1,
        task.features_h5path2,
        task.train_annotations_jsonpath,
        task.val_annotations_jsonpath,
      ]) {
        if (path !== '') assert.ok(existsSync(join(first.root, path)), `${key}: ${path}`);
      }
      const info = first.info.tasks[key]!;
      assert.equal(task.max_seq_length, info.maxSeqLength, key);
      assert.equal(task.max_region_num, info.maxRegionNum, key);
      assert.deepEqual([task.train_split, task.val_split], [info.trainSplit, info.valSplit], key);
      assert.ok(task.batch_size <= 16 && task.batch_size >= 1, `${key} batch ${task.batch_size}`);
    }
    // What the loaders and heads assume: 100 detector rows before the pointing candidates, GuessWhat's 306 regions.
    assert.equal(registry.get('TASK17')!.max_region_num, 306);
    assert.ok(registry.get('TASK4')!.max_region_num > 101);
    assert.equal(registry.get('TASK1')!.max_region_num, MICRO.boxes + 1);
  });

  it('describes the world in world.json: seed, sizes, version and per task its splits and chance', () => {
    const info = readWorldInfo(first.root)!;
    assert.equal(info.version, GENERATOR_VERSION);
    assert.equal(info.seed, 3);
    assert.deepEqual(info.options, resolveWorldOptions({ ...MICRO, seed: 3 }));
    assert.deepEqual(Object.keys(info.tasks), MULTI_TASK_KEYS);
    for (const [key, task] of Object.entries(info.tasks)) {
      assert.ok(task.chance > 0 && task.chance < 1, `${key} chance ${task.chance}`);
      assert.ok(task.train > 0 && task.val > 0, `${key} sizes`);
    }
    assert.deepEqual(info.conceptCaptions, { path: 'data/conceptual_caption', train: 2, val: 1 });
  });

  it("writes scenes.json: per image its size and the objects' boxes, labels and drawing colours", () => {
    const scenes = JSON.parse(readFileSync(join(first.root, 'scenes.json'), 'utf8')) as Record<
      string,
      { width: number; height: number; objects: { box: number[]; label: string; color: string }[] }
    >;
    const questions = JSON.parse(
      readFileSync(join(first.root, 'datasets/VQA/v2_OpenEnded_mscoco_val2014_questions.json'), 'utf8'),
    ) as { questions: { image_id: number }[] };
    for (const { image_id: imageId } of questions.questions) assert.ok(scenes[String(imageId)], `VQA image ${imageId}`);
    assert.ok(scenes['train-0-0-img0'] && scenes['dev-0-0-img1'], 'NLVR2 images by key');
    const hexes = new Set(COLORS.map((color) => color.hex));
    for (const [id, scene] of Object.entries(scenes)) {
      assert.ok(scene.objects.length >= 2, id);
      for (const object of scene.objects) {
        const [x1, y1, x2, y2] = object.box as [number, number, number, number];
        assert.ok(
          Number.isInteger(x1) && x1 >= 0 && x1 < x2 && x2 < scene.width && y1 >= 0 && y1 < y2 && y2 < scene.height,
          `${id} box ${object.box}`,
        );
        assert.match(object.label, /^[a-z]+ (small|large) [a-z]+$/);
        assert.ok(hexes.has(object.color), object.color);
      }
    }
  });
});
