// `vilbert serve`: the local web page of the 12 tasks (docs/INFERENCE.md#the-web-page).
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { startServer } from '../serve/server.js';
import { DEFAULT_DEMO_DIR, demoSources, storeSources, worldSources, type ServeSources } from '../serve/sources.js';
import { ServeSetupError } from '../serve/serve-error.js';
import { applyThreads, integer, positiveInteger } from './flags.js';

interface ServeFlags {
  port: number;
  host: string;
  demo: string;
  world?: string;
  features?: string;
  images?: string;
  detector?: string;
  max_batch: number;
  threads?: number;
}

function sourcesOf(modelFolder: string | undefined, flags: ServeFlags): ServeSources {
  if (flags.images !== undefined && flags.features === undefined)
    throw new ServeSetupError("--images needs --features (the LMDB holding those images' region features)");
  if (modelFolder === undefined) {
    if (flags.features !== undefined || flags.world !== undefined)
      throw new ServeSetupError('--features and --world go with a MODEL_FOLDER argument');
    return demoSources(flags.demo);
  }
  if (flags.features !== undefined && flags.world !== undefined)
    throw new ServeSetupError('give --world DIR or --features LMDB, not both');
  if (flags.world !== undefined) return worldSources(modelFolder, flags.world);
  if (flags.features !== undefined) return storeSources(modelFolder, flags.features, flags.images);
  throw new ServeSetupError(
    `${modelFolder}: which images? add --features LMDB (and --images DIR for their pictures), or --world DIR`,
  );
}

async function serve(modelFolder: string | undefined, flags: ServeFlags): Promise<void> {
  applyThreads(flags);
  if (flags.detector !== undefined && !existsSync(flags.detector))
    throw new ServeSetupError(`--detector ${flags.detector}: no such folder`);
  const sources = sourcesOf(modelFolder, flags);
  let server;
  try {
    server = await startServer({
      sources,
      host: flags.host,
      port: flags.port,
      maxBatch: flags.max_batch,
      ...(flags.detector !== undefined && { detector: flags.detector }),
    });
  } catch (error) {
    sources.gallery.close();
    throw error;
  }
  const { url } = server;
  const unavailable = Object.entries(server.engine.status()).filter(([, status]) => !status.available);
  console.log(`vilbert serve: ${sources.modelDir}`);
  for (const { name, count } of sources.gallery.collections) console.log(`  gallery ${name}: ${count} images`);
  for (const [task, status] of unavailable) console.log(`  ${task}: not available (${status.reason})`);
  if (flags.detector !== undefined)
    console.log('  --detector: image upload stays off, feature extraction is not implemented yet');
  console.log(`open ${url} (Ctrl-C stops)`);
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  await server.close();
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('a local web page (and JSON API) asking the model folder any of the 12 tasks about gallery images')
    .argument(
      '[MODEL_FOLDER]',
      `model folder (default: the one \`vilbert demo\` saved in ./${DEFAULT_DEMO_DIR}, with its world)`,
    )
    .option('--port <n>', 'port (0: any free one)', integer, 8080)
    .option('--host <address>', 'address to listen on (0.0.0.0 opens the page to the network)', '127.0.0.1')
    .option('--demo <dir>', 'the demo folder served when no MODEL_FOLDER is given', DEFAULT_DEMO_DIR)
    .option(
      '--world <dir>',
      'a synthetic world (vilbert make-world) whose images and scenes to serve with MODEL_FOLDER',
    )
    .option('--features <lmdb>', 'region-feature LMDB of the images to serve with MODEL_FOLDER')
    .option('--images <dir>', 'image files named <LMDB key>.jpg/.png shown for --features')
    .option('--detector <dir>', 'detector for uploaded images (not implemented yet: upload stays off)')
    .option(
      '--max_batch <n>',
      'queued VQA/GQA/GenomeQA requests run together, at most this many (1: no batching)',
      positiveInteger,
      16,
    )
    .option('--threads <n>', "libtorch intra-op threads (default: libtorch's choice)", integer)
    .action(serve);
}
