// `report.html` of a run directory: one self-contained page (inline CSS and SVG, no script,
// nothing fetched) with the run's status, a table of the tasks, loss/score curves per task,
// the learning rate, the stop-and-go state of every task and the example pictures.
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import type { MetricPoint, MetricSeries } from './metrics-log.js';
import { readRunDirectory, type EvalResult, type RunDirectory } from './run-files.js';
import { groundingCard, retrievalRow, vqaCard } from './scenes.js';
import { PALETTE, escapeXml, formatNumber, lineChart, stateBands, type ChartSeries } from './svg.js';

export interface ReportOptions {
  /** Where to write the page (default `<runDir>/report.html`). */
  output?: string;
  /** Page title (default: the run directory's path). */
  title?: string;
  /** Examples drawn per kind (grounding, VQA, retrieval); default 24. */
  maxExamples?: number;
}

const TRAIN = '#1f77b4';
const VAL = '#e6550d';

/** A task as the report shows it, from run.json, the metric tags or eval.json. */
interface TaskView {
  name: string;
  /** The name in the metric tags: the reference logs refcoco+ as refcocoplus. */
  tagName: string;
  key: string;
  type: string;
  evaluation: EvalResult | null;
}

const TASK_KINDS = ['loss', 'score', 'lr', 'early_stop'] as const;
const TASK_TAG = /^(train|val)\/(.+)_(loss|score|lr|early_stop)$/;

const tagOf = (phase: 'train' | 'val', task: string, kind: (typeof TASK_KINDS)[number]) => `${phase}/${task}_${kind}`;

/** run.json's tasks in order, then tasks seen only in the metrics or in eval.json. */
function collectTasks(run: RunDirectory): TaskView[] {
  const tagsOf = (name: string) => TASK_KINDS.flatMap((kind) => [tagOf('train', name, kind), tagOf('val', name, kind)]);
  const logged = (name: string) => tagsOf(name).some((tag) => run.metrics.has(tag));
  const tasks: TaskView[] = (run.run?.tasks ?? []).map((task) => {
    const displayName = task.name.replaceAll('+', 'plus');
    return { ...task, tagName: logged(task.name) || !logged(displayName) ? task.name : displayName, evaluation: null };
  });
  // Matched by the known names first: a task name may itself end in '_loss' or contain '_'.
  const knownTags = new Set(tasks.flatMap((task) => tagsOf(task.tagName)));
  const seen = new Set<string>();
  for (const tag of run.metrics.keys()) {
    const match = TASK_TAG.exec(tag);
    if (match && !knownTags.has(tag)) seen.add(match[2]!);
  }
  for (const name of [...seen].sort()) tasks.push({ name, tagName: name, key: '', type: '', evaluation: null });
  for (const result of run.evaluation ?? []) {
    const task = tasks.find(
      (candidate) => candidate.name === result.task || (result.key && candidate.key === result.key),
    );
    if (task) task.evaluation = result;
    else
      tasks.push({
        name: result.task,
        tagName: result.task,
        key: result.key ?? '',
        type: result.type ?? '',
        evaluation: result,
      });
  }
  return tasks;
}

