// What a training run leaves in its directory while it runs: metrics.jsonl
// (every scalar, for the report and for tools), out.txt (the reference's text
// log lines), run.json (command, tasks, config, status). Also the events the
// CLI turns into progress bars, and the NaN/Inf guard.
import { existsSync, openSync, closeSync, writeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MetricsLog } from '../report/metrics-log.js';
import { writeFileAtomic } from '../report/atomic-file.js';
import * as torch from '../torch/index.js';
import type { TaskConfig } from '../data/task-registry.js';
import { VilbertError } from '../vilbert-error.js';

/** A loss or gradient that is NaN or infinite; the message names the iteration, task and tensor. */
export class TrainingDivergedError extends VilbertError {
  override readonly name = 'TrainingDivergedError';
  override readonly code = 'E_TRAINING_DIVERGED';
}

export function assertFinite(value: number, what: string): void {
  if (!Number.isFinite(value))
    throw new TrainingDivergedError(`${what} is ${value}; stopping without saving (the last checkpoint is kept)`);
}

/** A not-finite loss or gradient seen on another rank: every rank stops at the same step. */
export function divergedElsewhere(where: string): TrainingDivergedError {
  return new TrainingDivergedError(
    `${where}: a loss or gradient is not finite on another rank (its error names it); stopping without saving (the last checkpoint is kept)`,
  );
}

/**
 * Throws naming the first parameter whose gradient holds NaN or Inf, or is too large for
 * float32: a gradient whose sum of squares overflows would make AdamW's second moment
 * (a running mean of g^2) Inf, and that parameter would silently stop training.
 */
export function checkFiniteGradients(model: torch.Module, where: string): void {
  torch.noGrad(() =>
    torch.scope(() => {
      const parameters = model.namedParameters();
      const gradients = parameters.map(([, parameter]) => parameter.grad);
      const present = gradients.filter((gradient): gradient is torch.Tensor => gradient !== null);
      if (present.length === 0) return;
      // One reduction per gradient first: a 2-norm is NaN or Inf exactly when an element is, or
      // when the squares overflow (no abs() or pow() copy of any gradient); the search only then.
      const total = torch
        .stack(present.map((gradient) => torch.op('linalg_vector_norm', gradient, 2)))
        .sum()
        .item();
      if (Number.isFinite(total)) return;
      parameters.forEach(([name], index) => {
        const gradient = gradients[index];
        if (!gradient || Number.isFinite(torch.op('linalg_vector_norm', gradient, 2).item())) return;
        const nonFinite = gradient.numel() - torch.op('isfinite', gradient).sum().item();
        const problem =
          nonFinite > 0
            ? `holds ${nonFinite} NaN or infinite value${nonFinite === 1 ? '' : 's'}`
            : `is too large for float32 (largest |value| ${gradient.abs().max().item().toExponential(2)}; ` +
              "its squares overflow, as AdamW's second moment would)";
        throw new TrainingDivergedError(
          `${where}: the gradient of ${name} ${problem}; stopping without saving (the last checkpoint is kept)`,
        );
      });
    }),
  );
}

