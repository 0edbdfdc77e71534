// The `vilbert` command. Subcommands are named after the reference scripts.
import { Command, CommanderError } from 'commander';
import { registerInfo } from './info.js';
import { registerSmoke } from './smoke.js';
import { registerCheckpoints } from './checkpoints.js';
import { registerVerifyParity } from './verify-parity.js';
import { registerVerifyData } from './verify-data.js';
import { registerTrainTasks } from './train-tasks.js';
import { registerDemo } from './demo.js';
import { registerTrainConcap } from './train-concap.js';
import { registerReport } from './report.js';
import { registerEval } from './eval.js';
import { registerPredict } from './predict.js';
import { registerLaunch } from './launch.js';
import { registerMakeWorld } from './make-world.js';
import { registerDownload } from './download.js';
import { registerServe } from './serve.js';

export function buildProgram(): Command {
  const program = new Command('vilbert')
    .description('ViLBERT and 12-in-1 multi-task vision-and-language models on libtorch')
    .version(process.env.npm_package_version ?? '0.1.0')
    .showHelpAfterError()
    .exitOverride();
  for (const register of [
    registerDemo,
    registerSmoke,
    registerTrainTasks,
    registerTrainConcap,
    registerEval,
    registerReport,
    registerPredict,
    registerServe,
    registerMakeWorld,
    registerDownload,
    registerLaunch,
    registerCheckpoints,
    registerVerifyParity,
    registerVerifyData,
    registerInfo,
  ])
    register(program);
  for (const command of program.commands) command.showHelpAfterError().exitOverride();
  return program;
}

/** Runs the command line and returns the exit code; errors become messages, not stack traces. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander already printed its message (or the help / version text).
      return error.exitCode;
    }
    console.error(`vilbert: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}
