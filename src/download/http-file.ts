// One file over HTTP(S), safely: streamed into `<file>.part`, renamed into place only when
// complete, resumed with a Range request after a cut, checked against the server's size and
// the size on record, refused before it starts when the disk cannot hold it, and stopped
// with the address named when the server stalls.
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
} from 'node:fs';
import { createWriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DownloadError } from './download-error.js';
import { withFileLock } from './file-lock.js';

export interface FileProgress {
  url: string;
  file: string;
  /** Bytes in the file so far, resumed bytes included. */
  bytes: number;
  /** The whole file's size when known (server or record). */
  total: number | null;
  /** Bytes already on disk when this request started (a resumed transfer). */
  resumedFrom: number;
}

export interface DownloadFileOptions {
  /** The size on record: the server's must agree, and so must the bytes received. */
  expectedSize?: number;
  /** Seconds without a byte before the transfer is abandoned (default 60). */
  stallTimeout?: number;
  /** Further attempts after a cut or a stall, each resuming where the last stopped (default 2). */
  retries?: number;
  /** An archive to unpack beside it: the free-space check asks for its size twice (a lower bound). */
  reserveUnpacked?: boolean;
  onProgress?: (progress: FileProgress) => void;
}

export interface DownloadedFile {
  url: string;
  file: string;
  bytes: number;
  /** Bytes that came from an earlier, interrupted transfer. */
  resumedFrom: number;
  /** false when the file was already complete (nothing fetched). */
  fetched: boolean;
}

const PART = '.part';

/** Fetches `url` into `file` unless `file` is already there; concurrent callers for the same file wait for each other. */
export async function downloadFile(
  url: string,
  file: string,
  options: DownloadFileOptions = {},
): Promise<DownloadedFile> {
  mkdirSync(dirname(file), { recursive: true });
  return withFileLock(`${file}.lock`, async () => {
    if (existsSync(file)) {
      const bytes = statSync(file).size;
      if (options.expectedSize === undefined || bytes === options.expectedSize) {
        return { url, file, bytes, resumedFrom: 0, fetched: false };
      }
      rmSync(file); // a file of another size than the record is not the published one
    }
    const retries = options.retries ?? 2;
    const resumedFrom = partSize(file);
    for (let attempt = 0; ; attempt += 1) {
      try {
        return { ...(await attemptTransfer(url, file, options)), resumedFrom };
      } catch (error) {
        const resumable =
          error instanceof DownloadError && (error.reason === 'truncated' || error.reason === 'stalled');
        if (!resumable || attempt >= retries) throw error;
      }
    }
  });
}

function partSize(file: string): number {
  return existsSync(file + PART) ? statSync(file + PART).size : 0;
}

/** `bytes a-b/total` of a 206 (or `bytes *\/total` of a 416). */
function contentRange(header: string | null): { start: number | null; total: number | null } {
  const match = /^bytes (?:(\d+)-\d+|\*)\/(\d+|\*)$/.exec(header?.trim() ?? '');
  if (!match) return { start: null, total: null };
  return {
    start: match[1] === undefined ? null : Number(match[1]),
    total: match[2] === '*' ? null : Number(match[2]),
  };
}

function describe(bytes: number): string {
  return `${bytes.toLocaleString('en-US')} bytes`;
}

