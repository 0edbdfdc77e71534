// The examples/ scripts (docs/API.md) run as a user runs them, each in a child process
// importing the built package by name, and print what they promise: so they cannot rot.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from './io/fixtures.js';
import { readRawWeights } from '../src/io/weights.js';

const root = packageRoot();
const examples = join(root, 'examples');

function runExample(name: string, ...args: string[]) {
  const child = spawnSync(process.execPath, [join(examples, name), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(child.status, 0, `${name} exited ${child.status}: ${child.stderr}`);
  return child.stdout;
}

describe('examples', () => {
  it('import the library by its package name only, never by a path into src/ or dist/', () => {
    const files = readdirSync(examples).filter((file) => file.endsWith('.mjs'));
    assert.deepEqual(files.sort(), ['fine-tune-custom-task.mjs', 'read-feature-lmdb.mjs', 'vqa-from-checkpoint.mjs']);
    for (const file of files) {
      const imports = [...readFileSync(join(examples, file), 'utf8').matchAll(/^import .* from '([^']+)';$/gm)].map(
        (match) => match[1]!,
      );
      assert.ok(
        imports.some((source) => source.startsWith('vilbert-ts')),
        file,
      );
      for (const source of imports) assert.match(source, /^(node:|vilbert-ts(\/|$))/, `${file} imports '${source}'`);
    }
  });

  it('vqa-from-checkpoint loads the stand-in checkpoint and prints the top 5 answers, best first', () => {
    const out = runExample('vqa-from-checkpoint.mjs');
    assert.match(out, /weights_vltasks\.safetensors \(0 missing keys, task tokens on\)/);
    assert.match(out, /image 30: 38 regions/);
    assert.match(out, /top 5 of 24 answers:/);
    const scores = [...out.matchAll(/^ {2}(\d\.\d{4}) {2}\S.*$/gm)].map((match) => Number(match[1]));
    assert.equal(scores.length, 5, out);
    for (const [i, score] of scores.entries()) {
      assert.ok(score >= 0 && score <= 1, `score ${score}`);
      if (i > 0) assert.ok(score <= scores[i - 1]!, 'best first');
    }
  });

  it("read-feature-lmdb prints an image's boxes and the feature shapes, raw and padded", () => {
    const out = runExample('read-feature-lmdb.mjs');
    assert.match(out, /: 6 images, e\.g\. 30, 9, 49, 25, 36/);
    assert.match(out, /image 30: 640 x 428 pixels, 37 detected regions/);
    assert.match(out, /^features \[38, 2048\]$/m);
    assert.match(out, /^spatials .* \[38, 5\]$/m);
    assert.match(out, /region 0 \(whole image\): box \[0, 0, 640, 428, 273920\]/);
    assert.match(out, /padded to 101: features \[101, 2048\], spatials \[101, 5\], image mask \[101\] with 38 ones/);
    const other = runExample(
      'read-feature-lmdb.mjs',
      join(
        root,
        'test/fixtures/datasets/kit/datasets/coco/features_100/COCO_trainval_resnext152_faster_rcnn_genome.lmdb',
      ),
      '9',
    );
    assert.match(other, /image 9: /);
  });

  it('fine-tune-custom-task trains a custom task with AdamW: the loss goes down, the weights are saved', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vilbert-example-'));
    try {
      const saved = join(dir, 'fine-tuned.safetensors');
      const out = runExample('fine-tune-custom-task.mjs', '--save', saved);
      const losses = [...out.matchAll(/^step (\d+) loss ([\d.]+) accuracy ([\d.]+)$/gm)].map((match) =>
        Number(match[2]),
      );
      assert.equal(losses.length, 12, out);
      const summary = /^loss ([\d.]+) -> ([\d.]+) /m.exec(out);
      assert.ok(summary, out);
      const [first, last] = [Number(summary[1]), Number(summary[2])];
      assert.ok(first > 0.6 && first < 0.8, `the first steps' loss ${first} is a 3-way BCE at chance (~0.69)`);
      assert.ok(last < 0.75 * first, `loss ${first} -> ${last}`);
      assert.ok(losses.at(-1)! < losses[0]!, out);
      assert.ok(existsSync(saved));
      assert.ok(readRawWeights(saved).has('vil_tri_prediction.weight'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
