import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { FEATURE_WIDTH, FeatureStoreError, ImageFeatureReader, LOCATION_WIDTH } from '../../src/data/features.js';
import {
  ENTAILMENT_CLASSES,
  ImageInputError,
  createPipeline,
  loadModelFolder,
  type DetectedRegions,
  type ImageInput,
  type ProgressEvent,
} from '../../src/pipelines/index.js';
import { ImageResolver } from '../../src/pipelines/image-input.js';
import { LABELS, kitPath, tinyFolder } from './helpers.js';

const saved = tinyFolder();
const stores = {
  coco: ImageFeatureReader.open(
    kitPath('datasets', 'coco', 'features_100', 'COCO_trainval_resnext152_faster_rcnn_genome.lmdb'),
  ),
  gqa: ImageFeatureReader.open(kitPath('datasets', 'gqa', 'gqa_resnext152_faster_rcnn_genome.lmdb')),
  nlvr2: ImageFeatureReader.open(kitPath('datasets', 'nlvr2', 'nlvr2_resnext152_faster_rcnn_genome.lmdb')),
  flickr: ImageFeatureReader.open(kitPath('datasets', 'flickr30k', 'flickr30k_resnext152_faster_rcnn_genome.lmdb')),
};
const folder = loadModelFolder(saved.dir);
after(() => {
  folder.model.dispose();
  saved.dispose();
  for (const store of Object.values(stores)) store.close();
});

/** An LMDB image as the arrays a detector gives: its stored rows (without the whole-image row) and pixel boxes. */
function detected(store: ImageFeatureReader, imageId: string): DetectedRegions {
  const image = store.get(imageId);
  const boxes = new Float32Array((image.numBoxes - 1) * 4);
  for (let row = 1; row < image.numBoxes; row++)
    boxes.set(image.imageLocationOri.subarray(row * LOCATION_WIDTH, row * LOCATION_WIDTH + 4), (row - 1) * 4);
  return { features: image.features.slice(FEATURE_WIDTH), boxes, width: image.imageWidth, height: image.imageHeight };
}

const bits = (array: Float32Array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength);

describe('image inputs', () => {
  it('region arrays passed in become the bits the LMDB reader gives (mean row, 5-d locations)', () => {
    const resolver = new ImageResolver();
    for (const [store, id] of [
      [stores.coco, '9'],
      [stores.coco, '30'],
      [stores.flickr, '1000092795'],
    ] as const) {
      const fromStore = store.get(id);
      const passed = resolver.regions(detected(store, id));
      assert.equal(passed.numBoxes, fromStore.numBoxes);
      assert.ok(bits(passed.features).equals(bits(fromStore.features)), `${id}: features`);
      assert.ok(bits(passed.imageLocation).equals(bits(fromStore.imageLocation)), `${id}: locations`);
      assert.ok(bits(passed.imageLocationOri).equals(bits(fromStore.imageLocationOri)), `${id}: pixel boxes`);
    }
  });

  it('a store given by path is opened once and closed by the resolver; errors name the argument', () => {
    const resolver = new ImageResolver();
    const path = kitPath('datasets', 'gqa', 'gqa_resnext152_faster_rcnn_genome.lmdb');
    assert.equal(resolver.regions({ store: path, imageId: '2354786' }).width, 500);
    assert.throws(
      () => resolver.regions({ store: path, imageId: 'nope' }),
      (error: unknown) =>
        error instanceof FeatureStoreError && /image 'nope': not in the store's 'keys' list/.test(error.message),
    );
    resolver.close();
    const good = detected(stores.coco, '30');
    const bad: [string, DetectedRegions, RegExp][] = [
      [
        'features',
        { ...good, features: good.features.subarray(1) },
        /features must be a non-empty Float32Array of N \* 2048 values/,
      ],
      [
        'boxes',
        { ...good, boxes: good.boxes.subarray(4) },
        /boxes must be a Float32Array of 37 \* 4 values .* got 144/,
      ],
      ['width', { ...good, width: 0 }, /width must be a positive integer \(pixels\), got 0/],
    ];
    for (const [what, image, message] of bad)
      assert.throws(
        () => resolver.regions(image, 'leftImage'),
        (error: unknown) =>
          error instanceof ImageInputError && message.test(error.message) && error.message.startsWith('leftImage: '),
        what,
      );
  });
});

