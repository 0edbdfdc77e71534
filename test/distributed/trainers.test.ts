// train-tasks and train-concap under `vilbert launch` with 2 ranks on the data kit and a
// tiny model: the weights of one process on the whole batch, every file written once (by
// rank 0), SIGINT stopping both ranks at one step, resume refusing another world size and
// continuing exactly with the same one, and a killed worker leaving a valid checkpoint.
//
// Run as a program (`node trainers.test.js <vilbert subcommand> ...`, which is also how
// `vilbert launch` starts its workers from here) this file is the vilbert CLI without
// dropout: every rank draws the same dropout masks (one seed, as in the reference), one
// process on the whole batch draws others, so only without dropout can their weights agree.
// The model's own dropouts are fixed at 0.1 (as the reference's), whatever the config says.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixture, packageRoot } from '../io/fixtures.js';
import { main } from '../../src/cli/main.js';
import { F, nn, type Tensor } from '../../src/torch/index.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { readCheckpointState } from '../../src/train/checkpoint.js';
import type { TrainTasksState } from '../../src/train/train-tasks.js';
import type { TrainConcapState } from '../../src/train/train-concap.js';
import { DataParallel, ProcessGroup } from '../../src/distributed/index.js';
import { TrainingDivergedError } from '../../src/train/run-log.js';
import { cleanEnv, freePort } from './helpers.js';

const BIN = join(packageRoot(), 'bin', 'vilbert.js');
const WITHOUT_DROPOUT = fileURLToPath(import.meta.url);
const asProgram = ['launch', 'train-tasks'].includes(process.argv[2] ?? '');
if (asProgram) {
  nn.Dropout.prototype.forward = function (this: nn.Dropout, input: Tensor): Tensor {
    return F.dropout(input, this.p, false);
  };
  process.exitCode = await main(process.argv);
}

// A copy (made when this file runs as tests): the datasets write their token caches into the kit, as the reference does.
const KIT = join(tmpdir(), `vilbert-dist-kit-${process.pid}`);
const CONFIG = fixture('train', 'tiny-config.json');
const TASKS_RUN = 'refcoco-refcoco+_tiny-config';
const CHECKPOINT = 'pytorch_ckpt_latest.safetensors';

/**
 * refcoco and refcoco+ (no random draws in their items; 8 and 4 training items, so that no
 * rank's batch is padded as DistributedSampler pads), a global batch of 4, 10 iterations, a
 * checkpoint after each.
 */
function tasksArgs(outputDir: string, extra: string[] = []): string[] {
  return [
    'train-tasks',
    '--config_file',
    CONFIG,
    '--from_pretrained',
    'none',
    '--tasks',
    '9-10',
    '--datasets_root',
    KIT,
    '--num_workers',
    '0',
    '--output_dir',
    outputDir,
    '--lr_scheduler',
    'warmup_linear',
    '--batch_size',
    '4',
    '--num_train_epochs',
    '1',
    '--train_iter_multiplier',
    '0.25',
    '--threads',
    '1',
    '--checkpoint_every',
    '1',
    '--dist_timeout',
    '1',
    ...extra,
  ];
}

interface Finished {
  code: number | null;
  stderr: string;
}

