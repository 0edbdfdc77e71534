// Reading a run directory for the report: metrics.jsonl and run.json as the trainer writes
// them, and the optional eval.json, examples.json and the scenes it points to. Checked by
// hand (a few fields each); every error names the file and the field.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readMetrics, type MetricSeries } from './metrics-log.js';
import { VilbertError } from '../vilbert-error.js';

export class ReportInputError extends VilbertError {
  override readonly name = 'ReportInputError';
  override readonly code = 'E_REPORT_INPUT';

  constructor(
    readonly file: string,
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${file}: ${field === '' ? '' : `${field}: `}${problem}`);
  }
}

export interface RunTask {
  key: string;
  name: string;
  type: string;
}

export interface RunInfo {
  command: string;
  tasks: RunTask[];
  config: unknown;
  started: string | null;
  finished: string | null;
  /** 'running' | 'finished' | 'stopped' | 'failed' as the trainer writes it; shown as is. */
  status: string;
}

export interface EvalResult {
  task: string;
  key: string | null;
  type: string | null;
  metric: string;
  score: number;
  chance: number | null;
  /** Blind baselines (the demo's eval.json): the best score from the text alone, from the image alone. */
  textOnly: number | null;
  imageOnly: number | null;
  /** Whether the score clears the demo's bounds, in words. */
  verdict: string | null;
  count: number | null;
  extra: Record<string, number>;
}

/** [x1, y1, x2, y2] in the scene's pixel coordinates. */
export type Box = [number, number, number, number];

/** The shapes a scene object can be drawn as ('box' is a cuboid, 'rect' a flat rectangle). */
export const DRAWN_SHAPES = ['rect', 'ellipse', 'cone', 'cylinder', 'ring', 'star', 'heart', 'box'] as const;
export type DrawnShape = (typeof DRAWN_SHAPES)[number];

export interface SceneObject {
  box: Box;
  label: string;
  color: string;
  /** Drawn shape; without it, the shape a word of the label names (a ball is an ellipse), else a rectangle. */
  shape: DrawnShape | null;
}

export interface Scene {
  width: number;
  height: number;
  objects: SceneObject[];
}

export interface GroundingExample {
  task: string;
  imageId: string;
  text: string;
  predicted: Box | null;
  truth: Box | null;
  iou: number | null;
}

export interface VqaExample {
  task: string;
  imageId: string;
  question: string;
  answers: { answer: string; score: number }[];
  truth: string[];
}

export interface RetrievalExample {
  task: string;
  caption: string;
  ranked: { imageId: string; score: number }[];
  truth: string;
}

export interface Examples {
  grounding: GroundingExample[];
  vqa: VqaExample[];
  retrieval: RetrievalExample[];
  scenes: Map<string, Scene>;
}

export interface RunDirectory {
  dir: string;
  run: RunInfo | null;
  metrics: MetricSeries;
  evaluation: EvalResult[] | null;
  examples: Examples | null;
  /** Things the reader of the report should know about its inputs (a truncated log, a missing file). */
  notes: string[];
}

type Json = Record<string, unknown>;

/** Field accessors bound to one file, so that every message names it. */
class Fields {
  constructor(readonly file: string) {}

  fail(field: string, problem: string): never {
    throw new ReportInputError(this.file, field, problem);
  }

  object(value: unknown, field: string): Json {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      this.fail(field, `expected an object, found ${kind(value)}`);
    return value as Json;
  }

  array(value: unknown, field: string): unknown[] {
    if (!Array.isArray(value)) this.fail(field, `expected an array, found ${kind(value)}`);
    return value;
  }

  string(object: Json, key: string, field: string): string {
    const value = object[key];
    if (typeof value !== 'string') this.fail(`${field}.${key}`, `expected a string, found ${kind(value)}`);
    return value;
  }

  optionalString(object: Json, key: string, field: string): string | null {
    return object[key] === undefined || object[key] === null ? null : this.string(object, key, field);
  }

  /** Image ids are strings in the examples but numbers in some datasets: accept both. */
  id(object: Json, key: string, field: string): string {
    const value = object[key];
    if (typeof value === 'number') return String(value);
    return this.string(object, key, field);
  }

  number(object: Json, key: string, field: string): number {
    const value = object[key];
    if (typeof value !== 'number') this.fail(`${field}.${key}`, `expected a number, found ${kind(value)}`);
    return value;
  }

  optionalNumber(object: Json, key: string, field: string): number | null {
    return object[key] === undefined || object[key] === null ? null : this.number(object, key, field);
  }

  box(object: Json, key: string, field: string): Box {
    const value = object[key];
    if (
      !Array.isArray(value) ||
      value.length !== 4 ||
      !value.every((x) => typeof x === 'number' && Number.isFinite(x))
    ) {
      this.fail(`${field}.${key}`, `expected a box [x1, y1, x2, y2] of 4 finite numbers, found ${kind(value)}`);
    }
    return value as Box;
  }

  optionalBox(object: Json, key: string, field: string): Box | null {
    return object[key] === undefined || object[key] === null ? null : this.box(object, key, field);
  }
}

function kind(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function readJson(path: string): unknown {
  const text = readFileSync(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ReportInputError(path, '', `not valid JSON (${(error as Error).message})`);
  }
}

export function readRunInfo(path: string): RunInfo {
  const fields: Fields = new Fields(path);
  const run = fields.object(readJson(path), '');
  const tasks =
    run.tasks === undefined
      ? []
      : fields.array(run.tasks, 'tasks').map((value, index) => {
          const where = `tasks[${index}]`;
          const task = fields.object(value, where);
          return {
            key: fields.optionalString(task, 'key', where) ?? '',
            name: fields.string(task, 'name', where),
            type: fields.optionalString(task, 'type', where) ?? '',
          };
        });
  return {
    command: fields.optionalString(run, 'command', '') ?? '',
    tasks,
    config: run.config ?? null,
    started: fields.optionalString(run, 'started', ''),
    finished: fields.optionalString(run, 'finished', ''),
    status: fields.optionalString(run, 'status', '') ?? 'unknown',
  };
}

export function readEvalResults(path: string): EvalResult[] {
  const fields: Fields = new Fields(path);
  return fields.array(readJson(path), '').map((value, index) => {
    const where = `[${index}]`;
    const result = fields.object(value, where);
    const extra: Record<string, number> = {};
    if (result.extra !== undefined && result.extra !== null) {
      const extras = fields.object(result.extra, `${where}.extra`);
      for (const name of Object.keys(extras)) extra[name] = fields.number(extras, name, `${where}.extra`);
    }
    return {
      task: fields.string(result, 'task', where),
      key: fields.optionalString(result, 'key', where),
      type: fields.optionalString(result, 'type', where),
      metric: fields.optionalString(result, 'metric', where) ?? 'score',
      score: fields.number(result, 'score', where),
      chance: fields.optionalNumber(result, 'chance', where),
      textOnly: fields.optionalNumber(result, 'textOnly', where),
      imageOnly: fields.optionalNumber(result, 'imageOnly', where),
      verdict: fields.optionalString(result, 'verdict', where),
      count: fields.optionalNumber(result, 'count', where),
      extra,
    };
  });
}

export function readScenes(value: unknown, file: string): Map<string, Scene> {
  const fields: Fields = new Fields(file);
  const scenes = new Map<string, Scene>();
  for (const [imageId, sceneValue] of Object.entries(fields.object(value, ''))) {
    const where = JSON.stringify(imageId);
    const scene = fields.object(sceneValue, where);
    const width = fields.number(scene, 'width', where);
    const height = fields.number(scene, 'height', where);
    if (!(width > 0 && height > 0)) fields.fail(where, `width and height must be positive, found ${width} x ${height}`);
    const objects = (scene.objects === undefined ? [] : fields.array(scene.objects, `${where}.objects`)).map(
      (objectValue, index) => {
        const at = `${where}.objects[${index}]`;
        const object = fields.object(objectValue, at);
        const shape = fields.optionalString(object, 'shape', at);
        if (shape !== null && !(DRAWN_SHAPES as readonly string[]).includes(shape))
          fields.fail(`${at}.shape`, `expected one of ${DRAWN_SHAPES.join(', ')}, found ${kind(shape)}`);
        return {
          box: fields.box(object, 'box', at),
          label: fields.optionalString(object, 'label', at) ?? '',
          color: fields.optionalString(object, 'color', at) ?? '',
          shape: shape as SceneObject['shape'],
        };
      },
    );
    scenes.set(imageId, { width, height, objects });
  }
  return scenes;
}

export function readExamples(path: string, runDir: string): Examples {
  const fields: Fields = new Fields(path);
  const examples = fields.object(readJson(path), '');
  const list = (key: string) =>
    (examples[key] === undefined ? [] : fields.array(examples[key], key)).map((value, index) => ({
      at: `${key}[${index}]`,
      item: fields.object(value, `${key}[${index}]`),
    }));
  const grounding = list('grounding').map(({ at, item }) => ({
    task: fields.string(item, 'task', at),
    imageId: fields.id(item, 'image_id', at),
    text: fields.string(item, 'text', at),
    predicted: fields.optionalBox(item, 'predicted', at),
    truth: fields.optionalBox(item, 'truth', at),
    iou: fields.optionalNumber(item, 'iou', at),
  }));
  const vqa = list('vqa').map(({ at, item }) => ({
    task: fields.string(item, 'task', at),
    imageId: fields.id(item, 'image_id', at),
    question: fields.string(item, 'question', at),
    answers: (item.answers === undefined ? [] : fields.array(item.answers, `${at}.answers`)).map(
      (answerValue, index) => {
        const answer = fields.object(answerValue, `${at}.answers[${index}]`);
        return {
          answer: fields.string(answer, 'answer', `${at}.answers[${index}]`),
          score: fields.number(answer, 'score', `${at}.answers[${index}]`),
        };
      },
    ),
    truth: (item.truth === undefined ? [] : fields.array(item.truth, `${at}.truth`)).map((answer, index) => {
      if (typeof answer !== 'string') fields.fail(`${at}.truth[${index}]`, `expected a string, found ${kind(answer)}`);
      return answer;
    }),
  }));
  const retrieval = list('retrieval').map(({ at, item }) => ({
    task: fields.string(item, 'task', at),
    caption: fields.string(item, 'caption', at),
    ranked: fields.array(item.ranked, `${at}.ranked`).map((rankValue, index) => {
      const rank = fields.object(rankValue, `${at}.ranked[${index}]`);
      return {
        imageId: fields.id(rank, 'image_id', `${at}.ranked[${index}]`),
        score: fields.number(rank, 'score', `${at}.ranked[${index}]`),
      };
    }),
    truth: fields.id(item, 'truth', at),
  }));
  let scenes = new Map<string, Scene>();
  if (examples.scenesInline !== undefined) {
    scenes = readScenes(examples.scenesInline, `${path} (scenesInline)`);
  } else if (examples.scenes !== undefined) {
    const scenesPath = resolve(runDir, fields.string(examples, 'scenes', ''));
    if (!existsSync(scenesPath)) fields.fail('scenes', `the scenes file ${scenesPath} does not exist`);
    scenes = readScenes(readJson(scenesPath), scenesPath);
  }
  return { grounding, vqa, retrieval, scenes };
}

/** Everything the report shows; only a directory with neither metrics.jsonl nor run.json is an error. */
export function readRunDirectory(dir: string): RunDirectory {
  const path = (name: string) => join(dir, name);
  const notes: string[] = [];
  const hasMetrics = existsSync(path('metrics.jsonl'));
  const hasRun = existsSync(path('run.json'));
  if (!hasMetrics && !hasRun)
    throw new ReportInputError(dir, '', 'not a run directory: it has neither metrics.jsonl nor run.json');
  if (!hasRun) notes.push('run.json is missing: the command, tasks and status are unknown.');
  if (!hasMetrics) notes.push('metrics.jsonl is missing: nothing has been logged yet.');
  const metrics = hasMetrics
    ? readMetrics(path('metrics.jsonl'), {
        onTruncatedLine: (line) =>
          notes.push(
            `metrics.jsonl: the last line (${line}) is incomplete and was skipped (the run was probably killed while writing it).`,
          ),
      })
    : new Map();
  return {
    dir,
    run: hasRun ? readRunInfo(path('run.json')) : null,
    metrics,
    evaluation: existsSync(path('eval.json')) ? readEvalResults(path('eval.json')) : null,
    examples: existsSync(path('examples.json')) ? readExamples(path('examples.json'), dir) : null,
    notes,
  };
}
