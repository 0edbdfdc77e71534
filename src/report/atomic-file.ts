// Whole-file replacement that a reader never sees half-done: write a temporary file in the
// same folder, fsync it, rename it over the target (atomic on POSIX within one file system).
// Twenty lines of our own rather than a write-file-atomic dependency: we need only this path.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

export function writeFileAtomic(path: string, contents: string): void {
  const temporary = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  try {
    const fd = openSync(temporary, 'w');
    try {
      const bytes = Buffer.from(contents, 'utf8');
      for (let written = 0; written < bytes.length;) written += writeSync(fd, bytes, written, bytes.length - written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
