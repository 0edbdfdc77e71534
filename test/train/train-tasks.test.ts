// train-tasks end to end on the data kit with a tiny model: the run directory,
// exact resume after SIGKILL, SIGINT, and a NaN stopping the run without
// touching the last checkpoint.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, packageRoot } from '../io/fixtures.js';
import { readMetrics } from '../../src/report/metrics-log.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';

const BIN = join(packageRoot(), 'bin', 'vilbert.js');
// A copy: the datasets write their token caches into the kit, as the reference does.
const KIT = mkdtempSync(join(tmpdir(), 'vilbert-train-kit-'));
cpSync(fixture('datasets', 'kit'), KIT, { recursive: true });
const CONFIG = fixture('train', 'tiny-config.json');

function baseArgs(outputDir: string, extra: string[] = []): string[] {
  return [
    BIN,
    'train-tasks',
    '--config_file',
    CONFIG,
    '--from_pretrained',
    'none',
    '--tasks',
    '7-9-12',
    '--datasets_root',
    KIT,
    '--num_workers',
    '0',
    '--output_dir',
    outputDir,
    '--task_specific_tokens',
    '--lr_scheduler',
    'warmup_linear',
    '--batch_size',
    '2',
    '--num_train_epochs',
    '2',
    '--threads',
    '1',
    ...extra,
  ];
}

function runDir(outputDir: string): string {
  const [name] = readdirSync(outputDir);
  assert.ok(name, `no run directory in ${outputDir}`);
  return join(outputDir, name);
}

/** Train tags (step -> value) of a run's metrics.jsonl. */
function trainLosses(dir: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const [tag, points] of readMetrics(join(dir, 'metrics.jsonl'))) {
    if (!tag.startsWith('train/')) continue;
    for (const point of points) values.set(`${tag}@${point.step}`, point.value);
  }
  return values;
}

function temp(): string {
  return mkdtempSync(join(tmpdir(), 'vilbert-train-'));
}

