// `vilbert train-tasks`: train_tasks.py's flags (names and defaults), the run
// drawn as progress bars, SIGINT saving a checkpoint and exiting 130.
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import { LR_SCHEDULERS } from '../train/schedules.js';
import { trainTasks, TRAIN_TASKS_DEFAULTS, type TrainTasksArgs } from '../train/train-tasks.js';
import { displayName, type TrainEvent } from '../train/run-log.js';
import { setNumThreads } from '../torch/index.js';

/**
 * The reference parses these with Python's bool(str), so any non-empty value,
 * 'False' included, is true. Here false/0/no/off mean false (docs/DEVIATIONS.md).
 */
export function parseBoolean(value: string): boolean {
  return !['', 'false', '0', 'no', 'off'].includes(value.trim().toLowerCase());
}

function integer(name: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed)) throw new Error(`${name} expects an integer, got '${value}'`);
    return parsed;
  };
}

function float(name: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isFinite(parsed)) throw new Error(`${name} expects a number, got '${value}'`);
    return parsed;
  };
}

/** Options shared with train-concap and the eval commands where the reference shares them. */
export function addCommonFlags(command: Command, defaults: { seed: number }): Command {
  const d = TRAIN_TASKS_DEFAULTS;
  return command
    .option('--bert_model <name>', 'tokenizer vocabulary / text model ("roberta" in the name selects RoBERTa embeddings)', d.bert_model)
    .option('--from_pretrained <file>', 'checkpoint to start from (.bin zip or legacy pickle, or .safetensors); \'none\' for random weights', d.from_pretrained)
    .option('--output_dir <dir>', 'root of the run directory', d.output_dir)
    .option('--config_file <file>', 'model config: a path, or config/<name>.json of a bundled config', d.config_file)
    .option('--no_cuda', 'accepted for compatibility; this build runs on the CPU', false)
    .option('--do_lower_case <bool>', 'lower-case the text (false/0/no turn it off)', parseBoolean, d.do_lower_case)
    .option('--local_rank <n>', 'distributed rank (-1: single process); distributed training is not available yet', integer('--local_rank'), -1)
    .option('--seed <n>', 'random seed', integer('--seed'), defaults.seed)
    .option('--fp16', 'refused: half precision is not functional in the reference either', false)
    .option('--loss_scale <x>', 'unused, as in the reference', float('--loss_scale'), 0)
    .option('--num_workers <n>', 'above 0: each task\'s batches are built and prefetched in a worker thread', integer('--num_workers'), d.num_workers)
    .option('--save_name <name>', 'suffix -<save_name> of the run directory', d.save_name)
    .option('--in_memory <bool>', 'accepted; feature stores are memory-mapped LMDBs already', parseBoolean, d.in_memory)
    .option('--baseline', 'refused: the single-stream baseline does not run in the reference', false)
    .option('--dynamic_attention', 'config.dynamic_attention = true', false)
    .option('--clean_train_sets <bool>', 'drop test-set images from the training splits (false/0/no turn it off)', parseBoolean, d.clean_train_sets)
    .option('--visual_target <n>', '0: v_target_size 1601 (class distributions), 1/2: 2048', integer('--visual_target'), d.visual_target)
    .option('--tasks_config <file>', 'task registry replacing the bundled vilbert_tasks.yml')
    .option('--datasets_root <dir>', 'directory the registry\'s relative paths start from (the reference\'s working directory)', d.datasets_root)
    .option('--threads <n>', 'libtorch intra-op threads (default: libtorch\'s choice)', integer('--threads'));
}

