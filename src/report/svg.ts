// Charts for the report, drawn as inline SVG strings.
//
// Why not vega-lite + vega-embed (the usual pick for such charts): the report must open offline, so
// their bundles (~1 MB) would be inlined into every report, and the page would need
// JavaScript to show anything. The report needs lines, points and bands on linear axes,
// which a few hundred lines of SVG draw; hovering a point still shows its value (<title>).
import type { MetricPoint } from './metrics-log.js';

const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for HTML or SVG content and attribute values; drops characters XML forbids. */
export function escapeXml(text: string): string {
  // eslint-disable-next-line no-control-regex
  const forbidden = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;
  return text.replace(forbidden, '\uFFFD').replace(/[&<>"']/g, (character) => XML_ESCAPES[character]!);
}

/** A CSS colour from the input files, or `fallback` when it is not a plain colour. */
export function safeColor(color: string, fallback: string): string {
  return /^(#[0-9a-f]{3,8}|[a-z]{3,20}|(rgb|hsl)a?\([\d\s.,%]+\))$/i.test(color.trim()) ? color.trim() : fallback;
}

/** Compact numbers for axes, tables and tooltips: 4 significant digits, exponents outside [1e-3, 1e6). */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1e6 || magnitude < 1e-3) return value.toExponential(2).replace(/\.?0+e/, 'e');
  return String(Number(value.toPrecision(4)));
}

/** About `count` round tick values covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let tick = Math.ceil(min / step) * step; tick <= max + step * 1e-9; tick += step)
    ticks.push(Number(tick.toPrecision(12)));
  return ticks;
}

export const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];

export interface ChartSeries {
  label: string;
  points: readonly MetricPoint[];
  color: string;
  /** 'line': a thin line (train curves); 'points': markers joined by a line (evaluations). */
  style: 'line' | 'points';
}

export interface ChartOptions {
  title: string;
  /** Step range shared by the charts of a run, so that they line up. */
  xDomain?: [number, number];
  yLabel?: string;
  width?: number;
  height?: number;
  /** Extra attributes of the <figure>, e.g. data-task. */
  attributes?: Record<string, string>;
}

const MARGIN = { left: 58, right: 14, top: 10, bottom: 34 };

interface Scale {
  (value: number): number;
  domain: [number, number];
}

function linearScale(domain: [number, number], range: [number, number]): Scale {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const scale = ((value: number) => r0 + ((value - d0) / (d1 - d0 || 1)) * (r1 - r0)) as Scale;
  scale.domain = domain;
  return scale;
}

