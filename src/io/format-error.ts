// The one error type of the checkpoint readers and writers: it always names the file (or
// buffer) and, where there is one, the tensor key or archive member.

export class CheckpointFormatError extends Error {
  override readonly name = 'CheckpointFormatError';

  /**
   * @param source the file path, or a label such as '<buffer>' for in-memory data
   * @param problem what was expected and what was found
   * @param key the tensor key or archive member concerned, if any
   */
  constructor(readonly source: string, readonly problem: string, readonly key?: string) {
    super(`${source}: ${key === undefined ? '' : `'${key}': `}${problem}`);
  }
}
