// --freeze and --vision_scratch as train_tasks.py means them. The reference
// compares name[12:] (a name without its 'module.bert.' prefix) with the
// BERT weight-name list, but its names start with 'bert.', so neither flag
// does what it says; here the 'bert.' prefix is stripped and
// the flags work as intended. Documented in docs/DEVIATIONS.md.
import { readFileSync } from 'node:fs';
import { assetPath } from '../assets.js';
import type * as torch from '../torch/index.js';
import { paramGroups } from './adamw.js';

/** The text-stream weight names a BERT checkpoint provides (config/<bert_model>_weight_name.json). */
export function bertWeightNames(bertModel: string): Set<string> {
  const file = bertModel.includes('roberta')
    ? 'roberta-base_weight_name.json'
    : bertModel.includes('large')
      ? 'bert-large-uncased_weight_name.json'
      : 'bert-base-uncased_weight_name.json';
  return new Set(JSON.parse(readFileSync(assetPath('configs', file), 'utf8')) as string[]);
}

function bertInitialised(name: string, names: Set<string>): boolean {
  return name.startsWith('bert.') && names.has(name.slice('bert.'.length));
}

/** Stops gradients of the embeddings and of text layers 0..upTo (requires_grad false; the optimiser skips them). */
export function freezeTextLayers(model: torch.Module, upTo: number, bertModel: string): string[] {
  const names = bertWeightNames(bertModel);
  const frozen: string[] = [];
  for (const [name, parameter] of model.namedParameters()) {
    if (!bertInitialised(name, names)) continue;
    const layer = /^bert\.encoder\.layer\.(\d+)\./.exec(name);
    if (name.startsWith('bert.embeddings.') || (layer && Number(layer[1]) <= upTo)) {
      parameter.requiresGrad_(false);
      frozen.push(name);
    }
  }
  return frozen;
}

/** Like referenceParamGroups, but weights a BERT checkpoint does not provide train at the head lr (1e-4), as the 'vil_' heads. */
export function visionScratchGroups(model: torch.Module, baseLr: number, bertModel: string, headLr = 1e-4) {
  const names = bertWeightNames(bertModel);
  return paramGroups(model, (name) => (name.includes('vil_') || !bertInitialised(name, names) ? headLr : baseLr));
}
