// The words of the synthetic world. Every word a text uses is one whole token of the
// bert-base-uncased vocabulary (assets/vocab), plurals included, so a text is its words.

export interface Category {
  name: string;
  plural: string;
  /** Box width / height of the shape as drawn. */
  aspect: number;
}

export const CATEGORIES: readonly Category[] = [
  { name: 'ball', plural: 'balls', aspect: 1 },
  { name: 'block', plural: 'blocks', aspect: 1.3 },
  { name: 'box', plural: 'boxes', aspect: 1.5 },
  { name: 'cone', plural: 'cones', aspect: 0.8 },
  { name: 'cylinder', plural: 'cylinders', aspect: 0.6 },
  { name: 'ring', plural: 'rings', aspect: 1.2 },
  { name: 'star', plural: 'stars', aspect: 1 },
  { name: 'heart', plural: 'hearts', aspect: 1.1 },
];

/** Colour names and the colour the HTML report draws them in. */
export const COLORS: readonly { name: string; hex: string }[] = [
  { name: 'red', hex: '#d62728' },
  { name: 'green', hex: '#2ca02c' },
  { name: 'blue', hex: '#1f77b4' },
  { name: 'yellow', hex: '#e6c619' },
  { name: 'purple', hex: '#9467bd' },
  { name: 'orange', hex: '#ff7f0e' },
  { name: 'pink', hex: '#e377c2' },
  { name: 'brown', hex: '#8c564b' },
];

export const SIZES = ['small', 'large'] as const;
export type Size = (typeof SIZES)[number];

/** Where an object's centre lies: the left, middle or right third of the image. */
export const POSITIONS = ['left', 'middle', 'right'] as const;
export type Position = (typeof POSITIONS)[number];

/** Background "stuff" the detector also proposes regions for (feature identities, never named in text). */
export const BACKGROUNDS = ['floor', 'wall', 'table', 'shadow', 'corner'] as const;

/** Number words for counts in statements ("two red balls"); VQA-style answers use digits, as VQA does. */
export const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six'] as const;
