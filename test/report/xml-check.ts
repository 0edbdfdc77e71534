// A strict well-formedness check of the report's markup: every tag closed in order,
// attributes quoted, no stray '<' or bare '&' in text. Stricter than HTML needs, which is
// the point: the page's inline SVG must also be valid XML.
const VOID = new Set(['meta', 'br', 'hr', 'img', 'input', 'link']);
const TAG = /^<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>$/;

export function wellFormedProblems(html: string): string[] {
  const problems: string[] = [];
  const body = html.replace(/^<!DOCTYPE html>\s*/, '').replace(/<style>[^<]*<\/style>/g, '<style></style>');
  const stack: string[] = [];
  let position = 0;
  for (const match of body.matchAll(/<[^>]*>/g)) {
    const text = body.slice(position, match.index);
    position = match.index + match[0].length;
    if (text.includes('<')) problems.push(`stray '<' before ${match[0]}`);
    if (/&(?!(amp|lt|gt|quot|#39|#\d+);)/.test(text)) problems.push(`bare '&' in ${JSON.stringify(text.slice(0, 40))}`);
    const tag = TAG.exec(match[0]);
    if (!tag) {
      problems.push(`malformed tag ${match[0].slice(0, 80)}`);
      continue;
    }
    const [, closing, name, , selfClosing] = tag;
    if (closing) {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open ?? 'nothing'}>`);
    } else if (!selfClosing && !VOID.has(name!)) {
      stack.push(name!);
    }
  }
  if (body.slice(position).includes('<')) problems.push("stray '<' at the end");
  if (stack.length > 0) problems.push(`unclosed: ${stack.join(' > ')}`);
  return problems;
}
