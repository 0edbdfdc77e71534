import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  ConfigError,
  SIZE_LIMIT,
  bundledConfig,
  bundledConfigNames,
  loadConfig,
  parseConfig,
  type ViLBertConfig,
} from '../../src/model/config.js';
import { VILBertForVLTasks } from '../../src/model/vilbert.js';
import { packageRoot } from '../io/fixtures.js';

const ROOT = packageRoot();
const CONFIG_DIR = join(ROOT, 'assets', 'configs');
const PARITY_CONFIG = join(ROOT, 'test', 'fixtures', 'model', 'parity_config.json');

/** Blob ids of config/ in the reference tree at f22b84a9918a9aea2106e14ac1f6b32ad71492e3 (git ls-tree). */
const REFERENCE_BLOBS: Record<string, string> = {
  'bert-base-uncased_weight_name.json': 'e144d694081da692bec38eee805f82685d90842f',
  'bert-large-uncased_weight_name.json': '97daec5304d4e922261dcee4885ca8558e2d289d',
  'bert_base_2layer_2conect.json': 'cb27489818f06274b0078f9f7ea02e5a1c6d3bfe',
  'bert_base_4layer_4conect.json': 'e0dd01f94d9c9d775b6f4439102ec9890bad7302',
  'bert_base_6layer_6conect.json': 'e78fc0ce2fb7a5e61294724defd5de083da07075',
  'bert_base_8layer_8conect.json': 'b5f3571011282533359a6bb3decca9a5ccb02928',
  'bert_base_baseline.json': 'fca794a5f07ff8f963fe8b61e3694b0fb7f955df',
  'bert_large_2layer_2conect.json': 'f83a8a9c6df423561c10ece01b295c3f8eec6d46',
  'bert_large_4layer_4conect.json': '39cbbd52d25a3a488fd35948a0637633eada3a28',
  'bert_large_6layer_6conect.json': 'db6c0ea4bc62bd39f940323c5f97766a725969f6',
  'bert_large_baseline.json': 'a7efa973d748abe535c6af1815f28eec3bf3a044',
  'roberta-base_weight_name.json': 'e144d694081da692bec38eee805f82685d90842f',
  'roberta_base_6layer_6connect.json': 'b29d6505b2e1afb23b3c0eea7247ce3f4303583e',
};

function gitBlobId(bytes: Buffer): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

/** The smallest valid config: the parity fixture's sizes, written out so each test can break one key. */
const TINY = {
  vocab_size: 64,
  hidden_size: 32,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  intermediate_size: 64,
  v_hidden_size: 24,
  v_num_hidden_layers: 2,
  v_num_attention_heads: 4,
  v_intermediate_size: 48,
  bi_hidden_size: 16,
  bi_num_attention_heads: 4,
  v_biattention_id: [0, 1],
  t_biattention_id: [2, 3],
};

/** Asserts that parsing throws a ConfigError naming `key`, the source, and matching `problem`. */
function assertRejected(json: unknown, key: string, problem: RegExp, overrides: Partial<ViLBertConfig> = {}): void {
  assert.throws(
    () => parseConfig(json, 'tiny.json', overrides),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
      assert.equal(error.key, key);
      assert.equal(error.source, 'tiny.json');
      assert.ok(error.message.startsWith(`tiny.json: ${key}`), error.message);
      assert.match(error.problem, problem);
      return true;
    },
  );
}

