// One error family: a real failure from each area of the library is a VilbertError with the
// code docs/ERRORS.md gives its class, reachable from the package's entry point.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as library from '../src/index.js';
import {
  CheckpointFormatError,
  ConceptCaptionsError,
  ConfigError,
  DatasetError,
  FeatureStoreError,
  ForbiddenGlobalError,
  ImageInputError,
  LmdbError,
  MetricsFormatError,
  ModelFolderError,
  ReportInputError,
  StateDictError,
  TrainingDivergedError,
  VilbertError,
  VocabFormatError,
} from '../src/errors.js';
import { assetPath } from '../src/assets.js';
import { loadConfig } from '../src/model/config.js';
import { parseVocab } from '../src/text/vocab.js';
import { readRawWeights } from '../src/io/weights.js';
import { PYTHON_DATA_GLOBALS, unpickle } from '../src/io/index.js';
import { LmdbReader } from '../src/io/lmdb.js';
import * as torch from '../src/torch/index.js';
import { ImageFeatureReader } from '../src/data/features.js';
import { jsonObjectValues } from '../src/data/concept-captions.js';
import { loadTaskRegistry } from '../src/data/task-registry.js';
import { nlvr2Dataset } from '../src/data/datasets/pairs.js';
import { readAnswerVocabulary } from '../src/data/datasets/vqa.js';
import { referExpressionDataset } from '../src/data/datasets/grounding.js';
import { BertTokenizer } from '../src/text/index.js';
import { assertFinite } from '../src/train/run-log.js';
import { loadModelFolder } from '../src/pipelines/model-folder.js';
import { ImageResolver, type ImageInput } from '../src/pipelines/image-input.js';
import { readMetrics } from '../src/report/metrics-log.js';
import { readRunDirectory } from '../src/report/run-files.js';
import { fixture } from './io/fixtures.js';

/** Each class's documented code (docs/ERRORS.md). */
const CODES = new Map<abstract new (...args: never[]) => VilbertError, string>([
  [ConfigError, 'E_CONFIG'],
  [VocabFormatError, 'E_VOCAB_FORMAT'],
  [CheckpointFormatError, 'E_CHECKPOINT_FORMAT'],
  [ForbiddenGlobalError, 'E_FORBIDDEN_GLOBAL'],
  [StateDictError, 'E_STATE_DICT'],
  [LmdbError, 'E_LMDB'],
  [FeatureStoreError, 'E_FEATURE_STORE'],
  [DatasetError, 'E_DATASET'],
  [ConceptCaptionsError, 'E_CONCEPT_CAPTIONS'],
  [TrainingDivergedError, 'E_TRAINING_DIVERGED'],
  [ModelFolderError, 'E_MODEL_FOLDER'],
  [ImageInputError, 'E_IMAGE_INPUT'],
  [MetricsFormatError, 'E_METRICS_FORMAT'],
  [ReportInputError, 'E_REPORT_INPUT'],
]);

