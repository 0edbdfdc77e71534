// The two ways `vilbert serve` refuses: a request it cannot answer (sent back as a JSON error
// with an HTTP status, the server keeps serving) and a setup it cannot start from.
import { VilbertError } from '../vilbert-error.js';

/** A request the server refuses: `status` is the HTTP status sent, `problem` says what is wrong and where. */
export class ServeRequestError extends VilbertError {
  override readonly name = 'ServeRequestError';
  override readonly code = 'E_SERVE_REQUEST';

  constructor(
    readonly status: number,
    readonly problem: string,
  ) {
    super(problem);
  }
}

/** `vilbert serve` cannot start: no demo folder, a feature store without pictures, a missing folder. */
export class ServeSetupError extends VilbertError {
  override readonly name = 'ServeSetupError';
  override readonly code = 'E_SERVE_SETUP';
}
