// Whole-file reads for checkpoints: the addon's reader returns the file's exact bytes, and
// failures name the file.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointFormatError } from '../../src/io/format-error.js';
import { readFileBytes, releaseFileBytes } from '../../src/io/file-io.js';
import * as torch from '../../src/torch/index.js';

it('readFileBytes returns exactly the file, small, empty and large (huge-page allocator path)', () => {
  const directory = mkdtempSync(join(tmpdir(), 'vilbert-file-io-'));
  try {
    for (const size of [0, 1, 4097, 3 * (1 << 20) + 11]) {
      const path = join(directory, `f${size}`);
      const data = Uint8Array.from({ length: size }, (_, i) => (i * 2654435761) >>> 24);
      writeFileSync(path, data);
      const bytes = readFileBytes(path);
      assert.equal(bytes.length, size);
      assert.ok(
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(readFileSync(path)),
        `${size} bytes`,
      );
    }
    assert.throws(() => readFileBytes(join(directory, 'missing.bin')), /missing\.bin/);
    assert.throws(
      () => readFileBytes(directory),
      (error: unknown) =>
        error instanceof CheckpointFormatError &&
        error.message.includes(directory) &&
        /read failed|directory|regular file/i.test(error.message),
    );
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

it('tensorOverFileBytes shares aligned file bytes, copies the rest; releaseFileBytes detaches the bytes, the tensors keep their memory', () => {
  const directory = mkdtempSync(join(tmpdir(), 'vilbert-file-io-'));
  try {
    const path = join(directory, 'floats.bin');
    const values = Float32Array.from({ length: 64 }, (_, i) => i * 0.5);
    writeFileSync(path, new Uint8Array(values.buffer));
    const bytes = readFileBytes(path);
    const shared = torch.tensorOverFileBytes(bytes.subarray(16, 48), 'float32', [2, 4]);
    const misaligned = torch.tensorOverFileBytes(bytes.subarray(17, 49), 'float32', [8]);
    const notAFile = torch.tensorOverFileBytes(new Uint8Array(values.buffer, 0, 16), 'float32', [4]);
    assert.deepEqual(Array.from(shared.toArray() as Float32Array), Array.from(values.subarray(4, 12)));
    assert.deepEqual(Array.from(notAFile.toArray() as Float32Array), [0, 0.5, 1, 1.5]);
    // Shared: a write into the file bytes shows in the tensor; the misaligned one was copied.
    const before = Array.from(misaligned.toArray() as Float32Array);
    new DataView(bytes.buffer, bytes.byteOffset).setFloat32(16, 99, true);
    new DataView(bytes.buffer, bytes.byteOffset).setFloat32(20, 98, true);
    assert.equal((shared.toArray() as Float32Array)[0], 99);
    assert.deepEqual(Array.from(misaligned.toArray() as Float32Array), before);
    releaseFileBytes(bytes);
    assert.equal(bytes.length, 0, 'the released bytes read as empty');
    assert.deepEqual(Array.from(shared.toArray() as Float32Array), [99, 98, ...Array.from(values.subarray(6, 12))]);
    for (const tensor of [shared, misaligned, notAFile]) tensor.dispose();
    releaseFileBytes(new Uint8Array(4)); // not a file buffer: left alone
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
