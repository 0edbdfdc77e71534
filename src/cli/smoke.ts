// A short end-to-end run of the engine: train a small MLP on a synthetic
// classification problem and report the loss and accuracy. This stays the
// README's first command until the embedded multi-task demo exists.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import * as torch from '../torch/index.js';

const { nn, F } = torch;

class Classifier extends torch.Module {
  readonly hidden = new nn.Linear(32, 128);
  readonly LayerNorm = new nn.LayerNorm(128, 1e-12);
  readonly output = new nn.Linear(128, 4);

  forward(x: torch.Tensor): torch.Tensor {
    return this.output.forward(this.LayerNorm.forward(F.gelu(this.hidden.forward(x)))); // [B, 4]
  }
}

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('expected a positive integer');
  return parsed;
}

export function registerSmoke(program: Command): void {
  program
    .command('smoke')
    .description('train a small network with the libtorch engine and report loss and accuracy')
    .option('--steps <n>', 'optimisation steps', positiveInteger, 300)
    .option('--seed <n>', 'random seed', positiveInteger, 1)
    .option('--threads <n>', 'intra-op threads', positiveInteger)
    .action((options: { steps: number; seed: number; threads?: number }) => {
      if (options.threads) torch.setNumThreads(options.threads);
      torch.manualSeed(options.seed);
      const model = new Classifier();
      // Labels are the quadrant of the first two coordinates of a random projection.
      const inputs = torch.randn([512, 32]).keep();
      const projection = torch.randn([32, 2]).keep();
      const labels = torch
        .scope(() => {
          const projected = inputs.matmul(projection); // [512, 2]
          return projected.select(1, 0).gt(0).long().mul(2).add(projected.select(1, 1).gt(0).long());
        })
        .keep();
      const started = performance.now();
      for (let step = 1; step <= options.steps; step++) {
        const loss = torch.scope(() => {
          const value = F.crossEntropy(model.forward(inputs), labels);
          model.zeroGrad();
          value.backward();
          torch.noGrad(() => {
            for (const parameter of model.parameters()) parameter.add_(parameter.grad!, -0.1);
          });
          return value.item();
        });
        if (step === 1 || step % 50 === 0 || step === options.steps)
          console.log(`step ${step}: loss ${loss.toFixed(4)}`);
      }
      const accuracy = torch.scope(() =>
        torch.noGrad(() => model.eval().forward(inputs).argmax(1).eq(labels).float().mean().item()),
      );
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `train accuracy ${(100 * accuracy).toFixed(1)}% (chance 25%) in ${seconds.toFixed(2)} s, ` +
          `${torch.getNumThreads()} threads, live tensors ${torch.liveTensors()}`,
      );
    });
}
