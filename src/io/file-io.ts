// Whole-file reads and chunked writes for checkpoint files. fs.readFileSync stops at 2 GiB;
// these go up to the largest Buffer, and a writer streams tensors from their own buffers
// instead of joining a file-sized copy first.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { constants } from 'node:buffer';
import { CheckpointFormatError } from './format-error.js';
import { native } from '../torch/native.js';

/**
 * The whole file, read natively into libtorch's allocator (huge pages, reused memory):
 * filling a fresh zeroed JavaScript buffer cost ~0.9 s of page faults per GiB here.
 */
export function readFileBytes(path: string): Uint8Array {
  try {
    return new Uint8Array(native.readFile(path, constants.MAX_LENGTH));
  } catch (error) {
    throw new CheckpointFormatError(path, (error as Error).message);
  }
}

/**
 * Ends a `readFileBytes` result at once instead of at its garbage collection: every view
 * over it reads as empty afterwards, and its memory is freed when the last tensor made over
 * it (tensorOverFileBytes) is.
 */
export function releaseFileBytes(bytes: Uint8Array): void {
  native.releaseFile(bytes.buffer as ArrayBuffer);
}

export function writeChunks(path: string, chunks: readonly Uint8Array[]): void {
  const fd = openSync(path, 'w');
  try {
    for (const chunk of chunks) {
      for (let written = 0; written < chunk.length;) written += writeSync(fd, chunk, written, chunk.length - written);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a file through `write(temporaryPath)` (a name beside `path`), fsyncs it and
 * renames it over `path`: a reader sees the old file or the complete new one, and a
 * process killed on the way leaves the old one valid.
 */
export function writeAtomically(path: string, write: (temporaryPath: string) => void): void {
  const temporary = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  try {
    write(temporary);
    const fd = openSync(temporary, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  try {
    const directory = openSync(dirname(path), 'r');
    try {
      fsyncSync(directory);
    } finally {
      closeSync(directory);
    }
  } catch {
    // Directories cannot be fsynced on every platform; the rename is still atomic.
  }
}
