// `vilbert launch`: torch.distributed.launch (--use_env) for this CLI. Starts
// --nproc_per_node workers running a vilbert subcommand, each with RANK, LOCAL_RANK,
// WORLD_SIZE, MASTER_ADDR and MASTER_PORT set; forwards SIGINT/SIGTERM/SIGHUP to them;
// when one fails, stops the others (SIGTERM, then SIGKILL after --stop_timeout) and
// exits non-zero naming the failed rank. Workers run in their own process group, so a
// Ctrl-C at the terminal reaches them once, through the launcher, not twice.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { launchVariables } from '../distributed/environment.js';

export interface LaunchOptions {
  nproc_per_node: number;
  nnodes: number;
  node_rank: number;
  master_addr: string;
  master_port: number;
  /** Seconds the other workers get to exit after one failed, before SIGKILL. */
  stop_timeout: number;
}

interface Worker {
  rank: number;
  localRank: number;
  child: ChildProcess;
  exited: boolean;
}

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function integerIn(low: number, high: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < low || parsed > high)
      throw new InvalidArgumentError(`expected an integer in ${low}..${high}`);
    return parsed;
  };
}

function positiveSeconds(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return parsed;
}

function describeExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): string {
  const who = `rank ${worker.rank} (local rank ${worker.localRank}, pid ${worker.child.pid})`;
  return signal ? `${who} was killed by ${signal}` : `${who} exited with code ${code}`;
}

/**
 * Runs `command` (a vilbert subcommand and its arguments) in options.nproc_per_node
 * worker processes of the CLI at `entry`; resolves to the launcher's exit code: 0 when
 * every worker exited 0, else the first failure's code (128 + signal number for a
 * worker killed by a signal).
 */
export function launchWorkers(command: string[], options: LaunchOptions, entry = process.argv[1]!): Promise<number> {
  const worldSize = options.nnodes * options.nproc_per_node;
  if (options.node_rank >= options.nnodes)
    throw new Error(`--node_rank ${options.node_rank} must be below --nnodes ${options.nnodes}`);
  // As torch.distributed.launch: one intra-op thread per worker unless told otherwise.
  const threads = process.env.OMP_NUM_THREADS ?? (options.nproc_per_node > 1 ? '1' : undefined);
  if (process.env.OMP_NUM_THREADS === undefined && threads !== undefined) {
    console.error(
      `vilbert launch: OMP_NUM_THREADS=1 for each of the ${options.nproc_per_node} workers (set it to change this)`,
    );
  }
  const workers: Worker[] = [];
  for (let localRank = 0; localRank < options.nproc_per_node; localRank++) {
    const rank = options.node_rank * options.nproc_per_node + localRank;
    const variables = launchVariables({
      rank,
      localRank,
      worldSize,
      masterAddr: options.master_addr,
      masterPort: options.master_port,
    });
    const child = spawn(process.execPath, [...process.execArgv, entry, ...command], {
      env: { ...process.env, ...variables, ...(threads === undefined ? {} : { OMP_NUM_THREADS: threads }) },
      stdio: 'inherit',
      detached: true,
    });
    workers.push({ rank, localRank, child, exited: false });
  }

  return new Promise((resolve) => {
    let exitCode = 0;
    let failed = false;
    let signalled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const alive = () => workers.filter((worker) => !worker.exited);

    const forward = (signal: NodeJS.Signals) => {
      signalled = true;
      for (const worker of alive()) worker.child.kill(signal);
    };
    const handlers = FORWARDED_SIGNALS.map((signal) => [signal, () => forward(signal)] as const);
    for (const [signal, handler] of handlers) process.on(signal, handler);

    const stopOthers = () => {
      const others = alive();
      if (others.length === 0) return;
      console.error(
        `vilbert launch: stopping rank${others.length > 1 ? 's' : ''} ${others.map((worker) => worker.rank).join(', ')}`,
      );
      for (const worker of others) worker.child.kill('SIGTERM');
      killTimer = setTimeout(() => {
        for (const worker of alive()) {
          console.error(
            `vilbert launch: rank ${worker.rank} did not exit within ${options.stop_timeout} s of SIGTERM; killing it`,
          );
          worker.child.kill('SIGKILL');
        }
      }, options.stop_timeout * 1000);
    };

    const onExit = (worker: Worker, code: number | null, signal: NodeJS.Signals | null) => {
      if (worker.exited) return;
      worker.exited = true;
      const status = signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1);
      if (status !== 0 && exitCode === 0) exitCode = status;
      if (status !== 0 && !failed && !signalled) {
        failed = true;
        console.error(`vilbert launch: ${describeExit(worker, code, signal)}`);
        stopOthers();
      }
      if (alive().length === 0) {
        clearTimeout(killTimer);
        for (const [name, handler] of handlers) process.off(name, handler);
        resolve(exitCode);
      }
    };
    for (const worker of workers) {
      worker.child.on('exit', (code, signal) => onExit(worker, code, signal));
      worker.child.on('error', (error) => {
        console.error(`vilbert launch: rank ${worker.rank} could not start: ${error.message}`);
        onExit(worker, 1, null);
      });
    }
  });
}

export function registerLaunch(program: Command): void {
  // Everything after the subcommand belongs to the workers, so the launcher parses
  // options positionally (its own come before the subcommand).
  program.enablePositionalOptions();
  program
    .command('launch')
    .description(
      'run a subcommand in several processes for data-parallel training (torch.distributed.launch --use_env)',
    )
    .argument('<subcommand>', 'the vilbert subcommand each worker runs, e.g. train-tasks')
    .argument('[args...]', "the subcommand's arguments")
    .option('--nproc_per_node <n>', 'workers on this machine', integerIn(1, 1024), 1)
    .option('--nnodes <n>', 'machines taking part', integerIn(1, 1 << 16), 1)
    .option('--node_rank <k>', "this machine's index, 0..nnodes-1", integerIn(0, (1 << 16) - 1), 0)
    .option('--master_addr <address>', "address of rank 0's machine (node 0)", '127.0.0.1')
    .option('--master_port <port>', "a free port on rank 0's machine", integerIn(1, 65535), 29500)
    .option(
      '--stop_timeout <seconds>',
      'after a worker failed: how long the others get to exit before SIGKILL',
      positiveSeconds,
      30,
    )
    .option('--use_env', 'accepted for compatibility; workers always read LOCAL_RANK from the environment')
    .passThroughOptions()
    .action(async (subcommand: string, args: string[], options: LaunchOptions) => {
      process.exitCode = await launchWorkers([subcommand, ...args], options);
    });
}
