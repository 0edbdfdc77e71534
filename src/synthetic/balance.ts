// Complementary sets, as VQA v2 balanced its questions: every text the world asks is asked
// of several images with different answers, once per answer, so that given the text alone
// every answer it takes is equally likely and only the image decides. Question types
// (colour, count, yes/no, ...) take turns, so no type dominates a split.
import type { Random } from './random.js';

export interface Asked {
  text: string;
  answer: string;
  /** The question type (template), for the per-type baseline and the turns. */
  type: string;
  /** The image (or image pair) the text is asked of. */
  image: string;
}

/**
 * For one text, the answers it keeps and how many items per answer: the choice that keeps the
 * most items with every kept answer equally often, among at least `minAnswers` answers (more
 * answers on a tie). Null when the text has fewer answers in these images.
 */
function keptAnswers(
  byAnswer: Map<string, unknown[]>,
  minAnswers: number,
): { answers: string[]; perAnswer: number } | null {
  const sorted = [...byAnswer].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
  let best: { answers: string[]; perAnswer: number } | null = null;
  for (let kept = minAnswers; kept <= sorted.length; kept++) {
    const perAnswer = sorted[kept - 1]![1].length;
    if (best === null || kept * perAnswer >= best.answers.length * best.perAnswer)
      best = { answers: sorted.slice(0, kept).map(([answer]) => answer), perAnswer };
  }
  return best;
}

/**
 * Up to `budget` items of `candidates` (every question each image allows, at most one per
 * text and image) in complementary sets: a set is one text asked of as many images as it
 * has kept answers (at least `minAnswers`), one image per answer. Sets are drawn type by type
 * in turn.
 */
export function complementarySets<T extends Asked>(
  random: Random,
  candidates: readonly T[],
  budget: number,
  minAnswers = 2,
): T[] {
  const byText = new Map<string, Map<string, T[]>>();
  for (const candidate of candidates) {
    let byAnswer = byText.get(candidate.text);
    if (!byAnswer) byText.set(candidate.text, (byAnswer = new Map()));
    const list = byAnswer.get(candidate.answer);
    if (list) list.push(candidate);
    else byAnswer.set(candidate.answer, [candidate]);
  }
  const setsByType = new Map<string, T[][]>();
  for (const byAnswer of byText.values()) {
    const kept = keptAnswers(byAnswer, minAnswers);
    if (kept === null) continue;
    const shuffled = kept.answers.map((answer) => random.shuffled(byAnswer.get(answer)!));
    for (let round = 0; round < kept.perAnswer; round++) {
      const set = shuffled.map((items) => items[round]!);
      const type = set[0]!.type;
      const list = setsByType.get(type);
      if (list) list.push(set);
      else setsByType.set(type, [set]);
    }
  }
  const queues = [...setsByType.keys()].sort().map((type) => random.shuffled(setsByType.get(type)!));
  const chosen: T[] = [];
  for (let turn = 0; chosen.length < budget && queues.some((queue) => turn < queue.length); turn++) {
    for (const queue of queues) {
      const set = queue[turn];
      if (set && chosen.length + set.length <= budget) chosen.push(...set);
    }
  }
  return chosen;
}