describe('bundled configs', () => {
  test('assets/configs holds every file of the reference config/ folder, byte for byte', () => {
    const files = readdirSync(CONFIG_DIR)
      .filter((file) => file.endsWith('.json'))
      .sort();
    assert.deepEqual(files, Object.keys(REFERENCE_BLOBS).sort());
    for (const file of files) {
      assert.equal(gitBlobId(readFileSync(join(CONFIG_DIR, file))), REFERENCE_BLOBS[file], file);
    }
  });

  test('bundledConfigNames lists the model configs, not the weight-name lists', () => {
    assert.deepEqual(bundledConfigNames(), [
      'bert_base_2layer_2conect',
      'bert_base_4layer_4conect',
      'bert_base_6layer_6conect',
      'bert_base_8layer_8conect',
      'bert_base_baseline',
      'bert_large_2layer_2conect',
      'bert_large_4layer_4conect',
      'bert_large_6layer_6conect',
      'bert_large_baseline',
      'roberta_base_6layer_6connect',
    ]);
  });

  test('every bundled config parses and validates; only roberta carries unknown keys', () => {
    for (const name of bundledConfigNames()) {
      const { config, warnings } = bundledConfig(name);
      assert.equal(config.fusion_method, 'mul', name);
      assert.equal(config.v_biattention_id.length, config.t_biattention_id.length, name);
      const unknown = warnings.map((warning) => warning.key).sort();
      const expected = name.startsWith('roberta')
        ? [
            'finetuning_task',
            'layer_norm_eps',
            'num_labels',
            'output_attentions',
            'output_hidden_states',
            'torchscript',
          ]
        : [];
      assert.deepEqual(unknown, expected, name);
      assert.ok(warnings.every((warning) => warning.kind === 'unknown-key' && warning.message.includes(name)));
    }
  });

  test('bert_base_6layer_6conect is the released 12-in-1 layout', () => {
    const { config } = bundledConfig('bert_base_6layer_6conect');
    assert.deepEqual(config.v_biattention_id, [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(config.t_biattention_id, [6, 7, 8, 9, 10, 11]);
    assert.equal(config.v_hidden_size, 1024);
    assert.equal(config.bi_num_attention_heads, 8);
    assert.equal(config.v_initializer_range, 0.02);
    assert.equal(config.pooling_method, 'mul');
    assert.equal(config.task_specific_tokens, false);
  });

  test('roberta config selects the RoBERTa embeddings; the baseline fills visual keys with defaults', () => {
    const roberta = bundledConfig('roberta_base_6layer_6connect').config;
    assert.equal(roberta.model, 'roberta');
    assert.equal(roberta.type_vocab_size, 1);
    assert.equal(roberta.max_position_embeddings, 514);
    const baseline = bundledConfig('bert_large_baseline').config;
    assert.equal(baseline.num_hidden_layers, 24);
    assert.equal(baseline.v_hidden_size, 768);
    assert.equal(baseline.v_num_hidden_layers, 3);
    assert.deepEqual(baseline.t_biattention_id, [10, 11]);
    assert.equal(baseline.pooling_method, undefined);
  });

  test('an unknown bundled name lists the available ones', () => {
    assert.throws(() => bundledConfig('bert_base_6layer'), /bundled configs are bert_base_2layer_2conect, /);
  });

  test('bundled configs take overrides', () => {
    const { config } = bundledConfig('bert_base_6layer_6conect', { task_specific_tokens: true, visual_target: 1 });
    assert.equal(config.task_specific_tokens, true);
    assert.equal(config.visual_target, 1);
  });
});

describe('parity fixture config', () => {
  test('parses to the effective attributes of the reference (MANIFEST.md §2)', () => {
    const { config, warnings } = loadConfig(PARITY_CONFIG, { task_specific_tokens: true });
    assert.deepEqual(warnings, []);
    assert.deepEqual(config, {
      vocab_size: 64,
      hidden_size: 32,
      num_hidden_layers: 4,
      num_attention_heads: 4,
      intermediate_size: 64,
      hidden_act: 'gelu',
      hidden_dropout_prob: 0.1,
      attention_probs_dropout_prob: 0.1,
      max_position_embeddings: 32,
      type_vocab_size: 2,
      initializer_range: 0.02,
      v_feature_size: 2048,
      v_target_size: 1601,
      v_hidden_size: 24,
      v_num_hidden_layers: 2,
      v_num_attention_heads: 4,
      v_intermediate_size: 48,
      bi_hidden_size: 16,
      bi_num_attention_heads: 4,
      v_attention_probs_dropout_prob: 0.1,
      v_hidden_act: 'gelu',
      v_hidden_dropout_prob: 0.1,
      v_initializer_range: 0.02,
      v_biattention_id: [0, 1],
      t_biattention_id: [2, 3],
      visual_target: 0,
      fast_mode: false,
      fixed_v_layer: 0,
      fixed_t_layer: 0,
      in_batch_pairs: false,
      fusion_method: 'mul',
      dynamic_attention: false,
      with_coattention: true,
      objective: 0,
      num_negative: 128,
      model: 'bert',
      task_specific_tokens: true,
      visualization: false,
      bi_intermediate_size: 32,
      bi_attention_type: 1,
      pooling_method: 'mul',
    });
  });

  test('the result is frozen, lists included', () => {
    const { config } = loadConfig(PARITY_CONFIG);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.v_biattention_id));
  });
});

