// Noun phrases for the objects of a scene: "red ball", "small object on the left", "large
// blue cylinder". A phrase names its object uniquely among a set of objects, from the
// attributes a text may use (a colour question may not name the colour).
import type { Random } from './random.js';
import { positionOf, type Scene, type SceneObject } from './scenes.js';
import { CATEGORIES, COLORS } from './vocabulary.js';

export type Attribute = 'size' | 'color' | 'category' | 'position';

function valueOf(object: SceneObject, attribute: Attribute, scene: Scene): string | number {
  switch (attribute) {
    case 'size':
      return object.size;
    case 'color':
      return object.color;
    case 'category':
      return object.category;
    case 'position':
      return positionOf(object, scene);
  }
}

/** Every non-empty subset of `allowed` (in `allowed` order), smallest first. */
function subsets(allowed: readonly Attribute[]): Attribute[][] {
  const all: Attribute[][] = [];
  for (let mask = 1; mask < 1 << allowed.length; mask++) all.push(allowed.filter((_, i) => (mask & (1 << i)) !== 0));
  return all.sort((a, b) => a.length - b.length);
}

/** The attribute sets that single out `target` among `among` (which includes it), smallest first. */
export function identifyingSets(
  target: SceneObject,
  among: readonly SceneObject[],
  scene: Scene,
  allowed: readonly Attribute[],
): Attribute[][] {
  return subsets(allowed).filter((attributes) =>
    among.every(
      (other) =>
        other === target ||
        attributes.some((attribute) => valueOf(other, attribute, scene) !== valueOf(target, attribute, scene)),
    ),
  );
}

/** "small red ball on the left"; without a category the noun is "object". */
export function phrase(object: SceneObject, attributes: readonly Attribute[], scene: Scene): string {
  const words: string[] = [];
  if (attributes.includes('size')) words.push(object.size);
  if (attributes.includes('color')) words.push(COLORS[object.color]!.name);
  words.push(attributes.includes('category') ? CATEGORIES[object.category]!.name : 'object');
  if (attributes.includes('position')) {
    const position = positionOf(object, scene);
    words.push(position === 'middle' ? 'in the middle' : `on the ${position}`);
  }
  return words.join(' ');
}

/**
 * A phrase naming `target` uniquely among `among`, or null when the allowed attributes
 * cannot: mostly a smallest identifying set, sometimes a larger one (people over-specify).
 */
export function describe(
  random: Random,
  target: SceneObject,
  among: readonly SceneObject[],
  scene: Scene,
  allowed: readonly Attribute[],
): string | null {
  const sets = identifyingSets(target, among, scene, allowed);
  if (sets.length === 0) return null;
  const smallest = sets.filter((attributes) => attributes.length === sets[0]!.length);
  return phrase(target, random.bernoulli(0.25) ? random.choice(sets) : random.choice(smallest), scene);
}

/** Every phrase naming `target` uniquely among `among` with a smallest set of the allowed attributes. */
export function descriptions(
  target: SceneObject,
  among: readonly SceneObject[],
  scene: Scene,
  allowed: readonly Attribute[],
): string[] {
  const sets = identifyingSets(target, among, scene, allowed);
  return sets.filter((attributes) => attributes.length === sets[0]!.length).map((set) => phrase(target, set, scene));
}

/** "a" or "an" before a phrase. */
export function article(words: string): string {
  return /^[aeiou]/.test(words) ? `an ${words}` : `a ${words}`;
}

/** "a red ball" for captions: colour and shape, sometimes the size. */
export function captionPhrase(random: Random, object: SceneObject): string {
  const words = `${COLORS[object.color]!.name} ${CATEGORIES[object.category]!.name}`;
  return article(random.bernoulli(0.4) ? `${object.size} ${words}` : words);
}

/** "x, y and z" */
export function listPhrase(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(' , ')} and ${items[items.length - 1]!}`;
}
