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
