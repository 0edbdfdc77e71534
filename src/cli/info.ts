import type { Command } from 'commander';
import * as torch from '../torch/index.js';

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('print the libtorch build the engine runs on, its threads and devices')
    .action(() => {
      const info = torch.buildInfo();
      console.log(`libtorch ${info.torchVersion}`);
      console.log(`CUDA available: ${info.cuda ? 'yes' : 'no'}`);
      console.log(`intra-op threads: ${torch.getNumThreads()}`);
      console.log(info.parallelInfo.trim());
    });
}
