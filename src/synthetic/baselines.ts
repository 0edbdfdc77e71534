// Blind baselines of the generated data: how well a model does that sees only the text, only
// the image, or neither. The world promises that answers need both, so these stay well
// below what a model that looks at both can reach.

export interface Labelled {
  /** What the baseline may look at (a question text, an image id); '' for none. */
  key: string;
  label: string;
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
 * Accuracy on `test` of answering, per key, the label most frequent for that key in `fit`
 * (the overall most frequent label for a key `fit` has not seen). With fit = test it is the
 * in-sample upper bound of any predictor that sees only the key.
 */
export function majorityAccuracy(fit: readonly Labelled[], test: readonly Labelled[]): number {
  if (test.length === 0) return 0;
  const byKey = new Map<string, string[]>();
  for (const { key, label } of fit) {
    const list = byKey.get(key);
    if (list) list.push(label);
    else byKey.set(key, [label]);
  }
  const fallback = majorityLabel(fit.map(({ label }) => label));
  const answer = new Map([...byKey].map(([key, labels]) => [key, majorityLabel(labels)]));
  const correct = test.filter(({ key, label }) => (answer.get(key) ?? fallback) === label).length;
  return correct / test.length;
}

/**
 * The blind accuracies of a classification task on val: chance = always the most frequent val
 * answer (1 / #answers when they are balanced); textOnly = per text the answer most frequent
 * for it in train; imageOnly = per image its most frequent val answer (in-sample: val images
 * are not in train, so this is an upper bound for a model that sees only the image).
 */
export function blindBaselines(
  train: readonly { text: string; image: string; label: string }[],
  val: readonly { text: string; image: string; label: string }[],
): {
  chance: number;
  textOnly: number;
  imageOnly: number;
} {
  const view = (
    items: readonly { text: string; image: string; label: string }[],
    key: (item: { text: string; image: string }) => string,
  ): Labelled[] => items.map((item) => ({ key: key(item), label: item.label }));
  return {
    chance: round(
      majorityAccuracy(
        view(val, () => ''),
        view(val, () => ''),
      ),
    ),
    textOnly: round(
      majorityAccuracy(
        view(train, (item) => item.text),
        view(val, (item) => item.text),
      ),
    ),
    imageOnly: round(
      majorityAccuracy(
        view(val, (item) => item.image),
        view(val, (item) => item.image),
      ),
    ),
  };
}

/** Rounded for world.json (and for comparing with it). */
export function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((sum, value) => sum + value, 0) / values.length;
}
