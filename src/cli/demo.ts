// `vilbert demo`: the embedded default, the README's first command.
import type { Command } from 'commander';
import type { Comparison } from '../demo/compare.js';
import { DEMO_DEFAULTS, runDemo, type DemoTaskResult } from '../demo/demo.js';
import { applyThreads, float, integer } from './flags.js';
import { TrainingView, interruptedExitCode, withInterrupt } from './training-view.js';
import { showTrainEvent } from './train-tasks.js';

/** The per-task table: metric, score beside chance and the blind baselines, and whether the score clears the demo's bounds, in words. */
export function resultTable(results: DemoTaskResult[]): string {
  const header = ['task', 'name', 'metric', 'score', 'chance', 'text only', 'image only', ''];
  const percent = (value: number | undefined) => (value === undefined ? '-' : (100 * value).toFixed(1));
  const rows = results.map((result) => [
    result.key,
    result.task,
    result.metric,
    percent(result.score),
    percent(result.chance),
    percent(result.textOnly),
    percent(result.imageOnly),
    result.verdict,
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

/** Per task: multi-task score, single-task score and the difference; then the parameters of 1 model against 12. */
export function comparisonTable(comparison: Comparison): string {
  const percent = (value: number) => (100 * value).toFixed(1);
  const header = ['task', 'name', 'metric', 'multi-task', 'single-task', 'difference', 'steps'];
  const rows = comparison.tasks.map((entry) => [
    entry.key,
    entry.task,
    entry.metric,
    percent(entry.multiTask),
    percent(entry.singleTask),
    `${entry.difference >= 0 ? '+' : ''}${percent(entry.difference)}`,
    String(entry.steps),
  ]);
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);
  const multi = mean(comparison.tasks.map((entry) => entry.multiTask));
  const single = mean(comparison.tasks.map((entry) => entry.singleTask));
  rows.push([
    '',
    'average',
    '',
    percent(multi),
    percent(single),
    `${multi >= single ? '+' : ''}${percent(multi - single)}`,
    '',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const table = [header, ...rows].map((row) =>
    row
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd(),
  );
  const { multiTask, singleTask } = comparison.parameters;
  table.push(
    '',
    `parameters: 1 multi-task model ${multiTask.toLocaleString('en-US')}; ${comparison.tasks.length} single-task models ${singleTask.toLocaleString('en-US')}`,
  );
  return table.join('\n');
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
    .option('--bf16', 'train with bfloat16 autocast (train-tasks --bf16)', false)
    .option(
      '--compare',
      'also train one single-task model per task (same steps and config) and compare; about twice as long',
      false,
    )
    .action(
      async (options: {
        dir: string;
        seed: number;
        epochs: number;
        lr: number;
        threads?: number;
        quiet: boolean;
        compare: boolean;
        bf16: boolean;
      }) => {
        applyThreads(options);
        if (options.compare)
          console.log(
            'demo --compare: the 12-task run, then 12 single-task runs with the same steps per task: about twice the plain demo, 10 to 16 minutes on 2 cores (docs/DEMO.md)',
          );
        const view = options.quiet ? null : new TrainingView();
        const started = performance.now();
        const result = await withInterrupt((shouldStop) =>
          runDemo({
            dir: options.dir,
            seed: options.seed,
            epochs: options.epochs,
            lr: options.lr,
            compare: options.compare,
            bf16: options.bf16,
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
        if (result.comparison) console.log(`\n${comparisonTable(result.comparison)}`);
        const { world, training, evaluation, report, compare } = result.seconds;
        console.log(
          `\nworld ${world.toFixed(0)} s, training ${training.toFixed(0)} s, evaluation ${evaluation.toFixed(0)} s, ${compare === undefined ? '' : `single-task comparison ${compare.toFixed(0)} s, `}report ${report.toFixed(0)} s; total ${((performance.now() - started) / 1000).toFixed(0)} s`,
        );
        console.log(`report: ${result.reportPath}`);
        console.log(`model folder (for vilbert predict and the pipelines): ${result.modelDir}`);
        process.exitCode = result.results.every((entry) => entry.score > entry.chance) ? 0 : 1;
      },
    );
}
