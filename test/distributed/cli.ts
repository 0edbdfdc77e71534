// The program the distributed tests run with `node`: the real `launch` subcommand and a
// `worker <scenario>` subcommand that the launched (or directly spawned) processes run.
// Each worker writes what the test checks to <out>.rank<R>.json (or .pid).
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerLaunch } from '../../src/cli/launch.js';
import { initDistributed, type DataParallel } from '../../src/distributed/index.js';
import { AdamW } from '../../src/train/adamw.js';
import * as torch from '../../src/torch/index.js';

const { nn, F } = torch;

interface WorkerOptions {
  out: string;
  steps: number;
  timeoutMs: number;
}

class Mlp extends torch.Module {
  readonly hidden = new nn.Linear(8, 16);
  readonly output = new nn.Linear(16, 3);

  forward(x: torch.Tensor): torch.Tensor {
    return this.output.forward(this.hidden.forward(x).tanh()); // [B, 3]
  }
}

const GLOBAL_BATCH = 12;

/** AdamW on a small MLP; each rank takes its contiguous share of one fixed global batch. */
async function trainMlp(dp: DataParallel, options: WorkerOptions): Promise<void> {
  torch.manualSeed(100 + dp.rank); // different weights on every rank until rank 0's are broadcast
  const model = new Mlp();
  await dp.broadcastParameters(model);
  torch.manualSeed(7);
  const inputs = torch.randn([GLOBAL_BATCH, 8]).keep(); // [B, 8]
  const labels = torch.randint(0, 3, [GLOBAL_BATCH]).keep(); // [B]
  const share = GLOBAL_BATCH / dp.worldSize;
  const localInputs = inputs.narrow(0, dp.rank * share, share).keep(); // [B / W, 8]
  const localLabels = labels.narrow(0, dp.rank * share, share).keep(); // [B / W]
  const optimizer = new AdamW(
    model.namedParameters().map(([name, parameter]) => ({
      name,
      parameter,
      lr: 0.01,
      weightDecay: name.endsWith('bias') ? 0 : 0.01,
    })),
  );
  const losses: number[] = [];
  for (let step = 0; step < options.steps; step++) {
    const localLoss = torch.scope(() => {
      const loss = F.crossEntropy(model.forward(localInputs), localLabels); // mean over this rank's rows
      loss.backward();
      return loss.item();
    });
    await dp.averageGradients(model);
    optimizer.step();
    model.zeroGrad();
    const [sum] = await dp.sumOverRanks([localLoss]);
    losses.push(sum! / dp.worldSize);
  }
  const parameters = Object.fromEntries(
    model.namedParameters().map(([name, parameter]) => [name, Array.from(parameter.toArray() as Float32Array)]),
  );
  writeFileSync(
    `${options.out}.rank${dp.rank}.json`,
    JSON.stringify({ rank: dp.rank, worldSize: dp.worldSize, losses, parameters }),
  );
}

const scenarios: Record<string, (options: WorkerOptions) => Promise<void>> = {
  async mlp(options) {
    torch.setNumThreads(1);
    const dp = await initDistributed({ timeoutMs: options.timeoutMs });
    await trainMlp(dp, options);
    await dp.barrier();
    dp.destroy();
  },
  async init(options) {
    const dp = await initDistributed({ timeoutMs: options.timeoutMs });
    dp.destroy();
  },
  /** Rank 1 leaves right after the rendezvous; rank 0's next collective must fail, not hang. */
  async 'peer-exit'(options) {
    const dp = await initDistributed({ timeoutMs: options.timeoutMs });
    if (dp.rank === 1) {
      setTimeout(() => process.exit(3), 200);
      return;
    }
    await dp.sumOverRanks([1]);
  },
  /** Both ranks meet once, then idle; rank 0 ignores SIGTERM, so only SIGKILL stops it. */
  async idle(options) {
    const dp = await initDistributed({ timeoutMs: options.timeoutMs });
    await dp.sumOverRanks([1]);
    if (dp.rank === 0) process.on('SIGTERM', () => {});
    writeFileSync(`${options.out}.rank${dp.rank}.pid`, String(process.pid));
    setInterval(() => {}, 60_000);
    await new Promise(() => {});
  },
  async env(options) {
    const names = ['RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'OMP_NUM_THREADS'];
    writeFileSync(
      `${options.out}.rank${process.env.RANK}.json`,
      JSON.stringify({ ...Object.fromEntries(names.map((name) => [name, process.env[name]])), steps: options.steps }),
    );
  },
};

const program = new Command('distributed-test-cli').exitOverride();
registerLaunch(program);
program
  .command('worker')
  .argument('<scenario>', Object.keys(scenarios).join(', '))
  .option('--out <prefix>', 'where results go', 'distributed-test')
  .option('--steps <n>', 'training steps', Number, 5)
  .option('--timeout-ms <ms>', 'process group timeout', Number, 20_000)
  .action(async (scenario: string, options: WorkerOptions) => {
    const run = scenarios[scenario];
    if (!run) throw new Error(`unknown scenario '${scenario}'`);
    await run(options);
  });

// node --test also loads this file, with no arguments: then it does nothing.
if (process.argv.length > 2) {
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    process.stderr.write(`worker failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
