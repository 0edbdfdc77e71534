// The scalar log of a training run, `metrics.jsonl`: one JSON object per line,
// {"tag": "train/VQA_loss", "step": 12, "value": 0.53, "time": 1733100000.123}.
// JSON has no NaN or infinities; a diverged loss is still worth seeing, so those values are
// written as the strings "NaN", "Infinity" and "-Infinity" and read back as numbers.
//
// Every scalar is one synchronous write of one whole line: a killed process loses at most
// the line being written, which the reader then skips. A broken line anywhere else is
// corruption, and the reader names it.
import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { VilbertError } from '../vilbert-error.js';

export interface MetricPoint {
  step: number;
  value: number;
  /** Seconds since the Unix epoch when the value was logged; NaN if the line had none. */
  time: number;
}

/** Points of each tag, ordered by step (file order among equal steps). */
export type MetricSeries = Map<string, MetricPoint[]>;

export class MetricsFormatError extends VilbertError {
  override readonly name = 'MetricsFormatError';
  override readonly code = 'E_METRICS_FORMAT';

  constructor(
    readonly path: string,
    readonly line: number,
    readonly problem: string,
  ) {
    super(`${path}:${line}: ${problem}`);
  }
}

export interface ReadMetricsOptions {
  /** Called when the last line is incomplete (a killed run) and was skipped. */
  onTruncatedLine?: (line: number) => void;
}

interface MetricLine {
  line: number;
  text: string;
  tag: string;
  point: MetricPoint;
}

const NON_FINITE: Record<string, number> = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
};

function describe(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

function toMetric(path: string, line: number, text: string, parsed: unknown): MetricLine {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new MetricsFormatError(path, line, `expected an object {tag, step, value, time}, found ${describe(parsed)}`);
  }
  const { tag, step, value, time } = parsed as Record<string, unknown>;
  if (typeof tag !== 'string' || tag === '')
    throw new MetricsFormatError(path, line, `'tag' must be a non-empty string, found ${describe(tag)}`);
  if (typeof step !== 'number')
    throw new MetricsFormatError(path, line, `'step' of ${tag} must be a number, found ${describe(step)}`);
  const number = typeof value === 'number' ? value : typeof value === 'string' ? NON_FINITE[value] : undefined;
  if (number === undefined)
    throw new MetricsFormatError(
      path,
      line,
      `'value' of ${tag} must be a number, "NaN", "Infinity" or "-Infinity", found ${describe(value)}`,
    );
  if (time !== undefined && typeof time !== 'number')
    throw new MetricsFormatError(path, line, `'time' of ${tag} must be a number, found ${describe(time)}`);
  return { line, text, tag, point: { step, value: number, time: time ?? Number.NaN } };
}

/** The file's metric lines; an unparsable last line is skipped (and reported), any other throws. */
function parseMetricLines(path: string, options: ReadMetricsOptions = {}): MetricLine[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  let last = lines.length - 1;
  while (last >= 0 && lines[last]!.trim() === '') last -= 1;
  const metrics: MetricLine[] = [];
  for (let index = 0; index <= last; index += 1) {
    const text = lines[index]!;
    if (text.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      if (index === last) {
        options.onTruncatedLine?.(index + 1);
        break;
      }
      throw new MetricsFormatError(
        path,
        index + 1,
        `not a JSON line (${(error as Error).message}): ${text.slice(0, 80)}`,
      );
    }
    metrics.push(toMetric(path, index + 1, text, parsed));
  }
  return metrics;
}

/** Reads `metrics.jsonl` into points by tag. */
export function readMetrics(path: string, options: ReadMetricsOptions = {}): MetricSeries {
  const series: MetricSeries = new Map();
  for (const { tag, point } of parseMetricLines(path, options)) {
    let points = series.get(tag);
    if (!points) series.set(tag, (points = []));
    points.push(point);
  }
  for (const points of series.values()) points.sort((a, b) => a.step - b.step);
  return series;
}

export interface MetricsLogOptions {
  /** Keep the existing file and add to it (resuming a run); otherwise start it empty. */
  append?: boolean;
}

/** The trainer's writer of `metrics.jsonl`. */
export class MetricsLog {
  #fd: number | null;

  constructor(
    readonly path: string,
    options: MetricsLogOptions = {},
  ) {
    mkdirSync(dirname(path), { recursive: true });
    const append = options.append ?? false;
    this.#fd = openSync(path, append ? 'a' : 'w');
    if (append) this.#completeLastLine();
  }

  /** Logs one value now; it is in the file (the OS's cache) when this returns. */
  scalar(tag: string, step: number, value: number): void {
    if (tag === '') throw new TypeError('metric tag must be a non-empty string');
    if (!Number.isFinite(step)) throw new TypeError(`step of ${tag} must be a finite number, got ${step}`);
    const written = Number.isFinite(value) ? value : String(value);
    this.#write(`${JSON.stringify({ tag, step, value: written, time: Date.now() / 1000 })}\n`);
  }

  /** Forces the lines written so far to disk (they already survive the process being killed). */
  flush(): void {
    fsyncSync(this.#open());
  }

  /**
   * Keeps only the lines with step < `step`, so that a run resumed from a checkpoint taken
   * before iteration `step` does not log its repeated iterations twice. The file is
   * replaced atomically; logging continues at its end.
   */
  truncateAfter(step: number): void {
    const kept = parseMetricLines(this.path).filter((metric) => metric.point.step < step);
    fsyncSync(this.#open());
    closeSync(this.#fd!);
    this.#fd = null;
    writeFileAtomic(this.path, kept.map((metric) => `${metric.text}\n`).join(''));
    this.#fd = openSync(this.path, 'a');
  }

  close(): void {
    if (this.#fd === null) return;
    fsyncSync(this.#fd);
    closeSync(this.#fd);
    this.#fd = null;
  }

  #open(): number {
    if (this.#fd === null) throw new Error(`${this.path}: the metrics log is closed`);
    return this.#fd;
  }

  #write(text: string): void {
    const fd = this.#open();
    const bytes = Buffer.from(text, 'utf8');
    for (let written = 0; written < bytes.length;) written += writeSync(fd, bytes, written, bytes.length - written);
  }

  /** A file left by a killed run may end inside a line: drop that fragment, or end a complete line. */
  #completeLastLine(): void {
    const text = readFileSync(this.path, 'utf8');
    if (text === '' || text.endsWith('\n')) return;
    const start = text.lastIndexOf('\n') + 1;
    try {
      JSON.parse(text.slice(start));
      this.#write('\n');
    } catch {
      ftruncateSync(this.#open(), Buffer.byteLength(text.slice(0, start), 'utf8'));
    }
  }
}