describe('precedence: defaults, then file, then overrides', () => {
  test('a key missing from the file takes the reference constructor default', () => {
    const { config } = parseConfig({ vocab_size: 30522 }, 'minimal.json');
    assert.equal(config.hidden_size, 768);
    assert.equal(config.v_num_hidden_layers, 3);
    assert.equal(config.bi_num_attention_heads, 16);
    assert.equal(config.v_initializer_range, 0.2);
    assert.deepEqual(config.v_biattention_id, [0, 1]);
    assert.deepEqual(config.t_biattention_id, [10, 11]);
    assert.equal(config.with_coattention, true);
    assert.equal(config.num_negative, 128);
  });

  test('overrides win over the file', () => {
    const { config } = parseConfig({ ...TINY, hidden_act: 'relu' }, 'tiny.json', {
      hidden_act: 'swish',
      fusion_method: 'sum',
    });
    assert.equal(config.hidden_act, 'swish');
    assert.equal(config.fusion_method, 'sum');
  });

  test('the input objects are not aliased', () => {
    const json = { ...TINY, v_biattention_id: [0, 1] };
    const { config } = parseConfig(json, 'tiny.json');
    json.v_biattention_id.push(2);
    assert.deepEqual(config.v_biattention_id, [0, 1]);
  });
});

describe('fusion_method and pooling_method', () => {
  test('pooling_method is stored but fusion is decided by fusion_method; a disagreement is warned about', () => {
    const { config, warnings } = parseConfig({ ...TINY, pooling_method: 'sum' }, 'tiny.json');
    assert.equal(config.fusion_method, 'mul');
    assert.equal(config.pooling_method, 'sum');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.kind, 'ignored-key');
    assert.equal(warnings[0]?.key, 'pooling_method');
    assert.match(warnings[0]?.message ?? '', /^tiny\.json: pooling_method: "sum" is never read.*fusion_method "mul"/);
  });

  test('fusion_method "sum" from the file is honoured', () => {
    const { config, warnings } = parseConfig({ ...TINY, fusion_method: 'sum', pooling_method: 'sum' }, 'tiny.json');
    assert.equal(config.fusion_method, 'sum');
    assert.deepEqual(warnings, []);
  });

  test('any other fusion_method is rejected (an assertion error in the reference)', () => {
    assertRejected({ ...TINY, fusion_method: 'concat' }, 'fusion_method', /expected one of "mul", "sum"/);
  });
});

describe('unknown keys', () => {
  test('unknown keys in the file are returned as warnings, not thrown', () => {
    const { config, warnings } = parseConfig({ ...TINY, layer_norm_eps: 1e-12, num_labels: 2 }, 'tiny.json');
    assert.deepEqual(
      warnings.map(({ kind, key, source }) => ({ kind, key, source })),
      [
        { kind: 'unknown-key', key: 'layer_norm_eps', source: 'tiny.json' },
        { kind: 'unknown-key', key: 'num_labels', source: 'tiny.json' },
      ],
    );
    assert.equal(Object.hasOwn(config, 'layer_norm_eps'), false);
  });

  test('an unknown key in overrides throws', () => {
    const overrides = { fusion: 'sum' } as unknown as Partial<ViLBertConfig>;
    assert.throws(
      () => parseConfig(TINY, 'tiny.json', overrides),
      (error: unknown) =>
        error instanceof ConfigError && error.key === 'fusion' && /\(set by overrides\)/.test(error.message),
    );
  });
});

