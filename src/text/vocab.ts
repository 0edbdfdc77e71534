// The WordPiece vocabulary file: one token per line, the id of a token is its 0-based line
// number. Lines end as Python's text mode sees them (\n, \r\n or \r); the line break is not
// part of the token, but any other whitespace is.
import { readFileSync } from 'node:fs';
import { VilbertError } from '../vilbert-error.js';

export class VocabFormatError extends VilbertError {
  override readonly name = 'VocabFormatError';
  override readonly code = 'E_VOCAB_FORMAT';

  /**
   * @param source the file path, or a label such as '<vocab>' for in-memory text
   * @param problem what was expected and what was found
   * @param line the 1-based line concerned, if any
   */
  constructor(
    readonly source: string,
    readonly problem: string,
    readonly line?: number,
  ) {
    super(`${source}${line === undefined ? '' : `:${line}`}: ${problem}`);
  }
}

export interface Vocab {
  /** token of each id */
  readonly tokens: readonly string[];
  /** id of each token */
  readonly ids: ReadonlyMap<string, number>;
}

/**
 * Parses vocabulary text. An empty line or a token listed twice is an error: the reference
 * would accept both (a duplicate's later line number wins), but neither occurs in a real
 * BERT vocabulary and both would silently shift what the model's embedding rows mean.
 */
export function parseVocab(text: string, source: string): Vocab {
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.at(-1) === '') lines.pop(); // the break that ends the last line
  const ids = new Map<string, number>();
  lines.forEach((token, id) => {
    if (token === '') throw new VocabFormatError(source, 'empty line, expected a token', id + 1);
    const firstId = ids.get(token);
    if (firstId !== undefined) {
      throw new VocabFormatError(source, `token '${token}' already listed at line ${firstId + 1}`, id + 1);
    }
    ids.set(token, id);
  });
  return { tokens: lines, ids };
}

/** Reads and parses a UTF-8 vocabulary file; a byte-order mark stays part of the first token, as in Python. */
export function readVocabFile(path: string): Vocab {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(readFileSync(path));
  } catch (error) {
    const problem = error instanceof TypeError ? 'not valid UTF-8' : `cannot be read (${(error as Error).message})`;
    throw new VocabFormatError(path, problem);
  }
  return parseVocab(text, path);
}
