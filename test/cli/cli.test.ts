import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readRawWeights } from '../../src/io/weights.js';

const bin = fileURLToPath(new URL('../../../bin/vilbert.js', import.meta.url));
const parity = fileURLToPath(new URL('../../../test/fixtures/parity', import.meta.url));
const vilbert = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

test('--help lists the subcommands; each has --help', () => {
  const help = vilbert('--help');
  assert.equal(help.status, 0);
  const commands = [
    'demo',
    'smoke',
    'train-tasks',
    'train-concap',
    'eval-tasks',
    'eval-retrieval',
    'report',
    'predict',
    'model-folder',
    'make-world',
    'launch',
    'convert',
    'inspect',
    'verify-parity',
    'verify-data',
    'info',
  ];
  for (const command of commands) {
    assert.match(help.stdout, new RegExp(`\\n  ${command}\\b`));
    const sub = vilbert(command, '--help');
    assert.equal(sub.status, 0, command);
    assert.match(sub.stdout, new RegExp(`Usage: vilbert ${command}`));
  }
});

test('an unknown flag or subcommand exits non-zero with a message', () => {
  const flag = vilbert('smoke', '--no-such-flag');
  assert.notEqual(flag.status, 0);
  assert.match(flag.stderr, /unknown option '--no-such-flag'/);
  const command = vilbert('no-such-command');
  assert.notEqual(command.status, 0);
  assert.match(command.stderr, /unknown command 'no-such-command'/);
});

test('smoke trains to well above chance', () => {
  const run = vilbert('smoke', '--steps', '150');
  assert.equal(run.status, 0, run.stderr);
  const accuracy = Number(/train accuracy ([\d.]+)%/.exec(run.stdout)?.[1]);
  assert.ok(accuracy > 80, `accuracy ${accuracy}%`);
});

test('convert goes .bin -> .safetensors -> .bin with identical tensors; inspect reports them', () => {
  const dir = mkdtempSync(join(tmpdir(), 'convert-'));
  try {
    const source = join(parity, 'weights_vltasks.torch_legacy.bin');
    const safetensors = join(dir, 'w.safetensors');
    const back = join(dir, 'w.bin');
    assert.equal(vilbert('convert', source, safetensors).status, 0);
    assert.equal(vilbert('convert', safetensors, back).status, 0);
    const original = readRawWeights(source);
    const roundTrip = readRawWeights(back);
    assert.deepEqual([...roundTrip.keys()].sort(), [...original.keys()].sort()); // safetensors stores keys sorted
    for (const [key, tensor] of original) {
      assert.deepEqual(roundTrip.get(key)!.shape, tensor.shape, key);
      assert.ok(Buffer.from(roundTrip.get(key)!.data).equals(Buffer.from(tensor.data)), key);
    }
    const inspect = vilbert('inspect', back);
    assert.equal(inspect.status, 0, inspect.stderr);
    assert.match(inspect.stdout, /224 tensors, 321,329 elements \(224 float32\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('convert refuses a corrupt input without touching an existing output', () => {
  const dir = mkdtempSync(join(tmpdir(), 'convert-'));
  try {
    const corrupt = join(dir, 'cut.bin');
    writeFileSync(corrupt, readFileSync(join(parity, 'weights_vltasks.torch_zip.bin')).subarray(0, 4000));
    const output = join(dir, 'out.safetensors');
    writeFileSync(output, 'previous');
    const run = vilbert('convert', corrupt, output);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /cut\.bin/);
    assert.equal(readFileSync(output, 'utf8'), 'previous');
    assert.deepEqual(readdirSync(dir).sort(), ['cut.bin', 'out.safetensors'], 'no temporary file left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('verify-parity passes on the fixtures, and fails on a missing folder', () => {
  const run = vilbert('verify-parity', parity, '--quiet');
  assert.equal(run.status, 0, run.stdout);
  assert.match(run.stdout, /357 passed, 0 failed, 0 unchecked/);
  const skipped = vilbert('verify-parity', parity, '--quiet', '--skip', 'pretrain');
  assert.equal(skipped.status, 0, skipped.stdout);
  assert.match(skipped.stdout, /312 passed, 0 failed, 0 unchecked \(skipped: pretrain\)/);
  const missing = vilbert('verify-parity', join(tmpdir(), 'no-such-parity-folder'));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no-such-parity-folder/);
});
