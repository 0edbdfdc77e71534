// The key renames of the reference's `PreTrainedModel.from_pretrained` (vilbert/utils.py),
// in one place:
//  1. a key containing 'gamma' gets it replaced by 'weight', one containing 'beta' by
//     'bias' (old Google/HF BERT LayerNorm names). Each key is renamed once, from its
//     original text: when both occur the 'beta' rule wins and 'gamma' stays. As in the
//     reference's OrderedDict pop-and-insert, a renamed key moves to the end, or replaces
//     in place a key that already has the new name.
//  2. the 'bert' base-model prefix (`base_model_prefix = "bert"`):
//     * a model without a `bert` attribute (a bare BertModel) and some key starting with
//       'bert' -> keys are read under 'bert.': 'bert.x' loads into 'x'; keys outside
//       'bert.' are not looked at (neither loaded nor reported unexpected);
//     * a model with `bert` and no key starting with 'bert' -> the file loads into
//       `model.bert`: 'x' loads into 'bert.x';
//     * otherwise keys are used as they are.
// The result is keyed by the model's own parameter names, ready to match against them.

export type RenameRule = 'gamma->weight' | 'beta->bias' | 'strip bert. prefix' | 'add bert. prefix';

export interface KeyRename {
  from: string;
  to: string;
  rule: RenameRule;
}

export interface RenamedStateDict<T> {
  /** Entries under the model's parameter names. */
  stateDict: Map<string, T>;
  /** Every rename applied, in order (a key may appear in two steps). */
  renames: KeyRename[];
  /** File keys outside the loaded prefix, which the reference silently skips. */
  skipped: string[];
}

export interface RenameOptions {
  /** Whether the target model has a `bert` sub-module (every model but a bare BertModel). */
  modelHasBert: boolean;
}

const PREFIX = 'bert';

export function applyFromPretrainedRenames<T>(
  stateDict: ReadonlyMap<string, T>,
  options: RenameOptions,
): RenamedStateDict<T> {
  const renames: KeyRename[] = [];
  const renamed = new Map(stateDict);
  for (const key of stateDict.keys()) {
    const rename: KeyRename | undefined = key.includes('beta')
      ? { from: key, to: key.replaceAll('beta', 'bias'), rule: 'beta->bias' }
      : key.includes('gamma')
        ? { from: key, to: key.replaceAll('gamma', 'weight'), rule: 'gamma->weight' }
        : undefined;
    if (rename === undefined) continue;
    const value = renamed.get(key) as T;
    renamed.delete(key);
    renamed.set(rename.to, value);
    renames.push(rename);
  }

  const anyPrefixed = [...renamed.keys()].some((key) => key.startsWith(PREFIX));
  const result = new Map<string, T>();
  const skipped: string[] = [];
  for (const [key, value] of renamed) {
    if (!options.modelHasBert && anyPrefixed) {
      if (!key.startsWith(`${PREFIX}.`)) {
        skipped.push(key);
        continue;
      }
      const to = key.slice(PREFIX.length + 1);
      renames.push({ from: key, to, rule: 'strip bert. prefix' });
      result.set(to, value);
    } else if (options.modelHasBert && !anyPrefixed) {
      const to = `${PREFIX}.${key}`;
      renames.push({ from: key, to, rule: 'add bert. prefix' });
      result.set(to, value);
    } else {
      result.set(key, value);
    }
  }
  return { stateDict: result, renames, skipped };
}