/** Runs the CLI at `program`; `watch` sees stderr as it grows. A run still going after 120 s is killed (and then fails its test). */
function run(args: string[], watch?: (stderr: string, child: ChildProcess) => void, program = BIN): Promise<Finished> {
  const child = spawn(process.execPath, [program, ...args], { env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    watch?.(stderr, child);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/** `vilbert launch` with 2 workers on a free port (passed to `watch` too). */
async function launch(
  args: string[],
  watch?: (stderr: string, child: ChildProcess, port: number) => void,
  program = BIN,
): Promise<Finished> {
  const port = await freePort();
  return run(
    ['launch', '--nproc_per_node', '2', '--master_port', String(port), '--stop_timeout', '5', ...args],
    watch && ((stderr, child) => watch(stderr, child, port)),
    program,
  );
}

/** The worker of a launch with RANK=rank, found by its environment. */
function workerPid(port: number, rank: number): number | null {
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0');
      if (env.includes(`MASTER_PORT=${port}`) && env.includes(`RANK=${rank}`)) return Number(entry);
    } catch {
      // gone, or not ours
    }
  }
  return null;
}

/** Launches `args` and SIGKILLs rank 1 once rank 0 has written `checkpoints` checkpoints; checks the launcher's report. */
async function launchAndKillRank1(args: string[], checkpoints: number): Promise<void> {
  let victim: number | null = null;
  const killed = await launch(args, (stderr, _child, port) => {
    if (victim === null && count(stderr, /^checkpoint /gm) >= checkpoints) {
      victim = workerPid(port, 1);
      if (victim !== null) process.kill(victim, 'SIGKILL');
    }
  });
  assert.ok(victim !== null, `rank 1 was never killed:\n${killed.stderr}`);
  assert.equal(killed.code, 137, killed.stderr);
  assert.match(
    killed.stderr,
    new RegExp(`vilbert launch: rank 1 \\(local rank 1, pid ${victim}\\) was killed by SIGKILL`),
  );
}

const PROC = existsSync('/proc/self/environ') ? {} : { skip: 'finding a worker by its environment needs /proc' };
const temp = () => mkdtempSync(join(tmpdir(), 'vilbert-dist-train-'));

function weights(path: string): Map<string, Float32Array> {
  const tensors = new Map<string, Float32Array>();
  for (const [name, raw] of readSafetensors(path).tensors) {
    if (raw.dtype === 'float32') tensors.set(name, new Float32Array(Uint8Array.from(raw.data).buffer));
  }
  return tensors;
}

function largestDifference(
  got: Map<string, Float32Array>,
  want: Map<string, Float32Array>,
): { name: string; difference: number } {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  let largest = { name: '', difference: 0 };
  for (const [name, values] of want) {
    const other = got.get(name)!;
    values.forEach((value, i) => {
      const difference = Math.abs(value - other[i]!);
      if (!(difference <= largest.difference)) largest = { name, difference };
    });
  }
  return largest;
}

/** metrics.jsonl as tag@step -> value; throws on a line that is not whole JSON or a repeated tag and step. */
function metricLines(dir: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')) {
    const { tag, step, value } = JSON.parse(line) as { tag: string; step: number; value: number };
    assert.ok(!values.has(`${tag}@${step}`), `${tag}@${step} written twice`);
    values.set(`${tag}@${step}`, value);
  }
  return values;
}

const trainMetrics = (dir: string) => new Map([...metricLines(dir)].filter(([key]) => key.startsWith('train/')));
const runStatus = (dir: string) =>
  (JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { status: string }).status;
const count = (text: string, pattern: RegExp) => (text.match(pattern) ?? []).length;

if (!asProgram) {
  cpSync(fixture('datasets', 'kit'), KIT, { recursive: true });
  after(() => rmSync(KIT, { recursive: true, force: true }));
  describeCollectives();
  describeTrainTasks();
  describeTrainConcap();
}

/** What the trainers add to DataParallel, on two ranks of one group in this process (each rank's calls run concurrently). */
function describeCollectives(): void {
  it("two ranks: rank 0's numbers (NaN kept), every rank's values, one rank's failure thrown on all, resume refused across world sizes", async () => {
    const masterPort = await freePort();
    const groups = await Promise.all(
      [0, 1].map((rank) =>
        ProcessGroup.init({
          rank,
          worldSize: 2,
          masterAddr: '127.0.0.1',
          masterPort,
          timeoutMs: 20_000,
          hostname: '127.0.0.1',
        }),
      ),
    );
    const ranks = groups.map((group, rank) => new DataParallel(group, rank));
    try {
      assert.deepEqual(await Promise.all(ranks.map((dp) => dp.broadcastNumbers([dp.rank, Number.NaN]))), [
        [0, Number.NaN],
        [0, Number.NaN],
      ]);
      const values = [
        { rank: 0, text: 'é' },
        { rank: 1, words: [1, 2, 3], longer: 'x'.repeat(300) },
      ];
      assert.deepEqual(await Promise.all(ranks.map((dp) => dp.gatherValues(values[dp.rank]))), [values, values]);
      const sums = await Promise.all(
        ranks.map((dp) => dp.sumOverRanksOrThrow(null, [dp.rank + 1, 0.5], () => new Error('unused'))),
      );
      assert.deepEqual(sums, [
        [3, 1],
        [3, 1],
      ]);
      const own = new TrainingDivergedError('rank 1: the loss is NaN');
      const failed = await Promise.allSettled(
        ranks.map((dp) =>
          dp.sumOverRanksOrThrow(dp.rank === 1 ? own : null, [1], () => new Error('another rank diverged')),
        ),
      );
      assert.deepEqual(
        failed.map((result) => result.status === 'rejected' && String(result.reason)),
        ['Error: another rank diverged', 'TrainingDivergedError: rank 1: the loss is NaN'],
      );
      ranks[0]!.checkResumable(2, 'ckpt');
      assert.throws(
        () => ranks[0]!.checkResumable(1, 'ckpt'),
        /^Error: ckpt: saved by a run of 1 process, this run has 2 processes; .* resume it without vilbert launch$/,
      );
      assert.throws(
        () => ranks[0]!.localBatchSize(1, 'TASK9 refcoco: batch size 1'),
        /^RangeError: TASK9 refcoco: batch size 1 cannot be split over 2 processes$/,
      );
    } finally {
      for (const dp of ranks) dp.destroy();
    }
  });
}