export function registerTrainTasks(program: Command): void {
  const d = TRAIN_TASKS_DEFAULTS;
  const command = program
    .command('train-tasks')
    .description('multi-task training and fine-tuning as train_tasks.py (round-robin over tasks, dynamic stop-and-go, per-task evaluation)');
  addCommonFlags(command, { seed: d.seed })
    .option('--num_train_epochs <n>', 'outer epochs (one epoch = the largest task\'s batches)', integer('--num_train_epochs'), d.num_train_epochs)
    .option('--train_iter_multiplier <x>', 'scales the iterations per epoch', float('--train_iter_multiplier'), d.train_iter_multiplier)
    .option('--train_iter_gap <n>', 'a stopped task still trains when iteration % gap == 0', integer('--train_iter_gap'), d.train_iter_gap)
    .option('--warmup_proportion <x>', 'warm-up steps = proportion x total optimisation steps', float('--warmup_proportion'), d.warmup_proportion)
    .option('--gradient_accumulation_steps <n>', 'divides batch sizes and losses; the optimiser steps every n iterations', integer('--gradient_accumulation_steps'), d.gradient_accumulation_steps)
    .addOption(new Option('--optim <name>', 'optimiser').choices(['AdamW', 'RAdam']).default(d.optim))
    .option('--tasks <ids>', 'task numbers joined by -, e.g. 1-2-4-7-8-9-10-11-12-13-15-17', d.tasks)
    .option('--freeze <n>', 'freeze the embeddings and text layers 0..n (-1: none)', integer('--freeze'), d.freeze)
    .option('--vision_scratch', 'weights a BERT checkpoint does not provide train at lr 1e-4', false)
    .option('--evaluation_interval <n>', 'unused, as in the reference', integer('--evaluation_interval'), 1)
    .addOption(new Option('--lr_scheduler <name>', 'learning-rate schedule').choices([...LR_SCHEDULERS]).default(d.lr_scheduler))
    .option('--resume_file <file>', 'continue from a pytorch_ckpt_latest.safetensors of this project', d.resume_file)
    .option('--task_specific_tokens', 'a task token after [CLS] (config.task_specific_tokens)', false)
    .option('--checkpoint_every <n>', 'also checkpoint every n iterations (0: at epoch ends only)', integer('--checkpoint_every'), d.checkpoint_every)
    .option('--batch_size <n>', 'every task\'s batch size (0: the registry\'s batch_size)', integer('--batch_size'), d.batch_size)
    .option('--check_finite <bool>', 'stop on a NaN/Inf loss or gradient, naming it', parseBoolean, d.check_finite)
    .option('--quiet', 'no progress bars or summaries', false)
    .action(async (options: TrainTasksArgs & { fp16: boolean; baseline: boolean; local_rank: number; threads?: number; quiet: boolean }) => {
      refuseUnsupported(options);
      process.exitCode = await runTrainTasks({ ...d, ...options }, options);
    });
}

export function refuseUnsupported(options: { fp16: boolean; baseline: boolean; local_rank: number; threads?: number }): void {
  if (options.fp16) throw new Error('--fp16 is not supported (it does not run in the reference either)');
  if (options.baseline) throw new Error('--baseline is not supported (the reference\'s single-stream baseline does not run)');
  if (options.local_rank >= 0) throw new Error('--local_rank: distributed training is not available yet; run without it');
  if (options.threads !== undefined) setNumThreads(options.threads);
}

/** Runs training with bars on a terminal (plain lines otherwise); returns the exit code. */
export async function runTrainTasks(args: TrainTasksArgs, display: { quiet: boolean }): Promise<number> {
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\nvilbert: interrupted, saving a checkpoint (press Ctrl-C again to quit without saving)\n');
  };
  process.on('SIGINT', onSigint);
  const view = display.quiet ? null : new TrainingView();
  try {
    const result = await trainTasks(args, { onEvent: (event) => view?.update(event), shouldStop: () => interrupted });
    view?.stop();
    result.model.dispose();
    if (result.status === 'interrupted') {
      console.error(`vilbert: checkpoint saved in ${result.runDir}; continue with --resume_file ${result.runDir}/pytorch_ckpt_latest.safetensors`);
      return 130;
    }
    if (!display.quiet) {
      console.log(`run directory: ${result.runDir}`);
      for (const task of result.tasks) {
        const score = result.valScores[task.key];
        console.log(`  ${task.key.padEnd(7)} ${task.name.padEnd(20)} val score ${score === undefined ? '-' : (100 * score).toFixed(2)}`);
      }
    }
    return 0;
  } finally {
    view?.stop();
    process.off('SIGINT', onSigint);
  }
}

