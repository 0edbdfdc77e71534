// The report's pictures, made by asking the trained model through the
// inference pipelines (the way a user would): VQA answers with their scores,
// grounding boxes beside the true ones, and retrieval rankings, on
// validation items of the world.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset } from '../data/dataset-spec.js';
import type { ItemTensor, TaskDataset } from '../data/dataset.js';
import { iou } from '../data/iou.js';
import { createPipeline } from '../pipelines/index.js';
import { loadModelFolder } from '../pipelines/model-folder.js';
import type { TaskConfig } from '../data/task-registry.js';
import { BertTokenizer } from '../text/index.js';
import { datasetClassOf } from '../train/task-data.js';

const EXAMPLES_PER_KIND = 6;
const RETRIEVAL_CANDIDATES = 8;

/** Word pieces back to text: special tokens dropped, '##' pieces joined to their word. */
export function tokensToText(ids: ArrayLike<number | bigint>, tokenizer: BertTokenizer): string {
  const tokens = tokenizer
    .convertIdsToTokens(Array.from(ids, Number))
    .filter((token) => !['[CLS]', '[SEP]', '[PAD]'].includes(token));
  return tokens.reduce(
    (text, token) => (token.startsWith('##') ? text + token.slice(2) : text ? `${text} ${token}` : token),
    '',
  );
}

interface Scene {
  width: number;
  height: number;
}

function openVal(task: TaskConfig, root: string): { dataset: TaskDataset; close: () => void } {
  return openDataset({
    className: datasetClassOf(task, 'val'),
    task,
    split: task.val_split,
    phase: 'val',
    root,
    cleanDatasets: true,
  });
}

const ints = (value: unknown): number[] => Array.from((value as ItemTensor).data as ArrayLike<number | bigint>, Number);
const floats = (value: unknown): Float32Array => (value as ItemTensor).data as Float32Array;

export async function writeDemoExamples(options: {
  runDir: string;
  modelDir: string;
  tasks: TaskConfig[];
  root: string;
  scenesPath: string;
}): Promise<string> {
  const { tasks, root } = options;
  const task = (key: string) => tasks.find((candidate) => candidate.key === key)!;
  const tokenizer = BertTokenizer.bundled();
  const scenes = JSON.parse(readFileSync(options.scenesPath, 'utf8')) as Record<string, Scene>;
  const folder = loadModelFolder(options.modelDir);
  const store = (entry: TaskConfig) => join(root, entry.features_h5path1);

  // VQA: the val questions in question-id order are the dataset's items in order.
  const vqaTask = task('TASK1');
  const vqa = await createPipeline('vqa', folder);
  const questionsPath = join(root, vqaTask.dataroot, 'v2_OpenEnded_mscoco_val2014_questions.json');
  const questions = (
    JSON.parse(readFileSync(questionsPath, 'utf8')) as {
      questions: { image_id: number; question: string; question_id: number }[];
    }
  ).questions.sort((a, b) => a.question_id - b.question_id);
  const vqaExamples = [];
  const vqaData = openVal(vqaTask, root);
  try {
    const label2ans = (vqaData.dataset as { label2ans?: readonly string[] }).label2ans ?? [];
    for (const [index, question] of questions.slice(0, EXAMPLES_PER_KIND).entries()) {
      const target = floats(vqaData.dataset.item(index).values.target);
      const truth = label2ans.filter((_, label) => (target[label] ?? 0) > 0);
      const answers = await vqa(question.question, { store: store(vqaTask), imageId: question.image_id }, { topk: 3 });
      vqaExamples.push({
        task: vqaTask.name,
        image_id: String(question.image_id),
        question: question.question,
        answers,
        truth,
      });
    }
  } finally {
    vqaData.close();
  }

  // Grounding (refcoco): the expression's true box is the region of highest IoU target (its GT box).
  const referTask = task('TASK9');
  const ground = await createPipeline('ground', folder);
  const groundingExamples = [];
  const referData = openVal(referTask, root);
  try {
    for (let index = 0; index < Math.min(EXAMPLES_PER_KIND, referData.dataset.length); index++) {
      const { values } = referData.dataset.item(index);
      const imageId = String(values.image_id);
      const scene = scenes[imageId];
      if (!scene) continue;
      const target = floats(values.target);
      const best = target.reduce((bestIndex, value, region) => (value > target[bestIndex]! ? region : bestIndex), 0);
      const spatials = floats(values.spatials).subarray(best * 5, best * 5 + 4);
      const truth = [
        spatials[0]! * scene.width,
        spatials[1]! * scene.height,
        spatials[2]! * scene.width,
        spatials[3]! * scene.height,
      ];
      const text = tokensToText(ints(values.caption), tokenizer);
      const [predicted] = await ground(text, { store: store(referTask), imageId });
      const overlap = predicted ? iou(Float32Array.from(predicted.box), Float32Array.from(truth))[0]! : null;
      groundingExamples.push({
        task: referTask.name,
        image_id: imageId,
        text,
        predicted: predicted?.box ?? null,
        truth,
        iou: overlap,
      });
    }
  } finally {
    referData.close();
  }

  // Retrieval (COCO): a val caption against its image and other val images.
  const retrievalTask = task('TASK7');
  const retrieve = await createPipeline('retrieve', folder);
  const retrievalExamples = [];
  const retrievalData = openVal(retrievalTask, root);
  try {
    const imageIds: string[] = [];
    for (let index = 0; index < retrievalData.dataset.length && imageIds.length < RETRIEVAL_CANDIDATES; index++) {
      const imageId = String(retrievalData.dataset.item(index).values.image_id);
      if (!imageIds.includes(imageId)) imageIds.push(imageId);
    }
    const seen = new Set<string>();
    for (
      let index = 0;
      index < retrievalData.dataset.length && retrievalExamples.length < Math.min(EXAMPLES_PER_KIND, imageIds.length);
      index++
    ) {
      const { values } = retrievalData.dataset.item(index);
      const imageId = String(values.image_id);
      if (seen.has(imageId) || !imageIds.includes(imageId)) continue;
      seen.add(imageId);
      const tokens = ints(values.caption); // [4, L]: slot 0 is the caption of its own image
      const caption = tokensToText(tokens.slice(0, tokens.length / 4), tokenizer);
      const ranked = await retrieve(
        caption,
        imageIds.map((id) => ({ store: store(retrievalTask), imageId: id })),
        { topk: imageIds.length },
      );
      retrievalExamples.push({
        task: retrievalTask.name,
        caption,
        ranked: ranked.map((entry) => ({ image_id: imageIds[entry.index]!, score: entry.score })),
        truth: imageId,
      });
    }
  } finally {
    retrievalData.close();
  }
  for (const pipeline of [vqa, ground, retrieve]) pipeline.dispose();
  folder.model.dispose();

  const path = join(options.runDir, 'examples.json');
  writeFileSync(
    path,
    `${JSON.stringify({ scenes: options.scenesPath, grounding: groundingExamples, vqa: vqaExamples, retrieval: retrievalExamples }, null, 2)}\n`,
  );
  return path;
}