function describeTrainTasks(): void {
  describe('train-tasks under vilbert launch', () => {
    const singleOut = temp();
    const pairOut = temp();
    const single = join(singleOut, TASKS_RUN);
    const pair = join(pairOut, TASKS_RUN);
    let singleRun: Finished;
    let pairRun: Finished;

    before(async () => {
      singleRun = await run(tasksArgs(singleOut)); // first: it writes the kit's token caches
      pairRun = await launch(tasksArgs(pairOut));
    });

    it('without dropout, 2 ranks with half of each batch end with the weights of 1 process on the whole batch', async () => {
      const out = temp();
      const [alone, together] = [join(out, 'alone'), join(out, 'together')];
      const aloneRun = await run(tasksArgs(alone), undefined, WITHOUT_DROPOUT);
      assert.equal(aloneRun.code, 0, aloneRun.stderr);
      const togetherRun = await launch(tasksArgs(together), undefined, WITHOUT_DROPOUT);
      assert.equal(togetherRun.code, 0, togetherRun.stderr);
      const [aloneDir, togetherDir] = [join(alone, TASKS_RUN), join(together, TASKS_RUN)];
      const { name, difference } = largestDifference(
        weights(join(togetherDir, 'pytorch_model_0.safetensors')),
        weights(join(aloneDir, 'pytorch_model_0.safetensors')),
      );
      assert.ok(difference <= 1e-5, `${name} differs by ${difference}`);
      // The logged loss and score are the global batch's (sumOverRanks), comparable to 1 process's.
      const want = trainMetrics(aloneDir);
      const got = trainMetrics(togetherDir);
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
      for (const [key, value] of want)
        assert.ok(
          Math.abs(got.get(key)! - value) <= 1e-5 * Math.max(1, Math.abs(value)),
          `${key}: ${got.get(key)} vs ${value}`,
        );
      rmSync(out, { recursive: true, force: true });
    });

    it('only rank 0 writes: one run directory, the files of 1 process, every line once', () => {
      assert.equal(singleRun.code, 0, singleRun.stderr);
      assert.equal(pairRun.code, 0, pairRun.stderr);
      assert.deepEqual(readdirSync(pairOut), [TASKS_RUN]);
      assert.deepEqual(readdirSync(pair).sort(), readdirSync(single).sort());
      const scores = [...metricLines(pair).keys()].filter((key) => /^val\/.*_score@/.test(key)); // every line whole, none twice
      assert.equal(
        readFileSync(join(pair, 'out.txt'), 'utf8').trim().split('\n').length,
        scores.length,
        'one out.txt line per validation',
      );
      assert.equal(runStatus(pair), 'finished');
      assert.equal(count(pairRun.stderr, /^run directory \S+: 2 tasks/gm), 1, 'one setup line');
      assert.equal(count(pairRun.stderr, /^checkpoint /gm), 10, 'one line per checkpoint');
    });

    it('resuming with another world size is refused before any file changes', async () => {
      const before = ['run.json', 'metrics.jsonl', 'out.txt', CHECKPOINT].map((file) => readFileSync(join(pair, file)));
      const refused = await run(tasksArgs(pairOut, ['--resume_file', join(pair, CHECKPOINT)]));
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        /pytorch_ckpt_latest\.safetensors: saved by a run of 2 processes, this run has 1 process; .*resume it under vilbert launch with 2 processes/,
      );
      assert.deepEqual(
        ['run.json', 'metrics.jsonl', 'out.txt', CHECKPOINT].map((file) => readFileSync(join(pair, file))),
        before,
      );
    });

    it('SIGINT to the launcher stops both ranks at one step; rank 0 saves the checkpoint', async () => {
      const out = temp();
      let sent = false;
      const stopped = await launch(tasksArgs(out), (stderr, child) => {
        if (!sent && /^validation /m.test(stderr)) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      assert.equal(stopped.code, 130, stopped.stderr);
      const dir = join(out, TASKS_RUN);
      assert.equal(runStatus(dir), 'stopped');
      assert.equal(count(stopped.stderr, /checkpoint saved in/g), 1, stopped.stderr);
      const state = readCheckpointState<TrainTasksState>(join(dir, CHECKPOINT)).trainer;
      assert.equal(state.worldSize, 2);
      rmSync(out, { recursive: true, force: true });
    });

    it(
      'a SIGKILLed worker: the launcher names it; the last checkpoint resumes with 2 ranks to the same end',
      PROC,
      async () => {
        const out = temp();
        await launchAndKillRank1(tasksArgs(out), 3);
        const dir = join(out, TASKS_RUN);
        const saved = readCheckpointState<TrainTasksState>(join(dir, CHECKPOINT)).trainer;
        assert.equal(saved.worldSize, 2);
        assert.ok(saved.epoch === 0 && saved.step >= 3, `checkpoint at epoch ${saved.epoch}, step ${saved.step}`);

        const resumed = await launch(tasksArgs(out, ['--resume_file', join(dir, CHECKPOINT)]));
        assert.equal(resumed.code, 0, resumed.stderr);
        assert.deepEqual(
          readFileSync(join(dir, 'pytorch_model_0.safetensors')),
          readFileSync(join(pair, 'pytorch_model_0.safetensors')),
        );
        assert.deepEqual(trainMetrics(dir), trainMetrics(pair));
        rmSync(out, { recursive: true, force: true });
      },
    );

    after(() => {
      rmSync(singleOut, { recursive: true, force: true });
      rmSync(pairOut, { recursive: true, force: true });
    });
  });
}

function describeTrainConcap(): void {
  /** 4 records, a global batch of 2 (1 per rank), 2 epochs, a checkpoint after each step. */
  const concapArgs = (outputDir: string, extra: string[] = []) => [
    'train-concap',
    '--file_path',
    join(KIT, 'data', 'conceptual_caption'),
    '--config_file',
    CONFIG,
    '--from_pretrained',
    'none',
    '--output_dir',
    outputDir,
    '--train_batch_size',
    '2',
    '--num_train_epochs',
    '2',
    '--threads',
    '1',
    '--checkpoint_every',
    '1',
    '--dist_timeout',
    '1',
    ...extra,
  ];

  describe('train-concap under vilbert launch', () => {
    const out = temp();
    let finished: Finished;
    before(async () => {
      finished = await launch(concapArgs(out));
    });

    it('2 ranks train on alternate batches and rank 0 writes one set of files', () => {
      assert.equal(finished.code, 0, finished.stderr);
      assert.deepEqual(readdirSync(out), ['tiny-config']);
      const dir = join(out, 'tiny-config');
      assert.deepEqual(readdirSync(dir).sort(), [
        'command.txt',
        'metrics.jsonl',
        'out.txt',
        'pytorch_ckpt_latest.safetensors',
        'pytorch_model_0.safetensors',
        'pytorch_model_1.safetensors',
        'report.html',
        'run.json',
      ]);
      assert.equal(runStatus(dir), 'finished');
      // 4 records, 1 per rank and step: 2 steps an epoch.
      const metrics = metricLines(dir);
      assert.deepEqual(
        [...metrics.keys()].filter((key) => key.startsWith('train/Conceptual_Caption_loss@')),
        [
          'train/Conceptual_Caption_loss@0',
          'train/Conceptual_Caption_loss@1',
          'train/Conceptual_Caption_loss@2',
          'train/Conceptual_Caption_loss@3',
        ],
      );
      assert.deepEqual(
        [...metrics.keys()].filter((key) => key.startsWith('val/Conceptual_Caption_score@')),
        ['val/Conceptual_Caption_score@1', 'val/Conceptual_Caption_score@3'],
      );
      assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8').trim().split('\n').length, 2);
      const state = readCheckpointState<TrainConcapState>(join(dir, CHECKPOINT)).trainer;
      assert.equal(state.worldSize, 2);
      assert.equal(state.batchSize, 1);
      assert.equal(state.otherTrainRandom?.length, 1, "rank 1's masking draws are saved beside rank 0's");
    });

    it(
      "after a SIGKILLed worker, the last checkpoint resumes with 2 ranks to the same end (each rank's masking draws restored)",
      PROC,
      async () => {
        const killedOut = temp();
        await launchAndKillRank1(concapArgs(killedOut), 1);
        const dir = join(killedOut, 'tiny-config');
        const resumed = await launch(concapArgs(killedOut, ['--resume_file', join(dir, CHECKPOINT)]));
        assert.equal(resumed.code, 0, resumed.stderr);
        assert.match(resumed.stderr, /resuming from .* at epoch \d, iteration \d/);
        assert.deepEqual(
          readFileSync(join(dir, 'pytorch_model_1.safetensors')),
          readFileSync(join(out, 'tiny-config', 'pytorch_model_1.safetensors')),
        );
        assert.deepEqual(metricLines(dir), metricLines(join(out, 'tiny-config')));
        rmSync(killedOut, { recursive: true, force: true });
      },
    );

    after(() => rmSync(out, { recursive: true, force: true }));
  });
}
