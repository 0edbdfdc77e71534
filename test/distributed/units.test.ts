// Sampler sharding, the launch environment, the single-process DataParallel, and two
// ranks of one process group inside this process (each rank's calls run concurrently).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchSampler } from '../../src/data/loader.js';
import { ShardedBatchSampler } from '../../src/data/distributed-sampler.js';
import { DataParallel, ProcessGroup, initDistributed, readLaunchEnvironment } from '../../src/distributed/index.js';
import * as torch from '../../src/torch/index.js';
import { freePort } from './helpers.js';

const batches = (sampler: { next(): number[] }, count: number) => Array.from({ length: count }, () => sampler.next());

test('a world of one shards nothing: the same batches as BatchSampler, epoch after epoch', () => {
  const options = { shuffle: true, seed: 5 };
  const plain = new BatchSampler(10, 3, options);
  const sharded = new ShardedBatchSampler(10, 3, { ...options, rank: 0, worldSize: 1 });
  assert.equal(sharded.length, plain.length);
  assert.deepEqual(batches(sharded, 9), batches(plain, 9));
});

test('rank r takes positions r, r + W, ... of the epoch permutation, padded from its start', () => {
  const [length, worldSize, batchSize] = [10, 3, 2];
  const permutation = new BatchSampler(length, length, { shuffle: true, seed: 9 }).next();
  const padded = [...permutation, ...permutation.slice(0, 2)]; // 12 = 3 ranks x 4
  const shards = [0, 1, 2].map(
    (rank) => new ShardedBatchSampler(length, batchSize, { shuffle: true, seed: 9, rank, worldSize }),
  );
  for (const [rank, sampler] of shards.entries()) {
    assert.equal(sampler.samplesPerRank, 4);
    assert.equal(sampler.length, 2);
    assert.deepEqual(
      batches(sampler, 2).flat(),
      padded.filter((_, i) => i % worldSize === rank),
    );
  }
  // The ranks' first batches together are the first global batch of W x b.
  const fresh = [0, 1, 2].map((rank) =>
    new ShardedBatchSampler(length, batchSize, { shuffle: true, seed: 9, rank, worldSize }).next(),
  );
  assert.deepEqual(
    fresh.flat().sort((a, b) => a - b),
    new BatchSampler(length, worldSize * batchSize, { shuffle: true, seed: 9 }).next().sort((a, b) => a - b),
  );
});

test("a sharded sampler resumes from its state; dropLast drops each rank's short last batch", () => {
  const options = { shuffle: true, seed: 3, rank: 1, worldSize: 2 };
  const sampler = new ShardedBatchSampler(11, 4, options); // 6 per rank: batches of 4 and 2
  assert.equal(sampler.length, 2);
  batches(sampler, 3);
  const resumed = new ShardedBatchSampler(11, 4, options);
  resumed.restore(sampler.state());
  assert.deepEqual(batches(resumed, 5), batches(sampler, 5));
  const dropping = new ShardedBatchSampler(11, 4, { ...options, dropLast: true });
  assert.equal(dropping.length, 1);
  assert.throws(
    () => new ShardedBatchSampler(11, 4, { ...options, rank: 2 }),
    /rank must be an integer in 0\.\.1, got 2/,
  );
});