describe('train-tasks on the data kit', () => {
  const reference = temp();
  const first = spawnSync(process.execPath, baseArgs(reference, ['--checkpoint_every', '1']), { encoding: 'utf8' });

  it('runs the round-robin loop and writes the run directory', () => {
    assert.equal(first.status, 0, first.stderr);
    const dir = runDir(reference);
    assert.match(dir, /RetrievalCOCO-refcoco-NLVR2_tiny-config$/);
    for (const file of [
      'command.txt',
      'out.txt',
      'run.json',
      'metrics.jsonl',
      'pytorch_model_0.safetensors',
      'pytorch_model_1.safetensors',
      'pytorch_ckpt_latest.safetensors',
    ]) {
      assert.ok(existsSync(join(dir, file)), `${file} missing`);
    }
    const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { status: string; tasks: { key: string }[] };
    assert.equal(run.status, 'finished');
    assert.deepEqual(
      run.tasks.map((task) => task.key),
      ['TASK7', 'TASK9', 'TASK12'],
    );
    const metrics = readMetrics(join(dir, 'metrics.jsonl'));
    for (const name of ['RetrievalCOCO', 'refcoco', 'NLVR2']) {
      const losses = metrics.get(`train/${name}_loss`) ?? [];
      assert.ok(losses.length > 2, `${name}: ${losses.length} train losses`);
      assert.ok(
        losses.every((point) => Number.isFinite(point.value) && point.value > 0),
        `${name} losses ${losses.map((p) => p.value).join(', ')}`,
      );
      assert.ok((metrics.get(`val/${name}_score`) ?? []).length >= 1, `${name} was never evaluated`);
    }
    // warmup_linear: the very first update of the first task uses lr 0 as in the reference; the log shows the lr after the schedule's step.
    assert.match(
      readFileSync(join(dir, 'out.txt'), 'utf8'),
      /Validation \[refcoco\]: loss \d+\.\d{3} score \d+\.\d{3}/,
    );
    const weights = readSafetensors(join(dir, 'pytorch_model_1.safetensors'));
    assert.ok(weights.tensors.has('bert.embeddings.task_embeddings.weight'));
    assert.ok(weights.tensors.has('vil_logit.weight'));
  });

  it('resumes after SIGKILL at a random iteration with bit-identical per-step losses', async () => {
    const killed = temp();
    const killAfter = 2 + Math.floor(Math.random() * 6); // checkpoints seen before the kill
    const child = spawn(process.execPath, baseArgs(killed, ['--checkpoint_every', '1']), {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let seen = 0;
    let stderr = '';
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        seen = (stderr.match(/^checkpoint /gm) ?? []).length;
        if (seen >= killAfter && child.exitCode === null) child.kill('SIGKILL');
      });
      child.on('exit', () => resolve());
    });
    assert.ok(seen >= killAfter, `the run ended before ${killAfter} checkpoints:\n${stderr}`);
    const dir = runDir(killed);
    const resumed = spawnSync(
      process.execPath,
      baseArgs(killed, ['--checkpoint_every', '1', '--resume_file', join(dir, 'pytorch_ckpt_latest.safetensors')]),
      { encoding: 'utf8' },
    );
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming from .* at epoch \d, iteration \d+/);
    const want = trainLosses(runDir(reference));
    const got = trainLosses(dir);
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `killed after ${killAfter} checkpoints`);
    for (const [key, value] of want)
      assert.equal(got.get(key), value, `${key} (killed after ${killAfter} checkpoints)`);
    rmSync(killed, { recursive: true, force: true });
  });

  it('SIGINT saves a checkpoint and exits 130; the run then resumes to the same end', async () => {
    const interrupted = temp();
    const child = spawn(process.execPath, baseArgs(interrupted), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/validation /.test(stderr) && !child.killed) child.kill('SIGINT');
      });
      child.on('exit', (exitCode) => resolve(exitCode));
    });
    assert.equal(code, 130, stderr);
    const dir = runDir(interrupted);
    assert.match(stderr, /checkpoint saved in/);
    assert.equal((JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { status: string }).status, 'stopped');
    const resumed = spawnSync(
      process.execPath,
      baseArgs(interrupted, ['--resume_file', join(dir, 'pytorch_ckpt_latest.safetensors')]),
      { encoding: 'utf8' },
    );
    assert.equal(resumed.status, 0, resumed.stderr);
    const want = trainLosses(runDir(reference));
    const got = trainLosses(dir);
    for (const [key, value] of want) assert.equal(got.get(key), value, key);
    rmSync(interrupted, { recursive: true, force: true });
  });

  it('a NaN loss stops the run naming iteration, task and tensor, and leaves the last checkpoint as it was', () => {
    const broken = temp();
    const copy = join(broken, 'run');
    cpSync(runDir(reference), copy, { recursive: true });
    const weights = readSafetensors(join(copy, 'pytorch_model_1.safetensors'));
    const poisoned = new Map(weights.tensors);
    const bias = poisoned.get('vil_logit.bias')!;
    const nan = new Float32Array([Number.NaN]);
    poisoned.set('vil_logit.bias', { ...bias, data: new Uint8Array(nan.buffer) });
    const poisonedPath = join(broken, 'nan.safetensors');
    writeSafetensors(poisonedPath, poisoned);
    const before = readFileSync(join(copy, 'pytorch_ckpt_latest.safetensors'));
    const result = spawnSync(
      process.execPath,
      [...baseArgs(broken), '--from_pretrained', poisonedPath, '--save_name', 'x'],
      { encoding: 'utf8' },
    );
    assert.equal(result.status, 1);
    assert.match(result.stderr, /iteration 0 \(epoch 0, step 0\), TASK7 RetrievalCOCO: the loss is NaN/);
    assert.deepEqual(readFileSync(join(copy, 'pytorch_ckpt_latest.safetensors')), before);
    const dir = join(
      broken,
      readdirSync(broken).find((name) => name.endsWith('-x'))!,
    );
    assert.ok(!existsSync(join(dir, 'pytorch_ckpt_latest.safetensors')), 'no checkpoint written after the NaN');
    assert.equal((JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { status: string }).status, 'failed');
    rmSync(broken, { recursive: true, force: true });
  });

  it('an overflowing gradient under a finite loss stops the resumed run naming step, task and parameter; the checkpoint stays', () => {
    // A good first epoch, then a second one resumed from its checkpoint with the scales below.
    const broken = temp();
    const good = spawnSync(process.execPath, baseArgs(broken, ['--num_train_epochs', '1']), { encoding: 'utf8' });
    assert.equal(good.status, 0, good.stderr);
    const copy = runDir(broken);
    // Loss scales are each task's lr over the smallest: with TASK9 at 2e-41 the other tasks'
    // losses are scaled by 1e36. The scaled loss is finite; its gradients' squares are not.
    const bundled = readFileSync(join(packageRoot(), 'assets', 'tasks', 'vilbert_tasks.yml'), 'utf8');
    const [head, tail] = bundled.split(/^TASK9:$/m) as [string, string];
    const registry = join(broken, 'tasks.yml');
    writeFileSync(registry, `${head}TASK9:${tail.replace(/^ {2}lr: 0\.00002$/m, '  lr: 2.0e-41')}`);
    const latest = join(copy, 'pytorch_ckpt_latest.safetensors');
    const before = readFileSync(latest);
    const result = spawnSync(
      process.execPath,
      baseArgs(broken, ['--resume_file', latest, '--tasks_config', registry]),
      { encoding: 'utf8' },
    );
    assert.equal(result.status, 1, result.stderr);
    assert.match(
      result.stderr,
      /iteration \d+ \(epoch \d+, step \d+\), TASK7 RetrievalCOCO: the gradient of [\w.]+ is too large for float32 \(largest \|value\| [\d.]+e\+\d+; its squares overflow/,
    );
    assert.deepEqual(readFileSync(latest), before, 'the last good checkpoint is untouched');
    assert.equal((JSON.parse(readFileSync(join(copy, 'run.json'), 'utf8')) as { status: string }).status, 'failed');
    rmSync(broken, { recursive: true, force: true });
  });

  after(() => {
    rmSync(KIT, { recursive: true, force: true });
    rmSync(reference, { recursive: true, force: true });
  });

  it('bad flags and tasks are refused before any training', () => {
    const out = temp();
    const unknownTask = spawnSync(process.execPath, [...baseArgs(out), '--tasks', '1-99'], { encoding: 'utf8' });
    assert.equal(unknownTask.status, 1);
    assert.match(unknownTask.stderr, /TASK99 is not in/);
    const missing = spawnSync(process.execPath, [...baseArgs(out), '--from_pretrained', '/nonexistent.bin'], {
      encoding: 'utf8',
    });
    assert.match(missing.stderr, /--from_pretrained \/nonexistent.bin: no such file/);
    const badScheduler = spawnSync(process.execPath, [...baseArgs(out), '--lr_scheduler', 'linear'], {
      encoding: 'utf8',
    });
    assert.notEqual(badScheduler.status, 0);
    assert.match(badScheduler.stderr, /Allowed choices are mannul, warmup_linear/);
    rmSync(out, { recursive: true, force: true });
  });
});