describe('pipelines on a tiny random model folder', () => {
  const image = (store: ImageFeatureReader, imageId: string): ImageInput => ({ store, imageId });

  it('every pipeline gives the same result for an LMDB image and for its regions passed in', async () => {
    const vqa = await createPipeline('vqa', folder);
    const gqa = await createPipeline('gqa', folder);
    const ground = await createPipeline('ground', folder);
    const retrieve = await createPipeline('retrieve', folder, { batchSize: 2 });
    const verify = await createPipeline('verify', folder);
    const entail = await createPipeline('entail', folder);
    const cases: [ImageFeatureReader, string[], (images: ImageInput[]) => Promise<unknown>][] = [
      [stores.coco, ['30'], ([a]) => vqa('what is on the table?', a!, { topk: 10 })],
      [stores.gqa, ['2354786'], ([a]) => gqa('Is the cup on the left side?', a!)],
      [stores.coco, ['9'], ([a]) => ground('the man on the left', a!, { topk: 5 })],
      [stores.coco, ['30', '9', '49'], (images) => retrieve('a dog on a couch', images)],
      [
        stores.nlvr2,
        ['dev-850-0-img0', 'dev-850-0-img1'],
        ([a, b]) => verify('The right image shows exactly one dog.', a!, b!),
      ],
      [stores.flickr, ['1000344755'], ([a]) => entail('A man is cleaning windows.', a!)],
    ];
    for (const [store, ids, run] of cases) {
      const fromStore = await run(ids.map((id) => image(store, id)));
      const fromArrays = await run(ids.map((id) => detected(store, id)));
      // Results for arrays carry no LMDB image id; everything else is equal.
      assert.deepEqual(
        JSON.parse(JSON.stringify(fromStore, (key, value: unknown) => (key === 'imageId' ? undefined : value))),
        JSON.parse(JSON.stringify(fromArrays)),
        ids.join(', '),
      );
    }
    for (const pipeline of [vqa, gqa, ground, retrieve, verify, entail]) pipeline.dispose();
    assert.equal(folder.model.parameters()[0]!.isDisposed, false, "a shared folder stays the caller's");
  });

  it('results are well formed and ranked best first', async () => {
    const vqa = await createPipeline('vqa', folder);
    const answers = await vqa('how many dogs?', image(stores.coco, '9'), { topk: 7 });
    assert.equal(answers.length, 7);
    for (const { answer, score } of answers) {
      assert.ok(LABELS.vil_prediction!.includes(answer));
      assert.ok(score > 0 && score < 1);
    }
    assert.deepEqual(
      answers.map(({ score }) => score),
      answers.map(({ score }) => score).sort((a, b) => b - a),
    );
    assert.equal((await vqa('how many dogs?', image(stores.coco, '9'))).length, 5, 'default topk');

    const ground = await createPipeline('ground', folder);
    const regions = stores.coco.get('30');
    const all = await ground('the cup', image(stores.coco, '30'), { topk: 1000 });
    assert.equal(all.length, regions.numBoxes, 'every real region, no padding');
    assert.deepEqual(
      all.map(({ regionIndex }) => regionIndex).sort((a, b) => a - b),
      [...Array(regions.numBoxes).keys()],
    );
    assert.deepEqual(
      all.map(({ score }) => score),
      all.map(({ score }) => score).sort((a, b) => b - a),
    );
    const whole = all.find(({ regionIndex }) => regionIndex === 0)!;
    assert.deepEqual(whole.box, [0, 0, 640, 428]);
    const some = all.find(({ regionIndex }) => regionIndex === 5)!;
    assert.deepEqual(
      some.box,
      Array.from(regions.imageLocationOri.subarray(5 * LOCATION_WIDTH, 5 * LOCATION_WIDTH + 4)),
    );
    assert.deepEqual(await ground('the cup', image(stores.coco, '30')), all.slice(0, 1), 'default topk 1');

    const retrieve = await createPipeline('retrieve', folder);
    const ids = stores.coco.keys();
    const ranked = await retrieve(
      'a cat',
      ids.map((id) => image(stores.coco, id)),
    );
    assert.deepEqual(ranked.map(({ index }) => index).sort(), [...ids.keys()]);
    for (const { index, imageId } of ranked) assert.equal(imageId, ids[index]);
    assert.deepEqual(
      ranked.map(({ score }) => score),
      ranked.map(({ score }) => score).sort((a, b) => b - a),
    );
    assert.deepEqual(
      await retrieve(
        'a cat',
        ids.map((id) => image(stores.coco, id)),
        { topk: 2 },
      ),
      ranked.slice(0, 2),
    );

    const verify = await createPipeline('verify', folder);
    const verdict = await verify(
      'Both images have a dog.',
      image(stores.nlvr2, 'dev-850-0-img0'),
      image(stores.nlvr2, 'dev-850-0-img1'),
    );
    assert.equal(typeof verdict.label, 'boolean');
    assert.ok(verdict.score >= 0.5 && verdict.score < 1, 'the winning class has the larger sigmoid');

    const entail = await createPipeline('entail', folder);
    const entailment = await entail('A man is outside.', image(stores.flickr, '1000344755'));
    assert.deepEqual(Object.keys(entailment.scores), [...ENTAILMENT_CLASSES]);
    const best = ENTAILMENT_CLASSES.reduce((a, b) => (entailment.scores[b] > entailment.scores[a] ? b : a));
    assert.equal(entailment.label, best);
    for (const pipeline of [vqa, ground, retrieve, verify, entail]) pipeline.dispose();
  });

  it('runs in inference mode and frees every tensor it made', async () => {
    const vqa = await createPipeline('vqa', folder);
    const seen: torch.Tensor[] = [];
    const remove = folder.model.registerForwardHook((_module, output) => {
      const head = (output as { vil_prediction: torch.Tensor }).vil_prediction;
      assert.equal(torch.isInferenceModeEnabled(), true);
      assert.equal(head.isInference, true);
      assert.equal(head.hasGradFn, false);
      seen.push(head);
    });
    try {
      const live = torch.liveTensors();
      await vqa('what color is the cat?', image(stores.coco, '49'));
      assert.equal(torch.liveTensors(), live);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.isDisposed, true);
      assert.equal(torch.isInferenceModeEnabled(), false);
    } finally {
      remove();
      vqa.dispose();
    }
  });

  it('retrieve scores images in batches, reporting progress, with the scores of one big batch', async () => {
    const events: ProgressEvent[] = [];
    const small = await createPipeline('retrieve', saved.dir, {
      batchSize: 2,
      onProgress: (event) => events.push(event),
    });
    const images = stores.coco.keys().map((imageId) => image(stores.coco, imageId));
    const inSmall = await small('a giraffe', images);
    const big = await createPipeline('retrieve', folder, { batchSize: 6 });
    const inBig = await big('a giraffe', images);
    assert.deepEqual(
      inSmall.map(({ index }) => index),
      inBig.map(({ index }) => index),
    );
    inSmall.forEach(({ score }, rank) =>
      assert.ok(
        Math.abs(score - inBig[rank]!.score) <= 1e-5 * Math.max(1, Math.abs(score)),
        `rank ${rank}: ${score} vs ${inBig[rank]!.score}`,
      ),
    );
    assert.deepEqual(events, [
      { status: 'loading', task: 'retrieve', file: 'config.json' },
      { status: 'loading', task: 'retrieve', file: 'tasks.json' },
      { status: 'loading', task: 'retrieve', file: 'model.safetensors' },
      { status: 'loading', task: 'retrieve', file: 'labels.json' },
      { status: 'ready', task: 'retrieve' },
      { status: 'progress', task: 'retrieve', done: 2, total: 6 },
      { status: 'progress', task: 'retrieve', done: 4, total: 6 },
      { status: 'progress', task: 'retrieve', done: 6, total: 6 },
    ]);
    const model = small.folder.model;
    small.dispose();
    assert.equal(model.parameters()[0]!.isDisposed, true, 'a pipeline frees the model it loaded');
    await assert.rejects(small('a giraffe', images), /this retrieve pipeline has been disposed/);
    big.dispose();
  });

  it('refuses what it cannot run, saying why', async () => {
    await assert.rejects(
      createPipeline('caption' as 'vqa', folder),
      /unknown pipeline task 'caption' \(vqa, gqa, ground, retrieve, verify, entail\)/,
    );
    const onlyGround = { ...folder, tasks: { ground: folder.tasks.ground! } };
    await assert.rejects(
      createPipeline('entail', onlyGround),
      /tasks\.json has no 'entail' pipeline \(it has ground\)/,
    );
    const vqa = await createPipeline('vqa', folder);
    await assert.rejects(
      vqa('why?', image(stores.coco, '30'), { topk: 0 }),
      /vqa: topk must be a positive integer, got 0/,
    );
    await assert.rejects(vqa(42 as unknown as string, image(stores.coco, '30')), /vqa: the text must be a string/);
    await assert.rejects(vqa('why?', image(stores.coco, 'missing')), /image 'missing': not in the store's 'keys' list/);
    vqa.dispose();
    const retrieve = await createPipeline('retrieve', folder);
    await assert.rejects(retrieve('a cat', []), /retrieve: images must be a non-empty array/);
    retrieve.dispose();
  });
});
