// Where `vilbert serve` gets its model and images: the folder `vilbert demo` writes (its model
// folder and its world), a model folder with a world, or a model folder with a feature LMDB
// and a folder of image files. The demo's layout is known here and nowhere else in serve.
//
// A world also gives what a model folder does not hold: the settings of GenomeQA (TASK2,
// the shared VQA head with its own answer list) and Visual7w (TASK4, pointing), read from
// the world's task registry, which the demo trained with.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { ImageFeatureReader } from '../data/features.js';
import { loadTaskRegistry } from '../data/task-registry.js';
import { readAnswerVocabulary } from '../data/datasets/vqa.js';
import type { TaskSettings } from '../pipelines/model-folder.js';
import { readScenes } from '../report/run-files.js';
import { readWorldInfo } from '../synthetic/index.js';
import { Gallery, type Collection, type Picture } from './gallery.js';
import { ServeSetupError } from './serve-error.js';
import type { ServeTask } from './tasks.js';

/** `vilbert demo`'s default --dir, and the two folders it writes there that serve reads. */
export const DEFAULT_DEMO_DIR = 'vilbert-demo';
const DEMO_MODEL = 'model';
const DEMO_WORLD = 'world';

export interface ServeSources {
  modelDir: string;
  gallery: Gallery;
  /** The collection holding each task's images in the world (the page opens the gallery there). */
  taskCollections: Partial<Record<ServeTask, string>>;
  /** GenomeQA's settings and answer list, from a world. */
  genomeqa?: { settings: TaskSettings; labels: readonly string[] };
  /** Visual7w pointing's settings, from a world. */
  visual7w?: { settings: TaskSettings };
  /** Said by the health endpoint when GenomeQA and Visual7w are missing. */
  missingWorldReason?: string;
}

/** The registry task whose store and settings each serve task uses in a world. */
const WORLD_TASKS: Record<ServeTask, string> = {
  vqa: 'TASK1',
  genomeqa: 'TASK2',
  visual7w: 'TASK4',
  retrieve: 'TASK7',
  ground: 'TASK9',
  verify: 'TASK12',
  entail: 'TASK13',
  gqa: 'TASK15',
};

const IMAGE_TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
};

function requireModelFolder(modelDir: string): string {
  const dir = resolve(modelDir);
  if (!existsSync(join(dir, 'config.json')))
    throw new ServeSetupError(`${dir} is not a model folder (no config.json; see vilbert model-folder)`);
  return dir;
}

/** The demo's folder: its model folder and world. Says which command makes one when there is none. */
export function demoSources(demoDir = DEFAULT_DEMO_DIR): ServeSources {
  const dir = resolve(demoDir);
  const modelDir = join(dir, DEMO_MODEL);
  if (!existsSync(join(modelDir, 'config.json')) || readWorldInfo(join(dir, DEMO_WORLD)) === null)
    throw new ServeSetupError(
      `no demo in ${dir} (it needs ${DEMO_MODEL}/ and ${DEMO_WORLD}/): run \`npx vilbert demo\` first, or give a model folder (vilbert serve MODEL_FOLDER --features LMDB --images DIR)`,
    );
  return worldSources(modelDir, join(dir, DEMO_WORLD));
}

/** A model folder over a synthetic world: one collection per feature store its tasks use, scenes as pictures. */
export function worldSources(modelDir: string, worldDir: string): ServeSources {
  const root = resolve(worldDir);
  const info = readWorldInfo(root);
  if (info === null) throw new ServeSetupError(`${root} is not a world (no world.json; see vilbert make-world)`);
  const registry = loadTaskRegistry(join(root, info.registry));
  const scenesPath = join(root, info.scenes);
  const scenes = readScenes(JSON.parse(readFileSync(scenesPath, 'utf8')) as unknown, scenesPath);
  // Visual7w's store keys are v7w_<image id>; its scenes are under the image id.
  const sceneOf = (key: string): Picture | undefined => {
    const scene = scenes.get(key) ?? scenes.get(/_(\d+)$/.exec(key)?.[1] ?? '');
    return scene && { kind: 'scene', scene };
  };
  const collections = new Map<string, Collection>();
  const taskCollections: ServeSources['taskCollections'] = {};
  const folder = requireModelFolder(modelDir);
  try {
    for (const [task, key] of Object.entries(WORLD_TASKS) as [ServeTask, string][]) {
      const entry = registry.get(key);
      if (entry === undefined) continue;
      // datasets/<name>/... names the collection (coco, visual_genome, visual7w, flickr30k, nlvr2).
      const name = entry.features_h5path1.split('/')[1] ?? basename(entry.features_h5path1, '.lmdb');
      if (!collections.has(name)) {
        const store = ImageFeatureReader.open(join(root, entry.features_h5path1));
        collections.set(name, { name, store, keys: store.keys(), picture: sceneOf });
      }
      taskCollections[task] = name;
    }
    const settings = (key: string): TaskSettings => {
      const entry = registry.get(key)!;
      const { task_id, max_seq_length, max_region_num, name } = entry;
      return { task_id, max_seq_length, max_region_num, name };
    };
    const genome = registry.get(WORLD_TASKS.genomeqa);
    return {
      modelDir: folder,
      gallery: new Gallery([...collections.values()]),
      taskCollections,
      ...(genome && {
        genomeqa: {
          settings: settings(WORLD_TASKS.genomeqa),
          labels: readAnswerVocabulary(join(root, genome.dataroot)).label2ans,
        },
      }),
      ...(registry.has(WORLD_TASKS.visual7w) && { visual7w: { settings: settings(WORLD_TASKS.visual7w) } }),
    };
  } catch (error) {
    for (const collection of collections.values()) collection.store.close();
    throw error;
  }
}

/**
 * A model folder over one region-feature LMDB; pictures from a folder of image files named
 * after the LMDB keys (the name up to the first '.', as the reference's convert_to_lmdb.py
 * keys them). Without a folder the page draws the boxes on a blank image of the right size.
 */
export function storeSources(modelDir: string, features: string, images?: string): ServeSources {
  const folder = requireModelFolder(modelDir);
  const files = new Map<string, Picture>();
  if (images !== undefined) {
    const dir = resolve(images);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ServeSetupError(`--images ${dir}: not a folder`);
    for (const name of readdirSync(dir)) {
      const contentType = IMAGE_TYPES[extname(name).toLowerCase()];
      const key = name.split('.')[0]!;
      if (contentType !== undefined && key !== '' && !files.has(key))
        files.set(key, { kind: 'file', path: join(dir, name), contentType });
    }
  }
  const store = ImageFeatureReader.open(resolve(features));
  const name = basename(features).split('.')[0]!.split('_')[0]!.toLowerCase() || 'images';
  return {
    modelDir: folder,
    gallery: new Gallery([{ name, store, keys: store.keys(), picture: (key) => files.get(key) }]),
    taskCollections: {},
    missingWorldReason: 'GenomeQA and Visual7w need a world (--world DIR): a model folder holds only the six pipelines',
  };
}
