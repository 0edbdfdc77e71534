// The flags the reference scripts share (train_tasks.py, train_concap.py, eval_tasks.py,
// eval_retrieval.py), their parsers and the refusals of what the reference cannot run.
// Each command adds its own flags after these.
import { type Command, InvalidArgumentError } from 'commander';
import { setNumThreads } from '../torch/index.js';
import { DEFAULT_TIMEOUT_MS, readLaunchEnvironment } from '../distributed/index.js';

/**
 * The reference parses its `type=bool` flags with Python's bool(str), so any non-empty
 * value, 'False' included, is true. Here false, 0, no and off (any case) mean false.
 */
export function parseBoolean(value: string): boolean {
  return !['', 'false', '0', 'no', 'off'].includes(value.trim().toLowerCase());
}

/** Appended to the help of every boolean-valued flag. */
export const BOOLEAN_VALUES = 'false/0/no/off mean false, anything else true';

export function integer(value: string): number {
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isInteger(parsed)) throw new InvalidArgumentError('expected an integer');
  return parsed;
}

export function positiveInteger(value: string): number {
  const parsed = integer(value);
  if (parsed < 1) throw new InvalidArgumentError('expected a positive integer');
  return parsed;
}

export function float(value: string): number {
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) throw new InvalidArgumentError('expected a number');
  return parsed;
}

/** The flags every reference script has. */
export interface CommonFlags {
  bert_model: string;
  from_pretrained: string;
  output_dir: string;
  config_file: string;
  no_cuda: boolean;
  do_lower_case: boolean;
  local_rank: number;
  seed: number;
  fp16: boolean;
  loss_scale: number;
  num_workers: number;
  save_name: string;
  baseline: boolean;
}

/** What differs between the scripts: defaults, and what a flag does in each. */
export interface CommonFlagSettings {
  fromPretrained: { default: string; help: string };
  outputDir: string;
  configFile: string;
  seed: number;
  numWorkers: { default: number; help: string };
  /** 'refused' where the reference crashes with it (training), 'unused' where it ignores it (evaluation). */
  fp16: 'refused' | 'unused';
  /** The command runs under `vilbert launch` (the trainers): --local_rank is then accepted. */
  distributed?: boolean;
}

export function addCommonFlags(command: Command, settings: CommonFlagSettings): Command {
  if (settings.fp16 === 'refused')
    command.option(
      '--bf16',
      'ours: bfloat16 autocast for the forward (matrix products in bfloat16; weights, gradients, AdamW state and losses in float32)',
      false,
    );
  return command
    .option(
      '--bert_model <name>',
      'the reference\'s tokenizer name; a name containing "roberta" sets config.model = "roberta" (the bundled uncased vocabulary is used)',
      'bert-base-uncased',
    )
    .option('--from_pretrained <file>', settings.fromPretrained.help, settings.fromPretrained.default)
    .option('--output_dir <dir>', 'root of the run directory', settings.outputDir)
    .option(
      '--config_file <file>',
      'model config JSON; a missing path whose name is a bundled config (e.g. config/bert_base_6layer_6conect.json) uses the bundled one',
      settings.configFile,
    )
    .option('--no_cuda', 'run on the CPU even when libtorch has CUDA (training always runs on the CPU)', false)
    .option(
      '--do_lower_case <bool>',
      `accepted for compatibility: the bundled tokenizer is uncased (${BOOLEAN_VALUES})`,
      parseBoolean,
      true,
    )
    .option(
      '--local_rank <n>',
      settings.distributed
        ? 'not needed: under vilbert launch each worker reads its rank from LOCAL_RANK (torch.distributed.launch --use_env); a value other than -1 must equal it'
        : 'distributed rank; only -1 (a single process) is supported',
      integer,
      -1,
    )
    .option('--seed <n>', 'random seed', integer, settings.seed)
    .option(
      '--fp16',
      settings.fp16 === 'refused'
        ? 'refused: half precision does not run in the reference either'
        : 'no effect (unused by the reference)',
      false,
    )
    .option('--loss_scale <x>', 'no effect (fp16 only, as in the reference)', float, 0)

    .option('--num_workers <n>', settings.numWorkers.help, integer, settings.numWorkers.default)
    .option('--save_name <name>', 'suffix -<save_name> of the run directory', '')
    .option('--baseline', 'refused: the single-stream baseline does not run in the reference', false);
}

