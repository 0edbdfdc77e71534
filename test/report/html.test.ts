import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { MetricsLog } from '../../src/report/metrics-log.js';
import { renderReport, writeReport } from '../../src/report/html.js';
import { ReportInputError, readRunDirectory } from '../../src/report/run-files.js';
import { registerReport } from '../../src/cli/report.js';
import { wellFormedProblems } from './xml-check.js';

const EVIL = '<script>alert("x")</script>';

interface RunSpec {
  tasks: { key: string; name: string; type: string }[];
  evaluation?: unknown;
  examples?: unknown;
  scenes?: unknown;
  /** The task's name in the metric tags (default: its name). */
  logAs?: (name: string) => string;
}

/** A small finished run: losses going down, evaluations every 10 iterations, one stop-and-go pause. */
function makeRun(spec: RunSpec): string {
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  const log = new MetricsLog(join(dir, 'metrics.jsonl'));
  for (let step = 0; step < 60; step += 1) {
    log.scalar('train/lr', step, 2e-5 * Math.min(1, (step + 1) / 10));
    for (const [index, task] of spec.tasks.entries()) {
      const name = spec.logAs?.(task.name) ?? task.name;
      log.scalar(`train/${name}_loss`, step, 2 / (step + 1) + index);
      log.scalar(`train/${name}_score`, step, step / 60);
      if (step % 10 === 9) {
        log.scalar(`val/${name}_loss`, step, 2.5 / (step + 1));
        log.scalar(`val/${name}_score`, step, Math.min(0.5, step / 60));
        log.scalar(`val/${name}_early_stop`, step, step === 39 || step === 49 ? 1 : 0);
      }
    }
  }
  log.scalar('custom/throughput', 59, 123.5);
  log.close();
  writeFileSync(
    join(dir, 'run.json'),
    JSON.stringify({
      command: `vilbert train-tasks --tasks 1-4 --note '${EVIL}'`,
      tasks: spec.tasks,
      config: { lr: 2e-5, note: EVIL },
      started: '2026-12-01T10:00:00.000Z',
      finished: '2026-12-01T12:30:00.000Z',
      status: 'finished',
    }),
  );
  if (spec.evaluation) writeFileSync(join(dir, 'eval.json'), JSON.stringify(spec.evaluation));
  if (spec.scenes) writeFileSync(join(dir, 'scenes.json'), JSON.stringify(spec.scenes));
  if (spec.examples) writeFileSync(join(dir, 'examples.json'), JSON.stringify(spec.examples));
  return dir;
}

const TASKS = [
  { key: 'TASK1', name: 'VQA', type: 'VL-classifier' },
  { key: 'TASK10', name: 'refcoco+', type: 'V-logit' },
  { key: 'TASK99', name: EVIL, type: 'VL-logit' },
];

const SCENES = {
  '12': {
    width: 480,
    height: 320,
    objects: [
      { box: [40, 50, 120, 130], label: 'red small ball', color: '#d62728' },
      { box: [200, 100, 300, 220], label: `blue cube ${EVIL}`, color: 'blue" onload="alert(1)' },
    ],
  },
  '3': {
    width: 100,
    height: 100,
    objects: [{ box: [10, 10, 60, 60], label: 'green cylinder', color: 'green', shape: 'ellipse' }],
  },
  '4': { width: 100, height: 100, objects: [] },
};

const EXAMPLES = {
  scenes: 'scenes.json',
  grounding: [
    {
      task: 'refcoco+',
      image_id: '12',
      text: `the red ball ${EVIL}`,
      predicted: [38, 45, 125, 128],
      truth: [40, 50, 120, 130],
      iou: 0.8,
    },
  ],
  vqa: [
    {
      task: 'VQA',
      image_id: 3,
      question: 'what colour is the cylinder?',
      answers: [
        { answer: 'green', score: 0.9 },
        { answer: 'red', score: 0.05 },
      ],
      truth: ['green'],
    },
  ],
  retrieval: [
    {
      task: 'RetrievalCOCO',
      caption: `a ball ${EVIL}`,
      ranked: [
        { image_id: '3', score: 2.1 },
        { image_id: '4', score: 1.5 },
        { image_id: '99', score: 0.2 },
      ],
      truth: '4',
    },
  ],
};

