import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BertTokenizer } from '../../src/text/bert-tokenizer.js';
import { VocabFormatError, parseVocab } from '../../src/text/vocab.js';
import { packageRoot } from '../io/fixtures.js';

interface TokenizerCase {
  text: string;
  tokens: string[];
  ids: number[];
}

const casesFile = join(packageRoot(), 'test', 'fixtures', 'text', 'tokenizer_cases.json');
const cases = (JSON.parse(readFileSync(casesFile, 'utf8')) as { cases: TokenizerCase[] }).cases;
const tokenizer = BertTokenizer.bundled();

/** A tokenizer over the five special tokens plus the given ones (ids in that order). */
function tinyTokenizer(tokens: string[]): BertTokenizer {
  const vocab = parseVocab(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...tokens].join('\n'), '<tiny>');
  return new BertTokenizer(vocab, '<tiny>');
}

describe('reference cases (pytorch-transformers 1.1.0 goldens)', () => {
  test('the fixture holds every case', () => {
    assert.equal(cases.length, 131);
  });

  for (const [index, { text, tokens, ids }] of cases.entries()) {
    test(`case ${index}: ${JSON.stringify(text).slice(0, 60)}`, () => {
      assert.deepEqual(tokenizer.tokenize(text), tokens);
      assert.deepEqual(tokenizer.encode(text), ids);
    });
  }
});

describe('BertTokenizer', () => {
  test('bundled vocabulary: size and special ids', () => {
    assert.equal(tokenizer.vocabSize, 30522);
    assert.deepEqual(tokenizer.specialIds, { pad: 0, unk: 100, cls: 101, sep: 102, mask: 103 });
    assert.equal(BertTokenizer.bundled(), tokenizer);
  });

  test('special tokens are never split, even glued to text; other casings are', () => {
    assert.deepEqual(tokenizer.tokenize('a[MASK]b'), ['a', '[MASK]', 'b']);
    assert.deepEqual(tokenizer.encode('a[MASK]b'), [1037, 103, 1038]);
    assert.deepEqual(tokenizer.tokenize('x [CLS][SEP] y'), ['x', '[CLS]', '[SEP]', 'y']);
    assert.deepEqual(tokenizer.tokenize('[MASK].'), ['[MASK]', '.']);
    assert.deepEqual(tokenizer.tokenize('[mask]'), ['[', 'mask', ']']);
    assert.deepEqual(tokenizer.tokenize('  '), []);
  });

  test('a word over 100 code points becomes [UNK]; astral characters count once', () => {
    const letter = '\u{10428}'; // DESERET SMALL LETTER LONG I: two UTF-16 units, no case change
    const tiny = tinyTokenizer([letter, `##${letter}`]);
    assert.deepEqual(tiny.tokenize(letter.repeat(100)), [letter, ...new Array<string>(99).fill(`##${letter}`)]);
    assert.deepEqual(tiny.tokenize(letter.repeat(101)), ['[UNK]']);
    assert.deepEqual(tokenizer.tokenize('ab'.repeat(50) + 'a'), ['[UNK]']);
  });

  test('word pieces are the greedy longest match, and one uncovered character makes the word [UNK]', () => {
    const tiny = tinyTokenizer(['un', 'una', '##aff', '##ff', '##able', '##a', '##ble']);
    assert.deepEqual(tiny.tokenize('Unaffable'), ['una', '##ff', '##able']);
    assert.deepEqual(tiny.tokenize('unaffablex able'), ['[UNK]', '[UNK]']);
  });

  test('characters Python 3.11 (Unicode 14) does not know are deleted, as in the reference', () => {
    assert.deepEqual(tokenizer.tokenize('a \u{1FAE8} b'), ['a', 'b']); // SHAKING FACE, Unicode 15
    assert.deepEqual(tokenizer.tokenize('e\u{1171E}'), ['e']); // Mn in Unicode 14, Mc later
    const unicodeMajor = Number(process.versions.unicode?.split('.')[0]);
    assert.ok(unicodeMajor <= 17, `Node has Unicode ${process.versions.unicode}: extend src/text/unicode14.ts`);
  });

  test('ASCII symbols count as punctuation; CJK ideographs are split off in every block', () => {
    const symbols = 'a^b`c+d=e|f~g<h>i$j';
    assert.deepEqual(tokenizer.tokenize(symbols), Array.from(symbols));
    assert.deepEqual(tokenizer.tokenize('a\u{20000}b\uf900x'), ['a', '[UNK]', 'b', '[UNK]', 'x']); // Ext. B, compatibility
  });

  test('whitespace and control characters follow Python', () => {
    assert.deepEqual(tokenizer.tokenize('a\u2028b'), ['a', 'b']); // kept by clean-up, split by str.split()
    assert.deepEqual(tokenizer.tokenize('a\x1cb'), ['ab']); // a control character, deleted
    assert.deepEqual(tokenizer.tokenize('a\u00adb\u0000'), ['ab']);
  });

  test('unknown tokens map to [UNK]; unknown ids are an error', () => {
    assert.deepEqual(tokenizer.convertTokensToIds(['a', 'no-such-piece']), [1037, 100]);
    assert.deepEqual(tokenizer.convertIdsToTokens([101, 1037, 102]), ['[CLS]', 'a', '[SEP]']);
    assert.throws(() => tokenizer.convertIdsToTokens([101, 30522]), /token id 30522 at position 1 .*0\.\.30521/);
    assert.throws(() => tokenizer.convertIdsToTokens([-1]), RangeError);
    assert.throws(() => tokenizer.convertIdsToTokens([1.5]), RangeError);
  });

  test('[CLS]/[SEP] helpers', () => {
    assert.deepEqual(tokenizer.addSpecialTokensSingleSentence([7, 8]), [101, 7, 8, 102]);
    assert.deepEqual(tokenizer.addSpecialTokensSentencesPair([7], [8, 9]), [101, 7, 102, 8, 9, 102]);
  });

  test('encodeSingleSentence keeps the first L-2 pieces and pads at the end', () => {
    // 'Is it 3:30 p.m. yet?' has 11 pieces: is it 3 : 30 p . m . yet ?
    assert.deepEqual(tokenizer.encodeSingleSentence('Is it 3:30 p.m. yet?', 8), {
      inputIds: [101, 2003, 2009, 1017, 1024, 2382, 1052, 102],
      inputMask: [1, 1, 1, 1, 1, 1, 1, 1],
      segmentIds: [0, 0, 0, 0, 0, 0, 0, 0],
    });
    assert.deepEqual(tokenizer.encodeSingleSentence("don't", 7), {
      inputIds: [101, 2123, 1005, 1056, 102, 0, 0],
      inputMask: [1, 1, 1, 1, 1, 0, 0],
      segmentIds: [0, 0, 0, 0, 0, 0, 0],
    });
    assert.deepEqual(tokenizer.encodeSingleSentence('a b', 2).inputIds, [101, 102]);
    assert.throws(() => tokenizer.encodeSingleSentence('a', 1), /maxSeqLength must be an integer >= 2/);
  });
});

