// Helpers the loader tests share.
import { after } from 'node:test';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture } from '../io/fixtures.js';

/**
 * A scratch copy of the kit directories a task reads (the loaders may write caches there),
 * optionally with the token caches the reference wrote (generated_caches/) in place.
 */
export function scratchKit(
  directories: string[],
  referenceCaches: string[] = [],
): { root: string; dispose: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'vilbert-kit-'));
  for (const directory of directories)
    cpSync(fixture('datasets', 'kit', directory), join(root, directory), { recursive: true });
  for (const directory of referenceCaches)
    cpSync(fixture('datasets', 'generated_caches', directory), join(root, directory), { recursive: true });
  return { root, dispose: () => rmSync(root, { recursive: true, force: true }) };
}

const fileScratchKits: (() => void)[] = [];
after(() => fileScratchKits.splice(0).forEach((dispose) => dispose()));

/** A scratchKit removed when the test file's tests are done (for tests that hand the root to several builds). */
export function scratchKitForFile(directories: string[]): string {
  const kit = scratchKit(directories);
  fileScratchKits.push(kit.dispose);
  return kit.root;
}
