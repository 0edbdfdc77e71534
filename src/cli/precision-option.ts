// --precision for the commands that run a model for inference, and --bf16 for the trainers.
import { Option } from 'commander';
import { PRECISIONS, precisionNotice, type Precision } from '../model/precision.js';

export const precisionOption = (what = 'the model'): Option =>
  new Option(
    '--precision <precision>',
    `run ${what} in fp32 (as the reference), bf16 (bfloat16 matrix products, float32 LayerNorm and softmax) or int8 (dynamically quantized Linear layers)`,
  ).choices(PRECISIONS);

/** Says on stderr what a precision runs as on this machine, when that is not what was asked. */
export function reportPrecision(precision: Precision | undefined): void {
  const notice = precision === undefined ? null : precisionNotice(precision);
  if (notice !== null) process.stderr.write(`${notice}\n`);
}
