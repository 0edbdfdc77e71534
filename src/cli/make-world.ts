// `vilbert make-world [DIR]`: writes the synthetic world (the demo's default data) in the
// reference's formats, or reuses the one already there, and prints its tasks.
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_WORLD_OPTIONS, generateWorld, type WorldOptions } from '../synthetic/index.js';

/** CLI flag -> world option, with its help text. */
const FLAGS: readonly [flag: string, option: keyof WorldOptions, help: string][] = [
  ['--seed <n>', 'seed', 'random seed: the same seed and sizes give byte-identical files'],
  ['--images <n>', 'images', 'train images per image pool (COCO, Visual Genome, Flickr30k; NLVR2 pairs)'],
  ['--val-images <n>', 'valImages', 'val images per pool'],
  ['--held-out-images <n>', 'heldOutImages', 'images per pool in its *_test_ids.npy (dropped from train by cleaning)'],
  [
    '--pointing-images <n>',
    'pointingImages',
    'train images of the Visual7w and GuessWhat pools (100 detector boxes each)',
  ],
  ['--pointing-val-images <n>', 'pointingValImages', 'val images of the Visual7w and GuessWhat pools'],
  ['--boxes <n>', 'boxes', 'detector boxes per image outside the pointing pools (max_region_num = boxes + 1)'],
  ['--min-objects <n>', 'minObjects', 'fewest objects in a scene'],
  ['--max-objects <n>', 'maxObjects', 'most objects in a scene'],
  ['--questions <n>', 'questionsPerImage', 'questions (and SNLI-VE hypotheses) per image'],
  ['--captions <n>', 'captionsPerImage', 'retrieval captions per image'],
  ['--statements <n>', 'statementsPerPair', 'NLVR2 statements per image pair'],
  ['--noise <x>', 'noise', 'standard deviation of the detector noise on the features'],
  ['--cc-images <n>', 'conceptCaptionsImages', 'Conceptual Captions train images'],
  ['--cc-val-images <n>', 'conceptCaptionsValImages', 'Conceptual Captions val images'],
];

function number(value: string): number {
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) throw new InvalidArgumentError(`'${value}' is not a number`);
  return parsed;
}

const fixed = (value: number | undefined) => (value === undefined ? '' : value.toFixed(3));

export function registerMakeWorld(program: Command): void {
  const command = program
    .command('make-world')
    .description(
      "write the synthetic world (12 tasks and Conceptual Captions in the reference's formats, with vilbert_tasks.yml), or reuse the one in DIR",
    )
    .argument('[dir]', 'folder of the world (the root its vilbert_tasks.yml paths are relative to)', 'vilbert-world');
  for (const [flag, option, help] of FLAGS)
    command.option(flag, `${help} (default ${DEFAULT_WORLD_OPTIONS[option]})`, number);
  command.action((dir: string, flags: Record<string, number | undefined>) => {
    const options = Object.fromEntries(
      FLAGS.map(([flag, option]) => {
        const name = flag.slice(2, flag.indexOf(' ')).replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
        return [option, flags[name]];
      }),
    ) as Partial<WorldOptions>;
    const started = Date.now();
    const world = generateWorld(resolve(dir), options, (progress) =>
      process.stderr.write(`  ${progress.stage}: ${progress.detail}\n`),
    );
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(
      world.reused
        ? `reused the world in ${world.root} (same options)`
        : `wrote the world to ${world.root} in ${seconds} s`,
    );
    console.log(`registry: ${world.registryPath} (paths relative to ${world.root})`);
    console.log(
      `\n${'task'.padEnd(8)}${'name'.padEnd(20)}${'train'.padStart(7)}${'val'.padStart(7)}   chance  text-only  question-type  image-only`,
    );
    for (const [key, task] of Object.entries(world.info.tasks)) {
      console.log(
        `${key.padEnd(8)}${task.name.padEnd(20)}${String(task.train).padStart(7)}${String(task.val).padStart(7)}   ${fixed(task.chance).padStart(6)}  ${fixed(task.textOnly).padStart(9)}  ${fixed(task.questionType).padStart(13)}  ${fixed(task.imageOnly).padStart(10)}`,
      );
    }
    const cc = world.info.conceptCaptions;
    console.log(`\nConceptual Captions: ${cc.train} train / ${cc.val} val images in ${cc.path}`);
  });
}
