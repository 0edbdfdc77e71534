// The base of the library's typed errors. It sits alone at the bottom of the import graph so
// that any module, the torch layer included, can extend it; src/errors.ts gathers the
// subclasses for users (docs/ERRORS.md lists them with their codes).

/**
 * Every error the library throws on purpose about its inputs (a file, a config, an argument
 * it cannot use) or a run it stops. `code` is stable across releases and names the class
 * ('E_CONFIG', 'E_DATASET', ...), `name` is the class name, and the message names the file,
 * key or argument concerned. Plain `RangeError`s and `TypeError`s remain for calls that
 * break an API's contract (an index out of range, a batch size of 0).
 */
export abstract class VilbertError extends Error {
  /** The class's stable code, e.g. 'E_CHECKPOINT_FORMAT'. */
  abstract readonly code: string;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}
