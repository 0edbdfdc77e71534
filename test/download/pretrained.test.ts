// --from_pretrained names and addresses, and the detector's files: fetched once into the
// cache from a loopback mirror, an offline miss naming the file and the command, and
// `train-tasks --from_pretrained multi-task` loading the cached file with the server gone.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, packageRoot } from '../io/fixtures.js';
import { startServer, type TestServer } from './server.js';
import {
  DownloadError,
  cachedPretrained,
  fetchPretrained,
  resolveDetectorFiles,
  urlCachePath,
} from '../../src/download/index.js';
import { pretrainedWeightsFile } from '../../src/train/model-from-flags.js';
import { loadConfig } from '../../src/model/config.js';
import { VILBertForVLTasks } from '../../src/model/vilbert.js';
import { writeWeights } from '../../src/io/weights.js';

const BIN = join(packageRoot(), 'bin', 'vilbert.js');
const CONFIG = fixture('train', 'tiny-config.json');
const scratch = mkdtempSync(join(tmpdir(), 'vilbert-pretrained-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs the CLI without blocking this process's event loop (the server answers from it). */
function vilbert(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** A closed loopback port: connections to it are refused. */
async function refusedBase(): Promise<string> {
  const closed = await startServer();
  await closed.close();
  return closed.base;
}

function notDownloaded(run: () => unknown, message: RegExp): void {
  assert.throws(run, (error) => {
    assert.ok(error instanceof DownloadError, String(error));
    assert.equal(error.reason, 'not-downloaded');
    assert.match(error.message, message);
    return true;
  });
}

let server: TestServer;
let checkpoint: Buffer;
before(async () => {
  // A multi_task_model.bin stand-in: the tiny config's model with task tokens, in torch's zip format.
  const model = new VILBertForVLTasks(loadConfig(CONFIG, { task_specific_tokens: true }).config);
  const path = join(scratch, 'multi_task_model.bin');
  writeWeights(path, model.stateDict(), 'torch');
  model.dispose();
  checkpoint = readFileSync(path);
  server = await startServer(
    new Map([
      ['multi_task_model.bin', { body: checkpoint }],
      ['weights/any.bin', { body: checkpoint }],
      ['detectron_model.pth', { body: Buffer.from('detector weights') }],
      ['detectron_config.yaml', { body: Buffer.from('MODEL: {}\n') }],
    ]),
  );
});
after(() => server.close());

describe('--from_pretrained names and addresses', () => {
  it('an uncached name is an error naming the file and the command that fetches it', () => {
    const cacheDir = join(scratch, 'empty-cache');
    notDownloaded(
      () => cachedPretrained('multi-task', cacheDir),
      /multi-task is not in the cache \(.*empty-cache\/multi_task_model\.bin\); fetch it with `npx vilbert download multi-task`/,
    );
    assert.equal(cachedPretrained('none', cacheDir), 'none');
    assert.equal(cachedPretrained('not-a-name.bin', cacheDir), 'not-a-name.bin');
  });

  it('fetches a name once into the cache; a local path of the same name wins', async () => {
    const cacheDir = join(scratch, 'cache-a');
    const file = await fetchPretrained('multi-task', { cacheDir, mirror: server.base });
    assert.equal(file, join(cacheDir, 'multi_task_model.bin'));
    assert.deepEqual(readFileSync(file), checkpoint);
    const requests = server.requests.length;
    assert.equal(await fetchPretrained('multi-task', { cacheDir, mirror: server.base }), file);
    assert.equal(server.requests.length, requests, 'fetched once');
    assert.equal(cachedPretrained('multi-task', cacheDir), file);
    assert.equal(await fetchPretrained(CONFIG, { cacheDir, mirror: server.base }), CONFIG);
  });

  it('fetches an address into urls/ of the cache', async () => {
    const cacheDir = join(scratch, 'cache-b');
    const url = `${server.base}weights/any.bin`;
    const file = await fetchPretrained(url, { cacheDir });
    assert.equal(file, urlCachePath(url, cacheDir));
    assert.match(file, /urls\/[0-9a-f]{16}-any\.bin$/);
    assert.deepEqual(readFileSync(file), checkpoint);
  });

  it('with no network, says which file is missing, why, and the command', async () => {
    const cacheDir = join(scratch, 'cache-c');
    const mirror = await refusedBase();
    await assert.rejects(fetchPretrained('pretrained', { cacheDir, mirror }), (error) => {
      assert.ok(error instanceof DownloadError);
      assert.equal(error.reason, 'not-downloaded');
      assert.match(
        error.message,
        /pretrained is not in the cache \(.*cache-c\/pretrained_model\.bin\) and could not be fetched \(.*pretrained_model\.bin: no connection \(ECONNREFUSED\).*\); fetch it with `npx vilbert download pretrained`/,
      );
      return true;
    });
    assert.ok(!existsSync(join(cacheDir, 'pretrained_model.bin')));
  });
});

describe("the detector's files", () => {
  it('are found under data/, or named as missing with the command, or fetched when asked', async () => {
    const dir = join(scratch, 'detector');
    await assert.rejects(resolveDetectorFiles({ dir, mirror: server.base }), (error) => {
      assert.ok(error instanceof DownloadError);
      assert.match(
        error.message,
        /the detector's data\/detectron_model\.pth is missing under .*; fetch it with `npx vilbert download detector --dir /,
      );
      return true;
    });
    const files = await resolveDetectorFiles({ dir, mirror: server.base, fetch: true });
    assert.deepEqual(files, {
      model: join(dir, 'data/detectron_model.pth'),
      config: join(dir, 'data/detectron_config.yaml'),
    });
    assert.equal(readFileSync(files.config, 'utf8'), 'MODEL: {}\n');
    const requests = server.requests.length;
    assert.deepEqual(await resolveDetectorFiles({ dir }), files);
    assert.equal(server.requests.length, requests);
  });
});

describe('the command line', () => {
  it('vilbert download fetches into $VILBERT_CACHE, then train-tasks --from_pretrained multi-task loads it offline', async () => {
    const cacheDir = join(scratch, 'cli-cache');
    const env: NodeJS.ProcessEnv = { ...process.env, VILBERT_CACHE: cacheDir };
    delete env.VILBERT_MIRROR;
    const fetched = await vilbert(['download', 'multi-task', '--mirror', server.base], env);
    assert.equal(fetched.status, 0, fetched.stderr);
    assert.match(fetched.stdout, /1 fetched .*0 already complete, 0 failed/);
    assert.deepEqual(readFileSync(join(cacheDir, 'multi_task_model.bin')), checkpoint);
    const saved = process.env.VILBERT_CACHE;
    process.env.VILBERT_CACHE = cacheDir;
    try {
      assert.equal(pretrainedWeightsFile('multi-task'), join(cacheDir, 'multi_task_model.bin'));
    } finally {
      if (saved === undefined) delete process.env.VILBERT_CACHE;
      else process.env.VILBERT_CACHE = saved;
    }

    const kit = mkdtempSync(join(scratch, 'kit-'));
    cpSync(fixture('datasets', 'kit'), kit, { recursive: true });
    const output = join(scratch, 'run');
    const train = await vilbert(
      [
        'train-tasks',
        '--config_file',
        CONFIG,
        '--from_pretrained',
        'multi-task',
        '--tasks',
        '12',
        '--datasets_root',
        kit,
        '--num_workers',
        '0',
        '--output_dir',
        output,
        '--task_specific_tokens',
        '--batch_size',
        '2',
        '--num_train_epochs',
        '1',
        '--threads',
        '1',
      ],
      // A mirror that refuses connections: the file must come from the cache.
      { ...env, VILBERT_MIRROR: await refusedBase() },
    );
    assert.equal(train.status, 0, train.stderr);
    assert.match(
      `${train.stdout}${train.stderr}`,
      new RegExp(`loaded ${join(cacheDir, 'multi_task_model.bin')}: 0 missing keys`),
    );
  });

  it('--list names every set with its files; an unknown name fails', async () => {
    const list = await vilbert(['download', '--list', '--dir', '/data/vilbert']);
    assert.equal(list.status, 0, list.stderr);
    for (const line of [
      /^multi-task: /m,
      /^annotations: /m,
      /^vqa: features of VQA/m,
      /\/data\/vilbert\/datasets\/gqa\/gqa_resnext152_faster_rcnn_genome\.lmdb\/data\.mdb {2}size unknown/,
      /from https:\/\/dl\.fbaipublicfiles\.com\/vilbert-multi-task\/datasets\.tar\.gz/,
    ])
      assert.match(list.stdout, line);
    const unknown = await vilbert(['download', 'imagenet']);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /'imagenet' is not a published file set/);
  });
});
