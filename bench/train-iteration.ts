// One multi-task training iteration of the 12-in-1 command
// (--tasks 1-2-4-7-8-9-10-11-12-13-15-17 --task_specific_tokens) on the
// full-size bert_base_6layer_6conect VILBertForVLTasks (random init,
// torch.manualSeed(0), train mode), as src/train/train-tasks.ts runs one: per
// task in --tasks order, its batch through forwardTask (the task's `process`
// reshaping, the task token, its head and loss), the loss times lr/base_lr,
// item(), backward, one AdamW step (referenceParamGroups, correct_bias false)
// and zeroGrad. Batches are synthetic (no datasets needed) with each task's
// real shapes from assets/tasks/vilbert_tasks.yml (max_seq_length,
// max_region_num, retrieval 4 candidates, NLVR2 image pairs, Visual7w 4 and
// GuessWhatPointing 204 pointing candidates after the first 101 regions) at a
// reduced batch size per task (--batch, default 2). With VILBERT_REFERENCE_DIR
// set, bench/reference/train_iteration.py runs the reference's own
// ForwardModelsTrain and train_tasks.py's loop body on the same shapes in the
// same run, alternating with ours; medians after warm-up.
//   VILBERT_REFERENCE_DIR=/path/to/vilbert-multi-task node dist/bench/train-iteration.js [--threads 2] [--repeats 2] [--warmup 1] [--batch 2] [--tasks 1-2-...] [--check-finite]
// --check-finite adds train-tasks' default NaN/Inf check of the loss and of every gradient (the reference has none).
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '../src/torch/index.js';
import { fullSizeConfig } from './full-size.js';
import { VILBertForVLTasks } from '../src/model/vilbert.js';
import { loadTaskRegistry, bundledTasksPath, type TaskConfig } from '../src/data/task-registry.js';
import { forwardTask, type TaskBatch } from '../src/task-step/step.js';
import { selectTasks, taskNumber } from '../src/train/task-data.js';
import { AdamW, referenceParamGroups } from '../src/train/adamw.js';
import { ReferenceProcess, median } from './harness.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '1' },
    batch: { type: 'string', default: '2' },
    tasks: { type: 'string', default: '1-2-4-7-8-9-10-11-12-13-15-17' },
    'check-finite': { type: 'boolean', default: false },
  },
});
const threads = Number(values.threads);
const b = Number(values.batch);
const warmup = Number(values.warmup);
const repeats = Number(values.repeats);
const checkFinite = values['check-finite'];
const startLoad = loadavg()
  .map((v) => v.toFixed(2))
  .join(' ');
torch.setNumThreads(threads);
torch.manualSeed(0);

const tasks = selectTasks(loadTaskRegistry(bundledTasksPath()), values.tasks, bundledTasksPath());
const baseLr = Math.min(...tasks.map((task) => task.lr));

/** What both sides build a task's synthetic batch from (sent to the reference as JSON). */
interface TaskShape {
  key: string;
  name: string;
  type: TaskConfig['type'];
  process: TaskConfig['process'];
  loss: TaskConfig['loss'];
  T: number;
  R: number;
  labels: number;
  candidates: number;
  lossScale: number;
}

/** Per-task label count / pointing candidates, as the datasets and heads have them. */
function shapeOf(task: TaskConfig): TaskShape {
  const labels =
    task.type === 'VL-classifier'
      ? 3129
      : task.type === 'VL-classifier-GQA'
        ? 1533
        : task.type === 'VL-binary-classifier'
          ? 2
          : task.type === 'VL-tri-classifier'
            ? 3
            : 0;
  // Visual7w: 3 wrong choices + the answer; GuessWhatPointing: 204 object slots (grounding.ts GUESSWHAT_CANDIDATES).
  const candidates =
    task.type === 'V-logit-mc' ? (task.name === 'GuessWhatPointing' ? 204 : 4) : task.process === 'retrieval' ? 4 : 0;
  if (task.process === 'dialog' || task.process === 'expand')
    throw new Error(`${task.key} ${task.name}: process '${task.process}' is not in this benchmark`);
  return {
    key: task.key,
    name: task.name,
    type: task.type,
    process: task.process,
    loss: task.loss,
    T: task.max_seq_length,
    R: task.max_region_num,
    labels,
    candidates,
    lossScale: task.lr / baseLr,
  };
}
const shapes = tasks.map(shapeOf);

