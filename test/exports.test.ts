// The package's entry points (docs/API.md) resolve by name as a user's code imports them:
// each "exports" subpath in a child process through Node's package resolution, and with
// its types through TypeScript's.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from './io/fixtures.js';

const root = packageRoot();
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, string | { types: string; default: string }>;
  files: string[];
};

/** Named exports each entry point must have (a sample of each part, not the whole list). */
const EXPECTED: Record<string, string[]> = {
  '.': [
    'torch',
    'text',
    'model',
    'io',
    'data',
    'train',
    'evaluation',
    'pipelines',
    'distributed',
    'createPipeline',
    'VilbertError',
    'ConfigError',
  ],
  './torch': ['Tensor', 'tensor', 'zeros', 'Module', 'nn', 'F', 'scope', 'inferenceMode', 'manualSeed', 'autocast'],
  './text': ['BertTokenizer', 'VocabFormatError'],
  './model': [
    'VILBertForVLTasks',
    'BertForMultiModalPreTraining',
    'BertModel',
    'ALL_VL_HEADS',
    'parseConfig',
    'loadConfig',
    'bundledConfig',
    'bundledConfigNames',
    'loadPretrainedWeights',
    'ConfigError',
    'PRECISIONS',
    'cpuPrecisionSupport',
  ],
  './io': [
    'readWeights',
    'readRawWeights',
    'writeWeights',
    'convertWeights',
    'readSafetensors',
    'writeSafetensors',
    'readTorchCheckpoint',
    'readTorchStateDict',
    'writeTorchStateDict',
    'unpickle',
    'LmdbReader',
    'CheckpointFormatError',
  ],
  './data': [
    'ImageFeatureReader',
    'loadTaskRegistry',
    'DATASET_MAP_TRAIN',
    'DATASET_MAP_EVAL',
    'DATASET_CLASSES',
    'vqaDataset',
    'gqaDataset',
    'genomeQaDataset',
    'referExpressionDataset',
    'visual7wDataset',
    'guessWhatPointingDataset',
    'retrievalDataset',
    'retrievalEvalDataset',
    'nlvr2Dataset',
    'visualEntailmentDataset',
    'openDataset',
    'TaskLoader',
    'collate',
    'ConceptCaptionsReader',
    'DatasetError',
  ],
  './train': [
    'trainTasks',
    'trainConcap',
    'TRAIN_TASKS_DEFAULTS',
    'TRAIN_CONCAP_DEFAULTS',
    'AdamW',
    'RAdam',
    'LrPlan',
    'paramGroups',
    'forwardTask',
    'taskLoss',
    'toTaskBatch',
    'saveModelWeights',
  ],
  './eval': ['evaluateTask', 'evaluateRetrieval', 'METRIC_OF_TYPE', 'retrievalMetrics'],
  './pipelines': ['createPipeline', 'loadModelFolder', 'saveModelFolder', 'PIPELINE_TASKS'],
  './download': ['downloadPublished', 'catalogue', 'fetchPretrained', 'resolveDetectorFiles'],
  './distributed': ['initDistributed', 'DataParallel', 'ProcessGroup'],
  './errors': ['VilbertError', 'ConfigError', 'CheckpointFormatError', 'DatasetError', 'TrainingDivergedError'],
};

const specifier = (subpath: string) => (subpath === '.' ? manifest.name : `${manifest.name}/${subpath.slice(2)}`);

/** Runs an ES module script from the package root, where `vilbert-ts` resolves to the package itself. */
function runModule(script: string) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
}

