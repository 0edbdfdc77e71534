// train-concap end to end on the data kit's Conceptual Captions with a tiny model: flags,
// the run directory, exact resume after SIGKILL, SIGINT, a NaN stopping the run, the
// objectives' loss switches, and the pre-trained weights starting train-tasks.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { fixture, packageRoot } from '../io/fixtures.js';
import { readMetrics } from '../../src/report/metrics-log.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { registerTrainConcap } from '../../src/cli/train-concap.js';
import { TRAIN_CONCAP_DEFAULTS, trainConcap, type TrainConcapArgs } from '../../src/train/train-concap.js';
import { formatG } from '../../src/train/run-log.js';
import { pretrainedWeightsFile } from '../../src/train/model-from-flags.js';
import { TRAIN_TASKS_DEFAULTS, trainTasks } from '../../src/train/train-tasks.js';
import { TrainingDivergedError, type TrainEvent } from '../../src/train/run-log.js';

const CLI = join(packageRoot(), 'dist', 'test', 'train', 'train-concap-cli.js');
// A copy: the datasets write their token caches into the kit, as the reference does.
const KIT = mkdtempSync(join(tmpdir(), 'vilbert-concap-kit-'));
cpSync(fixture('datasets', 'kit'), KIT, { recursive: true });
const CC = join(KIT, 'data', 'conceptual_caption');
const CONFIG = fixture('train', 'tiny-config.json');
const RUN = 'tiny-config'; // <output_dir>/<config stem>

/** 4 training records in batches of 1, 2 epochs: 8 optimisation steps. */
function cliArgs(outputDir: string, extra: string[] = []): string[] {
  return [
    CLI,
    'train-concap',
    '--file_path',
    CC,
    '--config_file',
    CONFIG,
    '--from_pretrained',
    'none',
    '--output_dir',
    outputDir,
    '--train_batch_size',
    '1',
    '--num_train_epochs',
    '2',
    '--threads',
    '1',
    '--checkpoint_every',
    '1',
    ...extra,
  ];
}

function libraryArgs(outputDir: string, overrides: Partial<TrainConcapArgs> = {}): TrainConcapArgs {
  return {
    ...TRAIN_CONCAP_DEFAULTS,
    file_path: CC,
    config_file: CONFIG,
    from_pretrained: 'none',
    output_dir: outputDir,
    train_batch_size: 1,
    num_train_epochs: 1,
    ...overrides,
  };
}

/** Every scalar of a run (tag@step -> value). */
function allMetrics(dir: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const [tag, points] of readMetrics(join(dir, 'metrics.jsonl')))
    for (const point of points) values.set(`${tag}@${point.step}`, point.value);
  return values;
}

function assertSameMetrics(got: Map<string, number>, want: Map<string, number>, context: string): void {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), context);
  for (const [key, value] of want) assert.equal(got.get(key), value, `${key} (${context})`);
}

const temp = () => mkdtempSync(join(tmpdir(), 'vilbert-concap-'));
const runStatus = (dir: string) =>
  (JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { status: string }).status;

