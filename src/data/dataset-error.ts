// The one error of the dataset modules (the task loaders, the task registry, the token
// caches): a leaf module, so that every data module can throw it without an import circle.
import { VilbertError } from '../vilbert-error.js';

/**
 * A task's input that does not hold what the reference expects (an annotation, cache or id
 * file, a task registry, a split or task the loader does not know): names the file (or the
 * task, or the entry within a file) and, for line-based files, the line.
 */
export class DatasetError extends VilbertError {
  override readonly name = 'DatasetError';
  override readonly code = 'E_DATASET';

  /**
   * @param path the file, or the task or entry the problem is about ('' when there is none)
   * @param problem what was expected and what was found
   * @param line the 1-based line concerned, if any
   */
  constructor(
    readonly path: string,
    readonly problem: string,
    readonly line?: number,
  ) {
    super(`${path}${line === undefined ? '' : `:${line}`}${path === '' && line === undefined ? '' : ': '}${problem}`);
  }
}
