// WordPiece (pytorch-transformers 1.1.0 WordpieceTokenizer): greedy longest-match-first over
// the vocabulary, continuation pieces prefixed with "##"; a word with a character that no
// piece covers, or longer than 100 characters, becomes the unknown token as a whole.

/** Longest word, in code points, that is split into pieces; longer ones become the unknown token. */
export const MAX_INPUT_CHARS_PER_WORD = 100;

export class WordPiece {
  // No vocabulary entry is longer than this (in code points), so no longer candidate can
  // match: the reference tries them all, the result is the same.
  private readonly longestPiece: number;

  constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    private readonly unknownToken: string,
  ) {
    let longest = 0;
    for (const token of vocab.keys()) longest = Math.max(longest, Array.from(token).length);
    this.longestPiece = longest;
  }

  /** The word pieces of one word (a basic token, containing no whitespace). */
  tokenize(word: string): string[] {
    // offsets[i] is where code point i starts in the UTF-16 string: lengths and positions
    // count code points, as Python's list(str) does.
    const offsets: number[] = [];
    for (let offset = 0; offset < word.length; offset += word.codePointAt(offset)! > 0xffff ? 2 : 1) {
      offsets.push(offset);
    }
    const length = offsets.length;
    offsets.push(word.length);
    if (length > MAX_INPUT_CHARS_PER_WORD) return [this.unknownToken];

    const pieces: string[] = [];
    let start = 0;
    while (start < length) {
      const prefix = start > 0 ? '##' : '';
      let end = Math.min(length, start + this.longestPiece);
      let piece: string | undefined;
      for (; end > start; end -= 1) {
        const candidate = prefix + word.slice(offsets[start], offsets[end]);
        if (this.vocab.has(candidate)) {
          piece = candidate;
          break;
        }
      }
      if (piece === undefined) return [this.unknownToken];
      pieces.push(piece);
      start = end;
    }
    return pieces;
  }
}
