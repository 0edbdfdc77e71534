// Blind baselines of the generated data: how well a model does that sees only the text, only
// the image, or neither. The world promises that answers need both, so these stay well
// below what a model that looks at both can reach.

export interface Labelled {
  /** What the baseline may look at (a question text, an image id); '' for none. */
  key: string;
  label: string;
  /** A coarser key (the question type) answering for keys the fit has not seen. */
  fallback?: string;
}

/** Label -> count. */
function counts(labels: readonly string[]): Map<string, number> {
  const table = new Map<string, number>();
  for (const label of labels) table.set(label, (table.get(label) ?? 0) + 1);
  return table;
}

/** The most frequent label; ties go to the smallest label, so the order of the items does not matter. */
export function majorityLabel(labels: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestCount = 0;
  for (const [label, count] of counts(labels)) {
    if (count > bestCount || (count === bestCount && best !== undefined && label < best)) {
      best = label;
      bestCount = count;
    }
  }
  return best;
}

/**
 * Accuracy on `test` of answering, per key, the label most frequent for that key in `fit`;
 * for a key `fit` has not seen, the label most frequent for the item's `fallback` key (when
 * given and seen), else the overall most frequent label. With fit = test it is the in-sample
 * upper bound of any predictor that sees only the key.
 */
export function majorityAccuracy(fit: readonly Labelled[], test: readonly Labelled[]): number {
  if (test.length === 0) return 0;
  const answers = (key: (item: Labelled) => string | undefined) => {
    const byKey = new Map<string, string[]>();
    for (const item of fit) {
      const name = key(item);
      if (name === undefined) continue;
      const list = byKey.get(name);
      if (list) list.push(item.label);
      else byKey.set(name, [item.label]);
    }
    return new Map([...byKey].map(([name, labels]) => [name, majorityLabel(labels)]));
  };
  const byKey = answers((item) => item.key);
  const byFallback = answers((item) => item.fallback);
  const overall = majorityLabel(fit.map(({ label }) => label));
  const predict = (item: Labelled) =>
    byKey.get(item.key) ?? (item.fallback === undefined ? undefined : byFallback.get(item.fallback)) ?? overall;
  return test.filter((item) => predict(item) === item.label).length / test.length;
}

/** What a blind baseline may see of an item, and its label. */
export interface BaselineItem {
  text: string;
  image: string;
  label: string;
  /** The question type (template) the text belongs to, where the task has types. */
  type?: string;
}

/**
 * The blind accuracies of a classification task on val: chance = always the most frequent val
 * answer (1 / #answers when they are balanced); textOnly = per text the answer most frequent
 * for it in train (for a text train lacks, its type's); questionType = per question type
 * the answer most frequent for it in train (tasks with types); imageOnly = per image its most
 * frequent val answer (in-sample: val images are not in train, so this is an upper bound for
 * a model that sees only the image).
 */
export function blindBaselines(
  train: readonly BaselineItem[],
  val: readonly BaselineItem[],
): { chance: number; textOnly: number; imageOnly: number; questionType?: number } {
  const view = (items: readonly BaselineItem[], key: (item: BaselineItem) => string): Labelled[] =>
    items.map((item) => ({
      key: key(item),
      label: item.label,
      ...(item.type === undefined ? {} : { fallback: item.type }),
    }));
  const accuracy = (key: (item: BaselineItem) => string, fitOn: readonly BaselineItem[]) =>
    round(majorityAccuracy(view(fitOn, key), view(val, key)));
  const typed = val.length > 0 && val.every((item) => item.type !== undefined);
  return {
    chance: accuracy(() => '', val),
    textOnly: accuracy((item) => item.text, train),
    imageOnly: accuracy((item) => item.image, val),
    ...(typed ? { questionType: accuracy((item) => item.type!, train) } : {}),
  };
}

/** Rounded for world.json (and for comparing with it). */
export function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((sum, value) => sum + value, 0) / values.length;
}
