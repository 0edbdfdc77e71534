// The JSON API of `vilbert serve` on the tiny world: every task answers as its pipeline does,
// queued VQA requests run as one batch with the same answers, and every kind of bad request
// gets a 4xx JSON error naming the problem while the server keeps serving.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createPipeline, loadModelFolder, type ModelFolder } from '../../src/pipelines/index.js';
import { ImageFeatureReader } from '../../src/data/features.js';
import { BatchingQueue } from '../../src/serve/queue.js';
import { ServeRequestError, ServeSetupError } from '../../src/serve/serve-error.js';
import { demoSources, storeSources, worldSources } from '../../src/serve/sources.js';
import { startServer } from '../../src/serve/server.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningServer } from '../../src/serve/server.js';
import { get, post, serveFixture, serveWorld, type Json } from './fixture.js';
import { scratchDir } from '../synthetic/tiny-world.js';

const fixture = serveFixture();

/** A raw request (fetch normalises '..' out of paths). */
function rawGet(base: string, path: string): Promise<{ status: number; json: Json }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    request({ hostname, port, path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString()) }));
    })
      .on('error', reject)
      .end();
  });
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));

describe('vilbert serve: the JSON API', () => {
  let server: RunningServer;
  let folder: ModelFolder;
  let images: Json;
  const url = (path: string) => new URL(path, server.url).href;
  before(async () => {
    server = await serveWorld(fixture);
    folder = loadModelFolder(fixture.modelDir);
    images = (await get(url('/api/images?collection=coco&limit=5'))).json;
  });
  after(async () => {
    await server.close();
    folder.model.dispose();
  });
  /** The gallery image `id` as a pipeline input, through a store opened here. */
  const stores: ImageFeatureReader[] = [];
  after(() => stores.forEach((store) => store.close()));
  const stored = (id: string) => {
    const [collection, key] = id.split(':') as [string, string];
    const paths: Record<string, string> = {
      coco: 'datasets/coco/features_100/COCO_trainval_resnext152_faster_rcnn_genome.lmdb',
      flickr30k: 'datasets/flickr30k/flickr30k_resnext152_faster_rcnn_genome.lmdb',
      nlvr2: 'datasets/nlvr2/nlvr2_resnext152_faster_rcnn_genome.lmdb',
    };
    const store = ImageFeatureReader.open(`${fixture.worldDir}/${paths[collection]}`);
    stores.push(store);
    return { store, imageId: key };
  };

  it('says what it serves: every task, the collections, upload off with its reason', async () => {
    const { status, json } = await get(url('/api/health'));
    assert.equal(status, 200);
    assert.deepEqual(Object.keys(json.tasks), [
      'vqa',
      'gqa',
      'genomeqa',
      'visual7w',
      'ground',
      'retrieve',
      'verify',
      'entail',
    ]);
    for (const [task, entry] of Object.entries(json.tasks as Record<string, Json>))
      assert.equal(entry.available, true, `${task}: ${entry.reason}`);
    assert.equal(json.tasks.vqa.collection, 'coco');
    assert.equal(json.tasks.verify.collection, 'nlvr2');
    assert.deepEqual(
      json.collections.map((entry: Json) => entry.name),
      ['coco', 'visual_genome', 'visual7w', 'nlvr2', 'flickr30k'],
    );
    assert.equal(json.upload.available, false);
    assert.match(json.upload.reason, /feature extraction .* not implemented yet/);
  });

  it('lists images, describes one and draws its scene', async () => {
    assert.equal(images.images.length, 5);
    assert.ok(images.total > 5);
    const id = images.images[0].id;
    assert.match(id, /^coco:\d+$/);
    const { json } = await get(url(`/api/images/${encodeURIComponent(id)}`));
    assert.equal(json.hasPicture, true);
    assert.ok(json.boxes.length > 0 && json.boxes[0].length === 4);
    const picture = await fetch(url(`/api/images/${encodeURIComponent(id)}/picture`));
    assert.equal(picture.headers.get('content-type'), 'image/svg+xml; charset=utf-8');
    assert.match(await picture.text(), /^<svg [^>]*viewBox="0 0 \d+ \d+"/);
  });

  it('answers VQA as the vqa pipeline does', async () => {
    const id = images.images[0].id;
    const { status, json } = await post(url('/api/vqa'), { image: id, text: 'what color is the ball?', topk: 5 });
    assert.equal(status, 200);
    const vqa = await createPipeline('vqa', folder);
    const expected = await vqa('what color is the ball?', stored(id), { topk: 5 });
    vqa.dispose();
    assert.deepEqual(
      json.result.map((entry: Json) => entry.answer),
      expected.map((entry) => entry.answer),
    );
    json.result.forEach((entry: Json, rank: number) => assert.ok(close(entry.score, expected[rank]!.score)));
    assert.equal(json.batchSize, 1);
    assert.ok(json.ms > 0 && json.totalMs >= json.ms);
  });

  it('grounds an expression on the box the ground pipeline picks', async () => {
    const id = images.images[1].id;
    const { status, json } = await post(url('/api/ground'), { image: id, text: 'the red ball', topk: 3 });
    assert.equal(status, 200);
    const ground = await createPipeline('ground', folder);
    const expected = await ground('the red ball', stored(id), { topk: 3 });
    ground.dispose();
    assert.deepEqual(
      json.result.map((entry: Json) => [entry.regionIndex, entry.box]),
      expected.map((entry) => [entry.regionIndex, entry.box]),
    );
  });

  it('runs GenomeQA, Visual7w, retrieval, NLVR2 and entailment', async () => {
    const genome = await post(url('/api/genomeqa'), { image: images.images[0].id, text: 'what is red?' });
    assert.equal(genome.status, 200);
    assert.equal(genome.json.result.length, 5);
    const v7w = await post(url('/api/visual7w'), {
      image: images.images[0].id,
      text: 'which is blue?',
      candidates: [2, 1],
    });
    assert.equal(v7w.status, 200);
    assert.deepEqual(v7w.json.result.map((entry: Json) => entry.regionIndex).sort(), [1, 2]);
    const retrieve = await post(url('/api/retrieve'), { text: 'a red ball', collection: 'coco', topk: 4 });
    assert.equal(retrieve.status, 200);
    assert.equal(retrieve.json.result.length, 4);
    const scores = retrieve.json.result.map((entry: Json) => entry.score);
    assert.deepEqual(
      scores,
      [...scores].sort((a, b) => b - a),
    );
    const pair = (await get(url('/api/images?collection=nlvr2&limit=2'))).json.images.map((image: Json) => image.id);
    const verify = await post(url('/api/verify'), { images: pair, text: 'the left image has a ball' });
    assert.equal(verify.status, 200);
    const verifyPipeline = await createPipeline('verify', folder);
    const expected = await verifyPipeline('the left image has a ball', stored(pair[0]), stored(pair[1]));
    verifyPipeline.dispose();
    assert.equal(verify.json.result.label, expected.label);
    assert.ok(close(verify.json.result.score, expected.score));
    const flickr = (await get(url('/api/images?collection=flickr30k&limit=1'))).json.images[0].id;
    const entail = await post(url('/api/entail'), { image: flickr, text: 'there is a ball' });
    assert.equal(entail.status, 200);
    assert.deepEqual(Object.keys(entail.json.result.scores), ['contradiction', 'neutral', 'entailment']);
  });

  it('refuses bad requests with a JSON error naming the problem, and keeps serving', async () => {
    const id = images.images[0].id;
    const cases: [string, Promise<{ status: number; json: Json }>, number, RegExp][] = [
      ['malformed JSON', post(url('/api/vqa'), '{"image": '), 400, /not valid JSON/],
      ['unknown task', post(url('/api/caption'), { text: 'x' }), 404, /unknown task 'caption'/],
      ['unknown image', post(url('/api/vqa'), { image: 'coco:nope', text: 'x' }), 404, /unknown image id 'coco:nope'/],
      ['unknown field', post(url('/api/vqa'), { image: id, text: 'x', img: 1 }), 400, /unknown field 'img'/],
      ['empty text', post(url('/api/vqa'), { image: id, text: ' ' }), 400, /'text' must be a non-empty string/],
      ['bad topk', post(url('/api/vqa'), { image: id, text: 'x', topk: 0 }), 400, /'topk' must be an integer/],
      ['one image for verify', post(url('/api/verify'), { images: [id], text: 'x' }), 400, /two image ids/],
      [
        'candidate past the boxes',
        post(url('/api/visual7w'), { image: id, text: 'x', candidates: [99] }),
        400,
        /99 past/,
      ],
      ['too large', post(url('/api/vqa'), { image: id, text: 'x'.repeat(70_000) }), 413, /over the limit/],
      ['not JSON', post(url('/api/vqa'), 'image=1', { 'content-type': 'text/plain' }), 415, /application\/json/],
      ['upload', post(url('/api/upload'), {}), 501, /not implemented yet/],
      ['GET on a task', get(url('/api/vqa')), 405, /takes POST/],
      ['dot-dot path', rawGet(server.url, '/../../etc/passwd'), 400, /'\.\.'/],
      ['encoded dot-dot', rawGet(server.url, '/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd/picture'), 400, /'\.\.'/],
      ['a file outside the page', rawGet(server.url, '/package.json'), 404, /no such page/],
      ['an asset not of the page', rawGet(server.url, '/serve/app.js'), 404, /no such page/],
    ];
    for (const [name, pending, status, message] of cases) {
      const { status: got, json } = await pending;
      assert.equal(got, status, `${name}: ${JSON.stringify(json)}`);
      assert.equal(json.error.code, 'E_SERVE_REQUEST', name);
      assert.match(json.error.message, message, name);
    }
    const health = await get(url('/api/health'));
    assert.equal(health.status, 200);
    const again = await post(url('/api/vqa'), { image: id, text: 'what color is the ball?' });
    assert.equal(again.status, 200);
  });

  it('runs queued VQA requests as one batch with the answers of single requests', async () => {
    const ids = images.images.slice(0, 4).map((image: Json) => image.id);
    const requests = ids.map((image: string, index: number) => ({
      image,
      text: `what is at the ${['left', 'right', 'top', 'bottom'][index]}?`,
      topk: 3,
    }));
    const batched = await server.engine.run('vqa', requests);
    for (const [index, request] of requests.entries()) {
      const [single] = await server.engine.run('vqa', [request]);
      assert.deepEqual(
        (batched[index] as Json[]).map((entry) => entry.answer),
        (single as Json[]).map((entry) => entry.answer),
      );
      (batched[index] as Json[]).forEach((entry, rank) =>
        assert.ok(close(entry.score, (single as Json[])[rank].score)),
      );
    }
  });
});

