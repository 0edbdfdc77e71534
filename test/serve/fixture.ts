// What the serve tests run on: the tiny synthetic world and a tiny random model saved as a
// model folder, with the world's answer lists and each pipeline's settings from the world's
// registry (as the demo saves its model folder). A random model answers nonsense, but the
// page's mechanics and the API's agreement with the pipelines are what is tested.
import { join } from 'node:path';
import { readAnswerVocabulary } from '../../src/data/datasets/vqa.js';
import { loadTaskRegistry } from '../../src/data/task-registry.js';
import { saveModelFolder, type PipelineTask, type TaskTable } from '../../src/pipelines/model-folder.js';
import { startServer, type RunningServer, type ServeOptions } from '../../src/serve/server.js';
import { worldSources } from '../../src/serve/sources.js';
import { answerList, tinyModel } from '../pipelines/helpers.js';
import { scratchDir, tinyWorld } from '../synthetic/tiny-world.js';

const PIPELINE_KEYS: Record<PipelineTask, string> = {
  vqa: 'TASK1',
  gqa: 'TASK15',
  ground: 'TASK9',
  retrieve: 'TASK7',
  verify: 'TASK12',
  entail: 'TASK13',
};

export interface ServeFixture {
  modelDir: string;
  worldDir: string;
}

/** A world and a model folder in a fresh temporary folder (removed when the test file ends). */
export function serveFixture(): ServeFixture {
  const world = tinyWorld();
  const registry = loadTaskRegistry(world.registryPath);
  const tasks: TaskTable = {};
  for (const [task, key] of Object.entries(PIPELINE_KEYS) as [PipelineTask, string][]) {
    const { task_id, max_seq_length, max_region_num, name } = registry.get(key)!;
    tasks[task] = { task_id, max_seq_length, max_region_num, name };
  }
  const answers = (key: string) => readAnswerVocabulary(join(world.root, registry.get(key)!.dataroot)).label2ans;
  const model = tinyModel(11);
  const modelDir = join(scratchDir(), 'model');
  try {
    saveModelFolder(modelDir, {
      model,
      config: model.config,
      labels: {
        vil_prediction: answerList(3129, answers('TASK1')),
        vil_prediction_gqa: answerList(1533, answers('TASK15')),
      },
      tasks,
    });
  } finally {
    model.dispose();
  }
  return { modelDir, worldDir: world.root };
}

/** The server on a free loopback port. */
export function serveWorld(fixture: ServeFixture, options: Partial<ServeOptions> = {}): Promise<RunningServer> {
  return startServer({ sources: worldSources(fixture.modelDir, fixture.worldDir), port: 0, ...options });
}

/** A parsed JSON answer, read field by field in the tests. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

/** POST a JSON body; the status and the parsed answer. */
export async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Json }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

export async function get(url: string): Promise<{ status: number; json: Json }> {
  const response = await fetch(url);
  return { status: response.status, json: await response.json() };
}
