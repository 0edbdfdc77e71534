// Conceptual-Captions-format pre-training data: per split a tensorpack LMDBSerializer file
// (one LMDB data file, keys 00000000..., msgpack-numpy datapoints [features, cls_prob,
// boxes, num_boxes, image_h, image_w, image_id, caption], the numbers as strings;
// b"__keys__" -> the key list) and caption_<split>.json {image_id: caption}.
// Every image has 36 regions, as the reference requires.
import { join } from 'node:path';
import { writeLmdb } from '../io/lmdb.js';
import type { WorldContext } from './context.js';
import {
  CLASS_WIDTH,
  FEATURE_WIDTH,
  classDistributions,
  detectorRegions,
  float32Raw,
  regionBoxes,
  regionFeatures,
} from './features.js';
import { writeJsonObject } from './files.js';
import { encodeMsgpackNumpy } from './msgpack-writer.js';
import { Random } from './random.js';
import { captions } from './retrieval.js';
import type { Scene, ScenePool } from './scenes.js';

/** Regions per record (the reference's hard-coded region_len). */
const REGION_LEN = 36;

export const CONCEPT_CAPTIONS_DIR = 'data/conceptual_caption';

function writeSplit(context: WorldContext, scenes: readonly Scene[], lmdb: string, captionFile: string): void {
  const captionOf = new Map<string, string>();
  const entries: [string, Uint8Array][] = scenes.map((scene, index) => {
    const random = new Random(context.options.seed, `concept-captions/${scene.key}`);
    const regions = detectorRegions(random, scene, REGION_LEN);
    const caption = captions(random, scene, 1)[0]!;
    captionOf.set(scene.key, caption);
    return [
      String(index).padStart(8, '0'),
      encodeMsgpackNumpy([
        float32Raw(regionFeatures(random, context.model, regions, scene), [REGION_LEN, FEATURE_WIDTH]),
        float32Raw(classDistributions(random, regions), [REGION_LEN, CLASS_WIDTH]),
        float32Raw(regionBoxes(regions), [REGION_LEN, 4]),
        String(REGION_LEN),
        String(scene.height),
        String(scene.width),
        scene.key,
        caption,
      ]),
    ];
  });
  const keys = entries.map(([key]) => Buffer.from(key, 'latin1'));
  writeLmdb(join(context.root, CONCEPT_CAPTIONS_DIR, lmdb), [...entries, ['__keys__', encodeMsgpackNumpy(keys)]], {
    subdir: false,
  });
  writeJsonObject(join(context.root, CONCEPT_CAPTIONS_DIR, captionFile), [...captionOf]);
}

/** Both splits; returns their record counts. */
export function writeConceptCaptions(
  context: WorldContext,
  pool: ScenePool,
): { path: string; train: number; val: number } {
  writeSplit(context, pool.train, 'training_feat_all.lmdb', 'caption_train.json');
  writeSplit(context, pool.val, 'validation_feat_all.lmdb', 'caption_val.json');
  return { path: CONCEPT_CAPTIONS_DIR, train: pool.train.length, val: pool.val.length };
}
