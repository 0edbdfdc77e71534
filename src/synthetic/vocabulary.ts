// The words of the synthetic world. Every word a text uses is one whole token of the
// bert-base-uncased vocabulary (assets/vocab), plurals included, so a text is its words.

export interface Category {
  name: string;
  plural: string;
  /** Box width / height of the shape as drawn. */
  aspect: number;
  /** How the report draws it (src/report/run-files.ts DRAWN_SHAPES). */
  drawn: string;
}

export const CATEGORIES: readonly Category[] = [
  { name: 'ball', plural: 'balls', aspect: 1, drawn: 'ellipse' },
  { name: 'block', plural: 'blocks', aspect: 1.3, drawn: 'rect' },
  { name: 'box', plural: 'boxes', aspect: 1.5, drawn: 'box' },
  { name: 'cone', plural: 'cones', aspect: 0.8, drawn: 'cone' },
  { name: 'cylinder', plural: 'cylinders', aspect: 0.6, drawn: 'cylinder' },
  { name: 'ring', plural: 'rings', aspect: 1.2, drawn: 'ring' },
  { name: 'star', plural: 'stars', aspect: 1, drawn: 'star' },
  { name: 'heart', plural: 'hearts', aspect: 1.1, drawn: 'heart' },
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
