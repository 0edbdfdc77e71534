// The one error type of the checkpoint readers and writers: it always names the file (or
// buffer) and, where there is one, the tensor key or archive member.
import { VilbertError } from '../vilbert-error.js';

export class CheckpointFormatError extends VilbertError {
  override readonly name: string = 'CheckpointFormatError';
  override readonly code: string = 'E_CHECKPOINT_FORMAT';

  /**
   * @param source the file path, or a label such as '<buffer>' for in-memory data
   * @param problem what was expected and what was found
   * @param key the tensor key or archive member concerned, if any
   */
  constructor(
    readonly source: string,
    readonly problem: string,
    readonly key?: string,
  ) {
    super(`${source}: ${key === undefined ? '' : `'${key}': `}${problem}`);
  }
}
