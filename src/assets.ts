// Files shipped in the package's assets/ folder (configs, vocabulary, task registry),
// found from this module whether it runs from src/ or from the compiled dist/src/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** The path of assets/<parts...>; throws, naming the places it looked, when it is missing. */
export function assetPath(...parts: string[]): string {
  const candidates = [join(here, '..', 'assets', ...parts), join(here, '..', '..', 'assets', ...parts)];
  const found = candidates.find((candidate) => existsSync(candidate));
  if (found === undefined)
    throw new Error(
      `vilbert-ts: assets/${parts.join('/')} is missing from the package (looked in ${candidates.join(' and ')})`,
    );
  return found;
}
