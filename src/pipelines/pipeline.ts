// What every pipeline shares: its task's settings from the model folder, text and region
// inputs built as the reference's datasets build them, batched forwards under inference
// mode, progress events, and disposal.
import * as torch from '../torch/index.js';
import { FEATURE_WIDTH, LOCATION_WIDTH, padRegions, type PaddedRegions } from '../data/features.js';
import type { TaskProcess } from '../data/task-registry.js';
import { prepareBatch } from '../task-step/step.js';
import type { VLHead } from '../model/vilbert.js';
import type { Precision } from '../model/precision.js';
import type { EncodedSentence } from '../text/index.js';
import { ImageResolver, type ImageInput, type ImageRegions } from './image-input.js';
import { loadModelFolder, type ModelFolder, type PipelineTask, type TaskSettings } from './model-folder.js';

/** Progress of loading (one event per model-folder file, then 'ready') and of predicting (after each batch). */
export type ProgressEvent =
  | { status: 'loading'; task: PipelineTask; file: string }
  | { status: 'ready'; task: PipelineTask }
  | { status: 'progress'; task: PipelineTask; done: number; total: number };

export interface PipelineOptions {
  onProgress?: (event: ProgressEvent) => void;
  /** Images per forward pass where a call scores many (retrieve); default 32. */
  batchSize?: number;
  /** The precision of a model this pipeline loads: 'fp32', 'bf16' or 'int8' (see loadModelFolder); a shared folder keeps its own. */
  precision?: Precision;
}

/** What every pipeline function also has. */
export interface PipelineHandle {
  readonly task: PipelineTask;
  readonly folder: ModelFolder;
  /** Frees the model (when the pipeline loaded it) and closes the LMDBs it opened. */
  dispose(): void;
}

/** One row of a forward pass: a text and one image's regions (two for NLVR2's pair). */
export interface InputRow {
  sentence: EncodedSentence;
  regions: PaddedRegions[];
}

export function checkTopk(topk: number, task: PipelineTask): void {
  if (!Number.isSafeInteger(topk) || topk < 1)
    throw new RangeError(`${task}: topk must be a positive integer, got ${topk}`);
}

export const sigmoid = (logit: number): number => 1 / (1 + Math.exp(-logit));

/** Indices 0..count-1 ordered by their values, highest first; ties in index order (as torch.argmax picks the first). */
export function rankIndices(values: ArrayLike<number>, count = values.length): number[] {
  return Array.from({ length: count }, (_, index) => index).sort((a, b) => values[b]! - values[a]! || a - b);
}

export class PipelineContext {
  readonly settings: TaskSettings;
  readonly batchSize: number;
  readonly #images = new ImageResolver();
  readonly #onProgress: ((event: ProgressEvent) => void) | undefined;
  #disposed = false;

  constructor(
    readonly task: PipelineTask,
    readonly folder: ModelFolder,
    private readonly ownsModel: boolean,
    options: PipelineOptions,
  ) {
    const settings = folder.tasks[task];
    if (settings === undefined) {
      const available = Object.keys(folder.tasks);
      throw new Error(
        `${folder.dir}: tasks.json has no '${task}' pipeline (it has ${available.length > 0 ? available.join(', ') : 'none'})`,
      );
    }
    this.settings = settings;
    this.batchSize = options.batchSize ?? 32;
    if (!Number.isSafeInteger(this.batchSize) || this.batchSize < 1)
      throw new RangeError(`batchSize must be a positive integer, got ${options.batchSize}`);
    this.#onProgress = options.onProgress;
  }

  /** [CLS] text [SEP] padded to the task's max_seq_length, as the datasets tokenise. */
  encode(text: string): EncodedSentence {
    if (typeof text !== 'string') throw new TypeError(`${this.task}: the text must be a string, got ${typeof text}`);
    this.#checkOpen();
    return this.folder.tokenizer.encodeSingleSentence(text, this.settings.max_seq_length);
  }

  /** An image's regions (all of them, for reporting boxes) and the model's padded rows. */
  image(image: ImageInput, what: string): { regions: ImageRegions; padded: PaddedRegions } {
    this.#checkOpen();
    const regions = this.#images.regions(image, what);
    return { regions, padded: padRegions(regions, this.settings.max_region_num) };
  }

