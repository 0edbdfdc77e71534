// The state-dict keys and shapes a configuration implies, computed by building
// the model on libtorch's meta device (no memory is allocated), and which
// bundled configuration a checkpoint fits.
import * as torch from '../torch/index.js';
import { bundledConfig, bundledConfigNames, type ViLBertConfig } from './config.js';
import { BertForMultiModalPreTraining, VILBertForVLTasks } from './vilbert.js';

export type ModelKind = 'VILBertForVLTasks' | 'BertForMultiModalPreTraining';

export function stateDictShapes(config: ViLBertConfig, kind: ModelKind): Map<string, number[]> {
  return torch.scope(() =>
    torch.withDefaultDevice('meta', () => {
      const model = kind === 'VILBertForVLTasks' ? new VILBertForVLTasks(config) : new BertForMultiModalPreTraining(config);
      const shapes = new Map([...model.stateDict()].map(([key, tensor]) => [key, tensor.shape]));
      model.dispose();
      return shapes;
    }),
  );
}

export interface ConfigFit {
  config: string;
  model: ModelKind;
  taskTokens: boolean;
  visualTarget: number;
  missing: string[];
  unexpected: string[];
  mismatched: string[];
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/** Every bundled config and model variant, ranked by how well the file's keys and shapes fit it (best first). */
export function rankConfigFits(shapes: Map<string, number[]>): ConfigFit[] {
  const fits: ConfigFit[] = [];
  for (const name of bundledConfigNames()) {
    let parsed;
    try {
      parsed = bundledConfig(name);
    } catch {
      continue; // baseline configs are plain BERT configs, not ViLBERT ones
    }
    for (const kind of ['VILBertForVLTasks', 'BertForMultiModalPreTraining'] as const) {
      for (const taskTokens of kind === 'VILBertForVLTasks' ? [true, false] : [false]) {
        for (const visualTarget of [0, 1] as const) {
          const config = { ...parsed.config, task_specific_tokens: taskTokens, visual_target: visualTarget, v_target_size: visualTarget === 0 ? 1601 : 2048 };
          const expected = stateDictShapes(config, kind);
          fits.push({
            config: name,
            model: kind,
            taskTokens,
            visualTarget,
            missing: [...expected.keys()].filter((key) => !shapes.has(key)),
            unexpected: [...shapes.keys()].filter((key) => !expected.has(key)),
            mismatched: [...expected].filter(([key, shape]) => shapes.has(key) && !sameShape(shapes.get(key)!, shape)).map(([key]) => key),
          });
        }
      }
    }
  }
  const cost = (fit: ConfigFit) => fit.missing.length + fit.unexpected.length + 10 * fit.mismatched.length;
  return fits.sort((a, b) => cost(a) - cost(b));
}
