// Whole-file reads and chunked writes for checkpoint files. fs.readFileSync stops at 2 GiB;
// these go up to the largest Buffer, and a writer streams tensors from their own buffers
// instead of joining a file-sized copy first.
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { constants } from 'node:buffer';
import { CheckpointFormatError } from './format-error.js';

export function readFileBytes(path: string): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > constants.MAX_LENGTH) throw new CheckpointFormatError(path, `file of ${size} bytes is larger than the largest buffer (${constants.MAX_LENGTH} bytes)`);
    const bytes = new Uint8Array(size);
    for (let read = 0; read < size;) {
      const count = readSync(fd, bytes, read, Math.min(size - read, 1 << 30), null);
      if (count === 0) throw new CheckpointFormatError(path, `file shrank while being read (${read} of ${size} bytes)`);
      read += count;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
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
