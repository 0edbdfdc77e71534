// vilbert-ts: ViLBERT and 12-in-1 in TypeScript on libtorch.
export * as torch from './torch/index.js';
export * as text from './text/index.js';
export * from './errors.js';
