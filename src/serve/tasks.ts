// The eight tasks of the page on one loaded model folder: each request body checked (a 4xx
// naming the field otherwise), run through the pipelines, and the VQA-style tasks run as a
// batch of queued requests in one forward pass.
//
// Two tasks have no pipeline of their own and are built here from a world's settings:
// GenomeQA is the VQA head with GenomeQA's task token, input sizes and answer list, and
// Visual7w pointing is the grounding head with Visual7w's task token, choosing among
// candidate boxes. The reference's Visual7w appends the dataset's ground-truth candidate
// boxes (a second LMDB) after the detector rows; a gallery image has only its detector
// boxes, so the candidates here are those boxes (all of them, or those the request names).
import type { ModelFolder, PipelineTask, TaskSettings } from '../pipelines/model-folder.js';
import { createPipeline, type PipelineOfTask } from '../pipelines/index.js';
import { type PipelineContext, openContext, rankIndices, sigmoid } from '../pipelines/pipeline.js';
import type { GroundPipeline, GroundingResult } from '../pipelines/ground.js';
import { createGroundPipeline } from '../pipelines/ground.js';
import type { VqaAnswer } from '../pipelines/vqa.js';
import { ServeRequestError } from './serve-error.js';
import type { ServeSources } from './sources.js';

export const SERVE_TASKS = ['vqa', 'gqa', 'genomeqa', 'visual7w', 'ground', 'retrieve', 'verify', 'entail'] as const;
export type ServeTask = (typeof SERVE_TASKS)[number];

/** Tasks whose queued requests run together in one forward pass. */
export const BATCHED_TASKS: ReadonlySet<ServeTask> = new Set(['vqa', 'gqa', 'genomeqa']);

export const TASK_TITLES: Record<ServeTask, string> = {
  vqa: 'VQA',
  gqa: 'GQA',
  genomeqa: 'GenomeQA',
  visual7w: 'Visual7W multiple choice',
  ground: 'Grounding (referring expression)',
  retrieve: 'Retrieval across the gallery',
  verify: 'NLVR2 (two images)',
  entail: 'Visual entailment',
};

export const LIMITS = { textChars: 500, topk: 100, retrieveImages: 2000, candidates: 100 };

/** A request body, checked. */
export interface TaskRequest {
  text: string;
  topk?: number;
  /** One image (every task but retrieve and verify). */
  image?: string;
  /** verify: [left, right]; retrieve: the images to rank. */
  images?: string[];
  /** retrieve: rank this collection's images (the task's collection by default). */
  collection?: string;
  /** visual7w: the candidate regions (1 = the first box). */
  candidates?: number[];
}

const FIELDS: Record<ServeTask, readonly string[]> = {
  vqa: ['image', 'text', 'topk'],
  gqa: ['image', 'text', 'topk'],
  genomeqa: ['image', 'text', 'topk'],
  visual7w: ['image', 'text', 'topk', 'candidates'],
  ground: ['image', 'text', 'topk'],
  retrieve: ['text', 'topk', 'images', 'collection'],
  verify: ['images', 'text'],
  entail: ['image', 'text'],
};

const bad = (problem: string) => new ServeRequestError(400, problem);

export function isServeTask(task: string): task is ServeTask {
  return (SERVE_TASKS as readonly string[]).includes(task);
}

/** A request body as the task takes it; every problem is a 400 naming the field. */
export function parseRequest(task: ServeTask, body: unknown): TaskRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw bad(`the body must be a JSON object with ${FIELDS[task].join(', ')}`);
  const fields = body as Record<string, unknown>;
  for (const key of Object.keys(fields))
    if (!FIELDS[task].includes(key))
      throw bad(`unknown field '${key}' for ${task} (expected ${FIELDS[task].join(', ')})`);
  const { text, topk, image, images, collection, candidates } = fields;
  if (typeof text !== 'string' || text.trim() === '') throw bad(`'text' must be a non-empty string`);
  if (text.length > LIMITS.textChars) throw bad(`'text' is ${text.length} characters; at most ${LIMITS.textChars}`);
  const request: TaskRequest = { text };
  if (topk !== undefined) {
    if (!Number.isSafeInteger(topk) || (topk as number) < 1 || (topk as number) > LIMITS.topk)
      throw bad(`'topk' must be an integer from 1 to ${LIMITS.topk}, got ${JSON.stringify(topk)}`);
    request.topk = topk as number;
  }
  const ids = (value: unknown, what: string): string[] => {
    if (!Array.isArray(value) || !value.every((id) => typeof id === 'string'))
      throw bad(`'${what}' must be an array of image ids (strings)`);
    return value as string[];
  };
  if (FIELDS[task].includes('image')) {
    if (typeof image !== 'string') throw bad(`'image' must be an image id (a string, see GET /api/images)`);
    request.image = image;
  }
  if (task === 'verify') {
    request.images = ids(images, 'images');
    if (request.images.length !== 2) throw bad(`'images' must hold two image ids (left, right) for verify`);
  }
  if (task === 'retrieve') {
    if (images !== undefined && collection !== undefined) throw bad(`give 'images' or 'collection', not both`);
    if (images !== undefined) {
      request.images = ids(images, 'images');
      if (request.images.length === 0 || request.images.length > LIMITS.retrieveImages)
        throw bad(`'images' must hold 1 to ${LIMITS.retrieveImages} image ids`);
    }
    if (collection !== undefined) {
      if (typeof collection !== 'string') throw bad(`'collection' must be a string`);
      request.collection = collection;
    }
  }
  if (candidates !== undefined) {
    if (
      !Array.isArray(candidates) ||
      candidates.length === 0 ||
      candidates.length > LIMITS.candidates ||
      !candidates.every((value) => Number.isSafeInteger(value) && value >= 1)
    )
      throw bad(`'candidates' must be 1 to ${LIMITS.candidates} region numbers >= 1 (1 = the image's first box)`);
    request.candidates = [...new Set(candidates as number[])];
  }
  return request;
}

