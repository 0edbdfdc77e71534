// What a reference script builds its model from, given its flags: the --config_file JSON
// over the code defaults (BertConfig.from_json_file keeps every key, read or not), with the
// edits train_tasks.py, train_concap.py and eval_*.py make to it, and the local weights
// file --from_pretrained names.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import {
  bundledConfig,
  bundledConfigNames,
  loadConfig,
  type ParsedConfig,
  type ViLBertConfig,
} from '../model/config.js';
import { CHECKPOINT_NAMES } from '../download/catalogue.js';
import { cachedPretrained } from '../download/pretrained.js';

export interface ConfigFlags {
  /** A path, or a missing path whose file name is a bundled config (the reference's config/<name>.json). */
  config_file: string;
  /** A name containing "roberta" selects config.model = "roberta". */
  bert_model: string;
  /** Sets visual_target and v_target_size (1601 for 0, else 2048); undefined leaves the file's. */
  visual_target?: number;
  /** true turns task tokens on; false leaves the file's value, as the reference's `if args.…:`. */
  task_specific_tokens?: boolean;
  /** Same rule as task_specific_tokens. */
  dynamic_attention?: boolean;
}

/** The config file with the flags' edits; `extra` (a script's own edits) is applied last. */
export function configFromFlags(flags: ConfigFlags, extra: Partial<ViLBertConfig> = {}): ParsedConfig {
  const overrides: Partial<ViLBertConfig> = {
    ...(flags.visual_target === undefined
      ? {}
      : {
          visual_target: flags.visual_target as ViLBertConfig['visual_target'],
          v_target_size: flags.visual_target === 0 ? 1601 : 2048,
        }),
    ...(flags.task_specific_tokens ? { task_specific_tokens: true } : {}),
    ...(flags.dynamic_attention ? { dynamic_attention: true } : {}),
    ...(flags.bert_model.includes('roberta') ? { model: 'roberta' as const } : {}),
    ...extra,
  };
  const path = flags.config_file;
  if (existsSync(path)) return loadConfig(path, overrides);
  const stem = basename(path, extname(path));
  if (bundledConfigNames().includes(stem)) return bundledConfig(stem, overrides);
  throw new Error(
    `--config_file ${path}: no such file, and '${stem}' is not a bundled config (${bundledConfigNames().join(', ')})`,
  );
}

const WEIGHT_FILES_IN_FOLDER = ['pytorch_model.bin', 'model.safetensors', 'pytorch_model.safetensors'];

/**
 * The weights file --from_pretrained names: a .bin/.safetensors file, or a folder holding
 * pytorch_model.bin, model.safetensors or a single weights file; a published checkpoint's
 * name (multi-task, pretrained, bert-base-uncased) or an address, as its file in the cache
 * (fetchPretrained puts it there; nothing is downloaded here); null for 'none' or ''
 * (random initialisation).
 */
export function pretrainedWeightsFile(flag: string): string | null {
  if (flag === '' || flag === 'none') return null;
  const value = cachedPretrained(flag);
  if (!existsSync(value)) {
    throw new Error(
      `--from_pretrained ${value}: no such file or folder (pass a local .bin or .safetensors checkpoint, a folder holding one, ${CHECKPOINT_NAMES.join(', ')} or an http(s) address to fetch into the cache, or 'none' to start from random weights)`,
    );
  }
  if (!statSync(value).isDirectory()) return value;
  const named = WEIGHT_FILES_IN_FOLDER.find((file) => existsSync(join(value, file)));
  if (named) return join(value, named);
  const candidates = readdirSync(value).filter((file) => file.endsWith('.bin') || file.endsWith('.safetensors'));
  if (candidates.length === 1) return join(value, candidates[0]!);
  throw new Error(
    `--from_pretrained ${value}: a folder without ${WEIGHT_FILES_IN_FOLDER.join(', ')} and with ${candidates.length} other weights files (${candidates.join(', ') || 'none'}); name the file`,
  );
}
