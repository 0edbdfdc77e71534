// `vilbert verify-data KIT EXPECTED`: every dataset split of an expected/ folder,
// built from a kit laid out like the original datasets/ folder, item by item.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { BertTokenizer } from '../text/index.js';
import { ImageFeatureReader } from '../data/features.js';
import { loadTaskRegistry } from '../data/task-registry.js';
import { DATASET_CLASSES } from '../data/datasets/index.js';
import { expectedSplits, verifyDatasetSplit, verifyTensorFile } from '../parity/verify-data.js';
import { ConceptCaptionsReader } from '../data/concept-captions.js';
import { ReferenceRandom, ReferenceRandomSource, type RandomSource } from '../data/random-source.js';

export function registerVerifyData(program: Command): void {
  program
    .command('verify-data')
    .description(
      "build every dataset split named in EXPECTED from KIT and compare each saved item with the reference loaders' output",
    )
    .argument('<kit>', "folder laid out as the reference's working directory (datasets/..., data/...)")
    .argument('<expected>', 'folder of TASK<id>_<name>/<split>__<phase>__<Class>/ goldens (fixtures/datasets/expected)')
    .option('--tasks_config <file>', 'task registry (default: the bundled vilbert_tasks.yml)')
    .option('--verbose', 'print every problem, not only the first five per split', false)
    .action((kit: string, expected: string, options: { tasks_config?: string; verbose: boolean }) => {
      const root = resolve(kit);
      for (const [what, folder] of [
        ['KIT', root],
        ['EXPECTED', resolve(expected)],
      ] as const) {
        if (!existsSync(folder) || !statSync(folder).isDirectory())
          throw new Error(`verify-data: ${what} ${folder} is not a folder`);
      }
      const registry = loadTaskRegistry(options.tasks_config);
      const tokenizer = BertTokenizer.bundled();
      let failures = 0;
      let passes = 0;
      const taskDirs = readdirSync(expected, { withFileTypes: true }).filter(
        (entry) => entry.isDirectory() && /^TASK\d+_/.test(entry.name),
      );
      for (const taskDir of taskDirs) {
        const key = taskDir.name.split('_')[0]!;
        const task = registry.get(key);
        const splitDirs = expectedSplits(join(expected, taskDir.name));
        if (splitDirs.length === 0) {
          console.log(`FAIL ${taskDir.name}: no <split>__<phase>__<Class>/ folders in ${join(expected, taskDir.name)}`);
          failures += 1;
        }
        for (const splitDir of splitDirs) {
          const name = splitDir.split('/').pop()!;
          const parts = name.split('__');
          if (parts.length !== 3 || !['train', 'val', 'eval'].includes(parts[1]!)) {
            console.log(`FAIL ${taskDir.name}/${name}: not a <split>__<train|val|eval>__<Class> folder name`);
            failures += 1;
            continue;
          }
          const [split, phase, className] = parts as [string, 'train' | 'val' | 'eval', string];
          const label = `${taskDir.name} ${split} (${phase}, ${className})`;
          const factory = DATASET_CLASSES[className];
          if (!task || !factory) {
            console.log(`FAIL ${label}: ${!task ? `no ${key} in the task registry` : `no loader for ${className}`}`);
            failures += 1;
            continue;
          }
          const open = (field: string, path: string) => {
            if (!path) return null;
            const full = join(root, path);
            if (!existsSync(full)) throw new Error(`${field} ${full} does not exist`);
            return ImageFeatureReader.open(full);
          };
          let features: ImageFeatureReader | null = null;
          let gtFeatures: ImageFeatureReader | null = null;
          // The sampling datasets draw from Python's and numpy's generators; the reference
          // seeded both before each saved item, so the same source is reseeded here.
          let source = new ReferenceRandomSource(0);
          const random: RandomSource = {
            choice: (items) => source.choice(items),
            randint: (low, high) => source.randint(low, high),
          };
          const beforeItem = (_index: number, seed: number | undefined) => {
            if (seed !== undefined) source = new ReferenceRandomSource(seed);
          };
          try {
            features = open('features_h5path1', task.features_h5path1);
            gtFeatures = open('features_h5path2', task.features_h5path2);
            const datasetOptions = {
              task,
              split,
              phase,
              root,
              tokenizer,
              features,
              gtFeatures,
              cleanDatasets: true,
              writeCache: false,
              random,
            };
            const dataset = factory(datasetOptions);
            const check = verifyDatasetSplit(dataset, splitDir, { beforeItem });
            if (check.ok) passes += 1;
            else failures += 1;
            console.log(
              `${check.ok ? 'ok  ' : 'FAIL'} ${label}: ${check.itemsChecked} items, length ${dataset.length}`,
            );
            for (const problem of options.verbose ? check.problems : check.problems.slice(0, 5))
              console.log(`     ${problem}`);
          } catch (error) {
            failures += 1;
            console.log(`FAIL ${label}: ${error instanceof Error ? error.message : String(error)}`);
          } finally {
            features?.close();
            gtFeatures?.close();
          }
        }
      }
      const cc = join(expected, 'CC_ConceptualCaptions');
      if (existsSync(cc)) {
        for (const split of ['train', 'val'] as const) {
          const metaPath = join(cc, split, 'meta.json');
          let meta: {
            batch_size: number;
            deterministic: { file: string; visualization: boolean };
            masked: { file: string; visualization: boolean };
          };
          try {
            meta = JSON.parse(readFileSync(metaPath, 'utf8')) as typeof meta;
            if (
              !Number.isSafeInteger(meta.batch_size) ||
              typeof meta.deterministic?.file !== 'string' ||
              typeof meta.masked?.file !== 'string'
            ) {
              throw new Error('expected batch_size and deterministic.file / masked.file');
            }
          } catch (error) {
            console.log(
              `FAIL CC_ConceptualCaptions ${split}: ${metaPath}: ${error instanceof Error ? error.message : String(error)}`,
            );
            failures += 1;
            continue;
          }
          for (const run of [meta.deterministic, meta.masked]) {
            const label = `CC_ConceptualCaptions ${split} ${run.file}`;
            // The reference seeded Python's and numpy's generators with 1000 right before the batch.
            let reader: ConceptCaptionsReader | undefined;
            try {
              reader = ConceptCaptionsReader.open(join(root, 'data', 'conceptual_caption'), {
                tokenizer,
                split,
                batchSize: meta.batch_size,
                visualization: run.visualization,
                random: ReferenceRandom.seeded(1000),
              });
              const problems = verifyTensorFile(reader.batch(0).values, join(cc, split, run.file));
              if (problems.length === 0) passes += 1;
              else failures += 1;
              console.log(`${problems.length === 0 ? 'ok  ' : 'FAIL'} ${label}`);
              for (const problem of options.verbose ? problems : problems.slice(0, 5)) console.log(`     ${problem}`);
            } catch (error) {
              failures += 1;
              console.log(`FAIL ${label}: ${error instanceof Error ? error.message : String(error)}`);
            } finally {
              reader?.close();
            }
          }
        }
      }
      if (passes + failures === 0) {
        console.log(`nothing to check: ${resolve(expected)} has no TASK<id>_<name>/ or CC_ConceptualCaptions/ folders`);
        process.exitCode = 1;
        return;
      }
      console.log(`${passes} passed, ${failures} failed`);
      if (failures > 0) process.exitCode = 1;
    });
}
