// `vilbert train-concap`: train_concap.py's flags (names and defaults), the run drawn as
// progress bars, SIGINT saving a checkpoint and exiting 130.
import type { Command } from 'commander';
import {
  CONCAP_NAME,
  TRAIN_CONCAP_DEFAULTS,
  trainConcap,
  type ConcapEvent,
  type ConcapLosses,
  type TrainConcapArgs,
} from '../train/train-concap.js';
import {
  BOOLEAN_VALUES,
  addCommonFlags,
  addDistTimeoutFlag,
  addModelVariantFlags,
  addThreadsFlag,
  applyThreads,
  float,
  integer,
  parseBoolean,
  positiveInteger,
  refuseUnsupported,
  type CommonFlagSettings,
} from './flags.js';
import { TrainingView, interruptedExitCode, withInterrupt } from './training-view.js';
import { initDistributed } from '../distributed/index.js';
import { fetchFromPretrained } from './download.js';

const d = TRAIN_CONCAP_DEFAULTS;

const COMMON: CommonFlagSettings = {
  fromPretrained: {
    default: d.from_pretrained,
    help: "weights to start from: a .bin (either torch format) or .safetensors file, or a folder holding pytorch_model.bin or model.safetensors (e.g. HF bert-base-uncased); a published name (bert-base-uncased, pretrained, multi-task) or an http(s) address, fetched once into $VILBERT_CACHE; 'none' or '' for random weights",
  },
  outputDir: d.output_dir,
  configFile: d.config_file,
  seed: d.seed,
  numWorkers: { default: 25, help: 'no effect: batches are built in this process, in LMDB key order' },
  fp16: 'refused',
  distributed: true,
};

interface CliOptions extends TrainConcapArgs {
  fp16: boolean;
  baseline: boolean;
  local_rank: number;
  threads?: number;
  quiet: boolean;
  dist_timeout: number;
}

export function registerTrainConcap(program: Command): void {
  const command = program
    .command('train-concap')
    .description(
      'pre-training on Conceptual Captions as train_concap.py (masked words and regions, image-caption alignment), validation after each epoch',
    );
  addDistTimeoutFlag(addThreadsFlag(addModelVariantFlags(addCommonFlags(command, COMMON))))
    .option(
      '--file_path <dir>',
      'folder with training_feat_all.lmdb, validation_feat_all.lmdb, caption_train.json and caption_val.json',
      d.file_path,
    )
    .option('--max_seq_length <n>', 'caption length with [CLS] and [SEP]', positiveInteger, d.max_seq_length)
    .option(
      '--train_batch_size <n>',
      'batch of one optimiser step (divided by --gradient_accumulation_steps per forward pass)',
      positiveInteger,
      d.train_batch_size,
    )
    .option('--learning_rate <x>', 'peak learning rate of every parameter', float, d.learning_rate)
    .option(
      '--num_train_epochs <x>',
      'epochs (the integer part counts), one epoch = one pass over the training LMDB',
      float,
      d.num_train_epochs,
    )
    .option(
      '--start_epoch <x>',
      'index of the first epoch; total steps = steps per epoch x (num_train_epochs - start_epoch)',
      float,
      d.start_epoch,
    )
    .option(
      '--warmup_proportion <x>',
      'linear warm-up over this fraction of the optimisation steps, then linear decay to 0',
      float,
      d.warmup_proportion,
    )
    .option('--img_weight <x>', 'weight of the masked-region loss', float, d.img_weight)
    .option('--on_memory', 'no effect (unused by the reference)', false)
    .option(
      '--gradient_accumulation_steps <n>',
      'forward passes per optimiser step',
      positiveInteger,
      d.gradient_accumulation_steps,
    )
    .option(
      '--freeze <n>',
      "above the first connection layer's text index: the text layers before it run without gradients (config.fixed_t_layer)",
      integer,
      d.freeze,
    )
    .option('--distributed', 'no effect (unused by the reference)', false)
    .option('--without_coattention', 'config.with_coattention = false', false)
    .option(
      '--objective <n>',
      '0: masked words + masked regions + alignment; 1: as 0, but no word or region targets for mismatched pairs; 2: no mismatched captions, alignment loss x0',
      integer,
      d.objective,
    )
    .option('--num_negative <n>', "no effect, as in the reference (NCE uses the config's num_negative)", integer, 255)
    .option('--resume_file <file>', 'continue from a pytorch_ckpt_latest.safetensors of this project', d.resume_file)
    .option('--adam_epsilon <x>', 'AdamW epsilon', float, d.adam_epsilon)
    .option(
      '--checkpoint_every <n>',
      'also checkpoint every n iterations (0: at epoch ends only)',
      integer,
      d.checkpoint_every,
    )
    .option(
      '--check_finite <bool>',
      `stop on a NaN/Inf loss or gradient, naming it (${BOOLEAN_VALUES})`,
      parseBoolean,
      d.check_finite,
    )
    .option('--quiet', 'no progress bars or summaries', false)
    .action(async (options: CliOptions) => {
      refuseUnsupported(options, COMMON);
      applyThreads(options);
      await fetchFromPretrained(options.from_pretrained);
      process.exitCode = await runTrainConcap({ ...d, ...options }, options);
    });
}

const formatLosses = (losses: ConcapLosses) =>
  `masked_t ${losses.maskedLm.toFixed(4)} masked_v ${losses.maskedImage.toFixed(4)} NSP ${losses.nextSentence.toFixed(4)}`;

/**
 * Runs pre-training with bars on a terminal (plain lines otherwise); returns the exit code.
 * Under `vilbert launch` this process is one rank of the run, and only rank 0 draws and reports.
 */
export async function runTrainConcap(
  args: TrainConcapArgs,
  display: { quiet: boolean; dist_timeout: number },
): Promise<number> {
  const parallel = await initDistributed({ timeoutMs: display.dist_timeout * 60_000 });
  const quiet = display.quiet || !parallel.isMain;
  const view = quiet ? null : new TrainingView();
  try {
    const result = await withInterrupt((shouldStop) =>
      trainConcap(args, { onEvent: (event) => (view ? show(view, event) : undefined), shouldStop, parallel }),
    );
    view?.stop();
    result.model.dispose();
    if (result.status === 'interrupted') return parallel.isMain ? interruptedExitCode(result.runDir) : 130;
    if (!quiet) console.log(`run directory: ${result.runDir}`);
    return 0;
  } finally {
    view?.stop();
    parallel.destroy();
  }
}

function show(view: TrainingView, event: ConcapEvent): void {
  switch (event.kind) {
    case 'setup':
      view.print(
        `run directory ${event.runDir}: ${event.records} training records, ${event.batchesPerEpoch} batches per epoch, ${event.epochs} epochs, ${event.totalSteps} optimisation steps`,
      );
      view.start(event.batchesPerEpoch * event.epochs, event.startIteration, [
        { key: CONCAP_NAME, label: CONCAP_NAME },
      ]);
      break;
    case 'train':
      view.row(CONCAP_NAME, `${formatLosses(event.losses)} lr ${event.lr.toExponential(2)}`);
      break;
    case 'iteration':
      view.iteration(event.iteration + 1, event.epoch);
      break;
    case 'validation':
      view.print(
        `validation after epoch ${event.epoch}: ${formatLosses(event.losses)} alignment accuracy ${(100 * event.alignmentAccuracy).toFixed(2)}`,
      );
      break;
    default:
      view.common(event);
  }
}
