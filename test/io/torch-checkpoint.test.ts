import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointFormatError } from '../../src/io/format-error.js';
import { ForbiddenGlobalError, PyObject, opaqueClass } from '../../src/io/pickle.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import {
  findStateDict,
  parseTorchCheckpoint,
  readTorchCheckpoint,
  readTorchStateDict,
  serializeTorchStateDict,
  writeTorchStateDict,
} from '../../src/io/torch-checkpoint.js';
import { PickleCall, PickleGlobalRef, PicklePersistentId, pickle } from '../../src/io/pickle-writer.js';
import { readZipMembers, writeZip } from '../../src/io/zip.js';
import { fixture, toHex } from './fixtures.js';

type Expected = Record<string, { dtype: string; shape: number[]; hex: string }>;
const expected = JSON.parse(readFileSync(fixture('io', 'torch_expected.json'), 'utf8')) as {
  dtypes: Expected;
  views: Expected;
};

const summary = (tensors: Map<string, RawTensor>): Expected =>
  Object.fromEntries(
    [...tensors].map(([name, tensor]) => [name, { dtype: tensor.dtype, shape: tensor.shape, hex: toHex(tensor.data) }]),
  );

function rejects(bytes: Uint8Array, pattern: RegExp, source = 'bad.bin'): CheckpointFormatError {
  let caught: unknown;
  assert.throws(
    () => findStateDict(parseTorchCheckpoint(bytes, source).object, source),
    (error: unknown) => {
      caught = error;
      return error instanceof CheckpointFormatError && error.message.startsWith(source) && pattern.test(error.message);
    },
  );
  return caught as CheckpointFormatError;
}

describe('torch checkpoints: the parity weights in three formats', () => {
  const parity = (name: string): string => fixture('parity', name);

  it('gives identical key order, dtypes, shapes and bytes from safetensors, legacy .bin and zip .bin', () => {
    const reference = summary(readSafetensors(parity('weights_vltasks.safetensors')).tensors);
    const legacy = readTorchCheckpoint(parity('weights_vltasks.torch_legacy.bin'));
    const zip = readTorchCheckpoint(parity('weights_vltasks.torch_zip.bin'));
    assert.equal(legacy.format, 'legacy');
    assert.equal(zip.format, 'zip');
    for (const checkpoint of [legacy, zip]) {
      const tensors = summary(findStateDict(checkpoint.object));
      assert.deepEqual(Object.keys(tensors), Object.keys(reference));
      assert.deepEqual(tensors, reference);
    }
    assert.equal(Object.keys(reference).length, 224);
  });

  it('shares the tied decoder storage with the word embeddings in the .bin files', () => {
    const state = readTorchStateDict(parity('weights_vltasks.torch_zip.bin'));
    const word = state.get('bert.embeddings.word_embeddings.weight')!;
    const decoder = state.get('cls.predictions.decoder.weight')!;
    assert.equal(decoder.data.buffer, word.data.buffer);
    assert.equal(toHex(decoder.data), toHex(word.data));
  });

  it("writes a zip .bin that reads back identically, under the file's stem as archive folder", () => {
    const source = readSafetensors(parity('weights_vltasks.safetensors')).tensors;
    const path = join(mkdtempSync(join(tmpdir(), 'vilbert-io-')), 'converted.bin');
    writeTorchStateDict(path, source);
    const bytes = readFileSync(path);
    const members = [...readZipMembers(bytes, path).keys()];
    assert.deepEqual(members.slice(0, 3), ['converted/data.pkl', 'converted/byteorder', 'converted/data/0']);
    assert.equal(members.at(-1), 'converted/version');
    assert.deepEqual(summary(readTorchStateDict(path)), summary(source));
  });
});

describe('torch checkpoints: dtypes, views and shared storages (torch-written fixtures)', () => {
  for (const name of ['torch_dtypes.zip.pt', 'torch_dtypes.legacy.pt']) {
    it(`reads ${name} as torch.load does`, () => {
      assert.deepEqual(summary(readTorchStateDict(fixture('io', name))), expected.dtypes);
    });
  }

  it('reads legacy storage views (view_metadata)', () => {
    assert.deepEqual(summary(readTorchStateDict(fixture('io', 'torch_views.legacy.pt'))), expected.views);
  });

  it('round-trips every dtype, the 0-d and the empty tensor through the writer', () => {
    const original = readTorchStateDict(fixture('io', 'torch_dtypes.zip.pt'));
    assert.deepEqual(
      summary(findStateDict(parseTorchCheckpoint(serializeTorchStateDict(original)).object)),
      expected.dtypes,
    );
  });

  it('exposes nested training checkpoints raw and finds their state dict', () => {
    const { object } = readTorchCheckpoint(fixture('io', 'torch_nested.zip.pt'));
    assert.ok(object instanceof Map);
    assert.equal(object.get('epoch'), 3);
    const state = findStateDict(object);
    assert.deepEqual([...state.keys()], ['layer.weight', 'layer.bias']);
    assert.equal(toHex(state.get('layer.bias')!.data), '0000000000000000');
    assert.throws(
      () => findStateDict(new Map([['epoch', 3]]), 'x.pt'),
      /x\.pt: no state dict: the top-level dict \(keys epoch\)/,
    );
    assert.throws(() => findStateDict([1], 'x.pt'), /holds a list, not a dict/);
  });
});

