// The report's example pictures: each scene (an image described by its objects) drawn as
// inline SVG, with grounding boxes over it, VQA answers beside it, or a retrieval ranking
// as a row of thumbnails.
import type { Box, GroundingExample, RetrievalExample, Scene, SceneObject, VqaExample } from './run-files.js';
import { escapeXml, formatNumber, safeColor } from './svg.js';

const PREDICTED = '#d6007a';
const TRUTH = '#00a651';

// Scenes of the synthetic data sets describe objects by words ("red small ball"); a label
// that names a round thing draws as an ellipse unless the scene says which shape to use.
const ROUND = /\b(ball|balls|sphere|spheres|circle|circles|disc|disk|round)\b/i;

function isRound(object: SceneObject): boolean {
  return object.shape === null ? ROUND.test(object.label) : object.shape === 'ellipse';
}

const number = (value: number) => String(Math.round(value * 100) / 100);

function boxRect(box: Box, attributes: string, title: string): string {
  const [x1, y1, x2, y2] = box;
  return `<rect x="${number(Math.min(x1, x2))}" y="${number(Math.min(y1, y2))}" width="${number(Math.abs(x2 - x1))}" height="${number(Math.abs(y2 - y1))}" ${attributes}><title>${escapeXml(title)}</title></rect>`;
}

function drawObject(object: SceneObject, fontSize: number, labels: boolean): string {
  const [x1, y1, x2, y2] = object.box;
  const color = escapeXml(safeColor(object.color, '#9aa0a6'));
  const title = `<title>${escapeXml(object.label)}</title>`;
  const shape = isRound(object)
    ? `<ellipse cx="${number((x1 + x2) / 2)}" cy="${number((y1 + y2) / 2)}" rx="${number(Math.abs(x2 - x1) / 2)}" ry="${number(Math.abs(y2 - y1) / 2)}" fill="${color}" class="object">${title}</ellipse>`
    : `<rect x="${number(Math.min(x1, x2))}" y="${number(Math.min(y1, y2))}" width="${number(Math.abs(x2 - x1))}" height="${number(Math.abs(y2 - y1))}" fill="${color}" class="object">${title}</rect>`;
  if (!labels || object.label === '') return shape;
  const text = `<text class="object-label" x="${number(Math.min(x1, x2))}" y="${number(Math.max(y1, y2) + fontSize)}" font-size="${number(fontSize)}">${escapeXml(object.label)}</text>`;
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
  for (const object of scene.objects) parts.push(drawObject(object, fontSize, options.labels));
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
