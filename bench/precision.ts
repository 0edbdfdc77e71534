// Inference of the full-size model in each precision, ours beside the reference's:
// bert_base_6layer_6conect VILBertForVLTasks with task tokens, random weights, batch 32
// (23 tokens + the task token, 101 regions), every head, no grad. Ours: fp32, bf16
// (setPrecision: autocast), int8 (setPrecision: per-channel dynamic quantization on the
// onednn engine). The reference (bench/reference/precision.py): fp32, torch.autocast bf16,
// quantize_dynamic int8 with the onednn engine. Alternating, medians after warm-up. Then the
// peak resident memory of two forwards in each precision, each in a fresh process, measured
// from once the model is ready (VmHWM restarted through /proc/self/clear_refs).
//   VILBERT_REFERENCE_DIR=/path/to/vilbert-multi-task node dist/bench/precision.js [--threads 2] [--repeats 5] [--batch 32]
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '../src/torch/index.js';
import { fullSizeConfig, randomInputs } from './full-size.js';
import { VILBertForVLTasks } from '../src/model/vilbert.js';
import { type Precision, cpuPrecisionSupport, precisionNotice } from '../src/model/precision.js';
import { ReferenceProcess, alternate, median, report, timeMs } from './harness.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    batch: { type: 'string', default: '32' },
    memory: { type: 'string' }, // child mode: print the peak MiB of two forwards in this precision
  },
});
const threads = Number(values.threads);
const B = Number(values.batch);
const T = 23;
const R = 101;
const schedule = { warmup: Number(values.warmup), repeats: Number(values.repeats) };
const PRECISIONS: Precision[] = ['fp32', 'bf16', 'int8'];
torch.setNumThreads(threads);

function buildModel(precision: Precision): VILBertForVLTasks {
  torch.manualSeed(0);
  return new VILBertForVLTasks(fullSizeConfig()).eval().setPrecision(precision);
}

torch.manualSeed(1);
const inputs = randomInputs(B, T, R);
const forward = (model: VILBertForVLTasks) => () =>
  timeMs(() => torch.scope(() => torch.inferenceMode(() => void model.call(inputs))));

const peakMiB = (): number => Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;

if (values.memory !== undefined) {
  const model = buildModel(values.memory as Precision);
  torch.emptyCache();
  writeFileSync('/proc/self/clear_refs', '5'); // VmHWM restarts from the resident size now
  forward(model)();
  forward(model)();
  console.log(peakMiB().toFixed(1));
  process.exit(0);
}

const support = cpuPrecisionSupport();
console.log(
  `CPU: ${support.cpu}; bf16 native: ${support.bf16Native}, int8 native: ${support.int8Native}, oneDNN: ${support.mkldnn}, int8 engine: ${support.int8Engine}`,
);
for (const precision of PRECISIONS) {
  const notice = precisionNotice(precision);
  if (notice) console.log(notice);
}
const referenceDir = process.env.VILBERT_REFERENCE_DIR;
const python = process.env.VILBERT_PYTHON ?? '/usr/bin/python3';
const script = fileURLToPath(new URL('../../bench/reference/precision.py', import.meta.url));
const referenceArgs = [String(threads), String(B), String(T), String(R)];
const reference = referenceDir ? new ReferenceProcess(python, [script, ...referenceArgs]) : null;
if (reference) console.log(`reference: ${await reference.readLine()} (${referenceDir})`);
console.log(`VILBertForVLTasks bert_base_6layer_6conect, every head, B=${B}, T=${T}+1, R=${R}, ${threads} threads`);

// One model per precision (the same weights): bf16 keeps its bfloat16 weight copies between forwards.
const models = Object.fromEntries(PRECISIONS.map((precision) => [precision, buildModel(precision)])) as Record<
  Precision,
  VILBertForVLTasks
>;
const ours = Object.fromEntries(PRECISIONS.map((precision) => [precision, forward(models[precision])])) as Record<
  Precision,
  () => number
>;

const times = new Map<string, number>();
for (const precision of PRECISIONS) {
  if (reference) {
    const row = report(
      `forward ${precision}`,
      await alternate(ours[precision], () => reference.time(`fwd ${precision}`), schedule),
    );
    times.set(`ours ${precision}`, row.ours);
    times.set(`torch ${precision}`, row.reference);
  } else {
    ours[precision]();
    const measured = Array.from({ length: schedule.repeats }, ours[precision]);
    times.set(`ours ${precision}`, median(measured));
    console.log(`forward ${precision.padEnd(28)} ours ${median(measured).toFixed(1)} ms`);
  }
}
const ratio = (a: string, b: string, target: number) => {
  const value = times.get(a)! / times.get(b)!;
  console.log(
    `${`${a} / ${b}`.padEnd(28)} ${value.toFixed(3)} (target <= ${target}) ${value <= target ? 'met' : 'NOT met'}`,
  );
};
if (reference) {
  ratio('ours fp32', 'torch fp32', 1);
  ratio('ours bf16', 'torch fp32', 0.5);
  ratio('ours int8', 'torch fp32', 0.35);
  ratio('ours bf16', 'torch bf16', 0.9);
  ratio('ours int8', 'torch int8', 0.9);
}
ratio('ours bf16', 'ours fp32', 1);
ratio('ours int8', 'ours fp32', 1);
reference?.close();
for (const model of Object.values(models)) model.dispose();

// Peak memory: each precision in a process of its own, so that nothing of another stays resident.
const self = fileURLToPath(import.meta.url);
const peaks = new Map<string, number>();
for (const precision of PRECISIONS) {
  const child = spawnSync(process.execPath, [self, '--memory', precision, '--threads', String(threads)], {
    encoding: 'utf8',
  });
  if (child.status !== 0) throw new Error(`memory probe ${precision} failed:\n${child.stderr}`);
  peaks.set(`ours ${precision}`, Number(child.stdout.trim()));
  if (referenceDir) {
    const theirs = spawnSync(python, [script, ...referenceArgs, precision], {
      encoding: 'utf8',
      input: `mem ${precision}\nquit\n`,
    });
    if (theirs.status !== 0) throw new Error(`reference memory probe ${precision} failed:\n${theirs.stderr}`);
    peaks.set(`torch ${precision}`, Number(theirs.stdout.trim().split('\n').at(-1)));
  }
}
console.log(
  `peak resident MiB over two forwards, from the ready model: ${[...peaks].map(([name, mib]) => `${name} ${mib.toFixed(0)}`).join(', ')}`,
);
const int8Memory = peaks.get('ours int8')! / peaks.get('ours fp32')!;
console.log(
  `ours int8 / ours fp32 peak memory ${int8Memory.toFixed(3)} (target <= 0.6) ${int8Memory <= 0.6 ? 'met' : 'NOT met'}`,
);
