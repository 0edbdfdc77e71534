// vilbert-ts: ViLBERT and 12-in-1 in TypeScript on libtorch. The package's entry points
// (docs/API.md): this root, with every part as a namespace, and one subpath per part for
// named imports:
//
//   import { torch, model } from 'vilbert-ts';
//   import { VILBertForVLTasks, loadConfig } from 'vilbert-ts/model';
//
// vilbert-ts/torch      tensors, autograd, Module and nn layers on libtorch
// vilbert-ts/text       BERT WordPiece tokenizer
// vilbert-ts/model      config, VILBertForVLTasks, BertForMultiModalPreTraining, checkpoint loading
// vilbert-ts/io         weights files (safetensors, torch .bin/.pt), pickles, LMDB, .npy
// vilbert-ts/data       feature LMDBs, task registry, the 12 datasets, loaders, Conceptual Captions
// vilbert-ts/train      trainTasks, trainConcap, the task step and losses, AdamW, RAdam, schedules
// vilbert-ts/eval       task evaluation and retrieval ranking
// vilbert-ts/pipelines  inference pipelines on a model folder (vqa, gqa, ground, retrieve, verify, entail)
// vilbert-ts/distributed  process groups and data-parallel training
// vilbert-ts/errors     the typed errors (also exported here)

/** The tensor engine: `Tensor`, creation, `F` (functional), `nn`, `Module`, scopes, autograd modes. */
export * as torch from './torch/index.js';
/** The BERT WordPiece tokenizer of the reference (`BertTokenizer.bundled()`). */
export * as text from './text/index.js';
/** The model configuration, the two models and loading released checkpoints into them. */
export * as model from './model/index.js';
/** Weights files in every supported format, pickles, LMDB stores. */
export * as io from './io/index.js';
/** Feature stores, the task registry, the task datasets, batching, Conceptual Captions. */
export * as data from './data/index.js';
/** The trainers, the task step and its losses, optimisers, schedules, checkpoints. */
export * as train from './train/index.js';
/** Task evaluation and retrieval ranking (`vilbert-ts/eval`). */
export * as evaluation from './eval/index.js';
/** Inference pipelines over a model folder. */
export * as pipelines from './pipelines/index.js';
/** Distributed data-parallel training. */
export * as distributed from './distributed/index.js';
/** A pipeline of a task over a model folder, as transformers.js's `pipeline()`. */
export { createPipeline } from './pipelines/index.js';
export * from './errors.js';
