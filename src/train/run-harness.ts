// What both trainers (train-tasks, train-concap) do around their loops, in the order they
// do it: the process group (the caller's, or a single process), the seed, the run
// directory with command.txt, the --resume_file's state and its world-size check, the run
// log (run.json, out.txt, metrics.jsonl) and the events, the --from_pretrained weights,
// rank 0's weights on every rank, the stop poll between iterations (SIGINT), the NaN/Inf
// guard, the checkpoints (latest and per epoch, each written atomically by rank 0), and
// the run's end (status, log closed, data closed, every rank past a barrier).
//
// A trainer opens a run with openRun(), builds its model, data and optimiser, and hands
// its loop to execute(); the loop itself stays in the trainer's file.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import type { ParsedConfig, ViLBertConfig } from '../model/config.js';
import { loadPretrainedWeights } from '../model/pretrained.js';
import { writeReport } from '../report/html.js';
import { DataParallel, caught } from '../distributed/index.js';
import type { Optimizer } from './adamw.js';
import { pretrainedWeightsFile } from './model-from-flags.js';
import { loadTrainingCheckpoint, readCheckpointState, saveModelWeights, saveTrainingCheckpoint } from './checkpoint.js';
import {
  assertFinite,
  checkFiniteGradients,
  divergedElsewhere,
  RunLog,
  TrainingDivergedError,
  type TrainEvent,
} from './run-log.js';

/** The events the harness emits itself; a trainer's event type includes them. */
export type RunEvent = Extract<TrainEvent, { kind: 'warning' | 'pretrained' | 'resumed' | 'checkpoint' | 'epoch' }>;

/** What the caller of a trainer passes besides its flags. */
export interface RunHooks<E> {
  onEvent?: (event: E) => void;
  /** Polled between iterations: true saves a checkpoint and stops (SIGINT); in a distributed run, true on any rank stops all. */
  shouldStop?: () => boolean;
  /** The distributed run this process is a rank of (initDistributed(); the caller destroys it); absent: a single process. */
  parallel?: DataParallel;
}

export interface RunOptions {
  /** The run directory, which rank 0 creates. */
  runDir: string;
  /** Seeds torch's generator, on every rank alike (as the reference seeds them). */
  seed: number;
  /** --resume_file: a checkpoint of this project to continue; '' starts afresh. */
  resumeFile: string;
  /** --check_finite: every loss and gradient is checked for NaN/Inf. */
  checkFinite: boolean;
  /** Rank 0 writes report.html into the run directory at the end (train-concap; train-tasks leaves it to its caller). */
  report?: boolean;
}

/** The part of a trainer's checkpoint state the harness reads: where the run continues, and its world size (absent: 1). */
export interface ResumePoint {
  epoch: number;
  step: number;
  worldSize?: number;
}

/** The model and optimiser a checkpoint holds, and the optimiser's name in it (a resumed run must use the same). */
export interface CheckpointParts {
  model: torch.Module;
  optimizer: Optimizer;
  optimizerKind: string;
}

/** What execute() needs besides the loop: the model (disposed on failure), run.json's tasks and config, and how to close the data. */
export interface RunSetup {
  model: torch.Module;
  /** The tasks run.json and the report know the run by. */
  tasks: { key: string; name: string; type: string }[];
  config: ViLBertConfig;
  /** Closes the data readers or loaders, however the run ends. */
  close: () => void | Promise<unknown>;
}

/**
 * Starts a run: seeds, reads the --resume_file's state and refuses one of another world
 * size (before any file is touched), then creates the run directory on rank 0.
 * `S` is the trainer's checkpoint state, `E` its events.
 */
export function openRun<S extends ResumePoint, E extends { kind: string }>(
  hooks: RunHooks<E | RunEvent>,
  options: RunOptions,
): TrainingRun<S, E> {
  return new TrainingRun<S, E>(hooks, options);
}

