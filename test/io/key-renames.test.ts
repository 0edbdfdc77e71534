import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { applyFromPretrainedRenames } from '../../src/io/key-renames.js';

const dict = (...keys: string[]): Map<string, string> => new Map(keys.map((key) => [key, `value of ${key}`]));

describe('from_pretrained key renames', () => {
  it('renames gamma -> weight and beta -> bias anywhere in a key, moving renamed keys last', () => {
    const { stateDict, renames, skipped } = applyFromPretrainedRenames(
      dict(
        'bert.embeddings.LayerNorm.gamma',
        'bert.embeddings.LayerNorm.beta',
        'bert.encoder.layer.0.output.dense.weight',
        'cls.predictions.transform.LayerNorm.gamma',
      ),
      { modelHasBert: true },
    );
    assert.deepEqual(
      [...stateDict],
      [
        ['bert.encoder.layer.0.output.dense.weight', 'value of bert.encoder.layer.0.output.dense.weight'],
        ['bert.embeddings.LayerNorm.weight', 'value of bert.embeddings.LayerNorm.gamma'],
        ['bert.embeddings.LayerNorm.bias', 'value of bert.embeddings.LayerNorm.beta'],
        ['cls.predictions.transform.LayerNorm.weight', 'value of cls.predictions.transform.LayerNorm.gamma'],
      ],
    );
    assert.deepEqual(renames, [
      { from: 'bert.embeddings.LayerNorm.gamma', to: 'bert.embeddings.LayerNorm.weight', rule: 'gamma->weight' },
      { from: 'bert.embeddings.LayerNorm.beta', to: 'bert.embeddings.LayerNorm.bias', rule: 'beta->bias' },
      {
        from: 'cls.predictions.transform.LayerNorm.gamma',
        to: 'cls.predictions.transform.LayerNorm.weight',
        rule: 'gamma->weight',
      },
    ]);
    assert.deepEqual(skipped, []);
  });

  it('applies one rule per key, from the original key: beta wins, every occurrence is replaced', () => {
    const { stateDict } = applyFromPretrainedRenames(dict('x.gamma.beta', 'gamma.gamma', 'alphabetagamma'), {
      modelHasBert: false,
    });
    assert.deepEqual([...stateDict.keys()], ['x.gamma.bias', 'weight.weight', 'alphabiasgamma']);
  });

  it('overwrites in place an existing key with the new name, as OrderedDict assignment does', () => {
    const { stateDict } = applyFromPretrainedRenames(dict('ln.weight', 'other', 'ln.gamma'), { modelHasBert: false });
    assert.deepEqual(
      [...stateDict],
      [
        ['ln.weight', 'value of ln.gamma'],
        ['other', 'value of other'],
      ],
    );
  });

  it('loads a file without bert.* keys into model.bert (adds the prefix)', () => {
    const { stateDict, renames } = applyFromPretrainedRenames(
      dict('embeddings.word_embeddings.weight', 'encoder.layer.0.attention.self.query.bias'),
      { modelHasBert: true },
    );
    assert.deepEqual(
      [...stateDict.keys()],
      ['bert.embeddings.word_embeddings.weight', 'bert.encoder.layer.0.attention.self.query.bias'],
    );
    assert.deepEqual(
      renames.map((rename) => rename.rule),
      ['add bert. prefix', 'add bert. prefix'],
    );
  });

  it('reads a bert.* file into a bare BertModel (strips the prefix, skips other keys)', () => {
    const { stateDict, renames, skipped } = applyFromPretrainedRenames(
      dict('bert.pooler.dense.weight', 'cls.seq_relationship.bias', 'bert.embeddings.LayerNorm.gamma'),
      { modelHasBert: false },
    );
    assert.deepEqual([...stateDict.keys()], ['pooler.dense.weight', 'embeddings.LayerNorm.weight']);
    assert.deepEqual(skipped, ['cls.seq_relationship.bias']);
    assert.deepEqual(
      renames.map((rename) => [rename.from, rename.to]),
      [
        ['bert.embeddings.LayerNorm.gamma', 'bert.embeddings.LayerNorm.weight'],
        ['bert.pooler.dense.weight', 'pooler.dense.weight'],
        ['bert.embeddings.LayerNorm.weight', 'embeddings.LayerNorm.weight'],
      ],
    );
  });

  it('leaves keys as they are when the prefix already matches the model', () => {
    const keys = ['bert.embeddings.word_embeddings.weight', 'vil_prediction.logit_fc.0.weight', 'cls.predictions.bias'];
    const withBert = applyFromPretrainedRenames(dict(...keys), { modelHasBert: true });
    assert.deepEqual([...withBert.stateDict.keys()], keys);
    assert.deepEqual(withBert.renames, []);
    const bare = applyFromPretrainedRenames(dict('embeddings.word_embeddings.weight'), { modelHasBert: false });
    assert.deepEqual([...bare.stateDict.keys()], ['embeddings.word_embeddings.weight']);
  });

  it('tests the prefix with startsWith("bert"), as the reference does ("bertish" counts, but only "bert." loads)', () => {
    const { stateDict, skipped } = applyFromPretrainedRenames(dict('bertish.x', 'pooler.dense.bias'), {
      modelHasBert: false,
    });
    assert.deepEqual([...stateDict.keys()], []);
    assert.deepEqual(skipped, ['bertish.x', 'pooler.dense.bias']);
    const into = applyFromPretrainedRenames(dict('bertish.x'), { modelHasBert: true });
    assert.deepEqual([...into.stateDict.keys()], ['bertish.x']);
  });
});
