// The full-size bert_base_6layer_6conect VILBertForVLTasks (random weights):
// inference forward at batch 32 (23 text tokens + the task token, 101 regions),
// with every head (as the reference) and with one head; loading a 1 GB
// checkpoint (.bin and .safetensors). With VILBERT_REFERENCE_DIR set to a
// checkout of the original repository, the reference model runs on the same
// shapes in the same run (alternating) and the ratios are printed.
//   VILBERT_REFERENCE_DIR=/path/to/vilbert-multi-task node dist/bench/vilbert-model.js [--threads 2] [--repeats 5]
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '../src/torch/index.js';
import { fullSizeConfig, randomInputs } from './full-size.js';
import { VILBertForVLTasks } from '../src/model/vilbert.js';
import { readWeights, writeWeights } from '../src/io/weights.js';
import { ReferenceProcess, alternate, median, report, timeMs } from './harness.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    batch: { type: 'string', default: '32' },
  },
});
const threads = Number(values.threads);
const B = Number(values.batch);
const T = 23;
const R = 101;
const schedule = { warmup: Number(values.warmup), repeats: Number(values.repeats) };
torch.setNumThreads(threads);
torch.manualSeed(0);

const model = new VILBertForVLTasks(fullSizeConfig()).eval();
const inputs = randomInputs(B, T, R);
const forwardAll = () => timeMs(() => torch.scope(() => torch.inferenceMode(() => void model.call(inputs))));
const forwardVqa = () =>
  timeMs(() => torch.scope(() => torch.inferenceMode(() => void model.call(inputs, { heads: ['vil_prediction'] }))));

const referenceDir = process.env.VILBERT_REFERENCE_DIR;
const python = process.env.VILBERT_PYTHON ?? '/usr/bin/python3';
const reference = referenceDir
  ? new ReferenceProcess(python, [
      fileURLToPath(new URL('../../bench/reference/vilbert_model.py', import.meta.url)),
      String(threads),
      String(B),
      String(T),
      String(R),
    ])
  : null;
if (reference) console.log(`reference: ${await reference.readLine()} (${referenceDir})`);
console.log(
  `VILBertForVLTasks bert_base_6layer_6conect, ${model.numParameters().toLocaleString('en-US')} parameters, B=${B}, T=${T}+1, R=${R}, ${threads} threads`,
);

if (reference) {
  const all = report(
    'forward, all heads (as the reference)',
    await alternate(forwardAll, () => reference.time('fwd'), schedule),
  );
  const vqa = await alternate(forwardVqa, () => reference.time('fwd'), schedule);
  const one = report('forward, vil_prediction only', vqa);
  for (const row of [all, one])
    console.log(`${row.name}: ratio ${row.ratio.toFixed(3)} (target <= 0.75) ${row.ratio <= 0.75 ? 'met' : 'NOT met'}`);
} else {
  for (const [name, run] of [
    ['forward, all heads', forwardAll],
    ['forward, vil_prediction only', forwardVqa],
  ] as const) {
    run();
    const times = Array.from({ length: schedule.repeats }, run);
    console.log(
      `${name.padEnd(36)} ours ${median(times).toFixed(1)} ms (set VILBERT_REFERENCE_DIR for the reference side)`,
    );
  }
}

// Peak memory of the forward passes (before any checkpoint is loaded, which holds a second copy).
const oursPeak = process.resourceUsage().maxRSS / 1024;
if (reference) {
  const theirs = Number(await reference.time('rss'));
  console.log(
    `peak resident memory (forwards): ours ${oursPeak.toFixed(0)} MiB, reference ${theirs.toFixed(0)} MiB, ratio ${(oursPeak / theirs).toFixed(3)} (target <= 1)`,
  );
} else {
  console.log(`peak resident memory (forwards): ours ${oursPeak.toFixed(0)} MiB`);
}

const directory = join(tmpdir(), `vilbert-bench-${process.pid}`);
const binPath = `${directory}.bin`;
const safetensorsPath = `${directory}.safetensors`;
try {
  writeWeights(binPath, model.stateDict(), 'torch');
  writeWeights(safetensorsPath, model.stateDict(), 'safetensors');
  for (const [name, path] of [
    ['load 1 GB .bin', binPath],
    ['load 1 GB .safetensors', safetensorsPath],
  ] as const) {
    const ours = () =>
      timeMs(() => {
        const weights = readWeights(path);
        model.loadStateDict(weights);
        for (const tensor of weights.values()) tensor.dispose();
      });
    if (reference && path === binPath) {
      report(name, await alternate(ours, () => reference.time(`load ${path}`), { warmup: 0, repeats: 3 }));
    } else {
      const times = [ours(), ours(), ours()];
      console.log(
        `${name.padEnd(36)} ours ${median(times).toFixed(1)} ms${reference ? ' (the reference cannot read safetensors)' : ''}`,
      );
    }
  }
} finally {
  rmSync(binPath, { force: true });
  rmSync(safetensorsPath, { force: true });
}
reference?.close();