/** The flags of the scripts that read the task registry's datasets (train_tasks.py, eval_*.py). */
export interface TaskDataFlags {
  tasks: string;
  in_memory: boolean;
  clean_train_sets: boolean;
  tasks_config?: string;
  datasets_root: string;
}

export function addTaskDataFlags(command: Command, tasksExample: string): Command {
  return command
    .option('--tasks <ids>', `task numbers joined by -, in processing order, e.g. ${tasksExample}`, '')
    .option(
      '--in_memory <bool>',
      `accepted; feature LMDBs are memory-mapped already (${BOOLEAN_VALUES})`,
      parseBoolean,
      false,
    )
    .option(
      '--clean_train_sets <bool>',
      `drop test-set images from the training splits and use the _cleaned caches, as the reference (${BOOLEAN_VALUES})`,
      parseBoolean,
      true,
    )
    .option('--tasks_config <file>', 'task registry replacing the bundled vilbert_tasks.yml')
    .option(
      '--datasets_root <dir>',
      "directory the registry's relative paths start from (the reference's working directory)",
      '.',
    );
}

/** --dynamic_attention and --visual_target (every script but eval_retrieval.py). */
export function addModelVariantFlags(command: Command): Command {
  return command
    .option('--dynamic_attention', 'config.dynamic_attention = true', false)
    .option(
      '--visual_target <n>',
      'masked-region target: 0 detector class distributions (v_target_size 1601), 1 feature regression, 2 NCE over features (both 2048); must match the checkpoint',
      integer,
      0,
    );
}

export function addThreadsFlag(command: Command): Command {
  return command.option('--threads <n>', "libtorch intra-op threads (default: libtorch's choice)", positiveInteger);
}

export function applyThreads(options: { threads?: number }): void {
  if (options.threads !== undefined) setNumThreads(options.threads);
}

/** --dist_timeout, of the commands that run under `vilbert launch`. */
export function addDistTimeoutFlag(command: Command): Command {
  return command.option(
    '--dist_timeout <minutes>',
    'distributed runs: how long connecting to rank 0 and each collective may wait for the other processes',
    positiveNumber,
    DEFAULT_TIMEOUT_MS / 60_000,
  );
}

function positiveNumber(value: string): number {
  const parsed = float(value);
  if (parsed <= 0) throw new InvalidArgumentError('expected a positive number');
  return parsed;
}

/**
 * Throws, naming the flag, for what the reference cannot run either, and for a --local_rank
 * that the launch environment does not confirm (distributed commands) or at all (the others).
 */
export function refuseUnsupported(
  options: Pick<CommonFlags, 'fp16' | 'baseline' | 'local_rank'>,
  settings: Pick<CommonFlagSettings, 'fp16' | 'distributed'>,
  env: NodeJS.ProcessEnv = process.env,
): void {
  if (options.fp16 && settings.fp16 === 'refused')
    throw new Error(
      '--fp16 is not supported (half precision does not run in the reference either); --bf16 trains with bfloat16 autocast',
    );
  if (options.baseline)
    throw new Error("--baseline is not supported (the reference's single-stream baseline does not run)");
  if (options.local_rank === -1) return;
  if (!settings.distributed)
    throw new Error(
      `--local_rank ${options.local_rank}: distributed runs are not available for this command; leave it at -1`,
    );
  const launch = readLaunchEnvironment(env);
  if (launch === null) {
    throw new Error(
      `--local_rank ${options.local_rank}: distributed runs are not available without the launcher's environment (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT); start the workers with vilbert launch --nproc_per_node N <command> ..., which sets it (--local_rank is then not needed)`,
    );
  }
  if (launch.localRank !== options.local_rank)
    throw new Error(
      `--local_rank ${options.local_rank} differs from LOCAL_RANK ${launch.localRank} of the launch environment; leave it out`,
    );
}
