// Schedules and the stop-and-go controller against the reference's own test vectors: the stop
// controller's score sequence of its tools/test_controller.py, and the lr sequences that
// tools/reference/*.py record from torch's schedulers (test/fixtures/train/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { StopAndGo } from '../../src/train/stop-and-go.js';
import {
  LambdaLR,
  LrPlan,
  type LrPlanState,
  epochDecay,
  warmupConstant,
  warmupLinear,
} from '../../src/train/schedules.js';
import type { ParamGroup } from '../../src/train/adamw.js';

test('stop-and-go: the reference test vector', () => {
  const controller = new StopAndGo();
  const scores = [10, 20, 30, 40, 50, 50, 50, 50, 49, 48, 50, 51, 52, 52, 52, 52, 52];
  const stopped = scores.map((score) => {
    controller.step(score);
    return controller.inStop ? 1 : 0;
  });
  assert.deepEqual(stopped, [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
});

test('stop-and-go: state saves, restores and resets', () => {
  const controller = new StopAndGo();
  for (const score of [10, 20, 20, 20]) controller.step(score);
  const saved = JSON.parse(JSON.stringify(controller.state())) as ReturnType<StopAndGo['state']>;
  const copy = new StopAndGo();
  copy.restore(saved);
  for (const score of [19, 18, 25]) {
    controller.step(score);
    copy.step(score);
    assert.deepEqual(copy.state(), controller.state());
  }
  controller.reset();
  assert.equal(controller.state().best, Number.NEGATIVE_INFINITY);
  assert.equal(controller.inStop, false);
});

function group(): ParamGroup {
  return { name: 'p', parameter: undefined as never, lr: 1, initialLr: 1, weightDecay: 0 };
}

test("'mannul': the epoch decay's constructor resets warm-up, and the epoch-end step fires mid warm-up (reference: M=3, W=6, two tasks)", () => {
  // train_tasks.py with lr 1: warm-up scheduler (constant after W) stepped after the first task of each
  // iteration while global_step < W; the epoch decay constructed after it and stepped at each epoch end.
  const groups = [group()];
  const warmup = new LambdaLR(groups, warmupConstant(6));
  const decay = new LambdaLR(groups, epochDecay());
  const used: number[] = [];
  let globalStep = 0;
  for (let epoch = 0; epoch < 3; epoch++) {
    for (let iteration = 0; iteration < 3; iteration++) {
      for (let task = 0; task < 2; task++) {
        used.push(groups[0]!.lr);
        if (task === 0) {
          if (globalStep < 6) warmup.step();
          globalStep += 1;
        }
      }
    }
    decay.step();
  }
  const expected = [1, 1 / 6, 1 / 6, 2 / 6, 2 / 6, 3 / 6, 1, 4 / 6, 4 / 6, 5 / 6, 5 / 6, 1, 1, 1, 1, 1, 1, 1];
  used.forEach((lr, i) =>
    assert.ok(Math.abs(lr - expected[i]!) < 1e-12, `update ${i}: lr ${lr}, reference ${expected[i]}`),
  );
});

test('warmup_linear rises to 1 at W, then falls to 0 at T; the epoch decay is 0.2 per milestone', () => {
  const linear = warmupLinear(2, 10);
  assert.deepEqual([0, 1, 2, 6, 10, 12].map(linear), [0, 0.5, 1, 0.5, 0, 0]);
  const decay = epochDecay();
  assert.deepEqual(
    [0, 4, 5, 6, 7, 9].map((e) => Number(decay(e).toFixed(12))),
    [1, 1, 0.2, 0.2, 0.04, 0.04],
  );
});

/** The lr each task step of train_tasks.py's loop uses, driving an LrPlan as the trainer does. */
function lrsUsed(
  kind: 'mannul' | 'warmup_linear',
  iterationsPerEpoch: number,
  epochs: number,
  tasks: number,
): number[][] {
  const groups = [group()];
  const total = iterationsPerEpoch * epochs;
  const plan = new LrPlan(kind, groups, { warmup: 0.1 * total, total, iterationsPerEpoch, epochs });
  let globalStep = 0;
  const perEpoch: number[][] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    const used: number[] = [];
    for (let step = 0; step < iterationsPerEpoch; step++) {
      for (let task = 0; task < tasks; task++) {
        used.push(groups[0]!.lr);
        if (task === 0) {
          plan.afterFirstTaskStep(globalStep);
          globalStep += 1;
        }
      }
      plan.endOfIteration(globalStep);
    }
    plan.endOfEpoch(0);
    perEpoch.push(used);
  }
  return perEpoch;
}

test("LrPlan 'mannul' gives the reference's sequence (M=3, W=6, two tasks: 1, 1/6, 1/6, 1/3, 1/3, 1/2 | 1, 2/3, 2/3, 5/6, 5/6, 1 | 1 ...)", () => {
  const epochs = lrsUsed('mannul', 3, 20, 2);
  const close = (got: number[], want: number[]) =>
    got.forEach((value, i) => assert.ok(Math.abs(value - want[i]!) < 1e-12, `${got.join(', ')} vs ${want.join(', ')}`));
  close(epochs[0]!, [1, 1 / 6, 1 / 6, 2 / 6, 2 / 6, 3 / 6]);
  close(epochs[1]!, [1, 4 / 6, 4 / 6, 5 / 6, 5 / 6, 1]);
  assert.equal(epochs[2]![0], 1);
  close(epochs[6]!.slice(0, 2), [0.2, 0.2]);
  close(epochs[8]!.slice(0, 2), [0.04, 0.04]);
});

test("LrPlan 'warmup_linear': the first update uses lr 0, later tasks of an iteration the next value; decays to 0 at the end", () => {
  const epochs = lrsUsed('warmup_linear', 5, 4, 3); // T = 20, W = 2
  assert.deepEqual(epochs[0]!.slice(0, 6), [0, 0.5, 0.5, 0.5, 1, 1]);
  const last = epochs[3]!;
  assert.ok(Math.abs(last.at(-1)! - 0) < 1e-12, `last lr ${last.at(-1)}`);
});

test('LrPlan state restores the lr and continues identically (JSON round trip)', () => {
  const groupsA = [group()];
  const planA = new LrPlan('cosine', groupsA, { warmup: 2, total: 20, iterationsPerEpoch: 5, epochs: 4 });
  for (let k = 0; k < 7; k++) {
    planA.afterFirstTaskStep(k);
    planA.endOfIteration(k + 1);
  }
  const saved = JSON.parse(JSON.stringify(planA.state())) as LrPlanState;
  const groupsB = [group()];
  const planB = new LrPlan('cosine', groupsB, { warmup: 2, total: 20, iterationsPerEpoch: 5, epochs: 4 });
  planB.restore(saved);
  assert.equal(groupsB[0]!.lr, groupsA[0]!.lr);
  for (let k = 7; k < 12; k++) {
    for (const plan of [planA, planB]) {
      plan.afterFirstTaskStep(k);
      plan.endOfIteration(k + 1);
    }
    assert.equal(groupsB[0]!.lr, groupsA[0]!.lr);
  }
  assert.throws(
    () => new LrPlan('linear' as never, groupsA, { warmup: 1, total: 2, iterationsPerEpoch: 1, epochs: 2 }),
    /--lr_scheduler must be one of/,
  );
});

// --lr_scheduler cosine / cosine_warm against torch's CosineAnnealingLR / CosineAnnealingWarmRestarts,
// run by tools/reference/lr_schedule_vectors.py as train_tasks.py builds and steps them.
interface ReferenceIteration {
  used: number[];
  after_task: number[];
  second_stepped: boolean;
  end: number[];
}
interface ReferenceScenario {
  kind: 'cosine' | 'cosine_warm';
  median_num_iter: number;
  num_train_epochs: number;
  warmup_proportion: number;
  warmup_steps: number;
  period: number;
  after_construction: { warmup: number[]; both: number[] };
  iterations: ReferenceIteration[];
  second_steps_in_run: number;
  beyond: { second_steps: number; lr: number[] }[];
}
const lrReference = JSON.parse(
  readFileSync(
    fileURLToPath(new URL('../../../test/fixtures/train/lr_schedules_reference.json', import.meta.url)),
    'utf8',
  ),
) as { torch: string; group_lrs: number[]; scenarios: ReferenceScenario[] };

/** Learning rates are products of doubles; torch's CosineAnnealingLR is recursive, so allow its rounding. */
function assertLrs(got: number[], want: number[], where: string): void {
  assert.equal(got.length, want.length, where);
  got.forEach((value, i) => {
    const bound = 1e-20 + 1e-12 * Math.abs(want[i]!);
    assert.ok(
      Math.abs(value - want[i]!) <= bound,
      `${where}, group ${i}: lr ${value}, reference ${want[i]} (torch ${lrReference.torch})`,
    );
  });
}

test('the cosine reference vectors cover warm-up, the middle, the end of the period and cosine_warm restarts', () => {
  assert.match(lrReference.torch, /^1\.13/);
  const kinds = lrReference.scenarios.map((s) => s.kind);
  assert.deepEqual([...new Set(kinds)], ['cosine', 'cosine_warm']);
  for (const s of lrReference.scenarios) {
    assert.equal(s.iterations.length, s.median_num_iter * s.num_train_epochs);
    assert.ok(s.beyond.length > s.period, `${s.kind}: stepped through more than a period`);
  }
  // Without warm-up the run itself reaches T_max: cosine ends at 0, cosine_warm restarts at the last step.
  const noWarmup = lrReference.scenarios.filter((s) => s.warmup_steps === 0);
  assert.equal(noWarmup.length, 2);
  for (const s of noWarmup) assert.equal(s.second_steps_in_run, s.period);
});

for (const scenario of lrReference.scenarios) {
  const name = `${scenario.kind}, ${scenario.median_num_iter} iterations x ${scenario.num_train_epochs} epochs, warm-up ${scenario.warmup_steps}`;
  test(`LrPlan '${name}' gives torch's learning rates at every iteration and beyond the period`, () => {
    const groups: ParamGroup[] = lrReference.group_lrs.map((lr, i) => ({
      name: `g${i}`,
      parameter: undefined as never,
      lr,
      initialLr: lr,
      weightDecay: 0,
    }));
    const lrs = () => groups.map((g) => g.lr);
    const total = scenario.median_num_iter * scenario.num_train_epochs;
    const plan = new LrPlan(scenario.kind, groups, {
      warmup: scenario.warmup_proportion * total,
      total,
      iterationsPerEpoch: scenario.median_num_iter,
      epochs: scenario.num_train_epochs,
    });
    assertLrs(lrs(), scenario.after_construction.both, 'after construction');
    let globalStep = 0;
    scenario.iterations.forEach((want, i) => {
      assertLrs(lrs(), want.used, `iteration ${i}: lr of the optimizer step`);
      plan.afterFirstTaskStep(globalStep);
      globalStep += 1;
      assertLrs(lrs(), want.after_task, `iteration ${i}: after the warm-up step`);
      plan.endOfIteration(globalStep);
      assertLrs(lrs(), want.end, `iteration ${i}: end of the iteration`);
      if (i === scenario.iterations.length - 1) plan.endOfEpoch(0);
    });
    assert.equal(plan.state().secondSteps, scenario.second_steps_in_run);
    for (const want of scenario.beyond) {
      plan.endOfIteration(globalStep);
      assert.equal(plan.state().secondSteps, want.second_steps);
      assertLrs(lrs(), want.lr, `second scheduler step ${want.second_steps}`);
    }
  });
}

const plateauReference = JSON.parse(
  readFileSync(
    fileURLToPath(new URL('../../../test/fixtures/train/lr_plateau_reference.json', import.meta.url)),
    'utf8',
  ),
) as { torch: string; group_lrs: number[]; eps: number; epochs: { score: number; lrs: number[] }[] };

test("LrPlan 'automatic' cuts each group's lr as torch's ReduceLROnPlateau does, down to its eps", () => {
  assert.match(plateauReference.torch, /^1\.13/);
  const groups: ParamGroup[] = plateauReference.group_lrs.map((lr, i) => ({
    name: `g${i}`,
    parameter: undefined as never,
    lr,
    initialLr: lr,
    weightDecay: 0,
  }));
  const plan = new LrPlan('automatic', groups, { warmup: 0, total: 100, iterationsPerEpoch: 10, epochs: 10 });
  let cuts = 0;
  plateauReference.epochs.forEach(({ score, lrs }, epoch) => {
    const before = groups.map((g) => g.lr);
    plan.endOfEpoch(score);
    assertLrs(
      groups.map((g) => g.lr),
      lrs,
      `epoch ${epoch} (score ${score})`,
    );
    if (groups.some((g, i) => g.lr < before[i]!)) cuts += 1;
  });
  // The vectors pin plateaus, sub-threshold gains, cooldown, and eps stopping one group before the other.
  assert.ok(cuts >= 5, `${cuts} reductions`);
  const last = plateauReference.epochs.at(-1)!.lrs;
  assert.equal(last[0], last[1]);

  // A checkpoint written before the reductions were kept per group restores the same lrs.
  const saved = plan.state();
  const legacy = {
    ...saved,
    factor: saved.factor * 0.2 ** 3,
    secondSteps: 3,
    plateau: { ...saved.plateau, reductions: undefined },
  };
  const restoredGroups = groups.map((g) => ({ ...g }));
  new LrPlan('automatic', restoredGroups, { warmup: 0, total: 100, iterationsPerEpoch: 10, epochs: 10 }).restore(
    legacy,
  );
  assertLrs(
    restoredGroups.map((g) => g.lr),
    groups.map((g) => g.initialLr * 0.2 ** 3),
    'legacy state',
  );
});
