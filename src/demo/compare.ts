// `vilbert demo --compare`: the paper's claim (12-in-1, Table 3) on the world. Beside the
// multi-task model, one single-task model per task, each with the same small config and
// the same number of training steps the multi-task run gave that task (train-tasks steps
// every task once per iteration), evaluated as the demo evaluates.
import type { TaskConfig } from '../data/task-registry.js';
import type { WorldInfo } from '../synthetic/index.js';
import type { TrainTasksHooks, TrainTasksResult } from '../train/train-tasks.js';
import type { DemoTaskResult } from './demo.js';

export interface ComparedTask {
  key: string;
  task: string;
  metric: string;
  multiTask: number;
  singleTask: number;
  /** multiTask - singleTask */
  difference: number;
  /** Training steps of the single-task model (the multi-task run gave each task the same). */
  steps: number;
}

export interface Comparison {
  tasks: ComparedTask[];
  /** Parameters of the one multi-task model, and of the 12 single-task models together. */
  parameters: { multiTask: number; singleTask: number };
  seconds: number;
}

/** What the comparison needs of the demo's run. */
export interface CompareRun {
  tasks: TaskConfig[];
  world: WorldInfo;
  /** Iterations of the multi-task run: each task's steps. */
  iterations: number;
  multiTask: DemoTaskResult[];
  parameters: number;
  /** Writes the demo's registry with per-task num_epoch and returns its path. */
  registry: (epochs: Record<string, number>) => string;
  /** Trains one task (the demo's train-tasks arguments for that task). */
  train: (task: TaskConfig, registry: string) => Promise<TrainTasksResult>;
  /** Evaluates a model on one task as the demo does. */
  evaluate: (model: TrainTasksResult['model'], task: TaskConfig) => Promise<DemoTaskResult>;
  hooks?: TrainTasksHooks & { onStage?: (stage: string) => void };
}

/** Train batches per epoch of a task, as its loader counts them (world.json's train items, the registry batch). */
const batchesOf = (task: TaskConfig, world: WorldInfo) => Math.ceil(world.tasks[task.key]!.train / task.batch_size);

export async function compareSingleTask(run: CompareRun): Promise<Comparison> {
  const started = performance.now();
  const epochs = Object.fromEntries(run.tasks.map((task) => [task.key, run.iterations / batchesOf(task, run.world)]));
  const registry = run.registry(epochs);
  const compared: ComparedTask[] = [];
  let singleParameters = 0;
  for (const task of run.tasks) {
    run.hooks?.onStage?.(`single-task ${task.name}`);
    const single = await run.train(task, registry);
    try {
      if (single.status === 'interrupted') break;
      singleParameters += single.model.numParameters();
      const result = await run.evaluate(single.model, task);
      const multi = run.multiTask.find((entry) => entry.key === task.key)!;
      compared.push({
        key: task.key,
        task: task.name,
        metric: result.metric,
        multiTask: multi.score,
        singleTask: result.score,
        difference: multi.score - result.score,
        steps: single.iterations,
      });
    } finally {
      single.model.dispose();
    }
  }
  return {
    tasks: compared,
    parameters: { multiTask: run.parameters, singleTask: singleParameters },
    seconds: (performance.now() - started) / 1000,
  };
}
