// Whole-file replacement that a reader never sees half-done (src/io/file-io.ts writeAtomically).
import { writeFileSync } from 'node:fs';
import { writeAtomically } from '../io/file-io.js';

export function writeFileAtomic(path: string, contents: string): void {
  writeAtomically(path, (temporary) => writeFileSync(temporary, contents));
}
