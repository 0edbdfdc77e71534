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
      const model =
        kind === 'VILBertForVLTasks' ? new VILBertForVLTasks(config) : new BertForMultiModalPreTraining(config);
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

const TASK_TOKEN_KEY = 'bert.embeddings.task_embeddings.weight';
const IMAGE_DECODER_KEYS = ['cls.imagePredictions.decoder.weight', 'cls.imagePredictions.decoder.bias'];

/**
 * The shapes of one variant, derived from those of the model built with task tokens on and
 * visual_target 0: task tokens add one table, and visual_target 1 or 2 only widens the
 * masked-region decoder from 1601 to 2048 outputs. (Building every variant on the meta device
 * took most of `inspect`'s time.)
 */
export function variantShapes(
  base: Map<string, number[]>,
  taskTokens: boolean,
  visualTarget: 0 | 1,
): Map<string, number[]> {
  const shapes = new Map(base);
  if (!taskTokens) shapes.delete(TASK_TOKEN_KEY);
  if (visualTarget !== 0) {
    for (const key of IMAGE_DECODER_KEYS) {
      const shape = shapes.get(key);
      if (shape) shapes.set(key, [2048, ...shape.slice(1)]);
    }
  }
  return shapes;
}

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
      const withTokens = kind === 'VILBertForVLTasks';
      const base = stateDictShapes(
        { ...parsed.config, task_specific_tokens: withTokens, visual_target: 0, v_target_size: 1601 },
        kind,
      );
      for (const taskTokens of withTokens ? [true, false] : [false]) {
        for (const visualTarget of [0, 1] as const) {
          const expected = variantShapes(base, taskTokens, visualTarget);
          fits.push({
            config: name,
            model: kind,
            taskTokens,
            visualTarget,
            missing: [...expected.keys()].filter((key) => !shapes.has(key)),
            unexpected: [...shapes.keys()].filter((key) => !expected.has(key)),
            mismatched: [...expected]
              .filter(([key, shape]) => shapes.has(key) && !sameShape(shapes.get(key)!, shape))
              .map(([key]) => key),
          });
        }
      }
    }
  }
  const cost = (fit: ConfigFit) => fit.missing.length + fit.unexpected.length + 10 * fit.mismatched.length;
  return fits.sort((a, b) => cost(a) - cost(b));
}