const EVALUATION = [
  {
    task: 'VQA',
    key: 'TASK1',
    type: 'VL-classifier',
    metric: 'accuracy',
    score: 0.71,
    chance: 0.25,
    textOnly: 0.4,
    imageOnly: 0.3,
    verdict: 'NOT 10.0 points above text only (+31.0)',
    count: 120,
  },
  {
    task: 'RetrievalCOCO',
    key: 'TASK7',
    type: 'VL-logit',
    metric: 'R@1',
    score: 0.4,
    chance: 0.01,
    count: 50,
    extra: { 'R@5': 0.7, 'R@10': 0.85 },
  },
];

function withRun(spec: RunSpec, body: (dir: string) => void): void {
  const dir = makeRun(spec);
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const count = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].length;

test('the full report: every task with its charts, eval table, stop-and-go, lr, other tags, examples', () => {
  withRun({ tasks: TASKS, evaluation: EVALUATION, examples: EXAMPLES, scenes: SCENES }, (dir) => {
    const path = writeReport(dir);
    assert.equal(path, join(dir, 'report.html'));
    const html = readFileSync(path, 'utf8');
    assert.deepEqual(wellFormedProblems(html), []);
    assert.equal(count(html, /<svg\b/g), count(html, /<\/svg>/g));
    assert.deepEqual(
      wellFormedProblems('<div><svg><g></svg> a & b</div><rect x=1>'),
      [
        '</svg> closes <g>',
        'bare \'&\' in " a & b"',
        '</div> closes <svg>',
        'malformed tag <rect x=1>',
        'unclosed: div',
      ],
      'the checker itself can fail',
    );

    for (const name of ['VQA', 'refcoco+', 'RetrievalCOCO'])
      assert.match(html, new RegExp(`<h2>${name.replace('+', '\\+')} <small>`), name);
    for (const name of ['VQA', 'refcoco+']) {
      for (const chart of ['loss', 'score'])
        assert.equal(
          count(html, new RegExp(`data-task="${name.replace('+', '\\+')}" data-chart="${chart}"`, 'g')),
          1,
          `${name} ${chart}`,
        );
    }
    assert.match(html, /data-chart="lr"/);
    assert.match(html, /data-chart="stop-and-go"/);
    assert.equal(count(html, /class="band-on"/g), 3, 'one stop band per task (iterations 39-59)');
    assert.match(html, /<h3>custom<\/h3>/, 'unknown tags are drawn by group');
    assert.match(html, /aria-label="custom\/throughput"/);

    // Summary row of VQA: final and best val score with steps, one stop, eval accuracy and chance.
    const vqaRow = /<tr><td><a href="#task-0">VQA<\/a>.*?<\/tr>/.exec(html)?.[0] ?? '';
    assert.match(
      vqaRow,
      /<td class="num">0\.5 \(it\. 59\)<\/td><td class="num">0\.5 \(it\. 39\)<\/td><td class="num">1<\/td>/,
    );
    assert.match(
      vqaRow,
      /<td>accuracy<\/td><td class="num good">0\.71<\/td><td class="num">0\.25<\/td><td class="num">0\.4<\/td><td class="num">0\.3<\/td><td class="bad">NOT 10\.0 points above text only \(\+31\.0\)<\/td><td class="num">120<\/td>/,
    );
    assert.match(html, /R@5 0\.7, R@10 0\.85/, 'an eval-only task gets a row with its extra metrics');
    assert.match(html, /status-finished/);
    assert.match(html, /2 h 30 min/);

    // Scenes: objects in their colours, the ball as an ellipse, both boxes over the grounding scene.
    const grounding = /<div class="card grounding".*?<\/svg>/.exec(html)?.[0] ?? '';
    assert.match(grounding, /<ellipse cx="80" cy="90" rx="40" ry="40" fill="#d62728"/);
    assert.match(
      grounding,
      /<rect x="200" y="100" width="100" height="120" fill="#9aa0a6"/,
      'an unsafe colour falls back to grey',
    );
    assert.match(grounding, /class="overlay-truth" fill="none" stroke="#00a651" stroke-width="4"><title>true box/);
    assert.match(
      grounding,
      /<rect x="38" y="45" width="87" height="83" class="overlay-predicted"[^>]*stroke-dasharray/,
    );
    assert.match(html, /IoU 0\.8/);
    assert.match(
      html,
      /<tr class="correct"><td class="answer">✓ green<\/td><td class="bar"><span style="width:90\.0%"><\/span>/,
    );
    assert.match(html, /<ellipse cx="35" cy="35" rx="25" ry="25" fill="green"/, 'shape "ellipse" is honoured');
    assert.match(html, /<div class="thumb truth">.*?#2 · 1\.5 ✓/, 'the true image is marked in the ranking');
    assert.match(html, /no scene for image 99/);
    assert.match(html, /true image 4 at rank 2/);
    assert.deepEqual(readdirSync(dir).sort(), [
      'eval.json',
      'examples.json',
      'metrics.jsonl',
      'report.html',
      'run.json',
      'scenes.json',
    ]);
  });
});

test("the reference's log names (refcocoplus) give one row per task, with its scores", () => {
  withRun({ tasks: TASKS.slice(0, 2), logAs: (name) => name.replaceAll('+', 'plus') }, (dir) => {
    const html = renderReport(readRunDirectory(dir));
    assert.equal(count(html, /<tr><td><a href="#task-/g), 2, 'VQA and refcoco+, once each');
    assert.doesNotMatch(html, />refcocoplus</);
    const row = /<tr><td><a href="#task-1">refcoco\+<\/a>.*?<\/tr>/.exec(html)?.[0] ?? '';
    assert.match(row, /<td class="num">0\.5 \(it\. 59\)<\/td>/, 'its val score is found under refcocoplus');
    assert.match(html, /data-task="refcoco\+" data-chart="loss"/);
  });
});

test('each object is drawn as the shape its words name, and labels stay inside the picture', () => {
  const shapes = ['ball', 'block', 'box', 'cone', 'cylinder', 'ring', 'star', 'heart'];
  const scenes = {
    '5': {
      width: 400,
      height: 100,
      objects: shapes.map((shape, i) => ({
        box: [i * 50, 40, i * 50 + 45, 99],
        label: `red large ${shape}`,
        color: '#d62728',
      })),
    },
  };
  const examples = {
    scenes: 'scenes.json',
    vqa: [{ task: 'VQA', image_id: '5', question: 'what?', answers: [], truth: [] }],
  };
  withRun({ tasks: TASKS.slice(0, 1), examples, scenes }, (dir) => {
    const html = renderReport(readRunDirectory(dir));
    const drawn = [...html.matchAll(/<g class="object" data-shape="([a-z]+)">/g)].map((match) => match[1]);
    assert.deepEqual(drawn, ['ellipse', 'rect', 'box', 'cone', 'cylinder', 'ring', 'star', 'heart']);
    assert.match(html, /data-shape="star"><title>red large star<\/title><polygon points="/);
    assert.match(html, /data-shape="ring"><title>red large ring<\/title><ellipse [^>]*fill="none" stroke="#d62728"/);
    assert.match(html, /data-shape="cone"><title>red large cone<\/title><path d="M172\.5 40L/);
    // Labels: the objects touch the bottom edge, so each label sits above its object; the last one is moved left.
    const labels = [
      ...html.matchAll(/<text class="object-label" x="([\d.]+)" y="([\d.]+)" font-size="([\d.]+)">([^<]*)</g),
    ];
    assert.equal(labels.length, shapes.length);
    for (const [, x, y, size, text] of labels) {
      assert.ok(Number(y) <= 100 && Number(y) >= Number(size), `${text}: y ${y}`);
      assert.ok(Number(x) + 0.55 * Number(size) * text!.length <= 400.1, `${text}: x ${x}`);
    }
  });
});

test('text from the run is escaped everywhere: no raw markup reaches the page', () => {
  withRun({ tasks: TASKS, evaluation: EVALUATION, examples: EXAMPLES, scenes: SCENES }, (dir) => {
    const html = readFileSync(writeReport(dir), 'utf8');
    assert.doesNotMatch(html, /<script/i, 'the report has no script at all');
    assert.doesNotMatch(html, /onload="/);
    const escaped = '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;';
    assert.ok(
      count(html, new RegExp(escaped.replace(/[()]/g, '\\$&'), 'g')) >= 8,
      'task name, caption, query, label, command and config, escaped',
    );
    assert.match(
      html,
      new RegExp(`data-task="${escaped.replace(/[()]/g, '\\$&')}" data-chart="loss"`),
      'the odd task still gets its charts',
    );
  });
});

test('a run with only metrics.jsonl and run.json: no eval columns, no examples; a truncated log is noted', () => {
  withRun({ tasks: TASKS.slice(0, 2) }, (dir) => {
    appendFileSync(join(dir, 'metrics.jsonl'), '{"tag": "train/VQA_loss", "step": 60, "val');
    const html = readFileSync(writeReport(dir, { title: 'tiny run' }), 'utf8');
    assert.deepEqual(wellFormedProblems(html), []);
    assert.match(html, /<title>tiny run<\/title>/);
    assert.doesNotMatch(html, /eval metric/);
    assert.doesNotMatch(html, /id="examples"/);
    assert.match(html, /the last line \(\d+\) is incomplete and was skipped/);
    assert.equal(count(html, /data-chart="loss"/g), 2);
  });
});

test('a running run without run.json still gets a report; an empty folder is an error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  try {
    assert.throws(() => readRunDirectory(dir), ReportInputError);
    const log = new MetricsLog(join(dir, 'metrics.jsonl'));
    log.scalar('train/GQA_loss', 1, Number.NaN);
    log.scalar('train/GQA_loss', 2, 3);
    log.close();
    const html = renderReport(readRunDirectory(dir));
    assert.deepEqual(wellFormedProblems(html), []);
    assert.match(html, /run\.json is missing/);
    assert.match(html, /<h2>GQA<\/h2>/, 'tasks are found from the tags');
    assert.match(html, /1 non-finite value not drawn/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input files are errors that name the file and field', () => {
  withRun({ tasks: TASKS.slice(0, 1), evaluation: [{ task: 'VQA', metric: 'accuracy', score: '0.7' }] }, (dir) => {
    assert.throws(() => writeReport(dir), /eval\.json: \[0\]\.score: expected a number, found "0\.7"/);
    writeFileSync(join(dir, 'eval.json'), '[]');
    writeFileSync(
      join(dir, 'examples.json'),
      JSON.stringify({ scenesInline: { 7: { width: 10, height: 10, objects: [{ box: [1, 2, 3] }] } } }),
    );
    assert.throws(() => writeReport(dir), /scenesInline\): "7"\.objects\[0\]\.box: expected a box/);
    assert.ok(!existsSync(join(dir, 'report.html')));
  });
});

test("a long run's curves are decimated: 100k points make a small page, quickly", () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  try {
    const lines: string[] = [];
    for (let step = 0; step < 100_000; step += 1)
      lines.push(
        JSON.stringify({
          tag: 'train/VQA_loss',
          step,
          value: 1 + Math.sin(step / 500) + (step === 5000 ? 50 : 0),
          time: step,
        }),
      );
    writeFileSync(join(dir, 'metrics.jsonl'), `${lines.join('\n')}\n`);
    const started = Date.now();
    const html = renderReport(readRunDirectory(dir));
    assert.ok(Date.now() - started < 5000);
    assert.ok(html.length < 200_000, `${html.length} characters`);
    assert.match(html, /data-chart="loss"/);
    const path = /<path class="series-line" d="([^"]+)"/.exec(html)?.[1] ?? '';
    const ys = [...path.matchAll(/[ML][\d.]+ ([\d.]+)/g)].map((match) => Number(match[1]));
    assert.ok(Math.min(...ys) < 25, 'the spike (top of the plot) survives decimation');
    assert.ok(ys.filter((y) => y < 150).length <= 4, 'and stays a spike');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('vilbert report RUN_DIR writes the report and prints its path', (t) => {
  withRun({ tasks: TASKS.slice(0, 1) }, (dir) => {
    const program = new Command('vilbert').exitOverride().configureOutput({ writeErr: () => {} });
    registerReport(program);
    const print = t.mock.method(console, 'log', () => {});
    program.parse(['node', 'vilbert', 'report', dir, '--max_examples', '3']);
    print.mock.restore();
    assert.deepEqual(
      print.mock.calls.map((call) => call.arguments),
      [[join(dir, 'report.html')]],
    );
    assert.ok(existsSync(join(dir, 'report.html')));
    assert.throws(
      () => program.parse(['node', 'vilbert', 'report', dir, '--max_examples', 'many']),
      /expected a whole number/,
    );
  });
});