/** One request: from the part's end (Range) or from the start; throws DownloadError, leaving the part for the next attempt. */
async function attemptTransfer(url: string, file: string, options: DownloadFileOptions): Promise<DownloadedFile> {
  const part = file + PART;
  let offset = partSize(file);
  if (options.expectedSize !== undefined && offset > options.expectedSize) {
    rmSync(part);
    offset = 0;
  }
  const stallMs = (options.stallTimeout ?? 60) * 1000;
  const controller = new AbortController();
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const armStallTimer = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      controller.abort();
    }, stallMs);
  };
  const fail = (reason: DownloadError['reason'], problem: string, cause?: unknown): DownloadError =>
    new DownloadError(url, file, reason, problem, cause === undefined ? undefined : { cause });
  const stallProblem = (): string =>
    `no data for ${stallMs / 1000} s after ${describe(partSize(file))}; the part is kept in ${part} and the next run resumes it`;

  armStallTimer();
  try {
    let response: Response;
    try {
      response = await fetch(url, {
        headers: offset > 0 ? { Range: `bytes=${offset}-` } : {},
        signal: controller.signal,
        redirect: 'follow',
      });
    } catch (error) {
      if (stalled) throw fail('stalled', `the server did not answer within ${stallMs / 1000} s`, error);
      const cause = (error as { cause?: { code?: string; errors?: { code?: string }[] } }).cause;
      const code = cause?.code ?? cause?.errors?.[0]?.code ?? '';
      throw fail('connection', `no connection${code ? ` (${code})` : ''}: ${(error as Error).message}`, error);
    }
    if (response.status === 416 && offset > 0) {
      // The part may already hold the whole file.
      const { total } = contentRange(response.headers.get('content-range'));
      await response.body?.cancel();
      if (total !== null && total === offset && (options.expectedSize ?? total) === total) {
        finish(part, file);
        return { url, file, bytes: offset, resumedFrom: offset, fetched: true };
      }
      rmSync(part);
      throw fail(
        'truncated',
        `the server refused to resume at ${describe(offset)} (416); the part was removed, run again`,
      );
    }
    if (response.status !== 200 && response.status !== 206) {
      await response.body?.cancel();
      throw fail('http-status', `HTTP ${response.status} ${response.statusText}`.trimEnd());
    }
    let total: number | null;
    if (response.status === 206) {
      const range = contentRange(response.headers.get('content-range'));
      if (range.start !== offset) {
        await response.body?.cancel();
        rmSync(part, { force: true });
        throw fail(
          'truncated',
          `the server resumed at ${range.start ?? '?'} instead of ${offset}; the part was removed, run again`,
        );
      }
      total = range.total;
    } else {
      offset = 0; // the server ignored the Range: start over
      const length = response.headers.get('content-length');
      total = length === null ? null : Number(length);
    }
    if (total !== null && options.expectedSize !== undefined && total !== options.expectedSize) {
      await response.body?.cancel();
      throw fail(
        'size-mismatch',
        `the server's file has ${describe(total)}, the published file ${describe(options.expectedSize)}; nothing was written`,
      );
    }
    total ??= options.expectedSize ?? null;
    if (total !== null) {
      const needed = total - offset + (options.reserveUnpacked ? total : 0);
      const free = freeBytes(dirname(file));
      if (needed > free) {
        await response.body?.cancel();
        throw fail(
          'disk-space',
          `needs ${describe(needed)} free in ${dirname(file)}, which has ${describe(free)}; free space or choose another folder`,
        );
      }
    }
    if (!response.body) throw fail('truncated', 'the response has no body');

    let bytes = offset;
    const report = (): void => options.onProgress?.({ url, file, bytes, total, resumedFrom: offset });
    report();
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        armStallTimer();
        bytes += chunk.length;
        report();
        done(null, chunk);
      },
    });
    try {
      await pipeline(
        Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
        counter,
        createWriteStream(part, { flags: offset > 0 ? 'a' : 'w' }),
      );
    } catch (error) {
      if (stalled) throw fail('stalled', stallProblem(), error);
      throw fail(
        'truncated',
        `the transfer was cut after ${describe(partSize(file))}${total === null ? '' : ` of ${describe(total)}`} (${(error as Error).message}); the part is kept in ${part} and the next run resumes it`,
        error,
      );
    }
    const received = partSize(file);
    if (total !== null && received !== total) {
      if (received > total) rmSync(part);
      throw fail(
        received < total ? 'truncated' : 'size-mismatch',
        `received ${describe(received)} of ${describe(total)}${received < total ? `; the part is kept in ${part} and the next run resumes it` : '; the part was removed'}`,
      );
    }
    finish(part, file);
    return { url, file, bytes: received, resumedFrom: offset, fetched: true };
  } finally {
    clearTimeout(timer);
  }
}

/** Flushes the part to disk and renames it into place. */
function finish(part: string, file: string): void {
  const fd = openSync(part, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(part, file);
}

/** Free bytes for an unprivileged user on the file system holding `dir`. */
export function freeBytes(dir: string): number {
  const stats = statfsSync(dir);
  return stats.bavail * stats.bsize;
}

/** The size the server gives for `url` (a HEAD request), or null when it gives none or cannot be reached in `timeout` seconds. */
export async function remoteSize(url: string, timeout = 60): Promise<number | null> {
  try {
    const response = await fetch(url, {
      method: 'HEAD',
      redirect: 'follow',
      signal: AbortSignal.timeout(timeout * 1000),
    });
    const length = response.ok ? response.headers.get('content-length') : null;
    return length === null ? null : Number(length);
  } catch {
    return null;
  }
}
