import { after, before, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { writeWeights } from '../../src/io/weights.js';
import { registerEval } from '../../src/cli/eval.js';
import { scratchKit } from '../data/kit.js';
import { tinyConfigJson, tinyModel } from './tiny.js';

/** Runs one subcommand in this process and returns what it printed. */
async function vilbert(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const program = new Command('vilbert').exitOverride();
  registerEval(program);
  for (const command of program.commands) command.exitOverride();
  const log = mock.method(console, 'log', () => {});
  const error = mock.method(console, 'error', () => {});
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    log.mock.restore();
    error.mock.restore();
  }
  const text = (calls: { arguments: unknown[] }[]) => calls.map((call) => `${call.arguments.join(' ')}\n`).join('');
  return { stdout: text(log.mock.calls), stderr: text(error.mock.calls) };
}

describe('vilbert eval-tasks / eval-retrieval on the kit', () => {
  let dir: string;
  let kit: { root: string; dispose: () => void };
  let weights: string;
  let config: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vilbert-eval-'));
    kit = scratchKit(['datasets/VQA', 'datasets/nlvr2', 'datasets/refcoco', 'datasets/cocoRetreival', 'datasets/coco']);
    config = join(dir, 'tiny_config.json');
    const { task_specific_tokens: _tokens, ...json } = tinyConfigJson(); // the flag turns them on, as in the reference
    writeFileSync(config, JSON.stringify(json));
    const model = tinyModel(3);
    weights = join(dir, 'tiny.safetensors');
    writeWeights(weights, model.stateDict(), 'safetensors');
    model.dispose();
  });
  after(() => {
    kit.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it("eval-tasks writes eval.txt, and each task's <split>_result.json / _others.json in its own folder under <output_dir>/<weights>-<save_name>", async () => {
    const output = join(dir, 'results');
    const { stdout, stderr } = await vilbert(
      'eval-tasks',
      '--tasks',
      '12-9-10',
      '--from_pretrained',
      weights,
      '--config_file',
      config,
      '--task_specific_tokens',
      '--batch_size',
      '2',
      '--save_name',
      'kit',
      '--output_dir',
      output,
      '--datasets_root',
      kit.root,
      '--no_cuda',
    );
    const savePath = join(output, 'tiny.safetensors-kit');
    const evalTxt = readFileSync(join(savePath, 'eval.txt'), 'utf8').split('\n');
    assert.equal(evalTxt.length, 4);
    assert.match(evalTxt[0]!, /^Validation \[NLVR2\]: loss \d+\.\d{3} score (0|50|100)\.000 $/);
    assert.match(evalTxt[1]!, /^Validation \[refcoco\]: loss \d+\.\d{3} score \d+\.\d{3} $/);
    assert.match(evalTxt[2]!, /^Validation \[refcocoplus\]: loss /);
    assert.deepEqual(readdirSync(savePath).sort(), ['TASK10_refcocoplus', 'TASK12_NLVR2', 'TASK9_refcoco', 'eval.txt']);
    assert.deepEqual(JSON.parse(readFileSync(join(savePath, 'TASK12_NLVR2', 'dev_result.json'), 'utf8')), []);
    assert.deepEqual(JSON.parse(readFileSync(join(savePath, 'TASK12_NLVR2', 'dev_others.json'), 'utf8')), []);
    // refcoco and refcoco+ both evaluate 'val': each keeps its own file (the reference overwrote the first).
    assert.doesNotMatch(stderr, /overwrite/);
    const refcoco = JSON.parse(readFileSync(join(savePath, 'TASK9_refcoco', 'val_result.json'), 'utf8')) as {
      id: number;
      target: number;
      IOU: number;
    }[];
    const refcocoPlus = JSON.parse(readFileSync(join(savePath, 'TASK10_refcocoplus', 'val_result.json'), 'utf8')) as {
      id: number;
      target: number;
      IOU: number;
    }[];
    assert.equal(refcoco.length, 3);
    assert.equal(refcocoPlus.length, 2);
    for (const record of [...refcoco, ...refcocoPlus]) assert.deepEqual(Object.keys(record), ['id', 'target', 'IOU']);
    assert.deepEqual(readdirSync(join(savePath, 'TASK10_refcocoplus')).sort(), ['val_others.json', 'val_result.json']);
    assert.match(stdout, /^loaded .*tiny\.safetensors: 0 keys missing/m);
    assert.match(stdout, /^task +split +samples +loss +score +metrics \(%\)$/m);
    assert.match(stdout, /^TASK12 NLVR2 +dev +2 +\d+\.\d{4} +\d+\.\d{2} +accuracy \d+\.\d{2}$/m);
    assert.match(stdout, /^TASK9 refcoco +val +3 .*accuracy_iou>0\.5 \d+\.\d{2}, mean_iou \d+\.\d{2}$/m);
  });

  it("eval-tasks --split names the results file and VQA records its answers under the reference's keys", async () => {
    const output = join(dir, 'vqa');
    const { stdout } = await vilbert(
      'eval-tasks',
      '--tasks',
      '1',
      '--split',
      'trainval',
      '--from_pretrained',
      weights,
      '--config_file',
      config,
      '--task_specific_tokens',
      '--batch_size',
      '4',
      '--output_dir',
      output,
      '--datasets_root',
      kit.root,
    );
    const savePath = join(output, 'tiny.safetensors-');
    const results = JSON.parse(readFileSync(join(savePath, 'TASK1_VQA', 'trainval_result.json'), 'utf8')) as {
      question_id: number;
      answer: string | null;
    }[];
    assert.equal(results.length, 9);
    for (const record of results) assert.deepEqual(Object.keys(record), ['question_id', 'answer']);
    assert.match(stdout, /^TASK1 VQA +trainval +9 +\d+\.\d{4} +\d+\.\d{2} +vqa_score \d+\.\d{2}$/m);
    assert.ok(
      existsSync(join(kit.root, 'datasets', 'VQA', 'cache', 'VQA_trainval_23_cleaned.pkl')),
      'the token cache is written as the reference does',
    );
  });

  it('eval-retrieval ranks the test captions and writes the top images per caption', async () => {
    const output = join(dir, 'retrieval');
    const { stdout } = await vilbert(
      'eval-retrieval',
      '--tasks',
      '7',
      '--from_pretrained',
      weights,
      '--config_file',
      config,
      '--task_specific_tokens',
      '--output_dir',
      output,
      '--datasets_root',
      kit.root,
      '--chunk_size',
      '2',
    );
    assert.match(stdout, /^Final r1:\d+\.\d{3}, r5:100\.000, r10:100\.000, mder:\d\.000, meanr:\d\.\d{3}$/m);
    assert.match(stdout, /^TASK7 RetrievalCOCO +val +6 +3 +/m);
    // As the reference: the directory is the second component of --from_pretrained's path.
    const savePath = join(output, weights.split('/')[1]!);
    const results = JSON.parse(
      readFileSync(join(savePath, 'TASK7_RetrievalCOCO', 'val_result.json'), 'utf8'),
    ) as number[][];
    assert.equal(results.length, 6);
    for (const top of results) assert.deepEqual([...top].sort(), [0, 1, 2]);
    assert.deepEqual(JSON.parse(readFileSync(join(savePath, 'TASK7_RetrievalCOCO', 'val_others.json'), 'utf8')), []);
  });

  it('refuses what the reference cannot run, naming the flag', async () => {
    const common = [
      '--from_pretrained',
      weights,
      '--config_file',
      config,
      '--datasets_root',
      kit.root,
      '--output_dir',
      join(dir, 'refused'),
    ];
    await assert.rejects(
      vilbert('eval-tasks', '--tasks', '7', ...common),
      /TASK7 RetrievalCOCO: image retrieval is ranked by `vilbert eval-retrieval`/,
    );
    await assert.rejects(
      vilbert('eval-tasks', '--tasks', '99', ...common),
      /--tasks: TASK99 is not in the task registry/,
    );
    await assert.rejects(vilbert('eval-tasks', ...common), /--tasks is required/);
    await assert.rejects(
      vilbert('eval-retrieval', '--tasks', '7', '--batch_size', '4', ...common),
      /--batch_size 4: retrieval ranks one caption at a time/,
    );
    await assert.rejects(
      vilbert('eval-tasks', '--tasks', '12', ...common.slice(2), '--from_pretrained', join(dir, 'none.bin')),
      /--from_pretrained .*none\.bin: no such weights file/,
    );
    assert.ok(!existsSync(join(dir, 'refused', 'tiny.safetensors-')));
  });

  it("checks every task's split before evaluating any, and lists every problem", async () => {
    const output = join(dir, 'checked');
    const common = [
      '--config_file',
      config,
      '--task_specific_tokens',
      '--datasets_root',
      kit.root,
      '--output_dir',
      output,
      '--no_cuda',
    ];
    // NLVR2 has no 'val' split: refcoco, before it, is not evaluated either.
    await assert.rejects(
      vilbert('eval-tasks', '--tasks', '9-12-10', '--split', 'val', '--from_pretrained', weights, ...common),
      (error: Error) => {
        assert.match(error.message, /^nothing was evaluated: a problem with the 3 requested tasks/);
        assert.match(
          error.message,
          /\n {2}TASK12 NLVR2, split 'val': data split 'val' is not recognized \(train, dev, test\)$/,
        );
        return true;
      },
    );
    assert.ok(!existsSync(output), 'no output folder, no eval.txt');
    // Every problem at once: the weights, a split, a retrieval task, a task named twice.
    const missing = join(dir, 'no-such-weights.bin');
    await assert.rejects(
      vilbert('eval-tasks', '--tasks', '12-7-9-9', '--split', 'val', '--from_pretrained', missing, ...common),
      (error: Error) => {
        const lines = error.message.split('\n');
        assert.match(lines[0]!, /^nothing was evaluated: 4 problems with the 4 requested tasks/);
        assert.match(lines[1]!, /^ {2}--from_pretrained .*no-such-weights\.bin: no such weights file/);
        assert.match(lines[2]!, /^ {2}TASK12 NLVR2, split 'val': data split 'val' is not recognized/);
        assert.match(lines[3]!, /^ {2}TASK7 RetrievalCOCO: image retrieval is ranked by `vilbert eval-retrieval`$/);
        assert.match(lines[4]!, /^ {2}TASK9 refcoco: named twice in --tasks/);
        assert.equal(lines.length, 5);
        return true;
      },
    );
    assert.ok(!existsSync(output));
  });

  it('documents every reference flag with its default in --help', async () => {
    const program = new Command('vilbert').exitOverride();
    registerEval(program);
    const help = program.commands.find((command) => command.name() === 'eval-tasks')!.helpInformation();
    for (const flag of [
      '--bert_model',
      '--from_pretrained',
      '--output_dir',
      '--config_file',
      '--no_cuda',
      '--do_lower_case',
      '--local_rank',
      '--seed',
      '--fp16',
      '--loss_scale',
      '--num_workers',
      '--save_name',
      '--use_chunk',
      '--batch_size',
      '--tasks',
      '--in_memory',
      '--baseline',
      '--split',
      '--dynamic_attention',
      '--clean_train_sets',
      '--visual_target',
      '--task_specific_tokens',
      '--tasks_config',
      '--datasets_root',
    ]) {
      assert.ok(help.includes(flag), flag);
    }
    assert.match(help, /--batch_size <n> .*\(default: 30\)/);
    assert.match(help, /--output_dir <dir> .*\(default: "results"\)/);
    const retrieval = program.commands.find((command) => command.name() === 'eval-retrieval')!.helpInformation();
    assert.match(retrieval, /--zero_shot/);
    assert.match(retrieval, /--batch_size <n> .*\(default: 1\)/);
  });
});
