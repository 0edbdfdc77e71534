// What the model benchmarks share: the released models' config (bert_base_6layer_6conect
// with task tokens, as train_tasks.py builds it) and random inputs of VQA's shapes.
import * as torch from '../src/torch/index.js';
import { bundledConfig, type ViLBertConfig } from '../src/model/config.js';
import type { BertInputs } from '../src/model/bert-model.js';

export function fullSizeConfig(): ViLBertConfig {
  return bundledConfig('bert_base_6layer_6conect', {
    task_specific_tokens: true,
    visual_target: 0,
    v_target_size: 1601,
  }).config;
}

/** B rows of T random tokens and R random regions, all real, task 1; kept (they live for the whole bench). */
export function randomInputs(B: number, T: number, R: number): BertInputs {
  return {
    inputIds: torch.randint(4, 30000, [B, T]).keep(),
    imageFeatures: torch.randn([B, R, 2048]).keep(),
    imageLocations: torch.rand([B, R, 5]).keep(),
    tokenTypeIds: torch.zeros([B, T], { dtype: 'int64' }).keep(),
    attentionMask: torch.ones([B, T], { dtype: 'int64' }).keep(),
    imageAttentionMask: torch.ones([B, R], { dtype: 'int64' }).keep(),
    taskIds: torch.full([B, 1], 1, { dtype: 'int64' }).keep(),
  };
}
