// The errors of fetching the reference's published files: what went wrong, with the address
// and the local file named, so that a user can retry, fetch by hand or free space.
import { VilbertError } from '../vilbert-error.js';

/**
 * Why a download stopped:
 * - `http-status`: the server answered with an error status (404, 403, 500, ...);
 * - `connection`: no answer (refused, unknown host, reset before any byte);
 * - `truncated`: the body ended before the size the server announced (the part is kept for resuming);
 * - `stalled`: no byte arrived for the stall timeout (the part is kept);
 * - `size-mismatch`: the server's size, or the bytes received, differ from the size on record;
 * - `disk-space`: the target's file system has less free space than the file needs;
 * - `not-downloaded`: a published file is needed and is not on disk (nothing was fetched).
 */
export type DownloadFailure =
  'http-status' | 'connection' | 'truncated' | 'stalled' | 'size-mismatch' | 'disk-space' | 'not-downloaded';

export class DownloadError extends VilbertError {
  readonly code = 'E_DOWNLOAD';

  constructor(
    /** The address fetched (or, for `not-downloaded`, the one that would be). */
    readonly url: string,
    /** The local file it was going to. */
    readonly file: string,
    readonly reason: DownloadFailure,
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(`${url}: ${problem}`, options);
  }
}

/** An archive member that would land outside the folder it is unpacked into, or is not a plain file, folder or inner link. */
export class UnsafeArchiveError extends VilbertError {
  readonly code = 'E_UNSAFE_ARCHIVE';

  constructor(
    readonly archive: string,
    readonly member: string,
    readonly problem: string,
  ) {
    super(`${archive}: member '${member}' ${problem}; nothing was unpacked`);
  }
}