describe('rejection rules (each names the key and the file)', () => {
  test('hidden_size not divisible by num_attention_heads', () => {
    assertRejected({ ...TINY, hidden_size: 30 }, 'hidden_size', /^30 is not a multiple of num_attention_heads \(4\)$/);
  });

  test('v_hidden_size not divisible by v_num_attention_heads', () => {
    assertRejected(
      { ...TINY, v_num_attention_heads: 5 },
      'v_hidden_size',
      /^24 is not a multiple of v_num_attention_heads \(5\)$/,
    );
  });

  test('bi_hidden_size not divisible by bi_num_attention_heads', () => {
    assertRejected(
      { ...TINY, bi_hidden_size: 18 },
      'bi_hidden_size',
      /^18 is not a multiple of bi_num_attention_heads \(4\)$/,
    );
  });

  test('v_biattention_id and t_biattention_id of different lengths', () => {
    assertRejected(
      { ...TINY, t_biattention_id: [1, 2, 3] },
      't_biattention_id',
      /^has 3 entries but v_biattention_id has 2/,
    );
  });

  test('an id at or past the stream layer count', () => {
    assertRejected(
      { ...TINY, v_biattention_id: [0, 2] },
      'v_biattention_id',
      /^entry 1 is 2, outside 0\.\.1 \(v_num_hidden_layers is 2\)$/,
    );
    assertRejected(
      { ...TINY, t_biattention_id: [2, 4] },
      't_biattention_id',
      /^entry 1 is 4, outside 0\.\.3 \(num_hidden_layers is 4\)$/,
    );
  });

  test('a negative id', () => {
    assertRejected({ ...TINY, t_biattention_id: [-1, 3] }, 't_biattention_id', /^entry 0 is -1, outside 0\.\.3/);
  });

  test('a non-integer id', () => {
    assertRejected(
      { ...TINY, v_biattention_id: [0, 0.5] },
      'v_biattention_id',
      /^entry 1 is 0\.5, not an integer layer index$/,
    );
  });

  test('decreasing ids (the reference would re-run layers)', () => {
    const expected = /^entry 1 \(2\) is below entry 0 \(3\); ids must not decrease$/;
    assertRejected({ ...TINY, t_biattention_id: [3, 2] }, 't_biattention_id', expected);
  });

  test('equal consecutive ids are accepted (two connection layers back to back)', () => {
    const { config } = parseConfig({ ...TINY, v_biattention_id: [0, 0] }, 'tiny.json');
    assert.deepEqual(config.v_biattention_id, [0, 0]);
  });

  test('a default id out of range for the file layer count is blamed on the default', () => {
    const { t_biattention_id: _omitted, ...withoutTextIds } = TINY;
    assert.throws(() => parseConfig(withoutTextIds, 'tiny.json'), {
      name: 'ConfigError',
      message: 'tiny.json: t_biattention_id (default value): entry 0 is 10, outside 0..3 (num_hidden_layers is 4)',
    });
  });

  test('an unknown hidden_act', () => {
    const expected = /^expected one of "gelu", "relu", "swish" \(the reference's ACT2FN\), found "tanh"$/;
    assertRejected({ ...TINY, hidden_act: 'tanh' }, 'hidden_act', expected);
  });

  test('an unknown v_hidden_act', () => {
    assertRejected({ ...TINY, v_hidden_act: 'gelu_new' }, 'v_hidden_act', /found "gelu_new"$/);
  });

  test('wrong types', () => {
    assertRejected({ ...TINY, hidden_size: '32' }, 'hidden_size', /^expected a positive integer, found "32"$/);
    assertRejected({ ...TINY, num_hidden_layers: 0 }, 'num_hidden_layers', /^expected a positive integer, found 0$/);
    assertRejected({ ...TINY, hidden_dropout_prob: 1.5 }, 'hidden_dropout_prob', /^expected a probability in \[0, 1\]/);
    assertRejected({ ...TINY, task_specific_tokens: 1 }, 'task_specific_tokens', /^expected true or false, found 1$/);
    assertRejected(
      { ...TINY, v_biattention_id: '0,1' },
      'v_biattention_id',
      /^expected an array of at most 1024 layer ids/,
    );
    assertRejected({ ...TINY, pooling_method: null }, 'pooling_method', /^expected a string, found null$/);
  });

  test('wrong types from overrides are blamed on the overrides', () => {
    const overrides = { hidden_size: 32.5 } as Partial<ViLBertConfig>;
    assert.throws(() => parseConfig(TINY, 'tiny.json', overrides), {
      message: 'tiny.json: hidden_size (set by overrides): expected a positive integer, found 32.5',
    });
  });

  test('sizes that cannot be built are refused naming the field and the limit', () => {
    assertRejected(
      { ...TINY, hidden_size: 2 ** 40 },
      'hidden_size',
      /^1099511627776 is over the size limit \(2\^20\) of 1048576$/,
    );
    assertRejected({ ...TINY, vocab_size: 2 ** 21 }, 'vocab_size', /over the size limit \(2\^20\) of 1048576/);
    assertRejected({ ...TINY, num_hidden_layers: 5000 }, 'num_hidden_layers', /^5000 is over the layer limit of 1024$/);
    const manyConnections = Array.from({ length: 1025 }, () => 0);
    assertRejected(
      { ...TINY, v_biattention_id: manyConnections, t_biattention_id: manyConnections },
      'v_biattention_id',
      /^expected an array of at most 1024 layer ids/,
    );
    // Every size within its limit, but together far past 2^33 weights: 1024 text layers of
    // 4 H^2 + 2 H I = 6 * 2^34 weights each, 1024 * 6 * 2^34 = 1.06e14.
    const huge = { ...TINY, hidden_size: 2 ** 17, intermediate_size: 2 ** 17, num_hidden_layers: 1024 };
    assertRejected(
      huge,
      'intermediate_size',
      /^the config implies at least 1\.06e\+14 weights \(largest part: text layers, .*over the limit of 8589934592/,
    );
  });

  test('the released large config is well inside the weight limit', () => {
    assert.doesNotThrow(() => bundledConfig('bert_large_6layer_6conect'));
    assert.doesNotThrow(() => parseConfig({ ...TINY, vocab_size: SIZE_LIMIT, hidden_size: 1024 }, 'tiny.json'));
  });

  test('a model built from a config object in code checks the limits before allocating', () => {
    const config = parseConfig(TINY, 'tiny.json').config;
    assert.throws(
      () => new VILBertForVLTasks({ ...config, hidden_size: 2 ** 40 }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.key, 'hidden_size');
        assert.match(error.message, /^model config: hidden_size: .*size limit/);
        return true;
      },
    );
  });

  test('an unknown visual_target or text model', () => {
    assertRejected({ ...TINY, visual_target: 3 }, 'visual_target', /^expected one of 0, 1, 2/);
    assertRejected({ ...TINY, model: 'albert' }, 'model', /^expected one of "bert", "roberta"/);
  });

  test('a missing vocab_size (the reference default is -1)', () => {
    const { vocab_size: _omitted, ...withoutVocab } = TINY;
    assertRejected(withoutVocab, 'vocab_size', /^is required/);
  });

  test('fixed_t_layer past the first connection point', () => {
    assertRejected(
      { ...TINY, fixed_t_layer: 3 },
      'fixed_t_layer',
      /^is 3, past the first connection point t_biattention_id\[0\] = 2/,
    );
  });

  test('in_batch_pairs with task tokens or dynamic attention (shape errors in the reference)', () => {
    assertRejected({ ...TINY, in_batch_pairs: true }, 'in_batch_pairs', /task_specific_tokens/, {
      task_specific_tokens: true,
    });
    assertRejected({ ...TINY, in_batch_pairs: true, dynamic_attention: true }, 'in_batch_pairs', /dynamic_attention/);
  });

  test('a file that is not a JSON object', () => {
    assert.throws(() => parseConfig([1, 2], 'list.json'), {
      message: 'list.json: expected a JSON object, found [1,2]',
    });
  });
});

describe('loadConfig', () => {
  test('reads a file and names it in errors', () => {
    const directory = mkdtempSync(join(tmpdir(), 'vilbert-config-'));
    const good = join(directory, 'good.json');
    writeFileSync(good, JSON.stringify(TINY));
    assert.equal(loadConfig(good).config.hidden_size, 32);

    const broken = join(directory, 'broken.json');
    writeFileSync(broken, '{"vocab_size": 64,');
    assert.throws(
      () => loadConfig(broken),
      (error: unknown) => error instanceof ConfigError && error.message.startsWith(`${broken}: not valid JSON`),
    );

    const bad = join(directory, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...TINY, v_hidden_act: 'tanh' }));
    assert.throws(
      () => loadConfig(bad),
      (error: unknown) => error instanceof ConfigError && error.source === bad && error.key === 'v_hidden_act',
    );
  });
});
