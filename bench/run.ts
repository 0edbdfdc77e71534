// `npm run bench`: every benchmark in turn, each in its own process (so one's memory peak
// or allocator state does not colour the next), with the environment passed through
// (VILBERT_REFERENCE_DIR for the reference side). Extra arguments name benchmarks to run,
// e.g. `npm run bench -- data-pipeline`.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ALL = ['bert-layer', 'vilbert-model', 'precision', 'data-pipeline', 'train-step', 'train-iteration'];
const chosen = process.argv.slice(2);
const unknown = chosen.filter((name) => !ALL.includes(name));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; choose from ${ALL.join(', ')}`);
  process.exit(2);
}
if (process.env.VILBERT_REFERENCE_DIR === undefined)
  console.log('VILBERT_REFERENCE_DIR is not set: the reference side of the model and data benchmarks is skipped');
let failed = 0;
for (const name of chosen.length > 0 ? chosen : ALL) {
  console.log(`\n== ${name}`);
  const result = spawnSync(process.execPath, [fileURLToPath(new URL(`./${name}.js`, import.meta.url))], {
    stdio: 'inherit',
  });
  if (result.status !== 0) {
    failed++;
    console.log(`${name} failed (${result.signal ?? `exit ${result.status}`})`);
  }
}
process.exit(failed === 0 ? 0 : 1);