describe('torch checkpoints: other tensor reductions', () => {
  it('reads tensors rebuilt through _rebuild_from_type_v2 and _rebuild_parameter_with_state', () => {
    const global = (module: string, name: string): PickleGlobalRef => new PickleGlobalRef(module, name);
    const emptyDict = new PickleCall(global('collections', 'OrderedDict'), []);
    const tensorArgs = (key: string): unknown[] => [
      new PicklePersistentId(['storage', global('torch', 'IntStorage'), key, 'cpu', 2]),
      0,
      [2],
      [1],
      false,
      emptyDict,
    ];
    const rebuild = global('torch._utils', '_rebuild_tensor_v2');
    const state = new PickleCall(
      global('collections', 'OrderedDict'),
      [],
      [
        [
          'typed',
          new PickleCall(global('torch._tensor', '_rebuild_from_type_v2'), [
            rebuild,
            global('torch', 'Tensor'),
            tensorArgs('0'),
            emptyDict,
          ]),
        ],
        [
          'parameter',
          new PickleCall(global('torch._utils', '_rebuild_parameter_with_state'), [
            new PickleCall(rebuild, tensorArgs('1')),
            true,
            emptyDict,
            emptyDict,
          ]),
        ],
      ],
    );
    const archive = writeZip([
      { name: 'archive/data.pkl', data: pickle(state) },
      { name: 'archive/data/0', data: new Uint8Array(new Int32Array([7, -7]).buffer) },
      { name: 'archive/data/1', data: new Uint8Array(new Int32Array([1, 2]).buffer) },
    ]);
    const tensors = findStateDict(parseTorchCheckpoint(archive).object);
    assert.deepEqual(summary(tensors), {
      typed: { dtype: 'int32', shape: [2], hex: '07000000f9ffffff' },
      parameter: { dtype: 'int32', shape: [2], hex: '0100000002000000' },
    });
  });
});

/** A zip checkpoint whose data.pkl is the given pickle. */
const zipWithPickle = (pickle: string): Uint8Array =>
  writeZip([
    { name: 'archive/data.pkl', data: Buffer.from(pickle, 'latin1') },
    { name: 'archive/version', data: Buffer.from('3\n') },
  ]);

