// Several processes on loopback: data-parallel training equals single-process training,
// failures end with messages naming the rank, and nothing waits without bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, cli, freePort, runCli, type Finished } from './helpers.js';

interface MlpResult {
  rank: number;
  worldSize: number;
  losses: number[];
  parameters: Record<string, number[]>;
}

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;

function withTempDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vilbert-dist-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

function maxDifference(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((value, i) => Math.abs(value - b[i]!)));
}

test(
  '2 processes on halves of a batch end with the parameters and losses of 1 process on all of it',
  withTempDir(async (dir) => {
    const steps = '8';
    const port = await freePort();
    const [single, pair] = await Promise.all([
      runCli(['worker', 'mlp', '--out', join(dir, 'single'), '--steps', steps]),
      runCli([
        'launch',
        '--nproc_per_node',
        '2',
        '--master_port',
        String(port),
        'worker',
        'mlp',
        '--out',
        join(dir, 'pair'),
        '--steps',
        steps,
      ]),
    ]);
    assert.equal(single.code, 0, single.stderr);
    assert.equal(pair.code, 0, pair.stderr);
    const one = readJson<MlpResult>(join(dir, 'single.rank0.json'));
    const [rank0, rank1] = [0, 1].map((rank) => readJson<MlpResult>(join(dir, `pair.rank${rank}.json`)));
    assert.equal(one.worldSize, 1);
    assert.equal(rank0!.worldSize, 2);
    assert.ok(one.losses.at(-1)! < one.losses[0]!, `training lowers the loss: ${one.losses.join(', ')}`);
    // The ranks hold identical weights (same averaged gradients, same updates) ...
    assert.deepEqual(rank1!.parameters, rank0!.parameters);
    // ... and those of the single process, to float rounding.
    assert.deepEqual(Object.keys(rank0!.parameters), Object.keys(one.parameters));
    for (const [name, values] of Object.entries(one.parameters)) {
      assert.ok(
        maxDifference(rank0!.parameters[name]!, values) < 1e-6,
        `${name} differs by ${maxDifference(rank0!.parameters[name]!, values)}`,
      );
    }
    assert.ok(
      maxDifference(rank0!.losses, one.losses) < 1e-6,
      `global losses ${rank0!.losses.join(', ')} vs ${one.losses.join(', ')}`,
    );
  }),
);

test('a wrong master port or address fails within the timeout, naming the rank and the address', async () => {
  const port = await freePort(); // nothing listens there
  const env = { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
  const args = ['worker', 'init', '--timeout-ms', '2000'];
  const [wrongPort, wrongAddress] = await Promise.all([
    runCli(args, cleanEnv(env), 30_000),
    runCli(args, cleanEnv({ ...env, MASTER_ADDR: 'no-such-host.invalid' }), 30_000),
  ]);
  for (const [run, address] of [
    [wrongPort, '127.0.0.1'],
    [wrongAddress, 'no-such-host.invalid'],
  ] as const) {
    assert.equal(run.code, 1, run.stderr);
    const message = `worker failed: c10d init_process_group (gloo) on rank 1 of 2 (master ${address}:${port}, timeout 2000 ms): `;
    assert.ok(run.stderr.includes(message), run.stderr);
    assert.match(run.stderr, /timed out/);
    assert.ok(run.milliseconds < 12_000, `took ${run.milliseconds} ms`);
  }
});

test('a collective whose peer has exited fails at once, naming the operation and the rank', async () => {
  const port = await freePort();
  const env = (rank: number) =>
    cleanEnv({ RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) });
  const args = ['worker', 'peer-exit', '--timeout-ms', '60000'];
  const [rank0, rank1] = await Promise.all([runCli(args, env(0)), runCli(args, env(1))]);
  assert.equal(rank1.code, 3, rank1.stderr);
  assert.equal(rank0.code, 1, rank0.stderr);
  assert.ok(
    rank0.stderr.includes(
      `worker failed: c10d allreduce on rank 0 of 2 (master 127.0.0.1:${port}, timeout 60000 ms): `,
    ),
    rank0.stderr,
  );
  assert.ok(
    rank0.milliseconds < 20_000,
    `took ${rank0.milliseconds} ms (well within the 60 s timeout: the closed connection is seen)`,
  );
});

async function waitForFiles(files: string[], limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!files.every((file) => existsSync(file))) {
    if (Date.now() > deadline) throw new Error(`${files.join(', ')} did not all appear within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test(
  'when a worker is killed, the launcher stops the others within --stop_timeout and names the rank',
  withTempDir(async (dir) => {
    const port = await freePort();
    const prefix = join(dir, 'idle');
    const launcher = spawn(
      process.execPath,
      [
        cli,
        'launch',
        '--nproc_per_node',
        '2',
        '--master_port',
        String(port),
        '--stop_timeout',
        '1',
        'worker',
        'idle',
        '--out',
        prefix,
      ],
      {
        env: cleanEnv(),
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    launcher.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<Finished>((resolve) =>
      launcher.on('exit', (code, signal) => resolve({ code, signal, stderr, milliseconds: 0 })),
    );
    const pids: number[] = [];
    try {
      await waitForFiles(
        [0, 1].map((rank) => `${prefix}.rank${rank}.pid`),
        30_000,
      );
      pids.push(...[0, 1].map((rank) => Number(readFileSync(`${prefix}.rank${rank}.pid`, 'utf8'))));
      const killed = Date.now();
      process.kill(pids[1]!, 'SIGKILL');
      const result = await exited;
      const seconds = (Date.now() - killed) / 1000;
      assert.ok(seconds < 6, `the launcher took ${seconds} s to stop`);
      assert.equal(result.code, 128 + 9);
      assert.match(stderr, new RegExp(`rank 1 \\(local rank 1, pid ${pids[1]}\\) was killed by SIGKILL`));
      // Rank 0 ignores SIGTERM: the launcher had to kill it after --stop_timeout.
      assert.match(stderr, /rank 0 did not exit within 1 s of SIGTERM; killing it/);
      assert.equal(isAlive(pids[0]!), false, 'rank 0 is gone');
    } finally {
      launcher.kill('SIGKILL');
      for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  }),
);

test(
  'launch gives each worker its rank, the world and the master, and passes the arguments through',
  withTempDir(async (dir) => {
    const prefix = join(dir, 'env');
    const run = await runCli([
      'launch',
      '--nnodes',
      '2',
      '--node_rank',
      '1',
      '--nproc_per_node',
      '2',
      '--master_addr',
      '10.1.2.3',
      '--master_port',
      '1234',
      'worker',
      'env',
      '--out',
      prefix,
      '--steps',
      '3',
    ]);
    assert.equal(run.code, 0, run.stderr);
    for (const [rank, localRank] of [
      [2, 0],
      [3, 1],
    ]) {
      assert.deepEqual(readJson(`${prefix}.rank${rank}.json`), {
        RANK: String(rank),
        LOCAL_RANK: String(localRank),
        WORLD_SIZE: '4',
        MASTER_ADDR: '10.1.2.3',
        MASTER_PORT: '1234',
        OMP_NUM_THREADS: '1',
        steps: 3,
      });
    }
    assert.equal(existsSync(`${prefix}.rank0.json`), false);
  }),
);
