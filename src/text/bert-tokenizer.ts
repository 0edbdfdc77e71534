// The BERT uncased WordPiece tokenizer exactly as the reference runs it: pytorch-transformers
// 1.1.0 BertTokenizer.from_pretrained('bert-base-uncased', do_lower_case=True), with the
// encode and [CLS]/[SEP] helpers the dataset loaders use.
//
// Written here rather than taken from @huggingface/tokenizers (npm, pure JS, 0.2.0 when
// evaluated). That package reproduces the 131 golden cases, but on 6,209 random strings of
// mixed scripts it differed from a transcription of the reference on 1,823: it does not put
// spaces around CJK ideographs outside the Basic Multilingual Plane (U+20000 and up), and it
// keeps characters the reference deletes as unassigned (unicode14.ts). It would also only
// save the ~150 lines of basic-tokenizer.ts and wordpiece.ts, behind a synthesised
// tokenizer.json and a 0.x API, while the vocabulary checks and loader helpers are needed
// either way.
import { assetPath } from '../assets.js';
import { join } from 'node:path';
import { basicTokenize, stripWhitespace } from './basic-tokenizer.js';
import { type Vocab, VocabFormatError, readVocabFile } from './vocab.js';
import { WordPiece } from './wordpiece.js';

export const UNK_TOKEN = '[UNK]';
export const SEP_TOKEN = '[SEP]';
export const PAD_TOKEN = '[PAD]';
export const CLS_TOKEN = '[CLS]';
export const MASK_TOKEN = '[MASK]';
const SPECIAL_TOKENS = [UNK_TOKEN, SEP_TOKEN, PAD_TOKEN, CLS_TOKEN, MASK_TOKEN] as const;

const BUNDLED_VOCAB = ['vocab', 'bert-base-uncased-vocab.txt'];

/** Ids of the special tokens in the loaded vocabulary (bert-base-uncased: 0, 100, 101, 102, 103). */
export interface SpecialTokenIds {
  readonly pad: number;
  readonly unk: number;
  readonly cls: number;
  readonly sep: number;
  readonly mask: number;
}

/** One sentence as the model takes it: [CLS] pieces [SEP], right-padded with 0 to the length. */
export interface EncodedSentence {
  /** [maxSeqLength] word-piece ids */
  readonly inputIds: number[];
  /** [maxSeqLength] 1 for real positions, 0 for padding */
  readonly inputMask: number[];
  /** [maxSeqLength] all 0: one segment */
  readonly segmentIds: number[];
}

let bundledTokenizer: BertTokenizer | undefined;

function bundledVocabPath(): string {
  try {
    return assetPath(...BUNDLED_VOCAB);
  } catch (error) {
    throw new VocabFormatError(join('assets', ...BUNDLED_VOCAB), (error as Error).message);
  }
}

export class BertTokenizer {
  readonly specialIds: SpecialTokenIds;
  private readonly wordPiece: WordPiece;

  /** @param source where the vocabulary came from, named in errors */
  constructor(
    private readonly vocab: Vocab,
    source: string,
  ) {
    const idOf = (token: string): number => {
      const id = vocab.ids.get(token);
      if (id === undefined) throw new VocabFormatError(source, `special token '${token}' is missing`);
      return id;
    };
    this.specialIds = {
      pad: idOf(PAD_TOKEN),
      unk: idOf(UNK_TOKEN),
      cls: idOf(CLS_TOKEN),
      sep: idOf(SEP_TOKEN),
      mask: idOf(MASK_TOKEN),
    };
    this.wordPiece = new WordPiece(vocab.ids, UNK_TOKEN);
  }

  static fromVocabFile(path: string): BertTokenizer {
    return new BertTokenizer(readVocabFile(path), path);
  }

  /** The bert-base-uncased tokenizer from the vocabulary shipped in assets/vocab (loaded once). */
  static bundled(): BertTokenizer {
    if (bundledTokenizer === undefined) bundledTokenizer = BertTokenizer.fromVocabFile(bundledVocabPath());
    return bundledTokenizer;
  }

  get vocabSize(): number {
    return this.vocab.tokens.length;
  }

  /**
   * Word pieces of text. Special tokens written literally (case-sensitive: "[MASK]", not
   * "[mask]") stay single tokens even when glued to other text, because 1.1.0 splits the
   * text on them before basic tokenisation (PreTrainedTokenizer.tokenize), stripping the
   * whitespace around each part.
   */
  tokenize(text: string): string[] {
    const tokens: string[] = [];
    this.splitOnSpecialTokens(text, SPECIAL_TOKENS, tokens);
    return tokens;
  }

  private splitOnSpecialTokens(text: string, specialTokens: readonly string[], tokens: string[]): void {
    if (text === '') return;
    const [special, ...rest] = specialTokens;
    if (special === undefined) {
      for (const word of basicTokenize(text)) tokens.push(...this.wordPiece.tokenize(word));
      return;
    }
    text.split(special).forEach((part, index) => {
      if (index > 0) tokens.push(special);
      this.splitOnSpecialTokens(stripWhitespace(part), rest, tokens);
    });
  }

  /** Ids of tokens; a token not in the vocabulary gets the [UNK] id, as in the reference. */
  convertTokensToIds(tokens: readonly string[]): number[] {
    return tokens.map((token) => this.vocab.ids.get(token) ?? this.specialIds.unk);
  }

  /**
   * Tokens of ids. Unlike the reference, which answers [UNK] for an id outside the
   * vocabulary, this throws: such an id means the ids and the vocabulary do not belong together.
   */
  convertIdsToTokens(ids: readonly number[]): string[] {
    return ids.map((id, position) => {
      const token = Number.isInteger(id) ? this.vocab.tokens[id] : undefined;
      if (token === undefined) {
        throw new RangeError(
          `token id ${id} at position ${position} is not in the vocabulary (ids 0..${this.vocabSize - 1})`,
        );
      }
      return token;
    });
  }

  /** Word-piece ids of text without [CLS]/[SEP] (the reference's encode(text)). */
  encode(text: string): number[] {
    return this.convertTokensToIds(this.tokenize(text));
  }

  /** [CLS] ids [SEP] (add_special_tokens_single_sentence). */
  addSpecialTokensSingleSentence(ids: readonly number[]): number[] {
    return [this.specialIds.cls, ...ids, this.specialIds.sep];
  }

  /** [CLS] first [SEP] second [SEP] (add_special_tokens_sentences_pair). */
  addSpecialTokensSentencesPair(first: readonly number[], second: readonly number[]): number[] {
    return [this.specialIds.cls, ...first, this.specialIds.sep, ...second, this.specialIds.sep];
  }

  /**
   * The loaders' single-sentence recipe: keep the first
   * maxSeqLength − 2 word pieces, add [CLS]/[SEP], pad at the end with 0.
   */
  encodeSingleSentence(text: string, maxSeqLength: number): EncodedSentence {
    if (!Number.isInteger(maxSeqLength) || maxSeqLength < 2) {
      throw new RangeError(`maxSeqLength must be an integer >= 2 (room for [CLS] and [SEP]), got ${maxSeqLength}`);
    }
    const inputIds = this.addSpecialTokensSingleSentence(this.encode(text).slice(0, maxSeqLength - 2));
    const padding = new Array<number>(maxSeqLength - inputIds.length).fill(0);
    return {
      inputIds: [...inputIds, ...padding],
      inputMask: [...inputIds.map(() => 1), ...padding],
      segmentIds: new Array<number>(maxSeqLength).fill(0),
    };
  }
}
