// `vilbert convert IN OUT` and `vilbert inspect FILE`.
import type { Command } from 'commander';
import { convertWeights, readRawWeights } from '../io/weights.js';
import { elementCount } from '../io/raw-tensor.js';
import { rankConfigFits } from '../model/shapes.js';

export function registerCheckpoints(program: Command): void {
  program
    .command('convert')
    .description(
      "convert weights between PyTorch .bin/.pt (zip or legacy format) and .safetensors; the output format follows OUT's extension",
    )
    .argument('<in>', 'weights file (.bin/.pt in either torch format, or .safetensors; detected from its content)')
    .argument('<out>', 'file to write (.safetensors, or .bin/.pt/.pth for the torch zip format)')
    .action((input: string, output: string) => {
      // Written under a temporary name, then renamed: an existing OUT stays intact until the new file is complete.
      const { tensors, format } = convertWeights(input, output);
      console.log(`wrote ${tensors} tensors to ${output} (${format})`);
    });

  program
    .command('inspect')
    .description('list the tensors of a weights file and tell which bundled config and model it fits')
    .argument('<file>', 'weights file (.bin/.pt or .safetensors)')
    .option('--keys', 'print every key with its dtype and shape', false)
    .action((file: string, options: { keys: boolean }) => {
      const tensors = readRawWeights(file);
      let parameters = 0;
      const dtypes = new Map<string, number>();
      for (const [key, tensor] of tensors) {
        parameters += elementCount(tensor.shape);
        dtypes.set(tensor.dtype, (dtypes.get(tensor.dtype) ?? 0) + 1);
        if (options.keys) console.log(`${key}\t${tensor.dtype}\t[${tensor.shape.join(', ')}]`);
      }
      console.log(
        `${file}: ${tensors.size} tensors, ${parameters.toLocaleString('en-US')} elements ` +
          `(${[...dtypes].map(([dtype, count]) => `${count} ${dtype}`).join(', ')})`,
      );
      const shapes = new Map([...tensors].map(([key, tensor]) => [key, tensor.shape]));
      const [best] = rankConfigFits(shapes);
      if (!best) return;
      const exact = best.missing.length === 0 && best.unexpected.length === 0 && best.mismatched.length === 0;
      const variant = `${best.model}, config ${best.config}, task tokens ${best.taskTokens ? 'on' : 'off'}, visual_target ${best.visualTarget}`;
      if (exact) {
        console.log(`fits exactly: ${variant}`);
      } else {
        console.log(
          `fits no bundled config exactly; closest: ${variant} (${best.missing.length} missing, ${best.unexpected.length} unexpected, ${best.mismatched.length} shape mismatches)`,
        );
        for (const key of best.mismatched.slice(0, 10)) console.log(`  shape mismatch: ${key}`);
        for (const key of best.missing.slice(0, 10)) console.log(`  missing: ${key}`);
        for (const key of best.unexpected.slice(0, 10)) console.log(`  unexpected: ${key}`);
      }
    });
}