function stepDomain(metrics: MetricSeries): [number, number] | undefined {
  let [low, high] = [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  for (const points of metrics.values()) {
    if (points.length === 0) continue;
    low = Math.min(low, points[0]!.step);
    high = Math.max(high, points[points.length - 1]!.step);
  }
  return low <= high ? [low, high === low ? low + 1 : high] : undefined;
}

function best(points: readonly MetricPoint[]): MetricPoint | undefined {
  let top: MetricPoint | undefined;
  for (const point of points) if (Number.isFinite(point.value) && (!top || point.value > top.value)) top = point;
  return top;
}

/** How many times the task went into stop (0 -> 1, or 1 at its first evaluation). */
function stopCount(points: readonly MetricPoint[]): number {
  let stops = 0;
  let previous = 0;
  for (const point of points) {
    if (point.value === 1 && previous !== 1) stops += 1;
    previous = point.value;
  }
  return stops;
}

const cell = (text: string, className = '') => `<td${className ? ` class="${className}"` : ''}>${escapeXml(text)}</td>`;
const atStep = (point: MetricPoint | undefined) => (point ? `${formatNumber(point.value)} (it. ${point.step})` : '—');

function summaryTable(tasks: TaskView[], metrics: MetricSeries, withEvaluation: boolean): string {
  const headers = ['task', 'key', 'type', 'final val score', 'best val score', 'stops'];
  if (withEvaluation)
    headers.push(
      'eval metric',
      'eval score',
      'chance',
      'text only',
      'image only',
      'verdict',
      'examples',
      'other eval metrics',
    );
  const rows = tasks.map((task, index) => {
    const valScore = metrics.get(tagOf('val', task.tagName, 'score')) ?? [];
    const cells = [
      `<td><a href="#task-${index}">${escapeXml(task.name)}</a></td>`,
      cell(task.key),
      cell(task.type),
      cell(atStep(valScore[valScore.length - 1]), 'num'),
      cell(atStep(best(valScore)), 'num'),
      cell(String(stopCount(metrics.get(tagOf('val', task.tagName, 'early_stop')) ?? [])), 'num'),
    ];
    if (withEvaluation) {
      const result = task.evaluation;
      const aboveChance = result && result.chance !== null ? (result.score > result.chance ? ' good' : ' bad') : '';
      cells.push(
        cell(result?.metric ?? '—'),
        cell(result ? formatNumber(result.score) : '—', `num${aboveChance}`),
        cell(result?.chance != null ? formatNumber(result.chance) : '—', 'num'),
        cell(result?.textOnly != null ? formatNumber(result.textOnly) : '—', 'num'),
        cell(result?.imageOnly != null ? formatNumber(result.imageOnly) : '—', 'num'),
        cell(result?.verdict ?? '—', result?.verdict ? (result.verdict.startsWith('NOT') ? 'bad' : 'good') : ''),
        cell(result?.count != null ? String(result.count) : '—', 'num'),
        cell(
          result
            ? Object.entries(result.extra)
                .map(([name, value]) => `${name} ${formatNumber(value)}`)
                .join(', ') || '—'
            : '—',
        ),
      );
    }
    return `<tr>${cells.join('')}</tr>`;
  });
  return `<table class="summary"><thead><tr>${headers.map((header) => `<th>${escapeXml(header)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** A part of the page with its own heading and link in the navigation bar. */
interface Section {
  id: string;
  title: string;
  /** Shown smaller after the title (a task's key and type). */
  subtitle?: string;
  body: string;
}

function taskSection(
  task: TaskView,
  index: number,
  metrics: MetricSeries,
  xDomain: [number, number] | undefined,
): Section {
  const charts: string[] = [];
  for (const kind of ['loss', 'score'] as const) {
    const series: ChartSeries[] = [];
    const train = metrics.get(tagOf('train', task.tagName, kind));
    const val = metrics.get(tagOf('val', task.tagName, kind));
    if (train) series.push({ label: `train ${kind}`, points: train, color: TRAIN, style: 'line' });
    if (val) series.push({ label: `val ${kind}`, points: val, color: VAL, style: 'points' });
    if (series.length > 0)
      charts.push(
        lineChart(series, {
          title: `${task.name} ${kind}`,
          yLabel: kind,
          xDomain,
          attributes: { 'data-task': task.name, 'data-chart': kind },
        }),
      );
  }
  const body =
    charts.length > 0
      ? `<div class="charts">${charts.join('')}</div>`
      : '<p class="empty">no loss or score logged for this task yet.</p>';
  const subtitle = [task.key, task.type].filter((part) => part !== '').join(' · ');
  return { id: `task-${index}`, title: task.name, subtitle, body };
}

function learningRateSection(
  tasks: TaskView[],
  metrics: MetricSeries,
  xDomain: [number, number] | undefined,
): Section | null {
  const series: ChartSeries[] = [];
  const global = metrics.get('train/lr');
  if (global) series.push({ label: 'train/lr', points: global, color: '#333333', style: 'line' });
  for (const task of tasks) {
    const points = metrics.get(tagOf('train', task.tagName, 'lr'));
    if (points)
      series.push({ label: task.name, points, color: PALETTE[series.length % PALETTE.length]!, style: 'line' });
  }
  if (series.length === 0) return null;
  return {
    id: 'lr',
    title: 'Learning rate',
    body: lineChart(series, {
      title: 'learning rate',
      yLabel: 'lr',
      xDomain,
      width: 940,
      height: 260,
      attributes: { 'data-chart': 'lr' },
    }),
  };
}

function stopAndGoSection(
  tasks: TaskView[],
  metrics: MetricSeries,
  xDomain: [number, number] | undefined,
): Section | null {
  const rows = tasks.flatMap((task) => {
    const points = metrics.get(tagOf('val', task.tagName, 'early_stop'));
    return points ? [{ label: task.name, points }] : [];
  });
  if (rows.length === 0) return null;
  return {
    id: 'stop-and-go',
    title: 'Stop-and-go',
    body:
      '<p>A stopped task is trained only every few iterations until its validation score drops clearly below its best.</p>' +
      stateBands(rows, {
        title: 'stop-and-go state per task',
        xDomain,
        onLabel: 'stopped',
        offLabel: 'training',
        attributes: { 'data-chart': 'stop-and-go' },
      }),
  };
}

/** Every tag no task section or the learning-rate chart shows, one chart each, by group. */
function otherMetricsSection(
  tasks: TaskView[],
  metrics: MetricSeries,
  xDomain: [number, number] | undefined,
): Section | null {
  const shown = new Set(['train/lr']);
  for (const task of tasks)
    for (const kind of TASK_KINDS)
      for (const phase of ['train', 'val'] as const) shown.add(tagOf(phase, task.tagName, kind));
  const groups = new Map<string, string[]>();
  for (const tag of [...metrics.keys()].sort()) {
    if (shown.has(tag)) continue;
    const group = tag.includes('/') ? tag.slice(0, tag.indexOf('/')) : 'other';
    groups.set(group, [...(groups.get(group) ?? []), tag]);
  }
  if (groups.size === 0) return null;
  const body = [...groups]
    .map(
      ([group, tags]) =>
        `<h3>${escapeXml(group)}</h3><div class="charts">${tags
          .map((tag) => {
            const points = metrics.get(tag)!;
            return lineChart([{ label: tag, points, color: TRAIN, style: points.length <= 60 ? 'points' : 'line' }], {
              title: tag,
              xDomain,
              attributes: { 'data-chart': 'other' },
            });
          })
          .join('')}</div>`,
    )
    .join('');
  return { id: 'other', title: 'Other metrics', body };
}

function examplesSection(run: RunDirectory, maxExamples: number): Section | null {
  const examples = run.examples;
  if (!examples) return null;
  const parts: string[] = [];
  const more = (count: number) =>
    count > maxExamples ? `<p class="meta">showing ${maxExamples} of ${count}.</p>` : '';
  if (examples.grounding.length > 0) {
    parts.push(
      `<h3>Grounding</h3><p class="meta"><span class="key-truth">solid: true box</span> · <span class="key-predicted">dashed: predicted box</span></p>${more(examples.grounding.length)}` +
        `<div class="cards">${examples.grounding
          .slice(0, maxExamples)
          .map((example) => groundingCard(example, examples.scenes))
          .join('')}</div>`,
    );
  }
  if (examples.vqa.length > 0) {
    parts.push(
      `<h3>Visual question answering</h3>${more(examples.vqa.length)}<div class="cards">${examples.vqa
        .slice(0, maxExamples)
        .map((example) => vqaCard(example, examples.scenes))
        .join('')}</div>`,
    );
  }
  if (examples.retrieval.length > 0) {
    parts.push(
      `<h3>Retrieval</h3>${more(examples.retrieval.length)}${examples.retrieval
        .slice(0, maxExamples)
        .map((example) => retrievalRow(example, examples.scenes))
        .join('')}`,
    );
  }
  return parts.length > 0 ? { id: 'examples', title: 'Examples', body: parts.join('') } : null;
}

function duration(seconds: number): string {
  if (!(seconds >= 0)) return '—';
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return hours > 0
    ? `${hours} h ${minutes} min`
    : minutes > 0
      ? `${minutes} min ${Math.round(seconds % 60)} s`
      : `${Math.round(seconds)} s`;
}

function header(run: RunDirectory, title: string): string {
  const info = run.run;
  const status = info?.status ?? 'unknown';
  const statusClass = ['running', 'finished', 'stopped', 'failed'].includes(status) ? status : 'unknown';
  let lastTime = Number.NaN;
  for (const points of run.metrics.values()) {
    for (const point of points) if (Number.isFinite(point.time) && !(point.time <= lastTime)) lastTime = point.time;
  }
  const started = info?.started ? Date.parse(info.started) / 1000 : Number.NaN;
  const ended = info?.finished ? Date.parse(info.finished) / 1000 : lastTime;
  const facts: [string, string][] = [
    ['started', info?.started ?? '—'],
    ['finished', info?.finished ?? '—'],
    [info?.finished ? 'duration' : 'duration to the last metric', duration(ended - started)],
    ['last metric logged', Number.isFinite(lastTime) ? new Date(lastTime * 1000).toISOString() : '—'],
  ];
  const notes = run.notes.map((note) => `<p class="note">${escapeXml(note)}</p>`).join('');
  return (
    `<header><h1>${escapeXml(title)} <span class="status status-${statusClass}">${escapeXml(status)}</span></h1>` +
    (info?.command ? `<pre class="command">${escapeXml(info.command)}</pre>` : '') +
    `<dl>${facts.map(([name, value]) => `<dt>${escapeXml(name)}</dt><dd>${escapeXml(value)}</dd>`).join('')}</dl>${notes}</header>`
  );
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0 auto;max-width:1000px;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}h2 small{color:#777;font-weight:normal;font-size:13px}h3{font-size:15px;margin:18px 0 6px}
.status{font-size:13px;padding:2px 8px;border-radius:10px;vertical-align:middle;color:#fff;background:#777}
.status-running{background:#1f77b4}.status-finished{background:#2ca02c}.status-stopped{background:#e6a000}.status-failed{background:#d62728}
pre{background:#f6f8fa;padding:8px 10px;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font-size:12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:8px 0}dt{color:#666}dd{margin:0}
.note{background:#fff4e0;border-left:4px solid #e6a000;padding:6px 10px;margin:6px 0}
nav a{margin-right:12px}
table{border-collapse:collapse;margin:8px 0}th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}th{background:#f6f8fa;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}.good{color:#1a7f37}.bad{color:#c62828}
.charts{display:flex;flex-wrap:wrap;gap:12px}figure.chart{margin:0;max-width:100%}figure.chart svg{max-width:100%;height:auto}figcaption{font-weight:600;font-size:13px}
svg text{font-family:inherit}.tick{font-size:10px;fill:#555}.label{font-size:11px;fill:#444}.grid{stroke:#eee}.axis{stroke:#999}
.series-line{fill:none;stroke-width:1;stroke-opacity:.75}.series-points{fill:none;stroke-width:1.5}
.lane{fill:#eef0f3}.band-on{fill:#f0a04b}.decision{stroke:#555;stroke-width:1}
.legend{font-size:12px;color:#444;display:flex;flex-wrap:wrap;gap:4px 14px}.legend em{color:#c62828}
.swatch{display:inline-block;width:14px;height:3px;margin-right:5px;vertical-align:middle}.swatch-points{height:8px;width:8px;border-radius:50%}.swatch-band{height:10px}.swatch-tick{width:2px;height:10px}
.cards{display:flex;flex-wrap:wrap;gap:14px}.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px;background:#fff}
.card.vqa{display:flex;gap:10px}.vqa-side{min-width:180px}.card.retrieval{margin:10px 0}
.query{margin:6px 0;font-weight:500}.meta{color:#666;font-size:12px;margin:4px 0}
.scene-background{fill:#f4f3ee}.scene-missing{fill:#eee;stroke:#bbb}.object{fill-opacity:.85;stroke:#0005;stroke-width:.5}
.object-label{fill:#222;paint-order:stroke;stroke:#fff;stroke-width:.15em}
.answers td{border:0;padding:2px 4px}.answers .bar{width:110px}.answers .bar span{display:block;height:10px;background:#1f77b4;border-radius:2px}.answers tr.correct .bar span{background:#2ca02c}.answers tr.correct .answer{font-weight:600;color:#1a7f37}
.thumbs{display:flex;flex-wrap:wrap;gap:8px}.thumb{border:2px solid transparent;padding:2px;text-align:center;font-size:11px}.thumb span{display:block}.thumb.truth{border-color:#00a651}
.key-truth{color:#00a651}.key-predicted{color:#d6007a}
`;

/** The page for a run already read. */
export function renderReport(run: RunDirectory, options: ReportOptions = {}): string {
  const title = options.title ?? run.dir;
  const tasks = collectTasks(run);
  const xDomain = stepDomain(run.metrics);
  const sections = [
    {
      id: 'summary',
      title: 'Tasks',
      body:
        tasks.length > 0 ? summaryTable(tasks, run.metrics, run.evaluation !== null) : '<p class="empty">no tasks.</p>',
    },
    learningRateSection(tasks, run.metrics, xDomain),
    stopAndGoSection(tasks, run.metrics, xDomain),
    ...tasks.map((task, index) => taskSection(task, index, run.metrics, xDomain)),
    otherMetricsSection(tasks, run.metrics, xDomain),
    examplesSection(run, options.maxExamples ?? 24),
  ].filter((section) => section !== null);
  const config = run.run?.config ?? null;
  const links = sections.map((section) => `<a href="#${section.id}">${escapeXml(section.title)}</a>`).join('');
  return (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>' +
    `<title>${escapeXml(title)}</title><style>${STYLE}</style></head><body>` +
    header(run, title) +
    `<nav>${links}</nav>` +
    sections
      .map(
        (section) =>
          `<section id="${section.id}"><h2>${escapeXml(section.title)}${section.subtitle ? ` <small>${escapeXml(section.subtitle)}</small>` : ''}</h2>${section.body}</section>\n`,
      )
      .join('') +
    (config === null
      ? ''
      : `<details><summary>configuration</summary><pre>${escapeXml(JSON.stringify(config, null, 2))}</pre></details>`) +
    '</body></html>\n'
  );
}

/** Reads the run directory and writes its report atomically; returns the report's path. */
export function writeReport(runDir: string, options: ReportOptions = {}): string {
  const output = options.output ?? join(runDir, 'report.html');
  writeFileAtomic(output, renderReport(readRunDirectory(runDir), options));
  return output;
}
