// `vilbert report RUN_DIR`: (re)writes the HTML report of a training run and prints its path.
import { InvalidArgumentError, type Command } from 'commander';
import { writeReport } from '../report/html.js';

export function registerReport(program: Command): void {
  program
    .command('report')
    .description(
      "write RUN_DIR/report.html from the run's metrics.jsonl, run.json and, if present, eval.json and examples.json",
    )
    .argument('<run_dir>', 'run directory written by train-tasks')
    .option('--output <file>', 'write the report here instead of RUN_DIR/report.html')
    .option('--title <text>', 'page title (default: RUN_DIR)')
    .option(
      '--max_examples <n>',
      'examples drawn per kind (grounding, VQA, retrieval)',
      (value: string) => {
        const count = Number(value);
        if (!Number.isInteger(count) || count < 0) throw new InvalidArgumentError('expected a whole number.');
        return count;
      },
      24,
    )
    .action((runDir: string, options: { output?: string; title?: string; max_examples: number }) => {
      console.log(
        writeReport(runDir, { output: options.output, title: options.title, maxExamples: options.max_examples }),
      );
    });
}