describe('torch checkpoints: refusals and corruption', () => {
  it('refuses a data.pkl calling os.system, naming it', () => {
    const error = rejects(
      zipWithPickle('\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsq\x01\x85R.'),
      /refusing to load global 'os\.system'/,
    );
    assert.ok(error instanceof ForbiddenGlobalError);
  });

  it('refuses other globals unless the caller allows them', () => {
    const pickle = '\x80\x02}X\x04\x00\x00\x00argscargparse\nNamespace\n)\x81s.';
    rejects(zipWithPickle(pickle), /'argparse\.Namespace'/);
    const { object } = parseTorchCheckpoint(zipWithPickle(pickle), 'ok.pt', {
      allow: new Map([['argparse.Namespace', opaqueClass('argparse.Namespace')]]),
    });
    assert.ok((object as Map<string, unknown>).get('args') instanceof PyObject);
  });

  it('refuses whole-module pickles and bad storage references', () => {
    rejects(zipWithPickle('\x80\x02(X\x06\x00\x00\x00moduleNNNNtQ.'), /only state dicts/);
    rejects(
      zipWithPickle(
        '\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ.',
      ),
      /'archive\/data\/0': storage is missing from the archive/,
    );
  });

  it('refuses a view reaching past its storage, naming the tensor key', () => {
    const state = new Map<string, RawTensor>([['w', { dtype: 'float32', shape: [2], data: new Uint8Array(8) }]]);
    const archive = Buffer.from(serializeTorchStateDict(state));
    // Rewrite the pickled size (2,) -> (3,): 'K\x02\x85' follows the storage offset 'K\x00'.
    const members = readZipMembers(archive, 'x');
    const pickle = Buffer.from(members.get('archive/data.pkl')!);
    const at = pickle.indexOf(Buffer.from('K\x00K\x02\x85', 'latin1'));
    pickle[at + 3] = 3;
    const rebuilt = writeZip(
      [...members].map(([name, data]) => ({ name, data: name.endsWith('data.pkl') ? pickle : data })),
    );
    rejects(rebuilt, /'w': view \(offset 0, size \[3\], stride \[1\]\) reaches element 3 of a 2-element storage/);
  });

  it('refuses a member outside the archive folder, naming the file and the member, file or buffer', () => {
    const state = new Map<string, RawTensor>([['w', { dtype: 'float32', shape: [2], data: new Uint8Array(8) }]]);
    const members = [...readZipMembers(serializeTorchStateDict(state), 'x')].map(([name, data]) => ({ name, data }));
    for (const escape of ['archive/../../outside', '/tmp/outside', 'second/data.pkl']) {
      rejects(
        writeZip([...members, { name: escape, data: Buffer.from('payload') }]),
        new RegExp(`^bad\\.bin: '${escape.replace(/\./g, '\\.')}': `),
      );
    }
    // A storage renamed out of the folder: refused for its name, not reported missing.
    const escaped = members.map((member) =>
      member.name === 'archive/data/0' ? { ...member, name: 'archive/data/../../0' } : member,
    );
    const path = join(mkdtempSync(join(tmpdir(), 'vilbert-io-')), 'escape.bin');
    writeFileSync(path, writeZip(escaped));
    assert.throws(
      () => readTorchStateDict(path),
      (error: unknown) =>
        error instanceof CheckpointFormatError &&
        error.message ===
          `${path}: 'archive/data/../../0': has a '..' component: a torch checkpoint keeps its members inside one root folder`,
    );
  });

  it('refuses what is not a checkpoint', () => {
    rejects(Buffer.from('hello world'), /not a torch checkpoint/);
    rejects(new Uint8Array(0), /not a torch checkpoint/);
    const tar = Buffer.alloc(600);
    tar.write('ustar', 257);
    rejects(tar, /tar-format torch checkpoints/);
    rejects(zipWithPickle('N.'), /no state dict: the checkpoint holds None, not a dict/);
  });

  for (const name of ['weights_vltasks.torch_legacy.bin', 'weights_vltasks.torch_zip.bin']) {
    it(`gives a CheckpointFormatError naming the file when ${name} is truncated`, () => {
      const bytes = readFileSync(fixture('parity', name));
      for (const cut of [
        0,
        1,
        2,
        10,
        12,
        100,
        1000,
        30_000,
        41_000,
        500_000,
        bytes.length - 1_000,
        bytes.length - 100,
        bytes.length - 1,
      ]) {
        rejects(bytes.subarray(0, cut), /./, name);
      }
    });
  }

  for (const name of ['torch_dtypes.legacy.pt', 'torch_dtypes.zip.pt', 'torch_views.legacy.pt']) {
    it(`gives a CheckpointFormatError at every truncation point of ${name}`, () => {
      const bytes = readFileSync(fixture('io', name));
      for (let cut = 0; cut < bytes.length; cut++) rejects(bytes.subarray(0, cut), /./, name);
    });

    it(`gives tensors or a CheckpointFormatError, never another error, for any flipped byte of ${name}`, () => {
      const bytes = readFileSync(fixture('io', name));
      let refused = 0;
      for (let position = 0; position < bytes.length; position++) {
        for (const mask of [0x01, 0xff]) {
          const corrupt = Buffer.from(bytes);
          corrupt[position] = corrupt[position]! ^ mask;
          try {
            findStateDict(parseTorchCheckpoint(corrupt, name).object, name);
          } catch (error) {
            assert.ok(error instanceof CheckpointFormatError, `byte ${position}: ${String(error)}`);
            assert.ok(error.message.startsWith(name), error.message);
            refused++;
          }
        }
      }
      assert.ok(refused > 0);
    });
  }

  it("detects any flipped byte in a zip checkpoint's members (CRC-32)", () => {
    const bytes = readFileSync(fixture('io', 'torch_dtypes.zip.pt'));
    const members = readZipMembers(bytes, 'x');
    for (const [member, data] of members) {
      const corrupt = Buffer.from(bytes);
      const at = data.byteOffset - bytes.byteOffset + Math.floor(data.length / 2);
      if (data.length === 0) continue;
      corrupt[at] = corrupt[at]! ^ 0x10;
      rejects(corrupt, new RegExp(`'${member}': CRC-32 mismatch`), 'torch_dtypes.zip.pt');
    }
  });
});
