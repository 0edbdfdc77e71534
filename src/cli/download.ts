// `vilbert download`: the reference's published files by name, into its layout (task data
// under --dir) and the checkpoint cache, with a bar per file and a summary; `--list` shows
// every name. Also the bars other commands draw while --from_pretrained is fetched.
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import {
  catalogue,
  downloadPublished,
  fetchPretrained,
  fileUrl,
  localPath,
  remoteSize,
  type DownloadEvent,
  type DownloadOptions,
} from '../download/index.js';
import { cacheFolder, defaultMirror } from '../download/places.js';

const MB = 1024 * 1024;

function bytes(count: number | null): string {
  if (count === null) return 'unknown';
  if (count < 1024) return `${count} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = count / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--';
  const s = Math.round(seconds);
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** Draws download events on stderr: a bar per file on a terminal (bytes, rate, ETA), lines on a pipe. */
export function downloadView(): { onEvent: (event: DownloadEvent) => void; stop: () => void } {
  const tty = process.stderr.isTTY === true;
  const bars = tty
    ? new cliProgress.MultiBar(
        {
          format: '{name} |{bar}| {done} / {size} {rate} eta {eta_text}',
          hideCursor: true,
          barsize: 24,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_grey,
      )
    : null;
  const active = new Map<string, { bar: cliProgress.SingleBar | null; started: number; from: number }>();
  const line = (text: string): void => {
    if (bars) bars.log(`${text}\n`);
    else process.stderr.write(`${text}\n`);
  };
  const onEvent = (event: DownloadEvent): void => {
    switch (event.kind) {
      case 'progress': {
        let row = active.get(event.file);
        if (!row) {
          const name = event.file.split('/').slice(-2).join('/');
          line(
            `${event.url} -> ${event.file}${event.resumedFrom > 0 ? ` (resuming at ${bytes(event.resumedFrom)})` : ''}`,
          );
          row = {
            bar: bars?.create(event.total ?? 1, event.bytes, { name: name.slice(-40).padEnd(40) }) ?? null,
            started: Date.now(),
            from: event.bytes,
          };
          active.set(event.file, row);
        }
        const seconds = (Date.now() - row.started) / 1000;
        const rate = seconds > 0 ? (event.bytes - row.from) / seconds : 0;
        const left = event.total === null || rate === 0 ? NaN : (event.total - event.bytes) / rate;
        row.bar?.setTotal(event.total ?? Math.max(event.bytes, 1));
        row.bar?.update(event.bytes, {
          done: bytes(event.bytes),
          size: bytes(event.total),
          rate: `${(rate / MB).toFixed(1)} MiB/s`,
          eta_text: duration(left),
        });
        break;
      }
      case 'done': {
        const row = active.get(event.file);
        if (row?.bar) bars?.remove(row.bar);
        active.delete(event.file);
        line(event.fetched ? `fetched ${event.file} (${bytes(event.bytes)})` : `already complete: ${event.file}`);
        break;
      }
      case 'fallback':
        line(`${event.url}: ${event.problem}; trying ${event.next}`);
        break;
      case 'unpacking':
        line(`unpacking ${event.archive} into ${event.folder}`);
        break;
      case 'unpacked':
        line(`unpacked ${event.members} members into ${event.folder}`);
        break;
      case 'failed': {
        const row = active.get(event.file);
        if (row?.bar) bars?.remove(row.bar);
        active.delete(event.file);
        line(`failed: ${event.error.message}`);
        break;
      }
    }
  };
  return { onEvent, stop: () => bars?.stop() };
}

interface DownloadFlags {
  dir: string;
  mirror?: string;
  list: boolean;
  remoteSizes: boolean;
  keepArchives: boolean;
  stallTimeout: number;
}

async function list(flags: DownloadFlags): Promise<void> {
  const mirror = flags.mirror ?? defaultMirror();
  for (const entry of catalogue()) {
    console.log(`${entry.name}: ${entry.summary}`);
    for (const file of entry.files) {
      const url = fileUrl(file, mirror);
      let size = file.size === undefined ? 'size unknown' : bytes(file.size);
      if (flags.remoteSizes && file.size === undefined) {
        const told = await remoteSize(url, flags.stallTimeout);
        size = told === null ? 'size unknown (the server did not say)' : `${bytes(told)} (the server's)`;
      }
      console.log(
        `  ${localPath(file, { dir: flags.dir })}  ${size}${file.archive ? ', unpacked into the folder' : ''}`,
      );
      console.log(`    from ${url}`);
    }
  }
  console.log(`checkpoints go to ${cacheFolder()} ($VILBERT_CACHE); the rest under ${flags.dir} (--dir)`);
}

async function download(names: string[], flags: DownloadFlags): Promise<void> {
  if (flags.list) return list(flags);
  if (names.length === 0) throw new Error('name what to download (vilbert download --list shows every name)');
  const view = downloadView();
  const started = Date.now();
  const options: DownloadOptions = {
    dir: flags.dir,
    stallTimeout: flags.stallTimeout,
    keepArchives: flags.keepArchives,
    onEvent: view.onEvent,
    ...(flags.mirror === undefined ? {} : { mirror: flags.mirror }),
  };
  let summary;
  try {
    summary = await downloadPublished(names, options);
  } finally {
    view.stop();
  }
  const fetched = summary.done.filter((entry) => entry.fetched);
  const total = fetched.reduce((sum, entry) => sum + entry.bytes - entry.resumedFrom, 0);
  const seconds = (Date.now() - started) / 1000;
  console.log(
    `${fetched.length} fetched (${bytes(total)} in ${duration(seconds)}), ${summary.done.length - fetched.length} already complete, ${summary.failed.length} failed`,
  );
  for (const entry of summary.done) console.log(`  ok      ${entry.path}`);
  for (const failure of summary.failed) console.log(`  failed  ${failure.file}: ${failure.error.message}`);
  if (summary.failed.length > 0) process.exitCode = 1;
}

export function registerDownload(program: Command): void {
  program
    .command('download')
    .description(
      "fetch the reference's published files: checkpoints (into $VILBERT_CACHE), the detector, annotations and task features (into --dir, in the reference's layout)",
    )
    .argument(
      '[what...]',
      'names (see --list): pretrained, multi-task, bert-base-uncased, detector, annotations, coco, vqa, refcoco, nlvr2, ..., all; or an http(s) address (into the cache)',
    )
    .option('--dir <dir>', 'data folder that receives datasets/ and data/', '.')
    .option('--mirror <url>', 'replaces the published base addresses (default $VILBERT_MIRROR)')
    .option('--list', 'print every name with its files, sizes and addresses', false)
    .option('--remote-sizes', 'with --list: ask the server for each size that is not on record', false)
    .option('--keep-archives', 'keep datasets.tar.gz after unpacking it', false)
    .option(
      '--stall-timeout <seconds>',
      'abandon a transfer after this long without data (it resumes on the next run)',
      Number,
      60,
    )
    .action((names: string[], flags: DownloadFlags) => download(names, flags));
}

/** Fetches a --from_pretrained name or address into the cache, drawing its bar; returns the local file (a local path passes through). */
export async function fetchFromPretrained(value: string): Promise<string> {
  const view = downloadView();
  try {
    return await fetchPretrained(value, { onEvent: view.onEvent });
  } finally {
    view.stop();
  }
}
