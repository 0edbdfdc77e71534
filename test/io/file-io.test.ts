// Whole-file reads for checkpoints: the addon's reader returns the file's exact bytes, and
// failures name the file.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointFormatError } from '../../src/io/format-error.js';
import { readFileBytes } from '../../src/io/file-io.js';

it('readFileBytes returns exactly the file, small, empty and large (huge-page allocator path)', () => {
  const directory = mkdtempSync(join(tmpdir(), 'vilbert-file-io-'));
  try {
    for (const size of [0, 1, 4097, 3 * (1 << 20) + 11]) {
      const path = join(directory, `f${size}`);
      const data = Uint8Array.from({ length: size }, (_, i) => (i * 2654435761) >>> 24);
      writeFileSync(path, data);
      const bytes = readFileBytes(path);
      assert.equal(bytes.length, size);
      assert.ok(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(readFileSync(path)), `${size} bytes`);
    }
    assert.throws(() => readFileBytes(join(directory, 'missing.bin')), /missing\.bin/);
    assert.throws(() => readFileBytes(directory), (error: unknown) => error instanceof CheckpointFormatError && error.message.includes(directory) && /read failed|directory|regular file/i.test(error.message));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
