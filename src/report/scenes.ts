// The report's example pictures: each scene (an image described by its objects) drawn as
// inline SVG, with grounding boxes over it, VQA answers beside it, or a retrieval ranking
// as a row of thumbnails.
import type {
  Box,
  DrawnShape,
  GroundingExample,
  RetrievalExample,
  Scene,
  SceneObject,
  VqaExample,
} from './run-files.js';
import { escapeXml, formatNumber, safeColor } from './svg.js';

const PREDICTED = '#d6007a';
const TRUTH = '#00a651';

// Scenes of the synthetic data sets describe objects by words ("red small cone"); without a
// `shape`, the last word of the label that names a shape decides, else a rectangle.
const WORD_SHAPES: readonly [RegExp, DrawnShape][] = [
  [/\b(ball|sphere|circle|disc|disk|round)s?\b/i, 'ellipse'],
  [/\bcones?\b/i, 'cone'],
  [/\bcylinders?\b/i, 'cylinder'],
  [/\brings?\b/i, 'ring'],
  [/\bstars?\b/i, 'star'],
  [/\bhearts?\b/i, 'heart'],
  [/\bbox(es)?\b/i, 'box'],
];

function shapeOf(object: SceneObject): DrawnShape {
  return object.shape ?? WORD_SHAPES.find(([pattern]) => pattern.test(object.label))?.[1] ?? 'rect';
}

const number = (value: number) => String(Math.round(value * 100) / 100);
const points = (list: readonly [number, number][]) => list.map(([x, y]) => `${number(x)},${number(y)}`).join(' ');

function boxRect(box: Box, attributes: string, title: string): string {
  const [x1, y1, x2, y2] = box;
  return `<rect x="${number(Math.min(x1, x2))}" y="${number(Math.min(y1, y2))}" width="${number(Math.abs(x2 - x1))}" height="${number(Math.abs(y2 - y1))}" ${attributes}><title>${escapeXml(title)}</title></rect>`;
}

/** The SVG elements of a shape filling the box (x, y, w, h), in `fill`. */
function shapeElements(shape: DrawnShape, x: number, y: number, w: number, h: number, fill: string): string {
  const cx = x + w / 2;
  const cy = y + h / 2;
  const paint = `fill="${fill}"`;
  const shade = 'fill="#000" fill-opacity=".18"';
  switch (shape) {
    case 'rect':
      return `<rect x="${number(x)}" y="${number(y)}" width="${number(w)}" height="${number(h)}" ${paint}/>`;
    case 'ellipse':
      return `<ellipse cx="${number(cx)}" cy="${number(cy)}" rx="${number(w / 2)}" ry="${number(h / 2)}" ${paint}/>`;
    case 'cone': {
      const rim = h * 0.1;
      return (
        `<path d="M${number(cx)} ${number(y)}L${number(x + w)} ${number(y + h - rim)}A${number(w / 2)} ${number(rim)} 0 0 1 ${number(x)} ${number(y + h - rim)}Z" ${paint}/>` +
        `<ellipse cx="${number(cx)}" cy="${number(y + h - rim)}" rx="${number(w / 2)}" ry="${number(rim)}" ${shade}/>`
      );
    }
    case 'cylinder': {
      const rim = Math.min(h * 0.12, w * 0.3);
      return (
        `<path d="M${number(x)} ${number(y + rim)}V${number(y + h - rim)}A${number(w / 2)} ${number(rim)} 0 0 0 ${number(x + w)} ${number(y + h - rim)}V${number(y + rim)}Z" ${paint}/>` +
        `<ellipse cx="${number(cx)}" cy="${number(y + rim)}" rx="${number(w / 2)}" ry="${number(rim)}" ${paint}/>` +
        `<ellipse cx="${number(cx)}" cy="${number(y + rim)}" rx="${number(w / 2)}" ry="${number(rim)}" ${shade}/>`
      );
    }
    case 'ring': {
      const band = 0.22 * Math.min(w, h);
      return `<ellipse cx="${number(cx)}" cy="${number(cy)}" rx="${number((w - band) / 2)}" ry="${number((h - band) / 2)}" fill="none" stroke="${fill}" stroke-width="${number(band)}" class="ring"/>`;
    }
    case 'star': {
      // Outer radii that make the five points touch the box's edges (the lower points sit at 0.81 of the radius).
      const [rx, ry] = [w / 2 / Math.sin((2 * Math.PI) / 5), h / (1 + Math.cos(Math.PI / 5))];
      const corners = Array.from({ length: 10 }, (_, i): [number, number] => {
        const radius = i % 2 === 0 ? 1 : 0.42;
        const angle = -Math.PI / 2 + (i * Math.PI) / 5;
        return [cx + radius * rx * Math.cos(angle), y + ry + radius * ry * Math.sin(angle)];
      });
      return `<polygon points="${points(corners)}" ${paint}/>`;
    }
    case 'heart':
      return `<path d="M${number(cx)} ${number(y + h)}C${number(x - w * 0.05)} ${number(y + h * 0.55)} ${number(x)} ${number(y - h * 0.1)} ${number(cx)} ${number(y + h * 0.28)}C${number(x + w)} ${number(y - h * 0.1)} ${number(x + w * 1.05)} ${number(y + h * 0.55)} ${number(cx)} ${number(y + h)}Z" ${paint}/>`;
    case 'box': {
      const depth = 0.22 * Math.min(w, h);
      return (
        `<rect x="${number(x)}" y="${number(y + depth)}" width="${number(w - depth)}" height="${number(h - depth)}" ${paint}/>` +
        `<polygon points="${points([
          [x, y + depth],
          [x + depth, y],
          [x + w, y],
          [x + w - depth, y + depth],
        ])}" ${paint}/>` +
        `<polygon points="${points([
          [x + w - depth, y + depth],
          [x + w, y],
          [x + w, y + h - depth],
          [x + w - depth, y + h],
        ])}" ${paint}/>` +
        `<polygon points="${points([
          [x + w - depth, y + depth],
          [x + w, y],
          [x + w, y + h - depth],
          [x + w - depth, y + h],
        ])}" ${shade}/>`
      );
    }
  }
}