const scratch = mkdtempSync(join(tmpdir(), 'errors-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes `content` under the scratch folder and returns its path. */
function scratchFile(name: string, content: string | Uint8Array): string {
  const path = join(scratch, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
  return path;
}

/**
 * Runs `run`, which must throw an instance of `type` (and so a VilbertError) with the class's
 * documented code and name, whose message matches `message`.
 */
function throwsFamily(
  type: abstract new (...args: never[]) => VilbertError,
  run: () => unknown,
  message: RegExp,
): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${String(error)}`);
    assert.ok(error instanceof VilbertError);
    assert.ok(error instanceof Error);
    assert.equal(error.code, CODES.get(type));
    assert.equal(error.name, type.name);
    assert.ok(String(error).startsWith(`${type.name}: `), String(error));
    assert.match(error.message, message);
    return true;
  });
}

describe('a failure from each area is a VilbertError with its documented code', () => {
  it('ConfigError: a config file with a bad value', () => {
    const config = JSON.parse(readFileSync(assetPath('configs', 'bert_base_6layer_6conect.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    const path = scratchFile('bad-config.json', JSON.stringify({ ...config, hidden_act: 'tanh' }));
    throwsFamily(ConfigError, () => loadConfig(path), /bad-config\.json: hidden_act: expected one of/);
  });

  it('VocabFormatError: a vocabulary listing a token twice', () => {
    throwsFamily(
      VocabFormatError,
      () => parseVocab('a\nb\na\n', 'vocab.txt'),
      /^vocab\.txt:3: token 'a' already listed at line 1$/,
    );
  });

  it('CheckpointFormatError: a truncated checkpoint', () => {
    const whole = readFileSync(fixture('io', 'torch_dtypes.zip.pt'));
    const path = scratchFile('truncated.pt', whole.subarray(0, whole.length >> 1));
    throwsFamily(CheckpointFormatError, () => readRawWeights(path), /truncated\.pt: /);
  });

  it('ForbiddenGlobalError: a pickle that calls os.system (a CheckpointFormatError too)', () => {
    const run = (): unknown =>
      unpickle(readFileSync(fixture('io', 'evil_os_system.pkl')), { allow: PYTHON_DATA_GLOBALS, source: 'evil.pkl' });
    throwsFamily(ForbiddenGlobalError, run, /^evil\.pkl: refusing to load global 'os\.system'/);
    assert.throws(run, CheckpointFormatError);
  });

  it('StateDictError: weights that miss a parameter', () => {
    const linear = new torch.nn.Linear(2, 3);
    const state = new Map(linear.stateDict());
    state.delete('bias');
    throwsFamily(StateDictError, () => linear.loadStateDict(state), /missing keys \(1\): bias/);
  });

  it('LmdbError: a missing LMDB', () => {
    const missing = join(scratch, 'no-such.lmdb');
    throwsFamily(LmdbError, () => LmdbReader.open(missing), /No such file or directory/);
  });

  it('FeatureStoreError: an LMDB that is not a feature store', () => {
    throwsFamily(FeatureStoreError, () => ImageFeatureReader.open(fixture('data', 'plain.lmdb')), /no 'keys' entry/);
  });

  describe('DatasetError: the dataset modules', () => {
    const task = loadTaskRegistry().get('TASK12')!;
    const options = {
      task: { ...task, dataroot: 'nlvr2' },
      split: 'train',
      phase: 'train' as const,
      root: scratch,
      tokenizer: BertTokenizer.bundled(),
      features: null,
      gtFeatures: null,
      cleanDatasets: false,
      writeCache: false,
    };

    it('an annotation file with a broken line (NLVR2)', () => {
      const path = scratchFile(
        'nlvr2/train.json',
        '{"identifier": "a-0-1", "sentence": "x", "label": "True"}\n{"identifier": \n',
      );
      throwsFamily(
        DatasetError,
        () => nlvr2Dataset(options),
        new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: not a JSON line`),
      );
    });

    it('a missing annotation file (NLVR2 dev)', () => {
      throwsFamily(
        DatasetError,
        () => nlvr2Dataset({ ...options, split: 'dev' }),
        /nlvr2\/dev\.json: cannot be read \(ENOENT: no such file or directory/,
      );
    });

    it('a split the loader does not know', () => {
      throwsFamily(
        DatasetError,
        () => nlvr2Dataset({ ...options, split: 'minval' }),
        /^NLVR2: data split 'minval' is not recognized \(train, dev, test\)$/,
      );
    });

    it('a missing answer vocabulary pickle (VQA)', () => {
      throwsFamily(
        DatasetError,
        () => readAnswerVocabulary(join(scratch, 'vqa')),
        /vqa\/cache\/trainval_ans2label\.pkl: cannot open: No such file or directory$/,
      );
    });

    it('a grounding task without its GT-box store', () => {
      const refcoco = loadTaskRegistry().get('TASK9')!;
      throwsFamily(
        DatasetError,
        () => referExpressionDataset({ ...options, task: refcoco }),
        /^TASK9: refcoco needs both features_h5path1 and features_h5path2/,
      );
    });

    it('a task registry that is not a mapping of TASK<n>', () => {
      const path = scratchFile('tasks.yml', 'VQA: {}\n');
      throwsFamily(DatasetError, () => loadTaskRegistry(path), /tasks\.yml: 'VQA' is not a task key \(TASK<n>\)$/);
    });
  });

  it('ConceptCaptionsError: a caption file that is not JSON', () => {
    throwsFamily(ConceptCaptionsError, () => jsonObjectValues('{"a": ', 'caption_val.json'), /^caption_val\.json: /);
  });

  it('TrainingDivergedError: a loss that is NaN', () => {
    throwsFamily(
      TrainingDivergedError,
      () => assertFinite(Number.NaN, 'iteration 3 TASK1 loss'),
      /^iteration 3 TASK1 loss is NaN; stopping without saving/,
    );
  });

  it('ModelFolderError: a folder without a model', () => {
    const dir = join(scratch, 'empty-model');
    mkdirSync(dir, { recursive: true });
    throwsFamily(ModelFolderError, () => loadModelFolder(dir), /empty-model/);
  });

  it('ImageInputError: an image argument that is not one', () => {
    throwsFamily(
      ImageInputError,
      () => new ImageResolver().check({ store: 42, imageId: 9 } as unknown as ImageInput, 'image'),
      /^image: store must be/,
    );
  });

  it('MetricsFormatError: a metrics log with a broken line', () => {
    const path = scratchFile(
      'metrics.jsonl',
      '{"tag": "a/b", "step": 1, "value": 1}\n{"tag": \n{"tag": "a/b", "step": 3, "value": 3}\n',
    );
    throwsFamily(MetricsFormatError, () => readMetrics(path), /metrics\.jsonl:2: /);
  });

  it('ReportInputError: an empty run folder', () => {
    const dir = join(scratch, 'empty-run');
    mkdirSync(dir, { recursive: true });
    throwsFamily(ReportInputError, () => readRunDirectory(dir), /empty-run/);
  });
});

describe('the family is exported from the package entry point', () => {
  it('VilbertError and every subclass, each with a distinct code', () => {
    assert.equal(library.VilbertError, VilbertError);
    for (const type of CODES.keys()) {
      assert.equal((library as Record<string, unknown>)[type.name], type, `${type.name} is exported`);
      assert.ok(type.prototype instanceof VilbertError, `${type.name} extends VilbertError`);
    }
    assert.equal(new Set(CODES.values()).size, CODES.size);
  });
});
