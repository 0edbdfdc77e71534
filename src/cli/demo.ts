// `vilbert demo`: the embedded default, the README's first command.
import type { Command } from 'commander';
import { DEMO_DEFAULTS, runDemo, type DemoTaskResult } from '../demo/demo.js';
import { applyThreads, float, integer } from './flags.js';
import { TrainingView, interruptedExitCode, withInterrupt } from './training-view.js';
import { showTrainEvent } from './train-tasks.js';

/** The per-task table: metric, score and chance level, and whether the score is clearly above it. */
export function resultTable(results: DemoTaskResult[]): string {
  const header = ['task', 'name', 'metric', 'score', 'chance', 'text only', ''];
  const rows = results.map((result) => [
    result.key,
    result.task,
    result.metric,
    (100 * result.score).toFixed(1),
    (100 * result.chance).toFixed(1),
    result.textOnly === undefined ? '-' : (100 * result.textOnly).toFixed(1),
    (result.score > result.chance + 0.05 ? 'above chance' : 'NOT above chance') +
      (result.textOnly !== undefined && result.score <= result.textOnly ? ', not above text only' : ''),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'generate the synthetic world, train a small ViLBERT on its 12 tasks, evaluate each against chance, and write a report',
    )
    .option('--dir <dir>', 'folder for the world, the run, the model folder and the report', 'vilbert-demo')
    .option('--seed <n>', 'seed of the world and of training', integer, DEMO_DEFAULTS.seed)
    .option('--epochs <n>', 'passes over the largest task', integer, DEMO_DEFAULTS.epochs)
    .option('--lr <x>', 'learning rate of every task and head (training from scratch)', float, DEMO_DEFAULTS.lr)
    .option('--threads <n>', "libtorch intra-op threads (default: libtorch's choice)", integer)
    .option('--quiet', 'no progress bars', false)
    .action(
      async (options: { dir: string; seed: number; epochs: number; lr: number; threads?: number; quiet: boolean }) => {
        applyThreads(options);
        const view = options.quiet ? null : new TrainingView();
        const started = performance.now();
        const result = await withInterrupt((shouldStop) =>
          runDemo({
            dir: options.dir,
            seed: options.seed,
            epochs: options.epochs,
            lr: options.lr,
            hooks: {
              onEvent: (event) => (view ? showTrainEvent(view, event) : undefined),
              shouldStop,
              onStage: (stage) => {
                if (!options.quiet) process.stderr.write(`demo: ${stage}\n`);
              },
            },
          }),
        );
        view?.stop();
        if (result.status === 'interrupted') {
          process.exitCode = interruptedExitCode(result.runDir);
          return;
        }
        console.log(resultTable(result.results));
        const { world, training, evaluation, report } = result.seconds;
        console.log(
          `\nworld ${world.toFixed(0)} s, training ${training.toFixed(0)} s, evaluation ${evaluation.toFixed(0)} s, report ${report.toFixed(0)} s; total ${((performance.now() - started) / 1000).toFixed(0)} s`,
        );
        console.log(`report: ${result.reportPath}`);
        console.log(`model folder (for vilbert predict and the pipelines): ${result.modelDir}`);
        process.exitCode = result.results.every((entry) => entry.score > entry.chance) ? 0 : 1;
      },
    );
}