/** About how wide a label's text runs (sans-serif, ~0.55 em per character). */
const textWidth = (text: string, fontSize: number) => 0.55 * fontSize * text.length;

function drawObject(object: SceneObject, scene: Scene, fontSize: number, labels: boolean): string {
  const [x1, y1, x2, y2] = object.box;
  const [left, top] = [Math.min(x1, x2), Math.min(y1, y2)];
  const [right, bottom] = [Math.max(x1, x2), Math.max(y1, y2)];
  const color = escapeXml(safeColor(object.color, '#9aa0a6'));
  const kind = shapeOf(object);
  const shape =
    `<g class="object" data-shape="${kind}"><title>${escapeXml(object.label)}</title>` +
    shapeElements(kind, left, top, right - left, bottom - top, color) +
    '</g>';
  if (!labels || object.label === '') return shape;
  // Below the object, or above it at the bottom edge; shifted left at the right edge: inside the picture.
  const width = textWidth(object.label, fontSize);
  const x = Math.max(0, Math.min(left, scene.width - width));
  const y = bottom + fontSize <= scene.height ? bottom + fontSize : Math.max(fontSize, top - fontSize * 0.3);
  const text = `<text class="object-label" x="${number(x)}" y="${number(y)}" font-size="${number(fontSize)}">${escapeXml(object.label)}</text>`;
  return shape + text;
}

export interface SceneOptions {
  /** Displayed width in CSS pixels; the height follows the scene's aspect ratio. */
  width: number;
  labels: boolean;
  /** Boxes drawn over the scene. */
  overlays?: { box: Box; kind: 'predicted' | 'truth'; title: string }[];
  className?: string;
}