/** A VQA-style head run on a batch of requests: each request's top answers. */
interface AnswerRunner {
  context: PipelineContext;
  head: 'vil_prediction' | 'vil_prediction_gqa';
  labels: readonly string[];
}

export interface TaskStatus {
  title: string;
  available: boolean;
  reason?: string;
  /** The gallery collection holding this task's images in the world. */
  collection?: string;
}

/** The model folder's pipelines and the two built here, over the gallery's images. */
export class TaskEngine {
  readonly #answers = new Map<ServeTask, AnswerRunner>();
  readonly #status = new Map<ServeTask, TaskStatus>();
  #ground?: GroundPipeline;
  #visual7w?: GroundPipeline;
  #retrieve?: PipelineOfTask['retrieve'];
  #verify?: PipelineOfTask['verify'];
  #entail?: PipelineOfTask['entail'];

  private constructor(
    readonly folder: ModelFolder,
    readonly sources: ServeSources,
  ) {}

  static async open(folder: ModelFolder, sources: ServeSources): Promise<TaskEngine> {
    const engine = new TaskEngine(folder, sources);
    try {
      await engine.#build();
    } catch (error) {
      engine.dispose();
      throw error;
    }
    return engine;
  }

  status(): Record<ServeTask, TaskStatus> {
    return Object.fromEntries(SERVE_TASKS.map((task) => [task, this.#status.get(task)!])) as Record<
      ServeTask,
      TaskStatus
    >;
  }

  /** Throws a 404 (unknown task) or 409 (not available with this model folder) before a request is queued. */
  checkAvailable(task: string): asserts task is ServeTask {
    if (!isServeTask(task)) throw new ServeRequestError(404, `unknown task '${task}' (${SERVE_TASKS.join(', ')})`);
    const status = this.#status.get(task)!;
    if (!status.available) throw new ServeRequestError(409, `${task} is not available: ${status.reason}`);
  }

  /** Runs requests of one task; only BATCHED_TASKS take more than one. Results in request order. */
  async run(task: ServeTask, requests: readonly TaskRequest[]): Promise<unknown[]> {
    const runner = this.#answers.get(task);
    if (runner !== undefined) return this.#answerBatch(runner, requests);
    if (requests.length !== 1) throw new RangeError(`${task} runs one request at a time, got ${requests.length}`);
    return [await this.#runOne(task, requests[0]!)];
  }

  dispose(): void {
    for (const runner of this.#answers.values()) runner.context.dispose();
    for (const pipeline of [this.#ground, this.#visual7w, this.#retrieve, this.#verify, this.#entail])
      pipeline?.dispose();
  }

  async #build(): Promise<void> {
    const { folder, sources } = this;
    const has = (task: PipelineTask) => folder.tasks[task] !== undefined;
    const missing = (task: PipelineTask) => `the model folder's tasks.json has no '${task}' pipeline`;
    const set = (task: ServeTask, reason?: string) =>
      this.#status.set(task, {
        title: TASK_TITLES[task],
        available: reason === undefined,
        ...(reason !== undefined && { reason }),
        ...(sources.taskCollections[task] !== undefined && { collection: sources.taskCollections[task] }),
      });
    const answerRunner = (
      task: ServeTask,
      settings: TaskSettings,
      head: AnswerRunner['head'],
      labels?: readonly string[],
    ) => {
      if (labels === undefined) return set(task, `labels.json has no ${head} answers`);
      // A folder whose only pipeline is this task's settings: the context's encode and image use them.
      const context = openContext('vqa', { ...folder, tasks: { vqa: settings } }, {});
      this.#answers.set(task, { context, head, labels });
      set(task);
    };
    if (has('vqa')) answerRunner('vqa', folder.tasks.vqa!, 'vil_prediction', folder.labels.vil_prediction);
    else set('vqa', missing('vqa'));
    if (has('gqa')) answerRunner('gqa', folder.tasks.gqa!, 'vil_prediction_gqa', folder.labels.vil_prediction_gqa);
    else set('gqa', missing('gqa'));
    const noWorld = sources.missingWorldReason ?? 'the world has no such task';
    if (sources.genomeqa)
      answerRunner('genomeqa', sources.genomeqa.settings, 'vil_prediction', sources.genomeqa.labels);
    else set('genomeqa', noWorld);
    if (sources.visual7w) {
      this.#visual7w = createGroundPipeline({ ...folder, tasks: { ground: sources.visual7w.settings } });
      set('visual7w');
    } else set('visual7w', noWorld);
    if (has('ground')) {
      this.#ground = await createPipeline('ground', folder);
      set('ground');
    } else set('ground', missing('ground'));
    if (has('retrieve')) {
      this.#retrieve = await createPipeline('retrieve', folder);
      set('retrieve');
    } else set('retrieve', missing('retrieve'));
    if (has('verify')) {
      this.#verify = await createPipeline('verify', folder);
      set('verify');
    } else set('verify', missing('verify'));
    if (has('entail')) {
      this.#entail = await createPipeline('entail', folder);
      set('entail');
    } else set('entail', missing('entail'));
  }

  /** The VQA pipeline's work on many requests: one forward pass, then each row's top answers. */
  #answerBatch({ context, head, labels }: AnswerRunner, requests: readonly TaskRequest[]): VqaAnswer[][] {
    const gallery = this.sources.gallery;
    const rows = requests.map((request) => ({
      sentence: context.encode(request.text),
      regions: [context.image(gallery.resolve(request.image!), 'image').padded],
    }));
    const values = context.forward(rows, head); // [B, answers]
    const width = values.length / requests.length;
    return requests.map((request, row) => {
      const logits = values.subarray(row * width, (row + 1) * width); // [answers]
      // Outputs past the label list (a head wider than the trained answers) are never answers.
      return rankIndices(logits, labels.length)
        .slice(0, request.topk ?? 5)
        .map((label) => ({ answer: labels[label]!, score: sigmoid(logits[label]!) }));
    });
  }

  async #runOne(task: ServeTask, request: TaskRequest): Promise<unknown> {
    const gallery = this.sources.gallery;
    switch (task) {
      case 'ground':
        return this.#ground!(request.text, gallery.resolve(request.image!), { topk: request.topk ?? 1 });
      case 'visual7w':
        return this.#pointing(request);
      case 'retrieve': {
        const collection = request.collection ?? this.sources.taskCollections.retrieve;
        let ids = request.images;
        if (ids === undefined) {
          const name = collection ?? gallery.collections[0]?.name;
          if (name === undefined || !gallery.has(name))
            throw new ServeRequestError(404, `unknown collection '${name}'`);
          ids = gallery.ids(name);
          if (ids.length > LIMITS.retrieveImages)
            throw new ServeRequestError(
              400,
              `collection '${name}' has ${ids.length} images; rank at most ${LIMITS.retrieveImages} by listing them in 'images'`,
            );
        }
        const images = ids.map((id) => gallery.resolve(id));
        const ranking = await this.#retrieve!(request.text, images, { topk: request.topk ?? 10 });
        return ranking.map(({ index, score }) => ({ image: ids[index]!, score }));
      }
      case 'verify':
        return this.#verify!(request.text, gallery.resolve(request.images![0]!), gallery.resolve(request.images![1]!));
      case 'entail':
        return this.#entail!(request.text, gallery.resolve(request.image!));
      default:
        throw new RangeError(`${task} is a batched task`);
    }
  }

  /** Visual7w: every region ranked by vision_logit with its task token, then the candidates kept. */
  async #pointing(request: TaskRequest): Promise<GroundingResult[]> {
    const image = this.sources.gallery.resolve(request.image!);
    const ranked = await this.#visual7w!(request.text, image, { topk: Number.MAX_SAFE_INTEGER });
    const boxes = ranked.length - 1; // row 0 is the whole image, not a choice
    const wanted = new Set(request.candidates ?? Array.from({ length: boxes }, (_, index) => index + 1));
    const outside = [...wanted].filter((region) => region > boxes);
    if (outside.length > 0)
      throw new ServeRequestError(
        400,
        `'candidates' ${outside.join(', ')} past the image's ${boxes} boxes (the model reads ${boxes} of them)`,
      );
    return ranked.filter((choice) => wanted.has(choice.regionIndex)).slice(0, request.topk ?? 4);
  }
}
