// `vilbert train-concap` as a process of its own, for the tests that kill or interrupt it:
// `node train-concap-cli.js train-concap <flags>`. Without that first argument (as when
// the test runner loads every file under test/) it does nothing.
import { Command, CommanderError } from 'commander';
import { registerTrainConcap } from '../../src/cli/train-concap.js';

if (process.argv[2] === 'train-concap') {
  const program = new Command('vilbert').exitOverride();
  registerTrainConcap(program);
  for (const command of program.commands) command.exitOverride();
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (!(error instanceof CommanderError))
      process.stderr.write(`vilbert: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof CommanderError ? error.exitCode : 1;
  }
}