  /** Refuses what image() would refuse of an argument, without building its regions (see ImageResolver.check). */
  checkImage(image: ImageInput, what: string): void {
    this.#checkOpen();
    this.#images.check(image, what);
  }

  report(event: ProgressEvent): void {
    this.#onProgress?.(event);
  }

  /**
   * One forward pass of `head` over the rows, in inference mode: the head's output, copied out
   * of the engine, every tensor freed. 'nlvr' rows hold an image pair, paired as the
   * reference's NLVR2 step pairs them.
   */
  forward(rows: readonly InputRow[], head: VLHead, process: TaskProcess = 'normal'): Float32Array {
    this.#checkOpen();
    const B = rows.length;
    const L = this.settings.max_seq_length;
    const R = this.settings.max_region_num * (process === 'nlvr' ? 2 : 1); // regions per row (a pair's two images side by side)
    const ids = (pick: (sentence: EncodedSentence) => number[]) =>
      torch.tensor(
        BigInt64Array.from(
          rows.flatMap((row) => pick(row.sentence)),
          BigInt,
        ),
        { shape: [B, L] },
      );
    const regions = rows.flatMap((row) => row.regions);
    const concat = <T extends Float32Array | BigInt64Array>(parts: T[], make: (size: number) => T): T => {
      const out = make(parts.reduce((total, part) => total + part.length, 0));
      let offset = 0;
      for (const part of parts) {
        out.set(part as never, offset);
        offset += part.length;
      }
      return out;
    };
    return torch.inferenceMode(() =>
      torch.scope(() => {
        const batch = {
          features: torch.tensor(
            concat(
              regions.map((r) => r.features),
              (n) => new Float32Array(n),
            ),
            { shape: [B, R, FEATURE_WIDTH] },
          ),
          spatials: torch.tensor(
            concat(
              regions.map((r) => r.spatials),
              (n) => new Float32Array(n),
            ),
            { shape: [B, R, LOCATION_WIDTH] },
          ),
          image_mask: torch.tensor(
            concat(
              regions.map((r) => r.imageMask),
              (n) => new BigInt64Array(n),
            ),
            { shape: [B, R] },
          ),
          question: ids((s) => s.inputIds), // [B, L]
          input_mask: ids((s) => s.inputMask),
          segment_ids: ids((s) => s.segmentIds),
          target: torch.zeros([B, 0]), // no labels at inference
        };
        const prepared = prepareBatch(batch, process, this.settings.task_id);
        const output = this.folder.model.call(prepared.inputs, { heads: [head] })[head];
        if (output === undefined) throw new Error(`the model did not compute ${head}`);
        return output.toArray() as Float32Array;
      }),
    );
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#images.close();
    if (this.ownsModel) this.folder.model.dispose();
  }

  #checkOpen(): void {
    if (this.#disposed) throw new Error(`this ${this.task} pipeline has been disposed`);
  }
}

/**
 * The context of a new pipeline over a model folder loaded here (then owned, and freed by
 * dispose()) or one the caller loaded and shares between pipelines (then the caller's to free).
 */
export function openContext(
  task: PipelineTask,
  model: string | ModelFolder,
  options: PipelineOptions,
): PipelineContext {
  if (typeof model !== 'string') return new PipelineContext(task, model, false, options);
  const folder = loadModelFolder(model, {
    onFile: (file) => options.onProgress?.({ status: 'loading', task, file }),
    precision: options.precision,
  });
  try {
    return new PipelineContext(task, folder, true, options);
  } catch (error) {
    folder.model.dispose();
    throw error;
  }
}

/**
 * A pipeline as a function with the handle's members. Calls are async like transformers.js
 * pipelines; the work of a batch is synchronous, and the event loop runs between batches.
 */
export function makePipeline<F extends (...args: never[]) => Promise<unknown>>(
  context: PipelineContext,
  run: F,
): F & PipelineHandle {
  const handle: PipelineHandle = { task: context.task, folder: context.folder, dispose: () => context.dispose() };
  context.report({ status: 'ready', task: context.task });
  return Object.assign(run, handle);
}

/** Lets the event loop run (progress rendering, other requests) between batches. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
