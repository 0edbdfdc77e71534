// `vilbert-ts/text`: the reference's BERT WordPiece tokenizer (pytorch-transformers 1.1.0's
// BertTokenizer, uncased); `BertTokenizer.bundled()` reads the bert-base-uncased vocabulary
// shipped in assets/vocab (docs/API.md).
export {
  BertTokenizer,
  CLS_TOKEN,
  MASK_TOKEN,
  PAD_TOKEN,
  SEP_TOKEN,
  UNK_TOKEN,
  type EncodedSentence,
  type SpecialTokenIds,
} from './bert-tokenizer.js';
export { VocabFormatError, parseVocab, readVocabFile, type Vocab } from './vocab.js';
