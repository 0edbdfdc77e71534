// `vilbert download`'s work as a library call: the files of the named sets, each fetched
// unless already complete, archives unpacked into the data folder; one failure does not stop
// the other files, and whatever completed stays.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type PublishedFile, fileUrl, selectFiles } from './catalogue.js';
import { DownloadError, UnsafeArchiveError } from './download-error.js';
import { type FileProgress, downloadFile } from './http-file.js';
import { unpackTarGz } from './archive.js';
import { type Places, defaultMirror, isUrl, localPath, urlCachePath } from './places.js';

export type DownloadEvent =
  | ({ kind: 'progress' } & FileProgress)
  | { kind: 'done'; url: string; file: string; bytes: number; fetched: boolean; resumedFrom: number }
  | { kind: 'fallback'; url: string; next: string; problem: string }
  | { kind: 'unpacking'; archive: string; folder: string }
  | { kind: 'unpacked'; archive: string; folder: string; members: number }
  | { kind: 'failed'; url: string; file: string; error: DownloadError | UnsafeArchiveError };

export interface DownloadOptions extends Places {
  /** Replaces every published base address (default $VILBERT_MIRROR). */
  mirror?: string;
  /** Seconds without data before a transfer is abandoned (default 60). */
  stallTimeout?: number;
  /** Resuming attempts after a cut or stall (default 2). */
  retries?: number;
  /** Keep an archive once unpacked (default: removed). */
  keepArchives?: boolean;
  onEvent?: (event: DownloadEvent) => void;
}

export interface DownloadedEntry {
  url: string;
  /** The file, or for an archive the folder it was unpacked into. */
  path: string;
  bytes: number;
  /** false: already complete, nothing fetched. */
  fetched: boolean;
  resumedFrom: number;
  /** Members unpacked, for an archive unpacked by this call. */
  unpacked?: number;
}

export interface DownloadSummary {
  done: DownloadedEntry[];
  failed: { url: string; file: string; error: DownloadError | UnsafeArchiveError }[];
}

/** An archive's record of having been unpacked, kept in the data folder's .vilbert-downloads/. */
function stampPath(file: PublishedFile, dir: string): string {
  return join(dir, '.vilbert-downloads', `${file.target}.unpacked.json`);
}

/** Fetches `url` (then each fallback while the address before it is gone) into `target`. */
async function fetchWithFallbacks(
  urls: string[],
  target: string,
  options: DownloadOptions,
  extra: { expectedSize?: number; reserveUnpacked?: boolean },
): Promise<{ url: string; bytes: number; fetched: boolean; resumedFrom: number }> {
  for (let index = 0; ; index += 1) {
    const url = urls[index]!;
    try {
      const result = await downloadFile(url, target, {
        ...extra,
        ...(options.stallTimeout === undefined ? {} : { stallTimeout: options.stallTimeout }),
        ...(options.retries === undefined ? {} : { retries: options.retries }),
        onProgress: (progress) => options.onEvent?.({ kind: 'progress', ...progress }),
      });
      return result;
    } catch (error) {
      const next = urls[index + 1];
      if (next === undefined || !(error instanceof DownloadError) || !addressGone(error)) throw error;
      options.onEvent?.({ kind: 'fallback', url, next, problem: error.problem });
    }
  }
}

/** The address no longer serves the file: 403/404/410, or its host is unknown. */
function addressGone(error: DownloadError): boolean {
  if (error.reason === 'http-status') return /^HTTP (403|404|410)\b/.test(error.problem);
  return error.reason === 'connection' && /ENOTFOUND|EAI_AGAIN/.test(error.problem);
}

/** Downloads one published file (and unpacks it if it is an archive). */
async function downloadOne(file: PublishedFile, options: DownloadOptions): Promise<DownloadedEntry> {
  const mirror = options.mirror ?? defaultMirror();
  const urls = [fileUrl(file, mirror), ...(mirror ? [] : (file.fallbacks ?? []))];
  const dir = options.dir ?? '.';
  const extra = file.size === undefined ? {} : { expectedSize: file.size };
  if (!file.archive) {
    const path = localPath(file, options);
    const result = await fetchWithFallbacks(urls, path, options, extra);
    options.onEvent?.({ kind: 'done', file: path, ...result });
    return { ...result, path };
  }
  const stamp = stampPath(file, dir);
  if (existsSync(stamp)) {
    const record = JSON.parse(readFileSync(stamp, 'utf8')) as { url: string; bytes: number };
    options.onEvent?.({
      kind: 'done',
      url: record.url,
      file: dir,
      bytes: record.bytes,
      fetched: false,
      resumedFrom: 0,
    });
    return { url: record.url, path: dir, bytes: record.bytes, fetched: false, resumedFrom: 0 };
  }
  const archive = join(dir, '.vilbert-downloads', file.target);
  const result = await fetchWithFallbacks(urls, archive, options, { ...extra, reserveUnpacked: true });
  options.onEvent?.({ kind: 'done', file: archive, ...result });
  options.onEvent?.({ kind: 'unpacking', archive, folder: dir });
  const members = await unpackTarGz(archive, dir);
  mkdirSync(dirname(stamp), { recursive: true });
  writeFileSync(stamp, `${JSON.stringify({ url: result.url, bytes: result.bytes, members })}\n`);
  if (!options.keepArchives) rmSync(archive);
  options.onEvent?.({ kind: 'unpacked', archive, folder: dir, members });
  return { ...result, path: dir, unpacked: members };
}

/**
 * Downloads the files of the named sets (`multi-task`, `annotations`, `vqa`, `all`, ...; see
 * catalogue()) or of addresses given directly (into the cache's urls/ folder). Files already
 * complete are not fetched again. Returns what completed and what failed.
 */
export async function downloadPublished(
  names: readonly string[],
  options: DownloadOptions = {},
): Promise<DownloadSummary> {
  const files = selectFiles(names.filter((name) => !isUrl(name)));
  const summary: DownloadSummary = { done: [], failed: [] };
  const record = (url: string, file: string, error: unknown): void => {
    if (!(error instanceof DownloadError || error instanceof UnsafeArchiveError)) throw error;
    summary.failed.push({ url, file, error });
    options.onEvent?.({ kind: 'failed', url, file, error });
  };
  for (const file of files) {
    try {
      summary.done.push(await downloadOne(file, options));
    } catch (error) {
      record(fileUrl(file, options.mirror ?? defaultMirror()), localPath(file, options), error);
    }
  }
  for (const url of names.filter(isUrl)) {
    const path = urlCachePath(url, options.cacheDir);
    try {
      const result = await fetchWithFallbacks([url], path, options, {});
      options.onEvent?.({ kind: 'done', file: path, ...result });
      summary.done.push({ ...result, path });
    } catch (error) {
      record(url, path, error);
    }
  }
  return summary;
}
