// What the training commands (train-tasks, train-concap) draw while a run goes: progress
// bars on a terminal, one line per event on a pipe; and Ctrl-C, which asks the trainer to
// save a checkpoint and stop (a second Ctrl-C quits without saving).
import cliProgress from 'cli-progress';
import type { TrainEvent } from '../train/run-log.js';

/** The events both trainers emit with the same meaning. */
export type CommonTrainEvent = Extract<
  TrainEvent,
  { kind: 'warning' | 'pretrained' | 'resumed' | 'checkpoint' | 'epoch' }
>;

/** A bar under the total: one per task (train-tasks) or one for the losses (train-concap). */
export interface ProgressRow {
  key: string;
  label: string;
}

/** Progress bars (a terminal) or plain lines on stderr (a pipe). */
export class TrainingView {
  #bars: cliProgress.MultiBar | null = null;
  #total: cliProgress.SingleBar | null = null;
  readonly #rows = new Map<string, cliProgress.SingleBar>();
  readonly #tty = process.stderr.isTTY === true;
  #started = { time: Date.now(), iteration: 0 };

  /** The run starts (or resumes) at `startIteration` of `totalIterations`. */
  start(totalIterations: number, startIteration: number, rows: readonly ProgressRow[]): void {
    this.#started = { time: Date.now(), iteration: startIteration };
    if (!this.#tty) return;
    this.#bars = new cliProgress.MultiBar(
      {
        format: '{label} |{bar}| {value}/{total} {info}',
        hideCursor: true,
        clearOnComplete: false,
        barsize: 24,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_grey,
    );
    this.#total = this.#bars.create(totalIterations, startIteration, { label: 'iterations'.padEnd(20), info: '' });
    for (const row of rows) this.#rows.set(row.key, this.#bars.create(1, 0, { label: row.label.padEnd(20), info: '' }));
  }

  /** The latest numbers of one row (losses, score, lr). */
  row(key: string, info: string): void {
    this.#rows.get(key)?.update(0, { info });
  }

  /** `done` iterations of the run are complete; the total bar shows the epoch and the time left. */
  iteration(done: number, epoch: number): void {
    if (!this.#total) return;
    this.#total.update(done, { info: `epoch ${epoch} eta ${this.#eta(done, this.#total.getTotal())}` });
  }

  /** Draws an event both trainers emit. */
  common(event: CommonTrainEvent): void {
    switch (event.kind) {
      case 'warning':
        this.print(`warning: ${event.message}`);
        break;
      case 'pretrained':
        this.print(
          `loaded ${event.file}: ${event.missingKeys.length} missing keys (kept at initialisation), ${event.unexpectedKeys.length} unexpected keys (ignored)`,
        );
        break;
      case 'resumed':
        this.print(`resuming from ${event.file} at epoch ${event.epoch}, iteration ${event.step}`);
        break;
      case 'checkpoint':
        if (!this.#tty) this.print(`checkpoint ${event.path} (epoch ${event.epoch}, iteration ${event.step})`);
        break;
      case 'epoch':
        this.print(`epoch ${event.epoch} done`);
        break;
    }
  }

  #eta(value: number, total: number): string {
    const done = value - this.#started.iteration;
    if (done <= 0) return '-';
    const seconds = ((Date.now() - this.#started.time) / 1000) * ((total - value) / done);
    return seconds > 3600
      ? `${(seconds / 3600).toFixed(1)}h`
      : seconds > 60
        ? `${(seconds / 60).toFixed(1)}m`
        : `${seconds.toFixed(0)}s`;
  }

  /** A line above the bars (or on its own when there are none). */
  print(line: string): void {
    if (this.#bars) this.#bars.log(`${line}\n`);
    else process.stderr.write(`${line}\n`);
  }

  stop(): void {
    this.#bars?.stop();
    this.#bars = null;
    this.#total = null;
  }
}

/**
 * Runs `train` with a SIGINT handler: the first Ctrl-C makes `shouldStop()` true (the
 * trainer checkpoints and returns), a second one exits 130 at once.
 */
export async function withInterrupt<T>(train: (shouldStop: () => boolean) => Promise<T>): Promise<T> {
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\nvilbert: interrupted, saving a checkpoint (press Ctrl-C again to quit without saving)\n');
  };
  process.on('SIGINT', onSigint);
  try {
    return await train(() => interrupted);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** Says where the interrupted run's checkpoint is and returns the exit code (130, as a shell's Ctrl-C). */
export function interruptedExitCode(runDir: string): number {
  console.error(
    `vilbert: checkpoint saved in ${runDir}; continue with --resume_file ${runDir}/pytorch_ckpt_latest.safetensors`,
  );
  return 130;
}
