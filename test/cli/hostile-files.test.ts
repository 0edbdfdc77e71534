// The hostile-file corpus: files a user may pass by mistake (a cut download, an empty file)
// or that were crafted (zip members escaping their folder, feature values holding NaN),
// each given to a vilbert subcommand or a loader in a child process. Each must end in a
// refusal naming the file (and the member or image), never in a signal (a native crash
// such as SIGBUS) or a timeout (a hang). Built at test time from the fixtures.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serializeTorchStateDict } from '../../src/io/torch-checkpoint.js';
import { readZipMembers, writeZip } from '../../src/io/zip.js';
import { READ, REFUSED, writeFeatureStore } from '../data/features-hostile.js';
import { fixture } from '../io/fixtures.js';

const bin = fileURLToPath(new URL('../../../bin/vilbert.js', import.meta.url));
const featuresModule = new URL('../../src/data/features.js', import.meta.url).href;
/** Far above any refusal's time: only a hang reaches it. */
const TIMEOUT_MS = 60_000;

const dir = mkdtempSync(join(tmpdir(), 'vilbert-hostile-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, args, { encoding: 'utf8', timeout: TIMEOUT_MS });
}

/** Exited by itself (no signal, no timeout) with `status`. */
function assertEnded(child: SpawnSyncReturns<string>, status: number, what: string): void {
  assert.equal(child.error, undefined, `${what}: ${String(child.error)} (a hang?)`);
  assert.equal(child.signal, null, `${what}: killed by ${child.signal}\n${child.stderr}`);
  assert.equal(child.status, status, `${what}: exit ${child.status}\n${child.stdout}\n${child.stderr}`);
}

const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('hostile torch checkpoints: inspect and convert refuse them, naming the file and the member', () => {
  const state = new Map([['w', { dtype: 'float32' as const, shape: [2], data: new Uint8Array(8) }]]);
  const members = [...readZipMembers(serializeTorchStateDict(state), 'x')].map(([name, data]) => ({ name, data }));
  const payload = { data: Buffer.from('payload') };
  const cases: Array<[string, Uint8Array, RegExp]> = [
    [
      'member-dotdot.bin',
      writeZip([...members, { name: 'archive/../../outside', ...payload }]),
      /'archive\/\.\.\/\.\.\/outside': has a '\.\.' component/,
    ],
    [
      'member-absolute.pt',
      writeZip([...members, { name: '/tmp/outside', ...payload }]),
      /'\/tmp\/outside': is an absolute path/,
    ],
    [
      'member-first-absolute.pt',
      writeZip([{ name: '/archive/data.pkl', ...payload }, ...members]),
      /'\/archive\/data\.pkl': is an absolute path/,
    ],
    [
      'member-backslash.bin',
      writeZip([...members, { name: 'archive\\..\\..\\outside', ...payload }]),
      /'archive\\\.\.\\\.\.\\outside': has a backslash/,
    ],
    [
      'member-drive.bin',
      writeZip([...members, { name: 'C:/outside', ...payload }]),
      /'C:\/outside': starts with a drive letter/,
    ],
    [
      'member-second-root.bin',
      writeZip([...members, { name: 'second/data.pkl', ...payload }]),
      /'second\/data\.pkl': lies outside 'archive\/'/,
    ],
    ['cut-in-half.bin', readFileSync(fixture('parity', 'weights_vltasks.torch_zip.bin')).subarray(0, 200_000), /./],
    ['empty.bin', new Uint8Array(0), /the file is empty \(0 bytes\)/],
  ];
  for (const [name, bytes, problem] of cases) {
    it(name, () => {
      const file = join(dir, name);
      writeFileSync(file, bytes);
      const output = join(dir, `${name}.safetensors`);
      for (const args of [
        ['inspect', file],
        ['convert', file, output],
      ]) {
        const child = run([bin, ...args]);
        assertEnded(child, 1, `${args[0]} ${name}`);
        assert.match(child.stderr, new RegExp(`^vilbert: ${literal(file)}: ${problem.source}`), `${args[0]} ${name}`);
      }
    });
  }
});

describe('hostile feature LMDBs: opening or reading them is refused, naming the store (and the image)', () => {
  // Opens the store and reads every image as get() and as a 3-row getPadded(); prints one
  // line per image: 'ok' or the reader's message. Any other error exits 1 with its stack.
  const reader = `
    const { ImageFeatureReader, FeatureStoreError } = await import(${JSON.stringify(featuresModule)});
    const store = ImageFeatureReader.open(process.argv[1]);
    for (const key of store.keys()) {
      try {
        store.get(key);
        store.getPadded(key, 3);
        console.log(key + ': ok');
      } catch (error) {
        if (!(error instanceof FeatureStoreError)) throw error;
        console.log(error.message);
      }
    }`;
  const readStore = (path: string): SpawnSyncReturns<string> => run(['--input-type=module', '-e', reader, path]);

  const coco = readFileSync(
    fixture(
      'datasets',
      'kit',
      'datasets',
      'coco',
      'features_100',
      'COCO_trainval_resnext152_faster_rcnn_genome.lmdb',
      'data.mdb',
    ),
  );
  const captions = readFileSync(fixture('datasets', 'kit', 'data', 'conceptual_caption', 'validation_feat_all.lmdb'));
  // [store, its bytes, a directory holding data.mdb (else a single file), what is said of the file]
  const storeFiles: Array<[string, Uint8Array, boolean, RegExp]> = [
    ['empty.lmdb', new Uint8Array(0), true, /is empty \(0 bytes\), not an LMDB file/],
    ['empty-file.lmdb', new Uint8Array(0), false, /is empty \(0 bytes\), not an LMDB file/],
    [
      'coco-cut-in-half.lmdb',
      coco.subarray(0, coco.length / 2),
      true,
      new RegExp(`is truncated: ${coco.length / 2} bytes, but its pages run to byte ${coco.length} `),
    ],
    ['coco-last-page-missing.lmdb', coco.subarray(0, coco.length - 4096), true, /is truncated/],
    ['captions-cut-in-half.lmdb', captions.subarray(0, captions.length / 2), false, /is truncated/],
  ];
  for (const [name, bytes, asDirectory, problem] of storeFiles) {
    it(`${name}: refused when opened, by a loader and by predict`, () => {
      const path = join(dir, name);
      const file = asDirectory ? join(path, 'data.mdb') : path;
      if (asDirectory) mkdirSync(path);
      writeFileSync(file, bytes);
      const message = `${literal(path)}: ${literal(file)} ${problem.source}`;
      const loaded = readStore(path);
      assertEnded(loaded, 1, name);
      assert.match(loaded.stderr, new RegExp(`Error: ${message}`), name);
      // predict opens the store before it reads the model folder (absent here).
      const predicted = run([
        bin,
        'predict',
        '--task',
        'vqa',
        '--model',
        join(dir, 'no-model'),
        '--features',
        path,
        '--image',
        '9',
        '--text',
        'what?',
      ]);
      assertEnded(predicted, 1, `predict ${name}`);
      assert.match(predicted.stderr, new RegExp(`^vilbert: ${message}`), `predict ${name}`);
    });
  }

  it('values with NaN, infinity, an overflow, no boxes or a wrong num_boxes: each image refused, the rest read', () => {
    const path = join(dir, 'hostile-values.lmdb');
    writeFeatureStore(path, {
      ...READ,
      ...Object.fromEntries(Object.entries(REFUSED).map(([key, [value]]) => [key, value])),
    });
    const child = readStore(path);
    assertEnded(child, 0, 'hostile-values.lmdb');
    const lines = child.stdout.trim().split('\n');
    const expected = [
      ...Object.keys(READ).map((key) => new RegExp(`^${key}: ok$`)),
      ...Object.entries(REFUSED).map(
        ([key, [, problem]]) => new RegExp(`^${literal(path)}: image '${key}': ${problem.source.replace(/^\^/, '')}`),
      ),
    ];
    assert.equal(lines.length, expected.length, child.stdout);
    for (const pattern of expected)
      assert.ok(
        lines.some((line) => pattern.test(line)),
        `no line matches ${pattern}:\n${child.stdout}`,
      );
  });
});
