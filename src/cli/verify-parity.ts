// `vilbert verify-parity DIR`: compare with reference outputs, one line per tensor.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { FAMILIES, type Family, WEIGHT_FILES, type WeightVariant, verifyParity } from '../parity/verify-parity.js';

function familyList(value: string): Family[] {
  const families = value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
  for (const family of families) {
    if (!FAMILIES.includes(family as Family))
      throw new InvalidArgumentError(`unknown family '${family}' (one of ${FAMILIES.join(', ')})`);
  }
  return families as Family[];
}

function weightList(value: string): WeightVariant[] {
  if (value === 'all') return Object.keys(WEIGHT_FILES) as WeightVariant[];
  const variants = value.split(',');
  for (const variant of variants) {
    if (!(variant in WEIGHT_FILES))
      throw new InvalidArgumentError(`unknown weights '${variant}' (all, ${Object.keys(WEIGHT_FILES).join(', ')})`);
  }
  return variants as WeightVariant[];
}

export function registerVerifyParity(program: Command): void {
  program
    .command('verify-parity')
    .description('compare this implementation with reference PyTorch outputs in DIR (laid out like fixtures/parity)')
    .argument('<dir>', 'folder with config.json, weights_vltasks.*, inputs/forward/pretrain/train_step safetensors')
    .option(
      '--weights <list>',
      'weight files to load: all, or a comma list of safetensors, torch_legacy, torch_zip',
      weightList,
      ['safetensors'],
    )
    .option('--skip <families>', `comma list of families not to check (${FAMILIES.join(', ')})`, familyList, [])
    .option(
      '--numerics <mode>',
      'reference: LayerNorm/GeLU as the reference writes them (its float32 rounding); fused: the library default kernels',
      'reference',
    )
    .option('--quiet', 'print only mismatches, unchecked tensors and the summary', false)
    .action((dir: string, options: { weights: WeightVariant[]; skip: Family[]; quiet: boolean; numerics: string }) => {
      if (options.numerics !== 'reference' && options.numerics !== 'fused')
        throw new Error(`--numerics must be reference or fused, got '${options.numerics}'`);
      const numerics = options.numerics;
      let failures = 0;
      for (const weights of options.weights) {
        const report = verifyParity(dir, {
          weights,
          skip: new Set(options.skip),
          numerics,
          onProgress: (message) => console.error(`.. ${message}`),
        });
        for (const row of report.rows) {
          if (options.quiet && row.ok) continue;
          const status = row.ok ? 'ok      ' : 'MISMATCH';
          console.log(
            `${status} ${row.name.padEnd(64)} max|diff| ${row.maxAbsDiff.toExponential(2)}  (${row.bound})${row.problem ? `  ${row.problem}` : ''}`,
          );
        }
        for (const item of report.unchecked) console.log(`UNCHECKED ${item.name}: ${item.reason}`);
        const mismatches = report.rows.filter((row) => !row.ok).length;
        failures += mismatches + report.unchecked.length;
        console.log(
          `${report.weights}: ${report.rows.length - mismatches} passed, ${mismatches} failed, ${report.unchecked.length} unchecked` +
            (options.skip.length ? ` (skipped: ${options.skip.join(', ')})` : ''),
        );
      }
      if (failures > 0) process.exitCode = 1;
    });
}
