import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointFormatError } from '../../src/io/format-error.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import {
  MAX_HEADER_BYTES,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from '../../src/io/safetensors.js';
import { fixture, toHex } from './fixtures.js';

const f32 = (...values: number[]): Uint8Array => new Uint8Array(new Float32Array(values).buffer);

/** A file from a header object (or raw header text or bytes) and a data section. */
function file(header: unknown, data: Uint8Array = new Uint8Array(0)): Buffer {
  const json =
    header instanceof Uint8Array ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => parseSafetensors(bytes, 'bad.safetensors'),
    (error: unknown) => {
      assert.ok(error instanceof CheckpointFormatError, `expected CheckpointFormatError, got ${String(error)}`);
      assert.match(error.message, /^bad\.safetensors: /);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

describe('safetensors reader', () => {
  it('reads the parity weights: 224 F32 tensors, metadata, data views in offset order', () => {
    const { tensors, metadata } = readSafetensors(fixture('parity', 'weights_vltasks.safetensors'));
    assert.equal(tensors.size, 224);
    assert.equal(metadata.model, 'vilbert.vilbert.VILBertForVLTasks');
    const word = tensors.get('bert.embeddings.word_embeddings.weight')!;
    assert.deepEqual([word.dtype, word.shape], ['float32', [64, 32]]);
    assert.equal(word.data.length, 64 * 32 * 4);
    // The tied decoder is stored as an identical copy.
    assert.equal(toHex(tensors.get('cls.predictions.decoder.weight')!.data), toHex(word.data));
    assert.ok([...tensors.values()].every((tensor) => tensor.dtype === 'float32'));
  });

  it('reads tensors in data-offset order whatever the header order, and zero-size tensors', () => {
    const data = Buffer.concat([f32(1, 2), f32(3)]);
    const bytes = file(
      {
        b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
        empty: { dtype: 'I64', shape: [0, 3], data_offsets: [8, 8] },
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      },
      data,
    );
    const { tensors, metadata } = parseSafetensors(bytes);
    assert.deepEqual([...tensors.keys()], ['a', 'empty', 'b']);
    assert.deepEqual(metadata, {});
    assert.deepEqual(tensors.get('empty'), { dtype: 'int64', shape: [0, 3], data: new Uint8Array(0) });
    assert.equal(toHex(tensors.get('b')!.data), toHex(f32(3)));
  });

  it('accepts every supported dtype and a scalar shape', () => {
    const names = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'];
    const sizes = [8, 4, 2, 2, 8, 4, 2, 1, 1, 1];
    let offset = 0;
    const header: Record<string, unknown> = {};
    names.forEach((dtype, index) => {
      header[dtype] = { dtype, shape: [], data_offsets: [offset, offset + sizes[index]!] };
      offset += sizes[index]!;
    });
    const { tensors } = parseSafetensors(file(header, new Uint8Array(offset)));
    assert.deepEqual(
      [...tensors.values()].map((tensor) => tensor.dtype),
      ['float64', 'float32', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'],
    );
  });

  const good = { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['fewer than 8 bytes', new Uint8Array(5), /truncated safetensors header/],
    [
      'a header over 100 MB',
      (() => {
        const b = Buffer.alloc(16);
        b.writeBigUInt64LE(BigInt(MAX_HEADER_BYTES + 1));
        return b;
      })(),
      /exceeds the 100000000-byte limit/,
    ],
    ['a header length past the end', file(good).subarray(0, 20), /runs past the end of the file/],
    ['a 2^64-1 header length', Buffer.alloc(16, 0xff), /impossibly large/],
    ['invalid UTF-8', file(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), /not valid UTF-8/],
    ['a header not starting with {', file(' {}'), /must start with '\{'/],
    ['invalid JSON', file('{"x": '), /not valid JSON/],
    ['a JSON array', file('[1]'), /must start with/],
    ['non-string metadata', file({ __metadata__: { n: 1 } }), /'__metadata__': entry 'n' is number/],
    ['metadata that is not a map', file({ __metadata__: 'x' }), /'__metadata__': must be an object/],
    [
      'an unknown dtype',
      file({ x: { dtype: 'F128', shape: [], data_offsets: [0, 16] } }, new Uint8Array(16)),
      /'x': unknown dtype 'F128'/,
    ],
    [
      'a dtype RawTensor lacks',
      file({ x: { dtype: 'U32', shape: [], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /'x': dtype U32 is not supported/,
    ],
    [
      'a negative dimension',
      file({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /'x': shape \[-1\]/,
    ],
    [
      'a fractional dimension',
      file({ x: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /'x': shape/,
    ],
    [
      'offsets with three numbers',
      file({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, new Uint8Array(8)),
      /'x': data_offsets \[0,4,8\]/,
    ],
    [
      'end before begin',
      file({ x: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)),
      /'x': .*end before they begin/,
    ],
    [
      'a size that does not match the shape',
      file({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /'x': shape \[3\] of F32 needs 12 bytes/,
    ],
    [
      'an overflowing shape',
      file({ x: { dtype: 'F64', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /'x': .*more than 2\^53/,
    ],
    [
      'a gap',
      file(
        {
          x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
          y: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
        },
        new Uint8Array(12),
      ),
      /'y': data_offsets leaves a gap/,
    ],
    [
      'an overlap',
      file(
        {
          x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
        },
        new Uint8Array(8),
      ),
      /'y': data_offsets overlaps/,
    ],
    [
      'data not starting at 0',
      file({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)),
      /'x': data_offsets leaves a gap/,
    ],
    [
      'bytes after the last tensor',
      file(good, new Uint8Array(12)),
      /tensors cover 8 bytes but the data section has 12/,
    ],
    [
      'a tensor past the end',
      file(good, new Uint8Array(6)),
      /'x': data_offsets \[0, 8\] run past the data section \(6 bytes\)/,
    ],
  ];
  for (const [what, bytes, pattern] of cases) {
    it(`refuses ${what}`, () => rejects(bytes, pattern));
  }

  it('gives a CheckpointFormatError naming the file at every truncation point', () => {
    const bytes = readFileSync(fixture('parity', 'weights_vltasks.safetensors'));
    const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
    for (const cut of [
      0,
      4,
      7,
      8,
      9,
      100,
      headerEnd - 1,
      headerEnd,
      headerEnd + 1,
      bytes.length - 4,
      bytes.length - 1,
    ]) {
      rejects(bytes.subarray(0, cut), /./);
    }
  });

  it('gives a CheckpointFormatError (or the same tensors) for flipped header bytes', () => {
    const bytes = readFileSync(fixture('parity', 'weights_vltasks.safetensors'));
    const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
    for (let position = 0; position < headerEnd; position += 37) {
      const corrupt = Buffer.from(bytes);
      corrupt[position] = corrupt[position]! ^ 0x5a;
      try {
        parseSafetensors(corrupt, 'flipped.safetensors');
      } catch (error) {
        assert.ok(error instanceof CheckpointFormatError, `byte ${position}: ${String(error)}`);
        assert.match(error.message, /^flipped\.safetensors: /);
      }
    }
  });
});

describe('safetensors writer', () => {
  const attn = (shape: number[]): RawTensor => ({ dtype: 'float32', shape, data: f32(0, 1, 2, 3, 4, 5) });

  // Expected bytes: the serialization test vectors of the reference implementation.
  it('writes the reference bytes for one tensor (header already a multiple of 8)', () => {
    const out = serializeSafetensors([['attn.0', attn([1, 2, 3])]]);
    const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    assert.equal(header.length, 64);
    assert.equal(toHex(out), toHex(Buffer.concat([file(header), f32(0, 1, 2, 3, 4, 5)])));
  });

  it('pads the header with spaces to a multiple of 8', () => {
    const out = serializeSafetensors([['attn0', attn([1, 1, 2, 3])]]);
    assert.equal(out.readBigUInt64LE(0), 72n);
    assert.equal(
      out.subarray(8, 80).toString(),
      '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ',
    );
    assert.deepEqual([...serializeSafetensors([])], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const withMetadata = serializeSafetensors([], { framework: 'pt' });
    assert.equal(withMetadata.subarray(8).toString(), '{"__metadata__":{"framework":"pt"}}     ');
  });

  it('orders tensors by dtype size (largest first), then by name bytes, so each is aligned', () => {
    const zeros = (dtype: RawTensor['dtype'], bytes: number): RawTensor => ({
      dtype,
      shape: [],
      data: new Uint8Array(bytes),
    });
    const out = serializeSafetensors([
      ['b', zeros('bool', 1)],
      ['z', zeros('float32', 4)],
      ['a', zeros('float32', 4)],
      ['h', zeros('float16', 2)],
      ['l', zeros('int64', 8)],
      ['B', zeros('float32', 4)],
      ['d', zeros('float64', 8)],
    ]);
    const { tensors } = parseSafetensors(out);
    assert.deepEqual([...tensors.keys()], ['l', 'd', 'B', 'a', 'z', 'h', 'b']);
    for (const { data } of tensors.values()) assert.equal((data.byteOffset - out.byteOffset) % data.length, 0);
  });

  it('round-trips the parity weights with their metadata, through a file', () => {
    const source = readSafetensors(fixture('parity', 'weights_vltasks.safetensors'));
    const path = join(mkdtempSync(join(tmpdir(), 'vilbert-io-')), 'copy.safetensors');
    writeSafetensors(path, source.tensors, source.metadata);
    const copy = readSafetensors(path);
    assert.deepEqual(copy.metadata, source.metadata);
    assert.deepEqual([...copy.tensors.keys()].sort(), [...source.tensors.keys()].sort());
    for (const [name, tensor] of source.tensors) {
      const other = copy.tensors.get(name)!;
      assert.deepEqual(
        [other.dtype, other.shape, toHex(other.data)],
        [tensor.dtype, tensor.shape, toHex(tensor.data)],
        name,
      );
    }
    // Writing is deterministic: the copy re-serializes to the same bytes.
    assert.equal(toHex(serializeSafetensors(copy.tensors, copy.metadata)), toHex(readFileSync(path)));
  });

  it('refuses data of the wrong length and the reserved name, naming the key', () => {
    assert.throws(
      () => serializeSafetensors([['w', { dtype: 'float32', shape: [2], data: f32(1) }]]),
      /'w': shape \[2\] of float32 needs 8 bytes, data has 4/,
    );
    assert.throws(() => serializeSafetensors([['__metadata__', attn([6])]]), /'__metadata__': is reserved/);
  });
});