describe('vocabulary file', () => {
  test('ids are line numbers; \\n, \\r\\n and \\r end lines; a final line break is optional', () => {
    assert.deepEqual(parseVocab('a\r\nb\rc\nd', '<v>').tokens, ['a', 'b', 'c', 'd']);
    assert.deepEqual(
      parseVocab('a\nb\n', '<v>').ids,
      new Map([
        ['a', 0],
        ['b', 1],
      ]),
    );
  });

  test('an empty line or a duplicate token is an error naming the file and line', () => {
    assert.throws(
      () => parseVocab('a\n\nb\n', 'vocab.txt'),
      (error: unknown) =>
        error instanceof VocabFormatError && error.line === 2 && /^vocab\.txt:2: empty line/.test(error.message),
    );
    assert.throws(
      () => parseVocab('a\nb\na\n', 'vocab.txt'),
      /^VocabFormatError: vocab\.txt:3: token 'a' already listed at line 1$/,
    );
  });

  test('files: missing special token, invalid UTF-8 and unreadable files name the path', () => {
    const directory = mkdtempSync(join(tmpdir(), 'vilbert-vocab-'));
    const noMask = join(directory, 'no-mask.txt');
    writeFileSync(noMask, '[PAD]\n[UNK]\n[CLS]\n[SEP]\n');
    assert.throws(() => BertTokenizer.fromVocabFile(noMask), {
      name: 'VocabFormatError',
      message: `${noMask}: special token '[MASK]' is missing`,
    });
    const latin1 = join(directory, 'latin1.txt');
    writeFileSync(latin1, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
    assert.throws(() => BertTokenizer.fromVocabFile(latin1), { message: `${latin1}: not valid UTF-8` });
    const missing = join(directory, 'missing.txt');
    assert.throws(
      () => BertTokenizer.fromVocabFile(missing),
      (error: unknown) => error instanceof VocabFormatError && error.source === missing,
    );
  });
});