describe('package.json exports', () => {
  it('lists every documented entry point, each with types and default files that exist and are published', () => {
    assert.deepEqual(
      Object.keys(manifest.exports)
        .filter((key) => key !== './package.json')
        .sort(),
      Object.keys(EXPECTED).sort(),
    );
    for (const subpath of Object.keys(EXPECTED)) {
      const entry = manifest.exports[subpath];
      assert.ok(typeof entry === 'object', subpath);
      assert.deepEqual(Object.keys(entry), ['types', 'default'], `${subpath}: "types" first, then "default"`);
      for (const file of [entry.types, entry.default]) {
        assert.ok(existsSync(join(root, file)), `${subpath}: ${file} (built?)`);
        assert.ok(
          manifest.files.some((published) => file.slice(2).startsWith(`${published}/`)),
          `${subpath}: ${file} is not under "files"`,
        );
      }
    }
  });

  it('each entry point imports by the package name in a child process, with its named exports', () => {
    const script = `
      const expected = ${JSON.stringify(Object.fromEntries(Object.entries(EXPECTED).map(([subpath, names]) => [specifier(subpath), names])))};
      const missing = [];
      const modules = {};
      for (const [name, exports] of Object.entries(expected)) {
        modules[name] = await import(name);
        for (const key of exports) if (modules[name][key] === undefined) missing.push(name + ': ' + key);
      }
      // One module instance behind the root's namespaces and the subpaths.
      const same = modules['vilbert-ts'].model.VILBertForVLTasks === modules['vilbert-ts/model'].VILBertForVLTasks
        && modules['vilbert-ts'].train.AdamW === modules['vilbert-ts/train'].AdamW
        && modules['vilbert-ts/errors'].ConfigError === modules['vilbert-ts/model'].ConfigError;
      const { bundledConfigNames } = modules['vilbert-ts/model'];
      console.log(JSON.stringify({ missing, same, configs: bundledConfigNames().length, optim: modules['vilbert-ts/train'].TRAIN_TASKS_DEFAULTS.optim }));
    `;
    const child = runModule(script);
    assert.equal(child.status, 0, child.stderr);
    const result = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as {
      missing: string[];
      same: boolean;
      configs: number;
      optim: string;
    };
    assert.deepEqual(result.missing, []);
    assert.equal(result.same, true);
    assert.ok(result.configs > 0);
    assert.equal(result.optim, 'AdamW');
  });

  it('files outside the entry points are not importable by the package name', () => {
    const child = runModule(`await import('${manifest.name}/dist/src/model/vilbert.js');`);
    assert.notEqual(child.status, 0);
    assert.match(child.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });

  it('the entry points carry their types: a TypeScript user compiles against them', () => {
    // A project outside the repository with the package linked into its node_modules, as an install leaves it.
    const dir = mkdtempSync(join(tmpdir(), 'vilbert-types-'));
    try {
      mkdirSync(join(dir, 'node_modules'));
      symlinkSync(root, join(dir, 'node_modules', manifest.name), 'dir');
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            noEmit: true,
            skipLibCheck: true,
            types: ['node'],
            typeRoots: [join(root, 'node_modules', '@types')],
          },
          files: ['check.ts'],
        }),
      );
      writeFileSync(
        join(dir, 'check.ts'),
        `
        import { torch, VilbertError, createPipeline } from 'vilbert-ts';
        import { VILBertForVLTasks, loadConfig, loadPretrainedWeights, type ViLBertConfig, type VLHead, type BertInputs } from 'vilbert-ts/model';
        import { readWeights, convertWeights, type RawTensor, type WeightFormat } from 'vilbert-ts/io';
        import { ImageFeatureReader, TaskLoader, type TaskDataset, type PaddedRegions, type TaskConfig } from 'vilbert-ts/data';
        import { trainTasks, TRAIN_TASKS_DEFAULTS, AdamW, forwardTask, type TrainTasksArgs, type TaskBatch } from 'vilbert-ts/train';
        import { evaluateTask, type TaskEvaluation } from 'vilbert-ts/eval';
        import type { VqaAnswer } from 'vilbert-ts/pipelines';
        import { BertTokenizer } from 'vilbert-ts/text';
        import { initDistributed } from 'vilbert-ts/distributed';
        import { ConfigError } from 'vilbert-ts/errors';
        const args: TrainTasksArgs = { ...TRAIN_TASKS_DEFAULTS, tasks: '1' };
        const head: VLHead = 'vil_prediction';
        const format: WeightFormat = 'safetensors';
        const build = (config: ViLBertConfig): VILBertForVLTasks => new VILBertForVLTasks(config);
        const dataset: TaskDataset = { length: 0, numLabels: 0, item: () => ({ order: [], values: {} }) };
        const x: torch.Tensor = torch.zeros([2]);
        const error: VilbertError = new ConfigError('file', undefined, 'problem');
        export type Used = [BertInputs, RawTensor, PaddedRegions, TaskConfig, TaskBatch, TaskEvaluation, VqaAnswer];
        export const used = [args, head, format, build, dataset, x, error, createPipeline, loadConfig, loadPretrainedWeights, readWeights,
          convertWeights, ImageFeatureReader, TaskLoader, trainTasks, AdamW, forwardTask, evaluateTask, BertTokenizer, initDistributed];
      `,
      );
      const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], {
        encoding: 'utf8',
      });
      assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