describe('train-concap flags', () => {
  const program = new Command('vilbert');
  registerTrainConcap(program);
  const command = program.commands.find((candidate) => candidate.name() === 'train-concap')!;

  it('has every flag of train_concap.py with its default, each documented', () => {
    const reference: Record<string, unknown> = {
      file_path: 'data/conceptual_caption/',
      from_pretrained: 'bert-base-uncased',
      bert_model: 'bert-base-uncased',
      output_dir: 'save',
      config_file: 'config/bert_base_6layer_6conect.json',
      max_seq_length: 36,
      train_batch_size: 512,
      learning_rate: 1e-4,
      num_train_epochs: 10,
      start_epoch: 0,
      warmup_proportion: 0.1,
      img_weight: 1,
      no_cuda: false,
      on_memory: false,
      do_lower_case: true,
      local_rank: -1,
      seed: 42,
      gradient_accumulation_steps: 1,
      fp16: false,
      loss_scale: 0,
      dynamic_attention: false,
      num_workers: 25,
      save_name: '',
      baseline: false,
      freeze: -1,
      distributed: false,
      without_coattention: false,
      visual_target: 0,
      objective: 0,
      num_negative: 255,
      resume_file: '',
      adam_epsilon: 1e-8,
    };
    for (const [name, value] of Object.entries(reference)) {
      const option = command.options.find((candidate) => candidate.long === `--${name}`);
      assert.ok(option, `--${name} missing`);
      assert.equal(option.defaultValue, value, `--${name} default`);
      assert.ok(option.description.length > 10, `--${name} has no help`);
    }
    assert.match(command.helpInformation(), /--objective <n> +0: masked words/);
  });

  it('parses values as the reference, booleans as documented, and refuses what does not run', async () => {
    let seen: Record<string, unknown> | undefined;
    const probe = new Command('vilbert').exitOverride();
    registerTrainConcap(probe);
    const sub = probe.commands[0]!.exitOverride().configureOutput({ writeErr: () => {} });
    sub.action((options: Record<string, unknown>) => {
      seen = options;
    });
    await probe.parseAsync(
      [
        'train-concap',
        '--objective',
        '1',
        '--learning_rate',
        '4e-5',
        '--check_finite',
        'False',
        '--do_lower_case',
        'yes',
      ],
      { from: 'user' },
    );
    assert.equal(seen?.objective, 1);
    assert.equal(seen?.learning_rate, 4e-5);
    assert.equal(seen?.check_finite, false);
    assert.equal(seen?.do_lower_case, true);
    await assert.rejects(probe.parseAsync(['train-concap', '--seed', 'x'], { from: 'user' }), /expected an integer/);

    const out = temp();
    const refused = (flags: string[]) => spawnSync(process.execPath, [...cliArgs(out), ...flags], { encoding: 'utf8' });
    assert.match(refused(['--fp16']).stderr, /--fp16 is not supported/);
    assert.match(refused(['--local_rank', '0']).stderr, /--local_rank 0: distributed runs are not available/);
    assert.match(refused(['--objective', '3']).stderr, /--objective must be 0, 1 or 2, got 3/);
    // A published name is fetched into the cache: here from a loopback port nothing listens on.
    const download = spawnSync(process.execPath, [...cliArgs(out), '--from_pretrained', 'bert-base-uncased'], {
      encoding: 'utf8',
      env: { ...process.env, VILBERT_MIRROR: 'http://127.0.0.1:1/', VILBERT_CACHE: join(out, 'cache') },
    });
    assert.equal(download.status, 1);
    assert.match(
      download.stderr,
      /bert-base-uncased is not in the cache .* could not be fetched .*no connection.*`npx vilbert download bert-base-uncased`/,
    );
    rmSync(out, { recursive: true, force: true });
  });

  it("finds the weights of a folder and formats numbers as Python's %.6g", () => {
    const folder = temp();
    writeSafetensors(join(folder, 'model.safetensors'), new Map());
    assert.equal(pretrainedWeightsFile(folder), join(folder, 'model.safetensors'));
    assert.equal(pretrainedWeightsFile('none'), null);
    assert.equal(pretrainedWeightsFile(''), null);
    rmSync(folder, { recursive: true, force: true });
    const python: [number, string][] = [
      [9.722222222222223e-5, '9.72222e-05'],
      [1e-4, '0.0001'],
      [5e-5, '5e-05'],
      [0.000123456789, '0.000123457'],
      [0, '0'],
      [123456789, '1.23457e+08'],
      [100000, '100000'],
      [1, '1'],
      [0.5, '0.5'],
    ];
    for (const [value, text] of python) assert.equal(formatG(value), text, String(value));
  });
});