export class TrainingRun<S extends ResumePoint, E extends { kind: string }> {
  /** The process group's helper; a single process when the caller passed none. */
  readonly dp: DataParallel;
  /** Emits an event; rank 0 speaks for the run (the other ranks' events would repeat its own). */
  readonly emit: (event: E | RunEvent) => void;
  readonly runDir: string;
  /** The --resume_file's trainer state, read when the run opened; null for a fresh run. */
  readonly resumed: S | null;
  /** The run log, on rank 0 from execute() on; null on the other ranks. */
  log: RunLog | null = null;
  readonly #options: RunOptions;
  readonly #shouldStop: () => boolean;

  constructor(hooks: RunHooks<E | RunEvent>, options: RunOptions) {
    this.dp = hooks.parallel ?? new DataParallel(null, 0);
    this.emit = (this.dp.isMain ? hooks.onEvent : undefined) ?? (() => {});
    this.#shouldStop = hooks.shouldStop ?? (() => false);
    this.#options = options;
    this.runDir = options.runDir;
    torch.manualSeed(options.seed);
    this.resumed = options.resumeFile ? readCheckpointState<S>(options.resumeFile).trainer : null;
    // Before any file is touched: a checkpoint of another world size is refused.
    if (this.resumed) this.dp.checkResumable(this.resumed.worldSize ?? 1, options.resumeFile);
    if (this.dp.isMain) mkdirSync(this.runDir, { recursive: true });
  }

  /** Emits the config's warnings and writes command.txt (the flags, then the config); returns the config. */
  recordCommand(args: object, parsed: ParsedConfig): ViLBertConfig {
    const { config, warnings } = parsed;
    for (const warning of warnings) this.emit({ kind: 'warning', message: warning.message });
    if (this.dp.isMain)
      writeFileSync(
        join(this.runDir, 'command.txt'),
        `${JSON.stringify(args, null, 2)}\n\n${JSON.stringify(config, null, 2)}\n`,
      );
    return config;
  }

  /** Runs `open` on rank 0 first and on the other ranks after it (what rank 0 writes, e.g. token caches, the others then read). */
  async mainRankFirst<T>(open: () => T): Promise<T> {
    if (!this.dp.isMain) await this.dp.barrier();
    const opened = open();
    if (this.dp.isMain) await this.dp.barrier();
    return opened;
  }

