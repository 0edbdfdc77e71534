// `vilbert train-tasks`: train_tasks.py's flags (names and defaults), the run
// drawn as progress bars, SIGINT saving a checkpoint and exiting 130.
import { type Command, Option } from 'commander';
import { LR_SCHEDULERS } from '../train/schedules.js';
import { trainTasks, TRAIN_TASKS_DEFAULTS, type TrainTasksArgs } from '../train/train-tasks.js';
import { displayName, type TrainEvent } from '../train/run-log.js';
import {
  BOOLEAN_VALUES,
  addCommonFlags,
  addDistTimeoutFlag,
  addModelVariantFlags,
  addTaskDataFlags,
  addThreadsFlag,
  applyThreads,
  float,
  integer,
  parseBoolean,
  refuseUnsupported,
  type CommonFlagSettings,
} from './flags.js';
import { TrainingView, interruptedExitCode, withInterrupt } from './training-view.js';
import { initDistributed } from '../distributed/index.js';
import { fetchFromPretrained } from './download.js';

const d = TRAIN_TASKS_DEFAULTS;

const COMMON: CommonFlagSettings = {
  fromPretrained: {
    default: d.from_pretrained,
    help: "checkpoint to start from (.bin zip or legacy pickle, or .safetensors); a published name (bert-base-uncased, pretrained, multi-task) or an http(s) address, fetched once into $VILBERT_CACHE; 'none' for random weights",
  },
  outputDir: d.output_dir,
  configFile: d.config_file,
  seed: d.seed,
  numWorkers: {
    default: d.num_workers,
    help: "above 0: each task's batches are built and prefetched in a worker thread",
  },
  fp16: 'refused',
  distributed: true,
};

export function registerTrainTasks(program: Command): void {
  const command = program
    .command('train-tasks')
    .description(
      'multi-task training and fine-tuning as train_tasks.py (round-robin over tasks, dynamic stop-and-go, per-task evaluation)',
    );
  addDistTimeoutFlag(
    addThreadsFlag(
      addModelVariantFlags(addTaskDataFlags(addCommonFlags(command, COMMON), '1-2-4-7-8-9-10-11-12-13-15-17')),
    ),
  )
    .option(
      '--num_train_epochs <n>',
      "outer epochs (one epoch = the largest task's batches)",
      integer,
      d.num_train_epochs,
    )
    .option('--train_iter_multiplier <x>', 'scales the iterations per epoch', float, d.train_iter_multiplier)
    .option('--train_iter_gap <n>', 'a stopped task still trains when iteration % gap == 0', integer, d.train_iter_gap)
    .option(
      '--warmup_proportion <x>',
      'warm-up steps = proportion x total optimisation steps',
      float,
      d.warmup_proportion,
    )
    .option(
      '--gradient_accumulation_steps <n>',
      'divides batch sizes and losses; the optimiser steps every n iterations',
      integer,
      d.gradient_accumulation_steps,
    )
    .addOption(new Option('--optim <name>', 'optimiser').choices(['AdamW', 'RAdam']).default(d.optim))
    .option('--freeze <n>', 'freeze the embeddings and text layers 0..n (-1: none)', integer, d.freeze)
    .option('--vision_scratch', 'weights a BERT checkpoint does not provide train at the head lr (1e-4)', false)
    .option(
      '--head_lr <x>',
      'lr of the vil_ heads (the reference fixes 1e-4; a model trained from scratch may want more)',
      float,
      d.head_lr,
    )
    .option(
      '--answer_bias_init <x>',
      "initial bias of the VQA/GQA answer classifiers' output layer where the checkpoint has none (the reference: 0; about -8 = -log 3129 lets a model trained from scratch skip pushing every answer down)",
      float,
      d.answer_bias_init,
    )
    .option('--evaluation_interval <n>', 'unused, as in the reference', integer, 1)
    .addOption(
      new Option('--lr_scheduler <name>', 'learning-rate schedule').choices([...LR_SCHEDULERS]).default(d.lr_scheduler),
    )
    .option('--resume_file <file>', 'continue from a pytorch_ckpt_latest.safetensors of this project', d.resume_file)
    .option('--task_specific_tokens', 'a task token after [CLS] (config.task_specific_tokens)', false)
    .option(
      '--checkpoint_every <n>',
      'also checkpoint every n iterations (0: at epoch ends only)',
      integer,
      d.checkpoint_every,
    )
    .option('--batch_size <n>', "every task's batch size (0: the registry's batch_size)", integer, d.batch_size)
    .option(
      '--check_finite <bool>',
      `stop on a NaN/Inf loss or gradient, naming it (${BOOLEAN_VALUES})`,
      parseBoolean,
      d.check_finite,
    )
    .option('--quiet', 'no progress bars or summaries', false)
    .action(
      async (
        options: TrainTasksArgs & {
          fp16: boolean;
          baseline: boolean;
          local_rank: number;
          threads?: number;
          quiet: boolean;
          dist_timeout: number;
        },
      ) => {
        refuseUnsupported(options, COMMON);
        applyThreads(options);
        await fetchFromPretrained(options.from_pretrained);
        process.exitCode = await runTrainTasks({ ...d, ...options }, options);
      },
    );
}

/**
 * Runs training with bars on a terminal (plain lines otherwise); returns the exit code. Under
 * `vilbert launch` this process is one rank of the run, and only rank 0 draws and reports.
 */
export async function runTrainTasks(
  args: TrainTasksArgs,
  display: { quiet: boolean; dist_timeout: number },
): Promise<number> {
  const parallel = await initDistributed({ timeoutMs: display.dist_timeout * 60_000 });
  const quiet = display.quiet || !parallel.isMain;
  const view = quiet ? null : new TrainingView();
  try {
    const result = await withInterrupt((shouldStop) =>
      trainTasks(args, { onEvent: (event) => (view ? showTrainEvent(view, event) : undefined), shouldStop, parallel }),
    );
    view?.stop();
    result.model.dispose();
    if (result.status === 'interrupted') return parallel.isMain ? interruptedExitCode(result.runDir) : 130;
    if (!quiet) {
      console.log(`run directory: ${result.runDir}`);
      for (const task of result.tasks) {
        const score = result.valScores[task.key];
        console.log(
          `  ${task.key.padEnd(7)} ${task.name.padEnd(20)} val score ${score === undefined ? '-' : (100 * score).toFixed(2)}`,
        );
      }
    }
    return 0;
  } finally {
    view?.stop();
    parallel.destroy();
  }
}

/** Draws a train-tasks event. */
export function showTrainEvent(view: TrainingView, event: TrainEvent): void {
  switch (event.kind) {
    case 'setup':
      view.print(
        `run directory ${event.runDir}: ${event.tasks.length} tasks, ${event.iterationsPerEpoch} iterations per epoch, ${event.epochs} epochs`,
      );
      view.start(
        event.iterationsPerEpoch * event.epochs,
        event.startIteration,
        event.tasks.map((task) => ({ key: task.key, label: displayName(task) })),
      );
      break;
    case 'train':
      view.row(
        event.task.key,
        `loss ${event.loss.toFixed(4)} score ${event.score.toFixed(3)} lr ${event.lr.toExponential(2)}`,
      );
      break;
    case 'iteration':
      view.iteration(event.iteration + 1, event.epoch);
      break;
    case 'eval':
      view.print(
        `validation ${displayName(event.task)} at iteration ${event.iteration}: loss ${event.loss.toFixed(4)} score ${(100 * event.score).toFixed(2)}${event.inStop ? ' (stopped)' : ''}`,
      );
      break;
    default:
      view.common(event);
  }
}
