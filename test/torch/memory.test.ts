// Native memory is released deterministically: a training loop keeps the
// live-tensor count and the resident set flat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as torch from '../../src/torch/index.js';

const { nn, F } = torch;

class Mlp extends torch.Module {
  readonly fc1 = new nn.Linear(64, 256);
  readonly fc2 = new nn.Linear(256, 10);
  readonly dropout = new nn.Dropout(0.1);
  forward(x: torch.Tensor): torch.Tensor {
    return this.fc2.forward(this.dropout.forward(F.gelu(this.fc1.forward(x))));
  }
}

test('500 forward/backward/update steps keep live tensors and RSS flat', () => {
  torch.manualSeed(0);
  const model = new Mlp();
  const inputs = torch.randn([32, 64]).keep();
  const labels = torch.randint(0, 10, [32]).keep();
  const moments = model.parameters().map((p) => torch.zerosLike(p).keep());
  const step = () =>
    torch.scope(() => {
      const loss = F.crossEntropy(model.forward(inputs), labels);
      model.zeroGrad();
      loss.backward();
      torch.noGrad(() => {
        model.parameters().forEach((parameter, i) => {
          const gradient = parameter.grad!;
          moments[i]!.mul_(0.9).add_(gradient);
          parameter.add_(moments[i]!, -0.01);
        });
      });
      return loss.item();
    });
  const first = step();
  for (let i = 0; i < 50; i++) step();
  const liveAfterWarmup = torch.liveTensors();
  const rssAfterWarmup = process.memoryUsage().rss;
  let last = first;
  for (let i = 0; i < 500; i++) last = step();
  const liveAtEnd = torch.liveTensors();
  const rssGrowth = (process.memoryUsage().rss - rssAfterWarmup) / 2 ** 20;
  assert.equal(liveAtEnd, liveAfterWarmup, 'live tensors after 500 more steps');
  assert.ok(rssGrowth < 16, `RSS grew by ${rssGrowth.toFixed(1)} MiB over 500 steps`);
  assert.ok(last < first, `training reduces the loss (${first} -> ${last})`);
});

test('the finaliser frees tensors that were never disposed once they are collected', () => {
  const engine = fileURLToPath(new URL('../../src/torch/index.js', import.meta.url));
  const script = `
    const torch = await import(${JSON.stringify(engine)});
    const before = torch.liveTensors();
    for (let i = 0; i < 2000; i++) torch.ones([256]).add(1);
    const made = torch.liveTensors() - before;
    for (let i = 0; i < 10 && torch.liveTensors() > before; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
    console.log(JSON.stringify({ made, left: torch.liveTensors() - before }));`;
  const child = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  const { made, left } = JSON.parse(child.stdout) as { made: number; left: number };
  assert.ok(made >= 2000, `tensors were alive before collection (${made})`);
  assert.ok(left < 50, `collected tensors were freed (${left} left)`);
});

const MiB = 1 << 20;
const allocatorSkip = torch.cpuAllocatorStats() === null ? 'VILBERT_SYSTEM_MALLOC is set: libtorch keeps its own allocator' : false;

test('large tensors: a freed block is reused for the next request it can hold; idle memory stays within the live peak plus the slack', { skip: allocatorSkip }, () => {
  const stats = () => torch.cpuAllocatorStats()!;
  const requests = (s: torch.CpuAllocatorStats) => s.hits + s.misses;
  let before = stats();
  const ones = torch.ones([2 * MiB]); // 8 MiB
  let after = stats();
  assert.equal(requests(after) - requests(before), 1);
  assert.equal(after.liveBytes - before.liveBytes, 8 * MiB);
  ones.dispose();
  before = after;
  after = stats();
  assert.equal(after.liveBytes - before.liveBytes, -8 * MiB);
  assert.ok(after.idleBytes >= 8 * MiB, 'the freed block is idle');

  // The same size again: served from the idle block (which still holds ones), and zeroed.
  before = after;
  const zeros = torch.zeros([2 * MiB]);
  after = stats();
  assert.deepEqual([after.hits - before.hits, after.misses - before.misses], [1, 0]);
  assert.equal(zeros.abs().sum().item(), 0);
  zeros.dispose();

  // A smaller request takes an idle block that can hold it, whose tail is given back.
  before = stats();
  const half = torch.full([MiB], 3, { dtype: 'float32' }); // 4 MiB
  after = stats();
  assert.deepEqual([after.hits - before.hits, after.misses - before.misses], [1, 0]);
  assert.equal(after.liveBytes - before.liveBytes, 4 * MiB);
  assert.equal(half.sum().item(), 3 * MiB);
  half.dispose();

  // Ever larger tensors, each freed before the next: no idle block can hold the next one, so
  // the idle ones are unmapped to keep live + idle within the live peak plus the slack.
  let freed = 0;
  for (let i = 0; i < 24; i++) {
    const tensor = torch.full([2 * MiB + i * MiB], i, { dtype: 'float32' }); // 8, 12, ... 100 MiB
    freed += tensor.numel() * 4;
    tensor.dispose();
  }
  after = stats();
  assert.ok(after.liveBytes + after.idleBytes <= after.peakLiveBytes + after.slackBytes, JSON.stringify(after));
  assert.ok(after.idleBytes > 0 && after.idleBytes < freed / 4, `${after.idleBytes} of ${freed} freed bytes still idle`);
});