/** Python's '%.{precision}g' (the reference's out.txt lr): exponent form below 1e-4 or from 10^precision, trailing zeros dropped. */
export function formatG(value: number, precision = 6): string {
  if (value === 0 || !Number.isFinite(value))
    return value === 0 ? '0' : String(value).toLowerCase().replace('infinity', 'inf');
  const [mantissa, exponentText] = value.toExponential(precision - 1).split('e') as [string, string];
  const exponent = Number(exponentText);
  const strip = (text: string) => (text.includes('.') ? text.replace(/\.?0+$/, '') : text);
  if (exponent < -4 || exponent >= precision)
    return `${strip(mantissa)}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  return strip(value.toFixed(Math.max(0, precision - 1 - exponent)));
}

export type TrainEvent =
  | { kind: 'warning'; message: string }
  | { kind: 'pretrained'; file: string; missingKeys: string[]; unexpectedKeys: string[] }
  | { kind: 'resumed'; file: string; epoch: number; step: number }
  | {
      kind: 'setup';
      runDir: string;
      tasks: TaskConfig[];
      iterationsPerEpoch: number;
      epochs: number;
      totalSteps: number;
      startIteration: number;
    }
  | {
      kind: 'train';
      task: TaskConfig;
      iteration: number;
      epoch: number;
      step: number;
      loss: number;
      score: number;
      lr: number;
    }
  | { kind: 'iteration'; iteration: number; epoch: number; step: number; globalStep: number }
  | { kind: 'eval'; task: TaskConfig; iteration: number; loss: number; score: number; inStop: boolean }
  | { kind: 'checkpoint'; path: string; epoch: number; step: number }
  | { kind: 'epoch'; epoch: number };

/** The reference's display name of a task in log tags ('+' spelled 'plus'). */
export function displayName(task: Pick<TaskConfig, 'name'>): string {
  return task.name.replaceAll('+', 'plus');
}

interface Running {
  loss: number;
  score: number;
  lr: number;
  count: number;
  steps: number;
}

export class RunLog {
  readonly metrics: MetricsLog;
  readonly #runDir: string;
  readonly #outFd: number;
  readonly #running = new Map<string, Running & { task: TaskConfig }>();
  readonly #info: Record<string, unknown>;

  constructor(
    runDir: string,
    info: { command: string; tasks: { key: string; name: string; type: string }[]; config: unknown; resumed: boolean },
  ) {
    this.#runDir = runDir;
    const metricsPath = join(runDir, 'metrics.jsonl');
    this.metrics = new MetricsLog(metricsPath, { append: info.resumed && existsSync(metricsPath) });
    this.#outFd = openSync(join(runDir, 'out.txt'), info.resumed ? 'a' : 'w');
    const previous =
      info.resumed && existsSync(join(runDir, 'run.json'))
        ? (JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')) as { started?: string })
        : {};
    this.#info = {
      command: info.command,
      tasks: info.tasks.map((task) => ({ key: task.key, name: task.name, type: task.type })),
      config: info.config,
      started: previous.started ?? new Date().toISOString(),
      finished: null,
      status: 'running',
    };
    this.#writeInfo();
  }

  #writeInfo(): void {
    writeFileAtomic(join(this.#runDir, 'run.json'), `${JSON.stringify(this.#info, null, 2)}\n`);
  }

  /** One line of out.txt. */
  line(text: string): void {
    const bytes = Buffer.from(`${text}\n`);
    for (let written = 0; written < bytes.length;)
      written += writeSync(this.#outFd, bytes, written, bytes.length - written);
  }

  /** A resumed run repeats nothing: metrics of iterations at or after the checkpoint are dropped. */
  resumeAt(iteration: number): void {
    this.metrics.truncateAfter(iteration);
  }

  train(task: TaskConfig, iteration: number, loss: number, score: number, lr: number): void {
    const name = displayName(task);
    this.metrics.scalar(`train/${name}_loss`, iteration, loss);
    this.metrics.scalar(`train/${name}_score`, iteration, score);
    this.metrics.scalar(`train/${name}_lr`, iteration, lr);
    const running = this.#running.get(task.key) ?? { task, loss: 0, score: 0, lr: 0, count: 0, steps: 0 };
    running.loss += loss;
    running.score += score;
    running.lr += lr;
    running.count += 1;
    running.steps += 1;
    this.#running.set(task.key, running);
  }

  validation(task: TaskConfig, iteration: number, loss: number, score: number, inStop: boolean): void {
    const name = displayName(task);
    this.metrics.scalar(`val/${name}_loss`, iteration, loss);
    this.metrics.scalar(`val/${name}_score`, iteration, score);
    this.metrics.scalar(`val/${name}_early_stop`, iteration, inStop ? 1 : 0);
    this.line(`Validation [${name}]: loss ${loss.toFixed(3)} score ${(100 * score).toFixed(3)}`);
  }

  /** Every 20 iterations, the reference's summary line per task that ran (averages since the last one). */
  periodicSummary(step: number, accumulation: number, taskIterations: Map<string, number>): void {
    if (step === 0 || step % (20 * accumulation) !== 0) return;
    const parts: string[] = [];
    for (const [key, running] of this.#running) {
      if (running.count === 0) continue;
      const iterations = taskIterations.get(key) ?? 1;
      const taskStep = running.steps * accumulation;
      parts.push(
        `[${displayName(running.task)}]: iter ${taskStep} Ep: ${(taskStep / iterations).toFixed(2)} loss ${(running.loss / running.count).toFixed(3)} score ${(running.score / running.count).toFixed(3)} lr ${formatG(running.lr / running.count)}`,
      );
      running.loss = running.score = running.lr = running.count = 0;
    }
    if (parts.length) this.line(parts.join(' '));
  }

  finish(status: 'finished' | 'stopped' | 'failed', message?: string): void {
    this.#info.status = status;
    this.#info.finished = new Date().toISOString();
    if (message !== undefined) this.#info.error = message;
    this.#writeInfo();
  }

  close(): void {
    this.metrics.close();
    closeSync(this.#outFd);
  }
}
