// One VQA training step of the full-size model: bert_base_6layer_6conect
// VILBertForVLTasks with task tokens, random init (torch.manualSeed(0); no
// checkpoint needed), train mode (dropout on), batch 8 of real VQA shapes
// (23 tokens + the task token, 101 regions of 2048-d features, 5-d boxes, 3129
// soft targets): forward, the VL-classifier loss (BCE-with-logits mean x 3129,
// forwardTask), backward, one AdamW step (correct_bias false, the reference's
// one-group-per-parameter lr/decay split, referenceParamGroups) and zero_grad.
// With VILBERT_REFERENCE_DIR set, the reference's VILBertForVLTasks does the
// same in a Python process in the same run (bench/reference/train_step.py),
// alternating with ours; medians after warm-up, per phase and in total.
//   VILBERT_REFERENCE_DIR=/path/to/vilbert-multi-task node dist/bench/train-step.js [--threads 2] [--repeats 3] [--warmup 1] [--batch 8] [--all-heads] [--bf16]
// --all-heads adds a row where our forward computes every head, as the
// reference's forward always does (forwardTask computes only the loss's head).
// --bf16 runs ours as train-tasks --bf16 does (autocast; float32 weights and AdamW state)
// against the reference's float32 step.
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '../src/torch/index.js';
import { fullSizeConfig } from './full-size.js';
import { VILBertForVLTasks } from '../src/model/vilbert.js';
import { forwardTask, prepareBatch, taskLoss, type TaskBatch } from '../src/task-step/step.js';
import { AdamW, referenceParamGroups } from '../src/train/adamw.js';
import { ReferenceProcess, median } from './harness.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    batch: { type: 'string', default: '8' },
    'all-heads': { type: 'boolean', default: false },
    bf16: { type: 'boolean', default: false },
  },
});
const threads = Number(values.threads);
const B = Number(values.batch);
const T = 23;
const R = 101;
const LABELS = 3129;
const LR = 4e-5; // TASK1's lr; the only task, so base_lr and loss scale 1
const warmup = Number(values.warmup);
const repeats = Number(values.repeats);
const startLoad = loadavg()
  .map((v) => v.toFixed(2))
  .join(' ');
torch.setNumThreads(threads);
torch.manualSeed(0);

const config = fullSizeConfig();
// --bf16: ours under bfloat16 autocast (train-tasks --bf16); the reference stays in float32.
const model = new VILBertForVLTasks(config).train().setPrecision(values.bf16 ? 'bf16' : 'fp32');
const groups = referenceParamGroups(model, LR);
const optimizer = new AdamW(groups, { eps: 1e-6, correctBias: false });
const batch: TaskBatch = {
  features: torch.randn([B, R, 2048]).keep(),
  spatials: torch.rand([B, R, 5]).keep(),
  image_mask: torch.ones([B, R], { dtype: 'int64' }).keep(),
  question: torch.randint(4, 30000, [B, T]).keep(),
  target: torch.rand([B, LABELS]).gt(0.999).to('float32').keep(), // a few soft scores of 1 per row
  input_mask: torch.ones([B, T], { dtype: 'int64' }).keep(),
  segment_ids: torch.zeros([B, T], { dtype: 'int64' }).keep(),
};
const task = { type: 'VL-classifier', process: 'normal', number: 1 } as const;

const PHASES = ['forward+loss', 'backward', 'optimizer step', 'zero_grad'] as const;
type Phases = [number, number, number, number];

/** One step; returns the milliseconds of each phase (freeing the graph counts to backward). */
function step(allHeads: boolean): Phases {
  const t0 = performance.now();
  let t1 = t0;
  torch.scope(() => {
    let loss: torch.Tensor;
    if (allHeads) {
      const prepared = prepareBatch(batch, task.process, task.number);
      loss = taskLoss(task.type, model.call(prepared.inputs), prepared).loss;
    } else {
      loss = forwardTask(model, batch, task).loss;
    }
    loss.item(); // the training log reads it, as the reference's float(loss)
    t1 = performance.now();
    loss.backward();
  });
  const t2 = performance.now();
  optimizer.step();
  const t3 = performance.now();
  model.zeroGrad();
  const t4 = performance.now();
  return [t1 - t0, t2 - t1, t3 - t2, t4 - t3];
}