function extent(values: number[]): [number, number] | null {
  // A loop, not Math.min(...values): a long run has more values than a call has arguments.
  let [low, high] = [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  for (const value of values) {
    if (!Number.isFinite(value)) continue;
    if (value < low) low = value;
    if (value > high) high = value;
  }
  if (low > high) return null;
  if (low === high) [low, high] = low === 0 ? [-1, 1] : [low - Math.abs(low) * 0.1, high + Math.abs(high) * 0.1];
  return [low, high];
}

/** Runs of finite points; a NaN or infinite value breaks the line. */
function finiteRuns(points: readonly MetricPoint[]): MetricPoint[][] {
  const runs: MetricPoint[][] = [[]];
  for (const point of points) {
    if (Number.isFinite(point.value)) runs[runs.length - 1]!.push(point);
    else if (runs[runs.length - 1]!.length > 0) runs.push([]);
  }
  return runs.filter((run) => run.length > 0);
}

/**
 * At most ~4 points per horizontal pixel (first, lowest, highest, last): a 100k-step loss
 * curve keeps its spikes and its shape, and the report stays small.
 */
function decimate(points: MetricPoint[], x: Scale): MetricPoint[] {
  const [left, right] = [x(x.domain[0]), x(x.domain[1])];
  if (points.length <= 4 * (right - left)) return points;
  const kept: MetricPoint[] = [];
  let bucket: MetricPoint[] = [];
  const flush = () => {
    if (bucket.length === 0) return;
    const low = bucket.reduce((a, b) => (b.value < a.value ? b : a));
    const high = bucket.reduce((a, b) => (b.value > a.value ? b : a));
    const chosen = new Set([bucket[0]!, low, high, bucket[bucket.length - 1]!]);
    kept.push(...bucket.filter((point) => chosen.has(point)));
    bucket = [];
  };
  let pixel = Number.NaN;
  for (const point of points) {
    const at = Math.floor(x(point.step));
    if (at !== pixel) flush();
    pixel = at;
    bucket.push(point);
  }
  flush();
  return kept;
}

const coordinate = (value: number) => String(Math.round(value * 10) / 10);

function axes(x: Scale, y: Scale, width: number, height: number, yLabel: string | undefined): string {
  const parts: string[] = [];
  const [bottom, top] = [height - MARGIN.bottom, MARGIN.top];
  for (const tick of niceTicks(...y.domain)) {
    const at = coordinate(y(tick));
    parts.push(`<line class="grid" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${at}" y2="${at}"/>`);
    parts.push(
      `<text class="tick" x="${MARGIN.left - 5}" y="${at}" text-anchor="end" dominant-baseline="middle">${escapeXml(formatNumber(tick))}</text>`,
    );
  }
  for (const tick of niceTicks(...x.domain, 6)) {
    const at = coordinate(x(tick));
    parts.push(`<line class="axis" x1="${at}" x2="${at}" y1="${bottom}" y2="${bottom + 4}"/>`);
    parts.push(
      `<text class="tick" x="${at}" y="${bottom + 15}" text-anchor="middle">${escapeXml(formatNumber(tick))}</text>`,
    );
  }
  parts.push(`<line class="axis" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${bottom}" y2="${bottom}"/>`);
  parts.push(`<line class="axis" x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${top}" y2="${bottom}"/>`);
  parts.push(
    `<text class="label" x="${(MARGIN.left + width - MARGIN.right) / 2}" y="${height - 4}" text-anchor="middle">iteration</text>`,
  );
  if (yLabel)
    parts.push(
      `<text class="label" transform="translate(12 ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text>`,
    );
  return parts.join('');
}

function drawSeries(series: ChartSeries, x: Scale, y: Scale): string {
  const parts: string[] = [];
  const color = escapeXml(series.color);
  const label = escapeXml(series.label);
  for (const run of finiteRuns(series.points)) {
    const points = decimate(run, x);
    const vertices = points.map((point) => `${coordinate(x(point.step))} ${coordinate(y(point.value))}`);
    const path = vertices
      .filter((vertex, index) => index === 0 || vertex !== vertices[index - 1])
      .map((vertex, index) => `${index === 0 ? 'M' : 'L'}${vertex}`)
      .join('');
    parts.push(`<path class="series-${series.style}" d="${path}" stroke="${color}"><title>${label}</title></path>`);
    if (series.style === 'points') {
      for (const point of points) {
        parts.push(
          `<circle cx="${coordinate(x(point.step))}" cy="${coordinate(y(point.value))}" r="2.8" fill="${color}"><title>${label}, iteration ${point.step}: ${escapeXml(formatNumber(point.value))}</title></circle>`,
        );
      }
    }
  }
  return parts.join('');
}

function legend(items: { label: string; color: string; style: string; note?: string }[]): string {
  return `<div class="legend">${items
    .map(
      (item) =>
        `<span><i class="swatch swatch-${escapeXml(item.style)}" style="background:${escapeXml(item.color)}"></i>${escapeXml(item.label)}${item.note ? ` <em>${escapeXml(item.note)}</em>` : ''}</span>`,
    )
    .join('')}</div>`;
}

function figureAttributes(attributes: Record<string, string> | undefined): string {
  return Object.entries(attributes ?? {})
    .map(([name, value]) => ` ${name}="${escapeXml(value)}"`)
    .join('');
}

/** A line chart of metric series against the iteration; series without finite points are listed but not drawn. */
export function lineChart(series: readonly ChartSeries[], options: ChartOptions): string {
  const width = options.width ?? 460;
  const height = options.height ?? 240;
  const all = series.flatMap((entry) => entry.points);
  const xDomain = options.xDomain ?? extent(all.map((point) => point.step));
  const yDomain = extent(all.map((point) => point.value));
  const notes = series.map((entry) => {
    const nonFinite = entry.points.filter((point) => !Number.isFinite(point.value)).length;
    return nonFinite > 0 ? `${nonFinite} non-finite value${nonFinite === 1 ? '' : 's'} not drawn` : undefined;
  });
  let body: string;
  if (!xDomain || !yDomain) {
    body = `<text class="label" x="${width / 2}" y="${height / 2}" text-anchor="middle">no finite values</text>`;
  } else {
    const yPadding = (yDomain[1] - yDomain[0]) * 0.05;
    const x = linearScale(xDomain[0] === xDomain[1] ? [xDomain[0] - 1, xDomain[1] + 1] : xDomain, [
      MARGIN.left,
      width - MARGIN.right,
    ]);
    const y = linearScale([yDomain[0] - yPadding, yDomain[1] + yPadding], [height - MARGIN.bottom, MARGIN.top]);
    body = axes(x, y, width, height, options.yLabel) + series.map((entry) => drawSeries(entry, x, y)).join('');
  }
  return (
    `<figure class="chart"${figureAttributes(options.attributes)}><figcaption>${escapeXml(options.title)}</figcaption>` +
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(options.title)}">${body}</svg>` +
    `${legend(series.map((entry, index) => ({ label: entry.label, color: entry.color, style: entry.style, note: notes[index] })))}</figure>`
  );
}

