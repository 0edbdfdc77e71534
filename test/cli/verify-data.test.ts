import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../../bin/vilbert.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../../../test/fixtures/datasets', import.meta.url));
const vilbert = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

test('verify-data: every split of the kit equals what the reference loaders returned', () => {
  const run = vilbert('verify-data', join(fixtures, 'kit'), join(fixtures, 'expected'));
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /^30 passed, 0 failed$/m);
  for (const task of [
    'TASK1_VQA',
    'TASK2_GenomeQA',
    'TASK4_Visual7w',
    'TASK7_RetrievalCOCO',
    'TASK8_RetrievalFlickr30k',
    'TASK9_refcoco',
    'TASK10_refcoco+',
    'TASK11_refcocog',
    'TASK12_NLVR2',
    'TASK13_VisualEntailment',
    'TASK15_GQA',
    'TASK17_GuessWhatPointing',
    'CC_ConceptualCaptions',
  ]) {
    assert.match(run.stdout, new RegExp(`^ok +${task.replace('+', '\\+')} `, 'm'), task);
  }
});

test('verify-data fails, naming the item and element, when a golden differs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'verify-data-'));
  try {
    const expected = join(dir, 'expected');
    cpSync(join(fixtures, 'expected', 'TASK13_VisualEntailment'), join(expected, 'TASK13_VisualEntailment'), {
      recursive: true,
    });
    const metaPath = join(expected, 'TASK13_VisualEntailment', 'dev__val__VisualEntailmentDataset', 'meta.json');
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { len: number };
    meta.len += 1;
    writeFileSync(metaPath, JSON.stringify(meta));
    const run = vilbert('verify-data', join(fixtures, 'kit'), expected);
    assert.equal(run.status, 1);
    assert.match(run.stdout, /FAIL TASK13_VisualEntailment dev .*\n +length 3, reference 4/);
    assert.match(run.stdout, /^1 passed, 1 failed$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('verify-data names a feature store the kit lacks, and exits non-zero when there is nothing to check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'verify-data-'));
  try {
    const expected = join(dir, 'expected');
    cpSync(join(fixtures, 'expected', 'TASK7_RetrievalCOCO'), join(expected, 'TASK7_RetrievalCOCO'), {
      recursive: true,
    });
    const kit = join(dir, 'kit');
    cpSync(join(fixtures, 'kit'), kit, { recursive: true });
    rmSync(join(kit, 'datasets', 'coco', 'features_100', 'COCO_trainval_resnext152_faster_rcnn_genome.lmdb'), {
      recursive: true,
    });
    const missing = vilbert('verify-data', kit, expected);
    assert.equal(missing.status, 1);
    assert.match(
      missing.stdout,
      /^FAIL TASK7_RetrievalCOCO train \(train, RetreivalDataset\): features_h5path1 .*COCO_trainval_resnext152_faster_rcnn_genome\.lmdb does not exist$/m,
    );
    assert.match(missing.stdout, /^0 passed, 3 failed$/m);

    const empty = join(dir, 'empty');
    cpSync(join(fixtures, 'expected', 'TASK7_RetrievalCOCO'), join(empty, 'not-a-task'), { recursive: true });
    const nothing = vilbert('verify-data', join(fixtures, 'kit'), empty);
    assert.equal(nothing.status, 1);
    assert.match(nothing.stdout, /^nothing to check: .* has no TASK<id>_<name>\/ or CC_ConceptualCaptions\/ folders$/m);

    const absent = vilbert('verify-data', join(fixtures, 'kit'), join(dir, 'absent'));
    assert.equal(absent.status, 1);
    assert.match(absent.stderr, /EXPECTED .*absent is not a folder/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
