// Load a released checkpoint and run one head, VQA's `vil_prediction`, on an image's region
// features from a feature LMDB; print the top answers.
//
//   node examples/vqa-from-checkpoint.mjs [--weights FILE] [--config FILE] [--features LMDB]
//       [--image ID] [--question TEXT] [--answers DATAROOT] [--topk K]
//
// The defaults are the repository's stand-ins: the parity fixtures' tiny model (random weights,
// a 64-word vocabulary, so its answers mean nothing) and the data kit's COCO features and VQA
// answer list. With the released 12-in-1 model and the reference's data:
//
//   node examples/vqa-from-checkpoint.mjs --weights multi_task_model.bin \
//       --config config/bert_base_6layer_6conect.json \
//       --features datasets/coco/features_100/COCO_trainval_resnext152_faster_rcnn_genome.lmdb \
//       --answers datasets/VQA --image 9 --question 'what is the man holding?'
//
// (`createPipeline('vqa', folder)` of vilbert-ts/pipelines does all this for a model folder.)
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { torch } from 'vilbert-ts';
import { VILBertForVLTasks, loadConfig, loadPretrainedWeights } from 'vilbert-ts/model';
import { readWeights } from 'vilbert-ts/io';
import { ImageFeatureReader, readAnswerVocabulary } from 'vilbert-ts/data';
import { BertTokenizer } from 'vilbert-ts/text';

const repo = (path) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const { values: args } = parseArgs({
  options: {
    weights: { type: 'string', default: repo('test/fixtures/parity/weights_vltasks.safetensors') },
    config: { type: 'string', default: repo('test/fixtures/parity/config.json') },
    features: {
      type: 'string',
      default: repo(
        'test/fixtures/datasets/kit/datasets/coco/features_100/COCO_trainval_resnext152_faster_rcnn_genome.lmdb',
      ),
    },
    answers: { type: 'string', default: repo('test/fixtures/datasets/kit/datasets/VQA') },
    image: { type: 'string' },
    question: { type: 'string', default: 'what color is the cat?' },
    topk: { type: 'string', default: '5' },
  },
});

const VQA_TASK = 1; // TASK1 in vilbert_tasks.yml: the task token the 12-in-1 model expects for VQA
const MAX_SEQ_LENGTH = 23; // VQA's max_seq_length and max_region_num in vilbert_tasks.yml
const MAX_REGIONS = 101;

// 1. The model: the config, with task tokens on when the checkpoint has their table (12-in-1 does).
const weights = readWeights(args.weights); // Map<string, Tensor>, kept until disposed
const taskTokens = weights.has('bert.embeddings.task_embeddings.weight');
const { config } = loadConfig(args.config, { task_specific_tokens: taskTokens });
const model = new VILBertForVLTasks(config);
const report = loadPretrainedWeights(model, weights); // from_pretrained's renames and checks
for (const tensor of weights.values()) tensor.dispose();
model.eval(); // no dropout
console.log(
  `model: ${args.weights} (${report.missingKeys.length} missing keys, task tokens ${taskTokens ? 'on' : 'off'})`,
);

// 2. The inputs: the question's word pieces and the image's regions, padded as the VQA loader pads them.
const tokenizer = BertTokenizer.bundled();
const sentence = tokenizer.encodeSingleSentence(args.question, MAX_SEQ_LENGTH);
let inputIds = sentence.inputIds;
if (config.vocab_size < tokenizer.vocabSize) {
  console.log(
    `note: the model's ${config.vocab_size}-word vocabulary cannot hold BERT's word pieces; ids folded into it (a stand-in only)`,
  );
  inputIds = inputIds.map((id) => id % config.vocab_size);
}
const store = ImageFeatureReader.open(args.features);
const imageId = args.image ?? store.keys()[0];
const regions = store.getPadded(imageId, MAX_REGIONS); // features [R, 2048], spatials [R, 5], imageMask [R]
store.close();
console.log(
  `image ${imageId}: ${regions.numBoxes} regions (the whole-image region included); question: ${JSON.stringify(args.question)}`,
);

// 3. One forward pass computing only the VQA head, in inference mode; scope() frees every tensor made inside.
const int64 = (values) => BigInt64Array.from(values, BigInt);
const scores = torch.inferenceMode(() =>
  torch.scope(() => {
    const outputs = model.call(
      {
        inputIds: torch.tensor(int64(inputIds), { shape: [1, MAX_SEQ_LENGTH] }),
        attentionMask: torch.tensor(int64(sentence.inputMask), { shape: [1, MAX_SEQ_LENGTH] }),
        tokenTypeIds: torch.tensor(int64(sentence.segmentIds), { shape: [1, MAX_SEQ_LENGTH] }),
        imageFeatures: torch.tensor(regions.features, { shape: [1, MAX_REGIONS, 2048] }),
        imageLocations: torch.tensor(regions.spatials, { shape: [1, MAX_REGIONS, 5] }),
        imageAttentionMask: torch.tensor(regions.imageMask, { shape: [1, MAX_REGIONS] }),
        taskIds: torch.full([1, 1], VQA_TASK, { dtype: 'int64' }),
      },
      { heads: ['vil_prediction'] },
    );
    // The head was trained with binary cross-entropy over soft answer scores: each answer's score is its sigmoid.
    return outputs.vil_prediction.sigmoid().toArray(); // [1, 3129]
  }),
);
model.dispose();

// 4. The top answers (outputs past the answer list, when it is shorter than the head, are never answers).
const { label2ans } = readAnswerVocabulary(args.answers);
const ranked = label2ans.map((answer, label) => ({ answer, score: scores[label] })).sort((a, b) => b.score - a.score);
console.log(`top ${args.topk} of ${label2ans.length} answers:`);
for (const { answer, score } of ranked.slice(0, Number(args.topk))) console.log(`  ${score.toFixed(4)}  ${answer}`);