export interface StateRow {
  label: string;
  /** 0/1 states at the iterations they were decided; each holds until the next. */
  points: readonly MetricPoint[];
}

/** One lane per row, shaded where the state is 1, ticked at every decision. */
export function stateBands(
  rows: readonly StateRow[],
  options: ChartOptions & { onLabel: string; offLabel: string },
): string {
  const width = options.width ?? 940;
  const laneHeight = 20;
  const labelWidth = 150;
  const height = MARGIN.top + rows.length * laneHeight + MARGIN.bottom;
  const domain = options.xDomain ?? extent(rows.flatMap((row) => row.points.map((point) => point.step))) ?? [0, 1];
  const x = linearScale(domain[0] === domain[1] ? [domain[0], domain[0] + 1] : domain, [
    labelWidth,
    width - MARGIN.right,
  ]);
  const parts: string[] = [];
  rows.forEach((row, index) => {
    const top = MARGIN.top + index * laneHeight;
    const label = escapeXml(row.label);
    parts.push(
      `<text class="tick" x="${labelWidth - 6}" y="${top + laneHeight / 2}" text-anchor="end" dominant-baseline="middle">${label}</text>`,
    );
    parts.push(
      `<rect class="lane" x="${labelWidth}" y="${top + 2}" width="${coordinate(width - MARGIN.right - labelWidth)}" height="${laneHeight - 4}"/>`,
    );
    // One band per stretch of 1s: from the decision to stop until the decision to go on.
    let onSince: number | null = null;
    const band = (start: number, end: number, endText: string) => {
      const [from, to] = [x(Math.max(start, x.domain[0])), x(Math.min(end, x.domain[1]))];
      parts.push(
        `<rect class="band-on" x="${coordinate(from)}" y="${top + 2}" width="${coordinate(Math.max(to - from, 1))}" height="${laneHeight - 4}">` +
          `<title>${label}: ${escapeXml(options.onLabel)} from iteration ${start} ${endText}</title></rect>`,
      );
    };
    for (const point of row.points) {
      if (point.value === 1 && onSince === null) onSince = point.step;
      if (point.value !== 1 && onSince !== null) {
        band(onSince, point.step, `to ${point.step}`);
        onSince = null;
      }
      parts.push(
        `<line class="decision" x1="${coordinate(x(point.step))}" x2="${coordinate(x(point.step))}" y1="${top + 2}" y2="${top + laneHeight - 2}"/>`,
      );
    }
    if (onSince !== null) band(onSince, x.domain[1], 'on');
  });
  const bottom = MARGIN.top + rows.length * laneHeight;
  for (const tick of niceTicks(...x.domain, 8)) {
    parts.push(
      `<text class="tick" x="${coordinate(x(tick))}" y="${bottom + 15}" text-anchor="middle">${escapeXml(formatNumber(tick))}</text>`,
    );
  }
  parts.push(
    `<text class="label" x="${(labelWidth + width - MARGIN.right) / 2}" y="${height - 4}" text-anchor="middle">iteration</text>`,
  );
  return (
    `<figure class="chart wide"${figureAttributes(options.attributes)}><figcaption>${escapeXml(options.title)}</figcaption>` +
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(options.title)}">${parts.join('')}</svg>` +
    `${legend([
      { label: options.onLabel, color: '#f0a04b', style: 'band' },
      { label: options.offLabel, color: '#eef0f3', style: 'band' },
      { label: 'evaluation', color: '#555', style: 'tick' },
    ])}</figure>`
  );
}
