// Read a region-feature LMDB (the reference's `*_resnext152_faster_rcnn_genome.lmdb` stores) and
// print one image's regions: boxes, feature and location shapes, and the padded arrays a
// dataset feeds the model.
//
//   node examples/read-feature-lmdb.mjs [LMDB] [IMAGE_ID]
//
// The default store is the data kit's COCO one; the default image its first.
import { fileURLToPath } from 'node:url';
import { FEATURE_WIDTH, LOCATION_WIDTH, ImageFeatureReader } from 'vilbert-ts/data';

const path =
  process.argv[2] ??
  fileURLToPath(
    new URL(
      '../test/fixtures/datasets/kit/datasets/coco/features_100/COCO_trainval_resnext152_faster_rcnn_genome.lmdb',
      import.meta.url,
    ),
  );
const store = ImageFeatureReader.open(path);
try {
  const keys = store.keys(); // image ids as the store's `keys` entry lists them (strings)
  console.log(`${path}: ${store.length} images, e.g. ${keys.slice(0, 5).join(', ')}`);

  const imageId = process.argv[3] ?? keys[0];
  const image = store.get(imageId);
  const rows = image.numBoxes; // detector boxes + 1: row 0 is the whole image, its feature the mean of the others
  console.log(`image ${image.key}: ${image.imageWidth} x ${image.imageHeight} pixels, ${rows - 1} detected regions`);
  console.log(`features [${rows}, ${image.features.length / rows}]`);
  console.log(
    `boxes (pixel x1 y1 x2 y2, then the area: a fraction, W*H in row 0) [${rows}, ${image.imageLocationOri.length / rows}]`,
  );
  console.log(`spatials (normalised x1 y1 x2 y2, area fraction) [${rows}, ${image.imageLocation.length / rows}]`);
  for (let row = 0; row < Math.min(rows, 4); row++) {
    const box = Array.from(
      image.imageLocationOri.subarray(row * LOCATION_WIDTH, (row + 1) * LOCATION_WIDTH),
      (v) => +v.toFixed(3),
    );
    const feature = image.features.subarray(row * FEATURE_WIDTH, (row + 1) * FEATURE_WIDTH);
    const norm = Math.sqrt(feature.reduce((sum, v) => sum + v * v, 0));
    console.log(
      `  region ${row}${row === 0 ? ' (whole image)' : ''}: box [${box.join(', ')}], |feature| ${norm.toFixed(3)}`,
    );
  }

  // What the VQA loader feeds the model: max_region_num rows, zero-padded (or truncated), and a 0/1 mask.
  const maxRegions = 101;
  const padded = store.getPadded(imageId, maxRegions);
  const real = padded.imageMask.reduce((sum, v) => sum + Number(v), 0);
  console.log(
    `padded to ${maxRegions}: features [${maxRegions}, ${padded.features.length / maxRegions}], ` +
      `spatials [${maxRegions}, ${padded.spatials.length / maxRegions}], image mask [${padded.imageMask.length}] with ${real} ones`,
  );
} finally {
  store.close();
}