/** Progress bars (a terminal) or one line per evaluation and epoch (a pipe). */
class TrainingView {
  #bars: cliProgress.MultiBar | null = null;
  #total: cliProgress.SingleBar | null = null;
  readonly #taskBars = new Map<string, cliProgress.SingleBar>();
  readonly #tty = process.stderr.isTTY === true;
  #started = { time: Date.now(), iteration: 0 };

  update(event: TrainEvent): void {
    switch (event.kind) {
      case 'warning':
        this.#print(`warning: ${event.message}`);
        break;
      case 'pretrained':
        this.#print(`loaded ${event.file}: ${event.missingKeys.length} missing keys (kept at initialisation), ${event.unexpectedKeys.length} unexpected keys (ignored)`);
        break;
      case 'resumed':
        this.#print(`resuming from ${event.file} at epoch ${event.epoch}, iteration ${event.step}`);
        break;
      case 'setup': {
        const total = event.iterationsPerEpoch * event.epochs;
        this.#started = { time: Date.now(), iteration: event.startIteration };
        this.#print(`run directory ${event.runDir}: ${event.tasks.length} tasks, ${event.iterationsPerEpoch} iterations per epoch, ${event.epochs} epochs`);
        if (!this.#tty) break;
        this.#bars = new cliProgress.MultiBar({
          format: '{label} |{bar}| {value}/{total} {info}', hideCursor: true, clearOnComplete: false, barsize: 24, etaBuffer: 50,
        }, cliProgress.Presets.shades_grey);
        this.#total = this.#bars.create(total, event.startIteration, { label: 'iterations'.padEnd(20), info: '' });
        for (const task of event.tasks) this.#taskBars.set(task.key, this.#bars.create(1, 0, { label: displayName(task).padEnd(20), info: '' }));
        break;
      }
      case 'train':
        this.#taskBars.get(event.task.key)?.update(0, { info: `loss ${event.loss.toFixed(4)} score ${event.score.toFixed(3)} lr ${event.lr.toExponential(2)}` });
        break;
      case 'iteration':
        if (this.#total) {
          const value = event.iteration + 1;
          this.#total.update(value, { info: `epoch ${event.epoch} eta ${this.#eta(value, this.#total.getTotal())}` });
        }
        break;
      case 'eval':
        this.#print(`validation ${displayName(event.task)} at iteration ${event.iteration}: loss ${event.loss.toFixed(4)} score ${(100 * event.score).toFixed(2)}${event.inStop ? ' (stopped)' : ''}`);
        break;
      case 'checkpoint':
        if (!this.#tty) this.#print(`checkpoint ${event.path} (epoch ${event.epoch}, iteration ${event.step})`);
        break;
      case 'epoch':
        this.#print(`epoch ${event.epoch} done`);
        break;
    }
  }

  #eta(value: number, total: number): string {
    const done = value - this.#started.iteration;
    if (done <= 0) return '-';
    const seconds = ((Date.now() - this.#started.time) / 1000) * ((total - value) / done);
    return seconds > 3600 ? `${(seconds / 3600).toFixed(1)}h` : seconds > 60 ? `${(seconds / 60).toFixed(1)}m` : `${seconds.toFixed(0)}s`;
  }

  #print(line: string): void {
    if (this.#bars) this.#bars.log(`${line}\n`);
    else process.stderr.write(`${line}\n`);
  }

  stop(): void {
    this.#bars?.stop();
    this.#bars = null;
  }
}
