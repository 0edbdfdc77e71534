// Loading released checkpoints into a model as the reference's from_pretrained
// does: gamma/beta renames, the `bert.` prefix rules, missing keys kept at
// their initialisation, unexpected keys ignored, shape mismatches refused.
import type * as torch from '../torch/index.js';
import { applyFromPretrainedRenames, type KeyRename } from '../io/key-renames.js';
import { readWeights } from '../io/weights.js';
import { cachedPretrained } from '../download/pretrained.js';

export interface PretrainedLoadReport {
  missingKeys: string[];
  unexpectedKeys: string[];
  renames: KeyRename[];
  /** File keys outside the loaded prefix (skipped, as the reference does). */
  skipped: string[];
}

export function loadPretrainedWeights(
  model: torch.Module,
  file: string | Map<string, torch.Tensor>,
): PretrainedLoadReport {
  // A published name ('multi-task') or an address stands for its file in the download cache.
  const weights = typeof file === 'string' ? readWeights(cachedPretrained(file)) : file;
  try {
    const hasBert = model.namedChildren().some(([name]) => name === 'bert');
    const renamed = applyFromPretrainedRenames(weights, { modelHasBert: hasBert });
    const { missingKeys, unexpectedKeys } = model.loadStateDict(renamed.stateDict, { strict: false });
    return { missingKeys, unexpectedKeys, renames: renamed.renames, skipped: renamed.skipped };
  } finally {
    if (typeof file === 'string') for (const tensor of weights.values()) tensor.dispose();
  }
}