/** Regions per sample row of the batch tensors: NLVR2 packs its two images into 2R rows. */
function syntheticBatch(shape: TaskShape): TaskBatch {
  const { T, R, candidates } = shape;
  const lead = shape.process === 'retrieval' ? [b, candidates] : [b];
  const regions = shape.process === 'nlvr' ? 2 * R : R;
  const oneHot = (rows: number, width: number) =>
    torch.op('scatter.value', torch.zeros([rows, width]), 1, torch.randint(0, width, [rows, 1]), 1);
  let target: torch.Tensor;
  switch (shape.type) {
    case 'VL-classifier':
    case 'VL-classifier-GQA':
    case 'VL-binary-classifier':
    case 'VL-tri-classifier':
      target = oneHot(b, shape.labels);
      break;
    case 'VL-logit':
      target = torch.zeros([b], { dtype: 'int64' }); // the positive is candidate 0
      break;
    case 'V-logit':
      target = torch.rand([b, R, 1]).gt(0.9).to('float32');
      break;
    case 'V-logit-mc':
      target = torch.rand([b, candidates, 1]).gt(0.75).to('float32');
      break;
    default:
      throw new Error(`task type ${shape.type} is not in this benchmark`);
  }
  const batch: TaskBatch = {
    features: torch.randn([...lead, regions, 2048]),
    spatials: torch.rand([...lead, regions, 5]),
    image_mask: torch.ones([...lead, regions], { dtype: 'int64' }),
    question: torch.randint(4, 30000, [...lead, T]),
    target,
    input_mask: torch.ones([...lead, T], { dtype: 'int64' }),
    segment_ids: torch.zeros([...lead, T], { dtype: 'int64' }),
  };
  if (shape.type === 'V-logit-mc') batch.multiple_choice_ids = torch.randint(0, R - 101, [b, candidates]);
  for (const tensor of Object.values(batch)) (tensor as torch.Tensor).keep();
  return batch;
}

const config = fullSizeConfig();
const model = new VILBertForVLTasks(config).train();
const groups = referenceParamGroups(model, baseLr);
const optimizer = new AdamW(groups, { eps: 1e-6, correctBias: false });
const batches = shapes.map(syntheticBatch);

const PHASES = ['forward+loss', 'backward', 'optimizer step', 'zero_grad', 'check finite'] as const;
type Phases = number[]; // per phase, ms

/** train-tasks.ts's checkGradients: one reduction over every gradient (the per-tensor search only runs on failure). */
function checkGradients(): void {
  torch.noGrad(() =>
    torch.scope(() => {
      const present = model
        .parameters()
        .map((parameter) => parameter.grad)
        .filter((gradient): gradient is torch.Tensor => gradient !== null);
      const total = torch
        .stack(present.map((gradient) => gradient.abs().sum()))
        .sum()
        .item();
      if (!Number.isFinite(total)) throw new Error('a gradient is not finite');
    }),
  );
}

/** One iteration over the tasks; per task the milliseconds of each phase. */
function iteration(): Phases[] {
  return shapes.map((shape, index) => {
    const t0 = performance.now();
    let t1 = t0;
    let check = 0;
    torch.scope(() => {
      const out = forwardTask(model, batches[index]!, {
        type: shape.type,
        process: shape.process,
        number: taskNumber(tasks[index]!),
      });
      const scaled = out.loss.mul(shape.lossScale);
      const value = scaled.item();
      if (checkFinite && !Number.isFinite(value)) throw new Error(`${shape.key}: the loss is ${value}`);
      t1 = performance.now();
      scaled.backward();
      if (checkFinite) {
        const c0 = performance.now();
        checkGradients();
        check = performance.now() - c0;
      }
    });
    const t2 = performance.now();
    optimizer.step();
    const t3 = performance.now();
    model.zeroGrad();
    const t4 = performance.now();
    return [t1 - t0, t2 - t1 - check, t3 - t2, t4 - t3, check];
  });
}

const referenceDir = process.env.VILBERT_REFERENCE_DIR;
const python = process.env.VILBERT_PYTHON ?? '/usr/bin/python3';
const reference = referenceDir
  ? new ReferenceProcess(python, [
      fileURLToPath(new URL('../../bench/reference/train_iteration.py', import.meta.url)),
      String(threads),
      String(b),
      JSON.stringify(shapes),
      String(baseLr),
    ])
  : null;
if (reference) console.log(`reference: ${await reference.readLine()} (${referenceDir})`);
else
  console.log(
    'reference: skipped (set VILBERT_REFERENCE_DIR to a checkout of facebookresearch/vilbert-multi-task to run it side by side)',
  );