test('the launch environment: absent is one process; bad values name the variable', () => {
  assert.equal(readLaunchEnvironment({}), null);
  assert.deepEqual(
    readLaunchEnvironment({ RANK: '3', LOCAL_RANK: '1', WORLD_SIZE: '4', MASTER_ADDR: 'node0', MASTER_PORT: '29500' }),
    {
      rank: 3,
      localRank: 1,
      worldSize: 4,
      masterAddr: 'node0',
      masterPort: 29500,
    },
  );
  const base = { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500' };
  assert.throws(() => readLaunchEnvironment({ ...base, RANK: '2' }), /RANK must be an integer in 0\.\.1, got '2'/);
  assert.throws(
    () => readLaunchEnvironment({ ...base, MASTER_PORT: 'x' }),
    /MASTER_PORT must be an integer in 1\.\.65535, got 'x'/,
  );
  assert.throws(() => readLaunchEnvironment({ ...base, MASTER_ADDR: '' }), /MASTER_ADDR/);
});

test('without a launch environment DataParallel is one process and changes nothing', async () => {
  const dp = await initDistributed({ env: {} });
  assert.deepEqual([dp.rank, dp.worldSize, dp.isMain, dp.group], [0, 1, true, null]);
  const layer = new torch.nn.Linear(3, 2);
  torch.scope(() =>
    layer
      .forward(torch.ones([4, 3]))
      .sum()
      .backward(),
  );
  const before = torch.scope(() => layer.weight.grad!.toNumbers());
  await dp.broadcastParameters(layer);
  await dp.averageGradients(layer);
  assert.deepEqual(
    torch.scope(() => layer.weight.grad!.toNumbers()),
    before,
  );
  assert.deepEqual(await dp.sumOverRanks([1.5]), [1.5]);
  assert.equal(dp.localBatchSize(7), 7);
  dp.destroy();
  layer.dispose();
});

/** Two ranks of one group in this process. */
async function pairOfRanks(): Promise<[DataParallel, DataParallel]> {
  const masterPort = await freePort();
  const groups = await Promise.all(
    [0, 1].map((rank) =>
      ProcessGroup.init({
        rank,
        worldSize: 2,
        masterAddr: '127.0.0.1',
        masterPort,
        timeoutMs: 20_000,
        hostname: '127.0.0.1',
      }),
    ),
  );
  return [new DataParallel(groups[0]!, 0, { bucketBytes: 64 }), new DataParallel(groups[1]!, 1, { bucketBytes: 64 })];
}

class Pair extends torch.Module {
  constructor(
    readonly first: torch.nn.Linear,
    readonly second: torch.nn.Linear,
  ) {
    super();
  }
  forward(): torch.Tensor {
    throw new Error('not used');
  }
}

test('two ranks: gradients averaged (zeros where a rank has none), weights and values from rank 0', async () => {
  const ranks = await pairOfRanks();
  const models = ranks.map(() => new Pair(new torch.nn.Linear(4, 5), new torch.nn.Linear(5, 2)));
  try {
    assert.deepEqual(
      ranks.map((dp) => [dp.rank, dp.worldSize, dp.isMain]),
      [
        [0, 2, true],
        [1, 2, false],
      ],
    );
    await Promise.all(ranks.map((dp, rank) => dp.broadcastParameters(models[rank]!)));
    const weights = models.map((model) =>
      torch.scope(() => model.parameters().map((parameter) => parameter.toNumbers())),
    );
    assert.deepEqual(weights[1], weights[0]);

    // Rank 0 trains only `first`, rank 1 both: first's gradient is the mean, second's is rank 1's / 2.
    const gradients = models.map((model, rank) =>
      torch.scope(() => {
        const hidden = model.first.forward(torch.full([3, 4], rank + 1, { dtype: 'float32' })); // [3, 5]
        (rank === 0 ? hidden.sum() : model.second.forward(hidden).sum()).backward();
        return model.parameters().map((parameter) => parameter.grad?.toNumbers() ?? null);
      }),
    );
    await Promise.all(ranks.map((dp, rank) => dp.averageGradients(models[rank]!)));
    for (const model of models) {
      const averaged = torch.scope(() => model.parameters().map((parameter) => parameter.grad!.toNumbers()));
      averaged.forEach((values, i) => {
        const expected = values.map((_, j) => ((gradients[0]![i]?.[j] ?? 0) + gradients[1]![i]![j]!) / 2);
        values.forEach((value, j) =>
          assert.ok(Math.abs(value - expected[j]!) < 1e-6, `parameter ${i}[${j}]: ${value} vs ${expected[j]}`),
        );
      });
    }

    assert.deepEqual(await Promise.all(ranks.map((dp) => dp.broadcastValue({ runDir: `run-of-rank-${dp.rank}` }))), [
      { runDir: 'run-of-rank-0' },
      { runDir: 'run-of-rank-0' },
    ]);
    assert.deepEqual(await Promise.all(ranks.map((dp) => dp.someRank(dp.rank === 1))), [true, true]);
    await Promise.all(ranks.map((dp) => dp.barrier()));
  } finally {
    for (const dp of ranks) dp.destroy();
    for (const model of models) model.dispose();
  }
});

test('two ranks whose models differ both refuse to broadcast; the differing rank names the tensor', async () => {
  const ranks = await pairOfRanks();
  const models = [new torch.nn.Linear(4, 5), new torch.nn.Linear(4, 6)];
  try {
    const results = await Promise.allSettled(ranks.map((dp, rank) => dp.broadcastParameters(models[rank]!)));
    assert.deepEqual(
      results.map((result) => result.status),
      ['rejected', 'rejected'],
    );
    const [rank0, rank1] = results.map((result) => String((result as PromiseRejectedResult).reason));
    assert.match(rank1!, /rank 1: 'weight' is float32 \[6, 4\] here, float32 \[5, 4\] on rank 0/);
    assert.match(rank0!, /rank 0: the model of another rank differs from rank 0's/);
  } finally {
    for (const dp of ranks) dp.destroy();
    for (const model of models) model.dispose();
  }
});