describe('train-concap on the data kit', () => {
  const reference = temp();
  const first = spawnSync(process.execPath, cliArgs(reference), { encoding: 'utf8' });
  const referenceRun = join(reference, RUN);

  it("trains two epochs and writes the run directory, the reference's tags and out.txt lines", () => {
    assert.equal(first.status, 0, first.stderr);
    for (const file of [
      'command.txt',
      'out.txt',
      'run.json',
      'metrics.jsonl',
      'report.html',
      'pytorch_model_0.safetensors',
      'pytorch_model_1.safetensors',
      'pytorch_ckpt_latest.safetensors',
    ]) {
      assert.ok(existsSync(join(referenceRun, file)), `${file} missing`);
    }
    assert.equal(runStatus(referenceRun), 'finished');
    const metrics = readMetrics(join(referenceRun, 'metrics.jsonl'));
    for (const name of ['masked_loss_t', 'masked_loss_v', 'next_sentence_loss', 'lr']) {
      const points = metrics.get(`train/Conceptual_Caption_${name}`) ?? [];
      assert.deepEqual(
        points.map((point) => point.step),
        [0, 1, 2, 3, 4, 5, 6, 7],
        name,
      );
      assert.ok(
        points.every((point) => Number.isFinite(point.value) && point.value >= 0),
        name,
      );
    }
    // WarmupLinear (W = 0.8, T = 8) steps before the optimiser: update g runs at lambda(g + 1).
    const lr = metrics.get('train/Conceptual_Caption_lr')!;
    assert.ok(Math.abs(lr[0]!.value - 1e-4 * (7 / 7.2)) < 1e-12, `first lr ${lr[0]!.value}`);
    assert.equal(lr[7]!.value, 0);
    for (const name of ['mask_t', 'maks_v', 'nsp', 'score']) {
      assert.deepEqual(
        (metrics.get(`val/Conceptual_Caption_${name}`) ?? []).map((point) => point.step),
        [3, 7],
        name,
      );
    }
    const lines = readFileSync(join(referenceRun, 'out.txt'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 2);
    for (const line of lines)
      assert.match(line, /^Validation \[Conceptual_Caption\]: masked_t \d+\.\d{3} masked_v \d+\.\d{3} NSP \d+\.\d{3}$/);
    const weights = readSafetensors(join(referenceRun, 'pytorch_model_1.safetensors'));
    assert.ok(weights.tensors.has('cls.bi_seq_relationship.weight'));
    assert.ok(weights.tensors.has('bert.v_embeddings.image_embeddings.weight'));
  });

  it('resumes after SIGKILL at a random iteration with bit-identical per-step losses', async () => {
    const killed = temp();
    const killAfter = 2 + Math.floor(Math.random() * 6); // of the 8 checkpoints the run writes
    const child = spawn(process.execPath, cliArgs(killed), { stdio: ['ignore', 'ignore', 'pipe'] });
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
    assert.equal(child.signalCode, 'SIGKILL', 'killed before it finished');
    const dir = join(killed, RUN);
    const resumed = spawnSync(
      process.execPath,
      cliArgs(killed, ['--resume_file', join(dir, 'pytorch_ckpt_latest.safetensors')]),
      { encoding: 'utf8' },
    );
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming from .* at epoch \d, iteration \d/);
    assertSameMetrics(allMetrics(dir), allMetrics(referenceRun), `killed after ${killAfter} checkpoints`);
    assert.deepEqual(
      readFileSync(join(dir, 'pytorch_model_1.safetensors')),
      readFileSync(join(referenceRun, 'pytorch_model_1.safetensors')),
    );
    rmSync(killed, { recursive: true, force: true });
  });

  it('SIGINT saves a checkpoint and exits 130; the run then resumes to the same end', async () => {
    const interrupted = temp();
    const child = spawn(process.execPath, cliArgs(interrupted), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/validation after epoch 0/.test(stderr) && !child.killed) child.kill('SIGINT');
      });
      child.on('exit', (exitCode) => resolve(exitCode));
    });
    assert.equal(code, 130, stderr);
    assert.match(stderr, /checkpoint saved in/);
    const dir = join(interrupted, RUN);
    assert.equal(runStatus(dir), 'stopped');
    const resumed = spawnSync(
      process.execPath,
      cliArgs(interrupted, ['--resume_file', join(dir, 'pytorch_ckpt_latest.safetensors')]),
      { encoding: 'utf8' },
    );
    assert.equal(resumed.status, 0, resumed.stderr);
    assertSameMetrics(allMetrics(dir), allMetrics(referenceRun), 'interrupted after epoch 0');
    rmSync(interrupted, { recursive: true, force: true });
  });

  it('a NaN loss stops the run naming iteration and loss, without writing a checkpoint', async () => {
    const broken = temp();
    const weights = readSafetensors(join(referenceRun, 'pytorch_model_1.safetensors'));
    const poisoned = new Map(weights.tensors);
    const bias = poisoned.get('cls.bi_seq_relationship.bias')!;
    poisoned.set('cls.bi_seq_relationship.bias', {
      ...bias,
      data: new Uint8Array(new Float32Array([Number.NaN, 0]).buffer),
    });
    const poisonedPath = join(broken, 'nan.safetensors');
    writeSafetensors(poisonedPath, poisoned);
    await assert.rejects(trainConcap(libraryArgs(broken, { from_pretrained: poisonedPath })), (error: unknown) => {
      assert.ok(error instanceof TrainingDivergedError);
      assert.match(error.message, /^iteration 0 \(epoch 0, step 0\), Conceptual_Caption: next_sentence_loss is NaN/);
      return true;
    });
    assert.ok(!existsSync(join(broken, RUN, 'pytorch_ckpt_latest.safetensors')), 'no checkpoint written after the NaN');
    assert.equal(runStatus(join(broken, RUN)), 'failed');
    rmSync(broken, { recursive: true, force: true });
  });

  it('objective 2 trains without the alignment loss; accumulation steps every second batch; --freeze and --without_coattention edit the config', async () => {
    const out = temp();
    const result = await trainConcap(
      libraryArgs(out, {
        objective: 2,
        train_batch_size: 2,
        gradient_accumulation_steps: 2,
        freeze: 5,
        without_coattention: true,
      }),
    );
    assert.equal(result.config.fixed_t_layer, 2, "the tiny config's first connection is after text layer 2");
    assert.equal(result.config.with_coattention, false);
    result.model.dispose();
    const metrics = readMetrics(join(out, RUN, 'metrics.jsonl'));
    const alignment = metrics.get('train/Conceptual_Caption_next_sentence_loss')!;
    assert.deepEqual(
      alignment.map((point) => [point.step, point.value]),
      [
        [1, 0],
        [3, 0],
      ],
    );
    // Two optimisation steps over 4 batches of 1: warm-up W = 0.2, so the first step runs at lambda(1) = (2 - 1) / (2 - 0.2).
    assert.ok(Math.abs(metrics.get('train/Conceptual_Caption_lr')![0]!.value - 1e-4 / 1.8) < 1e-12);
    rmSync(out, { recursive: true, force: true });
  });

  it('its pytorch_model_<epoch> starts train-tasks with every bert.* and cls.* weight loaded', async () => {
    const out = temp();
    const events: TrainEvent[] = [];
    const result = await trainTasks(
      {
        ...TRAIN_TASKS_DEFAULTS,
        config_file: CONFIG,
        from_pretrained: join(referenceRun, 'pytorch_model_1.safetensors'),
        tasks: '12',
        datasets_root: KIT,
        num_workers: 0,
        output_dir: out,
        batch_size: 2,
        num_train_epochs: 1,
        train_iter_multiplier: 0.034, // 2 iterations of NLVR2
      },
      { onEvent: (event) => events.push(event) },
    );
    result.model.dispose();
    assert.equal(result.iterations, 2);
    const loaded = events.find((event) => event.kind === 'pretrained');
    assert.ok(loaded?.kind === 'pretrained');
    assert.deepEqual(loaded.unexpectedKeys, []);
    assert.deepEqual(
      loaded.missingKeys.filter((key) => key.startsWith('bert.') || key.startsWith('cls.')),
      [],
    );
    assert.ok(loaded.missingKeys.includes('vil_logit.weight'), 'the task heads start at their initialisation');
    rmSync(out, { recursive: true, force: true });
  });

  after(() => {
    rmSync(KIT, { recursive: true, force: true });
    rmSync(reference, { recursive: true, force: true });
  });
});