describe('vilbert serve: the queue', () => {
  it('runs one request at a time, batching queued requests of a batched task', async () => {
    const runs: string[] = [];
    let running = 0;
    const queue = new BatchingQueue<string, number, number>(
      async (task, inputs) => {
        running++;
        assert.equal(running, 1, 'two batches ran at once');
        runs.push(`${task}x${inputs.length}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running--;
        return inputs.map((input) => input * 10);
      },
      (task) => task === 'vqa',
      { maxBatch: 3, maxPending: 100 },
    );
    const tasks = ['vqa', 'ground', 'vqa', 'vqa', 'vqa', 'ground', 'vqa'];
    const results = await Promise.all(tasks.map((task, index) => queue.submit(task, index)));
    assert.deepEqual(
      results.map((ran) => ran.result),
      [0, 10, 20, 30, 40, 50, 60],
    );
    assert.deepEqual(runs, ['vqax3', 'groundx1', 'vqax2', 'groundx1']);
    assert.deepEqual(
      results.map((ran) => ran.batchSize),
      [3, 1, 3, 3, 2, 1, 2],
    );
  });

  it('reruns a failed batch one request at a time, so one bad request fails alone', async () => {
    const queue = new BatchingQueue<string, number, number>(
      async (_task, inputs) => {
        if (inputs.includes(2)) throw new Error('bad input 2');
        return inputs;
      },
      () => true,
      { maxBatch: 8, maxPending: 100 },
    );
    const settled = await Promise.allSettled([1, 2, 3].map((input) => queue.submit('vqa', input)));
    assert.deepEqual(
      settled.map((entry) => entry.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
  });

  it('refuses requests beyond maxPending with a 503', async () => {
    const queue = new BatchingQueue<string, number, number>(
      async (_task, inputs) => inputs,
      () => false,
      {
        maxBatch: 1,
        maxPending: 2,
      },
    );
    const pending = [1, 2].map((input) => queue.submit('x', input));
    await assert.rejects(
      queue.submit('x', 3),
      (error: unknown) => error instanceof ServeRequestError && error.status === 503,
    );
    await Promise.all(pending);
  });
});

describe('vilbert serve: sources', () => {
  it('says which command makes a demo folder when there is none', () => {
    assert.throws(
      () => demoSources(scratchDir()),
      (error: unknown) => {
        assert.ok(error instanceof ServeSetupError);
        assert.match(error.message, /run `npx vilbert demo` first/);
        return true;
      },
    );
  });

  it('refuses a model folder that is not one', () => {
    assert.throws(() => worldSources(scratchDir(), fixture.worldDir), /is not a model folder/);
  });

  it('serves a feature LMDB with its image files; GenomeQA and Visual7w need a world', async () => {
    const lmdb = join(fixture.worldDir, 'datasets/coco/features_100/COCO_trainval_resnext152_faster_rcnn_genome.lmdb');
    const images = join(scratchDir(), 'images');
    mkdirSync(images);
    const keys = ImageFeatureReader.open(lmdb);
    const [first, second] = keys.keys();
    keys.close();
    const png = Buffer.from('89504e470d0a1a0a', 'hex');
    writeFileSync(join(images, `${first}.png`), png);
    writeFileSync(join(images, 'notes.txt'), 'not a picture');
    const server = await startServer({ sources: storeSources(fixture.modelDir, lmdb, images), port: 0 });
    try {
      const health = (await get(new URL('/api/health', server.url).href)).json;
      assert.equal(health.tasks.genomeqa.available, false);
      assert.match(health.tasks.genomeqa.reason, /need a world/);
      assert.equal(health.tasks.vqa.available, true);
      const collection = health.collections[0].name;
      const picture = await fetch(new URL(`/api/images/${collection}:${first}/picture`, server.url));
      assert.equal(picture.headers.get('content-type'), 'image/png');
      assert.deepEqual(Buffer.from(await picture.arrayBuffer()), png);
      const missing = await get(new URL(`/api/images/${collection}:${second}/picture`, server.url).href);
      assert.equal(missing.status, 404);
      const genome = await post(new URL('/api/genomeqa', server.url).href, {
        image: `${collection}:${first}`,
        text: 'x',
      });
      assert.equal(genome.status, 409);
    } finally {
      await server.close();
    }
  });
});