/** The scene as an <svg> in its own pixel coordinates; a missing scene is a labelled placeholder. */
export function drawScene(scene: Scene | undefined, imageId: string, options: SceneOptions): string {
  const className = `scene${options.className ? ` ${options.className}` : ''}`;
  if (!scene) {
    const height = Math.round(options.width * 0.75);
    return (
      `<svg xmlns="http://www.w3.org/2000/svg" class="${className}" viewBox="0 0 ${options.width} ${height}" width="${options.width}" height="${height}">` +
      `<rect class="scene-missing" x="0" y="0" width="${options.width}" height="${height}"/>` +
      `<text class="label" x="${options.width / 2}" y="${height / 2}" text-anchor="middle">no scene for image ${escapeXml(imageId)}</text></svg>`
    );
  }
  const { width, height } = scene;
  const size = Math.max(width, height);
  const fontSize = size / 28;
  const stroke = size / 120;
  const parts = [`<rect class="scene-background" x="0" y="0" width="${number(width)}" height="${number(height)}"/>`];
  for (const object of scene.objects) parts.push(drawObject(object, scene, fontSize, options.labels));
  for (const overlay of options.overlays ?? []) {
    const color = overlay.kind === 'predicted' ? PREDICTED : TRUTH;
    const dash = overlay.kind === 'predicted' ? ` stroke-dasharray="${number(stroke * 3)} ${number(stroke * 2)}"` : '';
    parts.push(
      boxRect(
        overlay.box,
        `class="overlay-${overlay.kind}" fill="none" stroke="${color}" stroke-width="${number(stroke)}"${dash}`,
        overlay.title,
      ),
    );
  }
  const displayHeight = Math.round((options.width * height) / width);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="${className}" viewBox="0 0 ${number(width)} ${number(height)}" width="${options.width}" height="${displayHeight}" role="img" aria-label="image ${escapeXml(imageId)}">` +
    `<title>image ${escapeXml(imageId)}</title>${parts.join('')}</svg>`
  );
}

const boxText = (box: Box) => `[${box.map((value) => formatNumber(value)).join(', ')}]`;

export function groundingCard(example: GroundingExample, scenes: Map<string, Scene>): string {
  const overlays: NonNullable<SceneOptions['overlays']> = [];
  if (example.truth) overlays.push({ box: example.truth, kind: 'truth', title: `true box ${boxText(example.truth)}` });
  if (example.predicted)
    overlays.push({ box: example.predicted, kind: 'predicted', title: `predicted box ${boxText(example.predicted)}` });
  const iou =
    example.iou === null
      ? ''
      : ` <span class="${example.iou >= 0.5 ? 'good' : 'bad'}">IoU ${escapeXml(formatNumber(example.iou))}</span>`;
  return (
    `<div class="card grounding" data-image="${escapeXml(example.imageId)}">` +
    drawScene(scenes.get(example.imageId), example.imageId, { width: 300, labels: true, overlays }) +
    `<p class="query">“${escapeXml(example.text)}”</p>` +
    `<p class="meta">${escapeXml(example.task)}, image ${escapeXml(example.imageId)}${iou}</p></div>`
  );
}

export function vqaCard(example: VqaExample, scenes: Map<string, Scene>): string {
  const truth = new Set(example.truth);
  const top = Math.max(1, ...example.answers.map((answer) => answer.score));
  const rows = example.answers
    .map((answer) => {
      const width = Math.max(0, Math.min(100, (answer.score / top) * 100));
      const correct = truth.has(answer.answer);
      return (
        `<tr${correct ? ' class="correct"' : ''}><td class="answer">${correct ? '✓ ' : ''}${escapeXml(answer.answer)}</td>` +
        `<td class="bar"><span style="width:${width.toFixed(1)}%"></span></td><td class="num">${escapeXml(formatNumber(answer.score))}</td></tr>`
      );
    })
    .join('');
  return (
    `<div class="card vqa" data-image="${escapeXml(example.imageId)}">` +
    drawScene(scenes.get(example.imageId), example.imageId, { width: 260, labels: true }) +
    `<div class="vqa-side"><p class="query">${escapeXml(example.question)}</p>` +
    `<table class="answers"><tbody>${rows}</tbody></table>` +
    `<p class="meta">truth: ${escapeXml(example.truth.join(', ') || '—')}; ${escapeXml(example.task)}, image ${escapeXml(example.imageId)}</p></div></div>`
  );
}

export function retrievalRow(example: RetrievalExample, scenes: Map<string, Scene>, shown = 8): string {
  const truthRank = example.ranked.findIndex((entry) => entry.imageId === example.truth);
  const thumbnails = example.ranked
    .slice(0, shown)
    .map((entry, index) => {
      const isTruth = entry.imageId === example.truth;
      return (
        `<div class="thumb${isTruth ? ' truth' : ''}">` +
        drawScene(scenes.get(entry.imageId), entry.imageId, { width: 110, labels: false }) +
        `<span>#${index + 1} · ${escapeXml(formatNumber(entry.score))}${isTruth ? ' ✓' : ''}</span></div>`
      );
    })
    .join('');
  const rank =
    truthRank < 0
      ? 'the true image is not in the ranking'
      : `true image ${escapeXml(example.truth)} at rank ${truthRank + 1}`;
  return (
    `<div class="card retrieval"><p class="query">“${escapeXml(example.caption)}”</p>` +
    `<div class="thumbs">${thumbnails}</div><p class="meta">${escapeXml(example.task)}; ${rank}</p></div>`
  );
}
