// Fine-tune ViLBERT on a task of one's own, from code: a custom dataset, the library's loader,
// a task head and its loss (the task step trainTasks uses), AdamW, and the loss going down.
//
//   node examples/fine-tune-custom-task.mjs [--steps N] [--save FILE.safetensors]
//
// The task is synthetic and needs both streams: each image's regions are drawn around one of
// three "scene" prototypes, each question is one of two texts, and the answer (one of three)
// depends on the scene and the question. It is read by the 3-way head `vil_tri_prediction`
// (task type VL-tri-classifier, the head of SNLI-VE), on a tiny model from random weights.
// With a released checkpoint, build the model from its config and loadPretrainedWeights()
// before training (see vqa-from-checkpoint.mjs); trainTasks() runs the reference's whole
// multi-task recipe on registry tasks.
import { parseArgs } from 'node:util';
import { torch } from 'vilbert-ts';
import { VILBertForVLTasks, parseConfig } from 'vilbert-ts/model';
import { QUESTION_ITEM_ORDER, TaskLoader, float32Tensor, int64Tensor, zeroCoAttentionMask } from 'vilbert-ts/data';
import { AdamW, forwardTask, paramGroups, saveModelWeights, toTaskBatch } from 'vilbert-ts/train';
import { BertTokenizer } from 'vilbert-ts/text';

const { values: args } = parseArgs({ options: { steps: { type: 'string', default: '60' }, save: { type: 'string' } } });
const steps = Number(args.steps);

// 1. A tiny config (the reference's keys; parseConfig fills the rest with BertConfig's defaults and checks it).
const { config } = parseConfig(
  {
    vocab_size: 30522,
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    intermediate_size: 64,
    max_position_embeddings: 32,
    v_feature_size: 2048,
    v_hidden_size: 32,
    v_num_hidden_layers: 2,
    v_num_attention_heads: 2,
    v_intermediate_size: 64,
    bi_hidden_size: 32,
    bi_num_attention_heads: 2,
    v_biattention_id: [0, 1],
    t_biattention_id: [0, 1],
    task_specific_tokens: true,
  },
  'the example config',
);
torch.manualSeed(0); // the weights' initialisation and dropout
const model = new VILBertForVLTasks(config);

// 2. The custom task's dataset: any object with length, numLabels and item(index) in the
// reference's tuple order (features, spatials, image_mask, question, target, input_mask,
// segment_ids, co_attention_mask, question_id) is a TaskDataset.
const REGIONS = 9; // the whole-image region + 8 detections
const TOKENS = 12;
const QUESTIONS = ['what is the scene?', 'what comes after the scene?'];
const tokenizer = BertTokenizer.bundled();
const random = mulberry32(1);
const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
const prototypes = [0, 1, 2].map(() => Float32Array.from({ length: 2048 }, gaussian));

function makeItem(index) {
  const scene = index % 3;
  const question = Math.floor(index / 3) % 2;
  const answer = (scene + question) % 3;
  const features = new Float32Array(REGIONS * 2048);
  const spatials = new Float32Array(REGIONS * 5);
  for (let region = 1; region < REGIONS; region++) {
    for (let d = 0; d < 2048; d++) features[region * 2048 + d] = prototypes[scene][d] + gaussian();
    const [x, y, w, h] = [random() * 0.5, random() * 0.5, 0.2 + random() * 0.3, 0.2 + random() * 0.3];
    spatials.set([x, y, x + w, y + h, w * h], region * 5);
  }
  for (let d = 0; d < 2048; d++) {
    // row 0: the mean of the regions, the whole-image box, as the feature readers give it
    let sum = 0;
    for (let region = 1; region < REGIONS; region++) sum += features[region * 2048 + d];
    features[d] = sum / (REGIONS - 1);
  }
  spatials.set([0, 0, 1, 1, 1], 0);
  const sentence = tokenizer.encodeSingleSentence(QUESTIONS[question], TOKENS);
  const target = new Float32Array(3);
  target[answer] = 1; // VL-tri-classifier: binary cross-entropy against a one-hot row
  return {
    order: QUESTION_ITEM_ORDER,
    values: {
      features: float32Tensor([REGIONS, 2048], features),
      spatials: float32Tensor([REGIONS, 5], spatials),
      image_mask: int64Tensor([REGIONS], new Array(REGIONS).fill(1)),
      question: int64Tensor([TOKENS], sentence.inputIds),
      target: float32Tensor([3], target),
      input_mask: int64Tensor([TOKENS], sentence.inputMask),
      segment_ids: int64Tensor([TOKENS], sentence.segmentIds),
      co_attention_mask: zeroCoAttentionMask([REGIONS, TOKENS]),
      question_id: index,
    },
  };
}
const items = Array.from({ length: 48 }, (_, index) => makeItem(index));
const dataset = { length: items.length, numLabels: 3, item: (index) => items[index] };
const loader = TaskLoader.inProcess(dataset, { batchSize: 8, shuffle: true, seed: 0 });

// 3. The task as the task step knows it: its type (head and loss), its batch reshaping, its task token.
const task = { type: 'VL-tri-classifier', process: 'normal', number: 19 };

// 4. AdamW on every parameter (weight decay 0.01 except biases and LayerNorms), and the loop.
const optimizer = new AdamW(
  paramGroups(model, () => 3e-3),
  { correctBias: true },
);
model.train();
const losses = [];
let correct = 0;
let seen = 0;
for (let step = 1; step <= steps; step++) {
  const batch = await loader.next();
  const { loss, score, batchSize } = torch.scope(() => {
    const out = forwardTask(model, toTaskBatch(batch), task); // forward of the task's head, its loss and batch score
    out.loss.backward();
    return { loss: out.loss.item(), score: out.score, batchSize: out.prepared.batchSize };
  });
  optimizer.step();
  model.zeroGrad();
  losses.push(loss);
  correct += score;
  seen += batchSize;
  if (step % 5 === 0) {
    const recent = losses.slice(-5);
    console.log(
      `step ${step} loss ${(recent.reduce((a, b) => a + b, 0) / recent.length).toFixed(4)} accuracy ${(correct / seen).toFixed(3)}`,
    );
    correct = 0;
    seen = 0;
  }
}
await loader.close();
const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;
console.log(
  `loss ${mean(losses.slice(0, 5)).toFixed(4)} -> ${mean(losses.slice(-5)).toFixed(4)} (mean of the first and last 5 steps)`,
);

// 5. The fine-tuned weights, as a .safetensors file that loadPretrainedWeights() reads back.
if (args.save) {
  saveModelWeights(args.save, model);
  console.log(`saved ${args.save}`);
}
optimizer.dispose();
model.dispose();

/** A small seeded generator for the synthetic data (any would do). */
function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