const referenceDir = process.env.VILBERT_REFERENCE_DIR;
const python = process.env.VILBERT_PYTHON ?? '/usr/bin/python3';
const reference = referenceDir
  ? new ReferenceProcess(python, [
      fileURLToPath(new URL('../../bench/reference/train_step.py', import.meta.url)),
      String(threads),
      String(B),
      String(T),
      String(R),
    ])
  : null;
if (reference) console.log(`reference: ${await reference.readLine()} (${referenceDir})`);
else
  console.log(
    'reference: skipped (set VILBERT_REFERENCE_DIR to a checkout of facebookresearch/vilbert-multi-task to run it side by side)',
  );
console.log(
  `VQA training step, VILBertForVLTasks bert_base_6layer_6conect (random init, task tokens, train mode), ` +
    `${model.numParameters().toLocaleString('en-US')} parameters in ${groups.length} AdamW groups, B=${B}, T=${T}+1, R=${R}, ${threads} threads` +
    `; ours in ${model.precision}${values.bf16 ? ' (target: <= 0.6 of the reference float32 step)' : ''}`,
);

async function referenceStep(): Promise<Phases> {
  await reference!.time('step');
  return (await reference!.readLine()).split(' ').map(Number) as Phases;
}

function summarise(name: string, ours: Phases[], theirs: Phases[] | null): void {
  const total = (rows: Phases[]) => rows.map((row) => row.reduce((a, b) => a + b, 0));
  const show = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
  const oursTotal = median(total(ours));
  if (theirs) {
    const theirsTotal = median(total(theirs));
    console.log(
      `${name.padEnd(40)} ours ${show(oursTotal)}   reference ${show(theirsTotal)}   ratio ${(oursTotal / theirsTotal).toFixed(3)} (target <= 0.8) ` +
        `${oursTotal / theirsTotal <= 0.8 ? 'met' : 'NOT met'}`,
    );
    const [oursMin, theirsMin] = [Math.min(...total(ours)), Math.min(...total(theirs))];
    console.log(
      `  runs (s): ours ${total(ours)
        .map((v) => (v / 1000).toFixed(2))
        .join(' ')} | reference ${total(theirs)
        .map((v) => (v / 1000).toFixed(2))
        .join(' ')}`,
    );
    console.log(
      `  fastest runs: ours ${show(oursMin)}, reference ${show(theirsMin)}, ratio ${(oursMin / theirsMin).toFixed(3)} (less sensitive to other load on the machine)`,
    );
  } else {
    console.log(
      `${name.padEnd(40)} ours ${show(oursTotal)}   (runs ${total(ours)
        .map((v) => (v / 1000).toFixed(2))
        .join(' ')} s)`,
    );
  }
  PHASES.forEach((phase, i) => {
    const o = median(ours.map((row) => row[i]!));
    const line = `  ${phase.padEnd(16)} ours ${show(o)}`;
    if (!theirs) return console.log(line);
    const r = median(theirs.map((row) => row[i]!));
    console.log(`${line}   reference ${show(r)}   ratio ${(o / r).toFixed(3)}`);
  });
}

const variants: [string, boolean][] = [['fwd+bwd+AdamW step (forwardTask)', false]];
if (values['all-heads']) variants.push(['same, our forward computing all heads', true]);
for (const [name, allHeads] of variants) {
  const ours: Phases[] = [];
  const theirs: Phases[] = [];
  for (let i = 0; i < warmup + repeats; i++) {
    const o = step(allHeads);
    const r = reference ? await referenceStep() : null;
    if (i < warmup) continue;
    ours.push(o);
    if (r) theirs.push(r);
  }
  summarise(name, ours, reference ? theirs : null);
}

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