console.log(
  `training iteration over ${tasks.length} tasks (${values.tasks}), VILBertForVLTasks bert_base_6layer_6conect (random init, task tokens, train mode), ` +
    `${model.numParameters().toLocaleString('en-US')} parameters, ${groups.length} AdamW groups, batch ${b} per task, synthetic inputs, ${threads} threads` +
    `${checkFinite ? ', with the finite checks' : ''}`,
);
for (const shape of shapes) {
  const rows =
    shape.process === 'retrieval'
      ? `${b}x${shape.candidates} rows`
      : shape.process === 'nlvr'
        ? `${b} pairs = ${2 * b} rows`
        : `${b} rows`;
  console.log(
    `  ${shape.key.padEnd(6)} ${shape.name.padEnd(18)} ${shape.type.padEnd(20)} ${shape.process.padEnd(9)} T=${shape.T}+1 R=${shape.R} ${rows}${shape.candidates && shape.type === 'V-logit-mc' ? `, ${shape.candidates} candidates` : ''}, loss x${shape.lossScale}`,
  );
}

async function referenceIteration(): Promise<Phases[]> {
  await reference!.time('iter');
  return JSON.parse(await reference!.readLine()) as Phases[];
}

const ours: Phases[][] = [];
const theirs: Phases[][] = [];
for (let i = 0; i < warmup + repeats; i++) {
  const o = iteration();
  const r = reference ? await referenceIteration() : null;
  if (i < warmup) continue;
  ours.push(o);
  if (r) theirs.push(r);
}

const sum = (xs: number[]) => xs.reduce((a, c) => a + c, 0);
const totals = (runs: Phases[][], phases: number = PHASES.length) =>
  runs.map((run) => sum(run.map((task) => sum(task.slice(0, phases)))));
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const oursTotal = median(totals(ours));
if (reference) {
  const theirsTotal = median(totals(theirs));
  console.log(
    `${`one iteration, ${tasks.length} tasks`.padEnd(28)} ours ${s(oursTotal)}   reference ${s(theirsTotal)}   ratio ${(oursTotal / theirsTotal).toFixed(3)} (target <= 0.8) ${oursTotal / theirsTotal <= 0.8 ? 'met' : 'NOT met'}`,
  );
  const [oursMin, theirsMin] = [Math.min(...totals(ours)), Math.min(...totals(theirs))];
  console.log(
    `  runs (s): ours ${totals(ours)
      .map((v) => (v / 1000).toFixed(1))
      .join(' ')} | reference ${totals(theirs)
      .map((v) => (v / 1000).toFixed(1))
      .join(' ')}`,
  );
  console.log(
    `  fastest runs: ours ${s(oursMin)}, reference ${s(theirsMin)}, ratio ${(oursMin / theirsMin).toFixed(3)} (less sensitive to other load on the machine)`,
  );
  if (checkFinite)
    console.log(
      `  ours without the finite checks ${s(median(totals(ours, 4)))}, ratio ${(median(totals(ours, 4)) / theirsTotal).toFixed(3)}`,
    );
} else {
  console.log(
    `${`one iteration, ${tasks.length} tasks`.padEnd(28)} ours ${s(oursTotal)}   (runs ${totals(ours)
      .map((v) => (v / 1000).toFixed(1))
      .join(' ')} s)`,
  );
}
console.log('  per phase, summed over the tasks (medians of the runs):');
PHASES.forEach((phase, p) => {
  if (phase === 'check finite' && !checkFinite) return;
  const o = median(ours.map((run) => sum(run.map((task) => task[p]!))));
  const line = `    ${phase.padEnd(16)} ours ${s(o)}`;
  if (!reference || p >= 4) return console.log(line);
  const r = median(theirs.map((run) => sum(run.map((task) => task[p]!))));
  console.log(`${line}   reference ${s(r)}   ratio ${(o / r).toFixed(3)}`);
});
console.log('  per task, all phases (medians of the runs):');
shapes.forEach((shape, t) => {
  const o = median(ours.map((run) => sum(run[t]!)));
  const line = `    ${shape.key.padEnd(6)} ${shape.name.padEnd(18)} ours ${s(o)}`;
  if (!reference) return console.log(line);
  const r = median(theirs.map((run) => sum(run[t]!)));
  console.log(`${line}   reference ${s(r)}   ratio ${(o / r).toFixed(3)}`);
});

console.log(
  `machine load average (1/5/15 min) at start ${startLoad}, at the end ${loadavg()
    .map((v) => v.toFixed(2))
    .join(' ')} (${availableParallelism()} cores)`,
);
const oursPeak = process.resourceUsage().maxRSS / 1024;
if (reference) {
  const theirsPeak = await reference.time('rss');
  console.log(
    `peak resident memory: ours ${oursPeak.toFixed(0)} MiB, reference ${theirsPeak.toFixed(0)} MiB, ratio ${(oursPeak / theirsPeak).toFixed(3)}`,
  );
  reference.close();
} else {
  console.log(`peak resident memory: ours ${oursPeak.toFixed(0)} MiB`);
}
