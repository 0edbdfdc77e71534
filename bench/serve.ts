// `vilbert serve` under load: N clients over loopback, each sending one VQA question (batch
// 1) as soon as its last one is answered, for a fixed time; throughput and p50/p99 latency,
// first with the server's batching off (--max_batch 1), then on (--max_batch 16).
//
// The server is the real command in a child process (its own event loop and libtorch
// threads). Without --model it serves a randomly initialised model of --config (default the
// demo's small config) on a small world: timing does not depend on the weights.
//   node dist/bench/serve.js [--clients 8] [--seconds 30] [--config vilbert_demo.json] [--threads 2]
//   node dist/bench/serve.js --model vilbert-demo/model --world vilbert-demo/world
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { assetPath } from '../src/assets.js';
import { readAnswerVocabulary } from '../src/data/datasets/vqa.js';
import { loadTaskRegistry } from '../src/data/task-registry.js';
import { bundledConfig, loadConfig } from '../src/model/config.js';
import { VILBertForVLTasks } from '../src/model/vilbert.js';
import { saveModelFolder, type PipelineTask, type TaskTable } from '../src/pipelines/model-folder.js';
import { generateWorld } from '../src/synthetic/index.js';
import * as torch from '../src/torch/index.js';

const { values: flags } = parseArgs({
  options: {
    clients: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '30' },
    config: { type: 'string', default: assetPath('demo', 'vilbert_demo.json') },
    threads: { type: 'string' },
    model: { type: 'string' },
    world: { type: 'string' },
    batches: { type: 'string', default: '1,16' },
  },
});
const clients = Number(flags.clients);
const seconds = Number(flags.seconds);

const QUESTIONS = [
  'what color is the ball?',
  'how many objects are there?',
  'what is left of the cube?',
  'is there a star?',
];
const PIPELINES: Record<PipelineTask, string> = {
  vqa: 'TASK1',
  gqa: 'TASK15',
  ground: 'TASK9',
  retrieve: 'TASK7',
  verify: 'TASK12',
  entail: 'TASK13',
};

/** A random model of the config saved as a model folder beside a small world (the world's answer lists and settings). */
function randomModelOnWorld(scratch: string): { model: string; world: string } {
  const world = generateWorld(join(scratch, 'world'), {
    images: 40,
    valImages: 10,
    pointingImages: 8,
    pointingValImages: 4,
  });
  const registry = loadTaskRegistry(world.registryPath);
  const tasks: TaskTable = {};
  for (const [task, key] of Object.entries(PIPELINES) as [PipelineTask, string][]) {
    const { task_id, max_seq_length, max_region_num, name } = registry.get(key)!;
    tasks[task] = { task_id, max_seq_length, max_region_num, name };
  }
  const answers = (key: string) => readAnswerVocabulary(join(world.root, registry.get(key)!.dataroot)).label2ans;
  const overrides = { task_specific_tokens: true };
  const { config } = flags.config.endsWith('.json')
    ? loadConfig(flags.config, overrides)
    : bundledConfig(flags.config, overrides);
  torch.manualSeed(0);
  const model = new VILBertForVLTasks(config).eval();
  const dir = join(scratch, 'model');
  saveModelFolder(dir, {
    model,
    config,
    labels: { vil_prediction: answers('TASK1'), vil_prediction_gqa: answers('TASK15') },
    tasks,
  });
  model.dispose();
  return { model: dir, world: world.root };
}

async function startServe(
  model: string,
  world: string,
  maxBatch: number,
): Promise<{ child: ChildProcess; url: string }> {
  const cli = fileURLToPath(new URL('../../bin/vilbert.js', import.meta.url));
  const args = [cli, 'serve', model, '--world', world, '--port', '0', '--max_batch', String(maxBatch)];
  if (flags.threads !== undefined) args.push('--threads', flags.threads);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const found = /open (http:\/\/\S+)/.exec(output);
      if (found) resolve(found[1]!);
    });
    child.once('exit', (code) => reject(new Error(`vilbert serve exited (${code}) before listening:\n${output}`)));
  });
  return { child, url };
}

function postJson(agent: Agent, url: URL, body: string): Promise<{ status: number; json: { batchSize?: number } }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString()) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function load(base: string): Promise<{ latencies: number[]; batchSizes: number[]; elapsed: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const images = (await (await fetch(new URL('/api/images?collection=coco&limit=50', base))).json()) as {
    images: { id: string }[];
  };
  const url = new URL('/api/vqa', base);
  const body = (index: number) =>
    JSON.stringify({
      image: images.images[index % images.images.length]!.id,
      text: QUESTIONS[index % QUESTIONS.length],
      topk: 5,
    });
  // Warm-up: a few requests before the clock starts.
  for (let index = 0; index < 5; index++) await postJson(agent, url, body(index));
  const latencies: number[] = [];
  const batchSizes: number[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let sent = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        const at = performance.now();
        const { status, json } = await postJson(agent, url, body(sent++));
        if (status !== 200) throw new Error(`the server answered ${status}: ${JSON.stringify(json)}`);
        latencies.push(performance.now() - at);
        batchSizes.push(json.batchSize ?? 1);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  return { latencies: latencies.sort((a, b) => a - b), batchSizes, elapsed };
}

const scratch = mkdtempSync(join(tmpdir(), 'vilbert-serve-bench-'));
try {
  const { model, world } =
    flags.model !== undefined && flags.world !== undefined
      ? { model: flags.model, world: flags.world }
      : randomModelOnWorld(scratch);
  console.log(
    `VQA over loopback: ${clients} clients, ${seconds} s per setting, one question per request; ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores; model ${flags.model ?? flags.config}`,
  );
  for (const maxBatch of flags.batches.split(',').map(Number)) {
    const { child, url } = await startServe(model, world, maxBatch);
    try {
      const { latencies, batchSizes, elapsed } = await load(url);
      const meanBatch = batchSizes.reduce((sum, size) => sum + size, 0) / batchSizes.length;
      console.log(
        `max_batch ${String(maxBatch).padStart(2)}: ${latencies.length} requests in ${elapsed.toFixed(1)} s = ${(latencies.length / elapsed).toFixed(1)} req/s; ` +
          `latency p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms; mean batch ${meanBatch.toFixed(2)}`,
      );
    } finally {
      child.kill('SIGINT');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
