// What the demo promises of every task (issue 24): a classification task beats its chance
// level and its text-only baseline by 10 points; retrieval R@1 and grounding accuracy beat
// chance by 20. One function says whether a result holds, in words, for the printed table,
// the report and the tests.

/** The blind levels of a task and its score, all in [0, 1]. */
export interface ScoredTask {
  /** The task's registry type: VL-classifier*, VL-binary-classifier, V-logit*, VL-contrary, ... */
  type: string;
  metric: string;
  score: number;
  chance: number;
  textOnly?: number;
  imageOnly?: number;
}

export interface Margins {
  /** Points over chance (and over text only, where defined) a classification task must reach. */
  classification: number;
  /** Points over chance a ranking (R@1) or grounding task must reach. */
  ranking: number;
}

/** The issue's bounds for the full demo. */
export const DEMO_MARGINS: Readonly<Margins> = { classification: 0.1, ranking: 0.2 };

export interface Verdict {
  holds: boolean;
  /** "beats chance by 31.2 and text only by 12.0", or what falls short. */
  words: string;
}

const points = (value: number) => (100 * value).toFixed(1);

/** Whether `task` clears its bounds, and by how much, in words. */
export function verdict(task: ScoredTask, margins: Margins = DEMO_MARGINS): Verdict {
  const ranking = task.metric === 'R@1' || task.type.startsWith('V-logit');
  const margin = ranking ? margins.ranking : margins.classification;
  const levels: [string, number][] = [['chance', task.chance]];
  if (!ranking && task.textOnly !== undefined) levels.push(['text only', task.textOnly]);
  const short = levels.filter(([, level]) => task.score < level + margin);
  if (short.length === 0)
    return {
      holds: true,
      words: `beats ${levels.map(([name, level]) => `${name} by ${points(task.score - level)}`).join(' and ')}`,
    };
  return {
    holds: false,
    words: `NOT ${points(margin)} points above ${short
      .map(([name, level]) => `${name} (${task.score >= level ? '+' : ''}${points(task.score - level)})`)
      .join(' or ')}`,
  };
}
