// BERT's basic tokenisation for the uncased models (pytorch-transformers 1.1.0
// BasicTokenizer with do_lower_case=True): delete invalid and control characters, turn
// whitespace into spaces, put spaces around CJK ideographs, split on whitespace, lower-case
// and strip accents, split off punctuation. Character classes follow Python 3.11's
// unicodedata (see unicode14.ts), and "whitespace" for splitting is Python's str.split().
import { NONSPACING_MARKS_ONLY_IN_UNICODE_14, isUnassignedInUnicode14 } from './unicode14.js';

// Python's str.isspace() set, which str.split() and str.strip() without arguments use. It is
// wider than BERT's own whitespace test (it has U+2028/U+2029, which _clean_text keeps).
const PYTHON_WHITESPACE =
  '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PYTHON_WHITESPACE_RUN = new RegExp(`[${PYTHON_WHITESPACE}]+`, 'u');
const PYTHON_STRIP = new RegExp(`^[${PYTHON_WHITESPACE}]+|[${PYTHON_WHITESPACE}]+$`, 'gu');

const CONTROL = /^\p{C}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;
const PUNCTUATION = /^\p{P}$/u;
const NONSPACING_MARK = /^\p{Mn}$/u;

/** Python's text.split(): split on whitespace runs, no empty pieces. */
export function splitOnWhitespace(text: string): string[] {
  return text.split(PYTHON_WHITESPACE_RUN).filter((piece) => piece !== '');
}

/** Python's text.strip(). */
export function stripWhitespace(text: string): string {
  return text.replace(PYTHON_STRIP, '');
}

function isWhitespace(char: string): boolean {
  return char === ' ' || char === '\t' || char === '\n' || char === '\r' || SPACE_SEPARATOR.test(char);
}

function isControl(char: string, codePoint: number): boolean {
  if (char === '\t' || char === '\n' || char === '\r') return false;
  return CONTROL.test(char) || isUnassignedInUnicode14(codePoint);
}

// BERT counts every non-alphanumeric printable ASCII character as punctuation ("$", "^", "`",
// "+", ... are Unicode symbols, not punctuation), plus Unicode's P* categories.
function isPunctuation(char: string, codePoint: number): boolean {
  if (
    (codePoint >= 33 && codePoint <= 47) ||
    (codePoint >= 58 && codePoint <= 64) ||
    (codePoint >= 91 && codePoint <= 96) ||
    (codePoint >= 123 && codePoint <= 126)
  ) {
    return true;
  }
  return PUNCTUATION.test(char);
}

// The "CJK Unified Ideographs" blocks and their extensions and compatibility blocks, as in
// BERT's _is_chinese_char. Hangul, Hiragana and Katakana are written with spaces and are not
// included.
function isCjkIdeograph(codePoint: number): boolean {
  return (
    (codePoint >= 0x4e00 && codePoint <= 0x9fff) ||
    (codePoint >= 0x3400 && codePoint <= 0x4dbf) ||
    (codePoint >= 0x20000 && codePoint <= 0x2a6df) ||
    (codePoint >= 0x2a700 && codePoint <= 0x2b73f) ||
    (codePoint >= 0x2b740 && codePoint <= 0x2b81f) ||
    (codePoint >= 0x2b820 && codePoint <= 0x2ceaf) ||
    (codePoint >= 0xf900 && codePoint <= 0xfaff) ||
    (codePoint >= 0x2f800 && codePoint <= 0x2fa1f)
  );
}

/** _clean_text followed by _tokenize_chinese_chars, in one pass over the code points. */
function cleanText(text: string): string {
  let output = '';
  for (const char of text) {
    const codePoint = char.codePointAt(0)!;
    if (codePoint === 0 || codePoint === 0xfffd || isControl(char, codePoint)) continue;
    if (isWhitespace(char)) output += ' ';
    else if (isCjkIdeograph(codePoint)) output += ` ${char} `;
    else output += char;
  }
  return output;
}

function stripAccents(text: string): string {
  let output = '';
  for (const char of text.normalize('NFD')) {
    if (NONSPACING_MARK.test(char) || NONSPACING_MARKS_ONLY_IN_UNICODE_14.has(char.codePointAt(0)!)) continue;
    output += char;
  }
  return output;
}

/** Every punctuation character becomes a piece of its own; the runs between them stay whole. */
function splitOnPunctuation(word: string): string[] {
  const pieces: string[] = [];
  let current = '';
  for (const char of word) {
    if (isPunctuation(char, char.codePointAt(0)!)) {
      if (current !== '') pieces.push(current);
      pieces.push(char);
      current = '';
    } else {
      current += char;
    }
  }
  if (current !== '') pieces.push(current);
  return pieces;
}

/**
 * Basic tokenisation of text that contains no special token. The reference's never_split
 * check inside BasicTokenizer is not reproduced: in 1.1.0 special tokens are split off
 * before this step (BertTokenizer.tokenize), so that check never sees one.
 */
export function basicTokenize(text: string): string[] {
  const pieces = splitOnWhitespace(cleanText(text)).flatMap((word) =>
    splitOnPunctuation(stripAccents(word.toLowerCase())),
  );
  return splitOnWhitespace(pieces.join(' '));
}