  /**
   * Opens the run log (rank 0) and runs the loop. On its return, run.json gets the status
   * ('finished', or 'stopped' for an interrupted run) and every rank waits for the others;
   * on a throw (a divergence included) run.json gets 'failed' and the error, the model is
   * disposed and no checkpoint is written. Either way the log and the data are closed.
   */
  async execute<R extends { status: 'finished' | 'interrupted' }>(setup: RunSetup, loop: () => Promise<R>): Promise<R> {
    const { model, tasks, config } = setup;
    this.log = this.dp.isMain
      ? new RunLog(this.runDir, {
          command: process.argv.slice(1).join(' '),
          tasks,
          config,
          resumed: this.#options.resumeFile !== '',
        })
      : null;
    try {
      const result = await loop();
      this.log?.finish(result.status === 'finished' ? 'finished' : 'stopped');
      await this.dp.barrier(); // no rank leaves while another still expects a collective
      return result;
    } catch (error) {
      this.log?.finish('failed', error instanceof Error ? error.message : String(error));
      model.dispose();
      throw error;
    } finally {
      this.log?.close();
      await setup.close();
      if (this.#options.report) this.#writeReport();
    }
  }

  /** Loads --from_pretrained into the model (nothing for 'none' or ''); returns the parameter names it provided. */
  loadPretrained(model: torch.Module, fromPretrained: string): ReadonlySet<string> {
    const file = pretrainedWeightsFile(fromPretrained);
    if (!file) return new Set();
    const report = loadPretrainedWeights(model, file);
    const missing = new Set(report.missingKeys);
    const loaded = new Set(
      model
        .namedParameters()
        .map(([key]) => key)
        .filter((key) => !missing.has(key)),
    );
    this.emit({ kind: 'pretrained', file, missingKeys: report.missingKeys, unexpectedKeys: report.unexpectedKeys });
    return loaded;
  }

  /** Restores model, optimiser and generator from --resume_file; returns the trainer's state (which the trainer then restores). */
  loadCheckpoint(parts: CheckpointParts): S {
    return loadTrainingCheckpoint<S>(this.#options.resumeFile, parts);
  }

  /** After the trainer restored its state: drops the log's metrics from the resumed iteration on, and says so. */
  resumedAt(state: ResumePoint, iterationsPerEpoch: number): void {
    this.log?.resumeAt(state.epoch * iterationsPerEpoch + state.step);
    this.emit({ kind: 'resumed', file: this.#options.resumeFile, epoch: state.epoch, step: state.step });
  }

  /** Every rank continues from rank 0's weights (and all check that they built the same model). */
  async shareWeights(model: torch.Module): Promise<void> {
    await this.dp.broadcastParameters(model);
  }

  /**
   * Between iterations: a macrotask turn, so that signal handlers (SIGINT) run; then, at an
   * accumulation boundary, whether any rank was asked to stop (true on every rank alike).
   */
  async stopRequested(atBoundary: boolean): Promise<boolean> {
    await new Promise((resolve) => setImmediate(resolve));
    return atBoundary && (await this.dp.someRank(this.#shouldStop()));
  }

  /**
   * Runs `backward` under the NaN/Inf guard (--check_finite): each loss `[value, name]`
   * first, then every gradient. A divergence is returned, not thrown, for sumOverRanks to
   * throw on every rank; `where` names the iteration and task in its message.
   */
  guardedBackward(
    model: torch.Module,
    where: string,
    losses: [number, string][],
    backward: () => void,
  ): TrainingDivergedError | null {
    const check = this.#options.checkFinite;
    return caught(TrainingDivergedError, () => {
      if (check) for (const [value, name] of losses) assertFinite(value, `${where}: ${name}`);
      backward();
      if (check) checkFiniteGradients(model, where);
    });
  }

  /** The values summed over ranks, in the collective that makes every rank throw if one diverged (guardedBackward). */
  async sumOverRanks(divergence: TrainingDivergedError | null, values: number[], where: string): Promise<number[]> {
    return this.dp.sumOverRanksOrThrow(divergence, values, () => divergedElsewhere(where));
  }

  /** Rank 0 writes pytorch_ckpt_latest.safetensors (atomically: the previous one stays valid until it is complete). */
  checkpoint(epoch: number, step: number, parts: CheckpointParts & { trainer: () => S }): void {
    if (!this.dp.isMain) return;
    const path = join(this.runDir, 'pytorch_ckpt_latest.safetensors');
    saveTrainingCheckpoint(path, {
      model: parts.model,
      optimizer: parts.optimizer,
      optimizerKind: parts.optimizerKind,
      trainer: parts.trainer(),
    });
    this.emit({ kind: 'checkpoint', path, epoch, step });
  }

  /** An epoch's end: rank 0 writes its weights (pytorch_model_<epoch>.safetensors), then `checkpoint` saves where the next one starts. */
  async endEpoch(
    epoch: number,
    model: torch.Module,
    checkpoint: (epoch: number, step: number) => void | Promise<void>,
  ): Promise<void> {
    if (this.dp.isMain) saveModelWeights(join(this.runDir, `pytorch_model_${epoch}.safetensors`), model);
    await checkpoint(epoch + 1, 0);
    this.emit({ kind: 'epoch', epoch });
  }

  #writeReport(): void {
    try {
      if (this.dp.isMain) writeReport(this.runDir);
    } catch (error) {
      this.emit({
        kind: 'warning',
        message: `report.html not written: ${error instanceof Error ? error.message : String(error)}`,
      });
    }
  }
}
