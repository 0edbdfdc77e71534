// What --from_pretrained (and the detector's files) may name besides a local path: a
// published checkpoint by name (`pretrained`, `multi-task`, `bert-base-uncased`) or an
// http(s) address, fetched once into the cache folder. A local path of the same name wins.
import { existsSync } from 'node:fs';
import { catalogue, checkpointEntry, fileUrl, type PublishedFile } from './catalogue.js';
import { DownloadError } from './download-error.js';
import { type DownloadEvent, downloadPublished } from './download.js';
import { cacheFolder, defaultMirror, isUrl, localPath, urlCachePath } from './places.js';

export interface ResolveOptions {
  /** Default cacheFolder(). */
  cacheDir?: string;
  /** Default $VILBERT_MIRROR. */
  mirror?: string;
  stallTimeout?: number;
  onEvent?: (event: DownloadEvent) => void;
}

/** A published name or an address: its cache file and the command that fetches it; undefined for anything else. */
function published(value: string, cacheDir: string): { file: string; url: string; command: string } | undefined {
  const entry = checkpointEntry(value);
  if (entry) {
    const file = entry.files[0]!;
    return {
      file: localPath(file, { cacheDir }),
      url: fileUrl(file, defaultMirror()),
      command: `npx vilbert download ${value}`,
    };
  }
  if (isUrl(value))
    return { file: urlCachePath(value, cacheDir), url: value, command: `npx vilbert download ${value}` };
  return undefined;
}

function notDownloaded(
  value: string,
  where: { file: string; url: string; command: string },
  cause?: unknown,
): DownloadError {
  const because = cause instanceof Error ? ` and could not be fetched (${cause.message})` : '';
  return new DownloadError(
    where.url,
    where.file,
    'not-downloaded',
    `${value} is not in the cache (${where.file})${because}; fetch it with \`${where.command}\` where the network is reachable, or copy the file there`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * The local file a weights argument stands for, without fetching: a local path, '' or 'none'
 * as given; a published name or an address as its cache file, which must be there (else a
 * DownloadError `not-downloaded` naming the file and the command that fetches it). Anything
 * else is returned unchanged, for the caller's own "no such file" error.
 */
export function cachedPretrained(value: string, cacheDir = cacheFolder()): string {
  if (value === '' || value === 'none' || existsSync(value)) return value;
  const where = published(value, cacheDir);
  if (!where) return value;
  if (!existsSync(where.file)) throw notDownloaded(value, where);
  return where.file;
}

/**
 * As cachedPretrained, fetching a published name or an address into the cache first when it
 * is not there. A failed fetch throws a DownloadError `not-downloaded` that says which file is
 * missing, why, and the command that fetches it.
 */
export async function fetchPretrained(value: string, options: ResolveOptions = {}): Promise<string> {
  const cacheDir = options.cacheDir ?? cacheFolder();
  if (value === '' || value === 'none' || existsSync(value)) return value;
  const where = published(value, cacheDir);
  if (!where) return value;
  if (existsSync(where.file)) return where.file;
  const summary = await downloadPublished([value], {
    cacheDir,
    ...(options.mirror === undefined ? {} : { mirror: options.mirror }),
    ...(options.stallTimeout === undefined ? {} : { stallTimeout: options.stallTimeout }),
    ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
  });
  const failure = summary.failed[0];
  if (failure) throw notDownloaded(value, where, failure.error);
  return where.file;
}

export interface DetectorFiles {
  /** detectron_model.pth */
  model: string;
  /** detectron_config.yaml */
  config: string;
}

export interface DetectorOptions extends ResolveOptions {
  /** The data folder whose data/ holds them (default the current folder). */
  dir?: string;
  /** Fetch what is missing (default false: a missing file is an error naming the command). */
  fetch?: boolean;
}

/**
 * The feature extractor's two files (data/detectron_model.pth and data/detectron_config.yaml
 * under the data folder, as the reference's data/README.md places them), fetched when asked.
 */
export async function resolveDetectorFiles(options: DetectorOptions = {}): Promise<DetectorFiles> {
  const dir = options.dir ?? '.';
  const files = catalogue().find((entry) => entry.name === 'detector')!.files;
  const [model, config] = files.map((file) => localPath(file, { dir })) as [string, string];
  const missing = files.filter((file) => !existsSync(localPath(file, { dir })));
  if (missing.length === 0) return { model, config };
  const command = `npx vilbert download detector${dir === '.' ? '' : ` --dir ${dir}`}`;
  const problem = (file: PublishedFile, cause?: unknown): DownloadError =>
    new DownloadError(
      fileUrl(file, options.mirror ?? defaultMirror()),
      localPath(file, { dir }),
      'not-downloaded',
      `the detector's ${file.target} is missing under ${dir}${cause instanceof Error ? ` and could not be fetched (${cause.message})` : ''}; fetch it with \`${command}\``,
      cause === undefined ? undefined : { cause },
    );
  if (!options.fetch) throw problem(missing[0]!);
  const summary = await downloadPublished(['detector'], {
    dir,
    ...(options.mirror === undefined ? {} : { mirror: options.mirror }),
    ...(options.stallTimeout === undefined ? {} : { stallTimeout: options.stallTimeout }),
    ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
  });
  const failure = summary.failed[0];
  if (failure)
    throw problem(files.find((file) => localPath(file, { dir }) === failure.file) ?? missing[0]!, failure.error);
  return { model, config };
}
