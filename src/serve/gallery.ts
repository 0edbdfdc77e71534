// The images `vilbert serve` can be asked about: collections of region-feature LMDB entries,
// each with a picture to show (a world scene drawn as SVG, or an image file of a folder).
// An image's public id is `<collection>:<key>`; only ids of the gallery resolve, and a
// picture is only ever a scene or a file found when the gallery was built, so no request
// names a path on disk.
import { readFileSync } from 'node:fs';
import { LOCATION_WIDTH, type ImageFeatureReader } from '../data/features.js';
import type { Box, Scene } from '../report/run-files.js';
import { drawScene } from '../report/scenes.js';
import type { StoredImage } from '../pipelines/image-input.js';
import { ServeRequestError } from './serve-error.js';

/** What an image looks like: a world scene, or a file of the --images folder. */
export type Picture = { kind: 'scene'; scene: Scene } | { kind: 'file'; path: string; contentType: string };

export interface Collection {
  name: string;
  store: ImageFeatureReader;
  /** The store's keys, in its order. */
  keys: readonly string[];
  picture(key: string): Picture | undefined;
}

export interface ImageSummary {
  id: string;
  collection: string;
  key: string;
  /** Pixels of the original image, when known without reading the features (scenes). */
  width?: number;
  height?: number;
}

export interface ImageDetail extends Required<ImageSummary> {
  /** The detector boxes, x1, y1, x2, y2 in pixels; box i is the model's region i + 1. */
  boxes: Box[];
  hasPicture: boolean;
}

export const imageId = (collection: string, key: string): string => `${collection}:${key}`;

// Scene colours as the HTML report styles them: a picture served on its own carries its style.
const SCENE_STYLE =
  '<style>.scene-background{fill:#f4f3ee}.object{fill-opacity:.85;stroke:#0005;stroke-width:.5}' +
  '.object-label{fill:#222;paint-order:stroke;stroke:#fff;stroke-width:.15em;font-family:sans-serif}</style>';

export class Gallery {
  readonly #collections: Map<string, Collection>;

  constructor(collections: readonly Collection[]) {
    this.#collections = new Map(collections.map((collection) => [collection.name, collection]));
  }

  get collections(): { name: string; count: number }[] {
    return [...this.#collections.values()].map(({ name, keys }) => ({ name, count: keys.length }));
  }

  has(collection: string): boolean {
    return this.#collections.has(collection);
  }

  /** One page of a collection's images, in the store's order. */
  list(collection: string, offset: number, limit: number): { total: number; images: ImageSummary[] } {
    const found = this.#collection(collection);
    const images = found.keys.slice(offset, offset + limit).map((key) => {
      const picture = found.picture(key);
      const size = picture?.kind === 'scene' ? { width: picture.scene.width, height: picture.scene.height } : {};
      return { id: imageId(collection, key), collection, key, ...size };
    });
    return { total: found.keys.length, images };
  }

  /** Every image id of a collection. */
  ids(collection: string): string[] {
    return this.#collection(collection).keys.map((key) => imageId(collection, key));
  }

  /** The pipeline input of an image id; an id not in the gallery is a 404. */
  resolve(id: string): StoredImage {
    const { collection, key } = this.#split(id);
    return { store: collection.store, imageId: key };
  }

  detail(id: string): ImageDetail {
    const { collection, key } = this.#split(id);
    const image = collection.store.get(key);
    const boxes: Box[] = [];
    // Row 0 is the whole image; rows 1.. are the detector boxes.
    for (let row = 1; row < image.numBoxes; row++) {
      const [x1, y1, x2, y2] = image.imageLocationOri.subarray(row * LOCATION_WIDTH, row * LOCATION_WIDTH + 4);
      boxes.push([x1!, y1!, x2!, y2!]);
    }
    return {
      id,
      collection: collection.name,
      key,
      width: image.imageWidth,
      height: image.imageHeight,
      boxes,
      hasPicture: collection.picture(key) !== undefined,
    };
  }

  /** The picture's bytes and content type; a scene is drawn as a standalone SVG. */
  picture(id: string, labels: boolean): { body: Buffer; contentType: string } {
    const { collection, key } = this.#split(id);
    const picture = collection.picture(key);
    if (picture === undefined) throw new ServeRequestError(404, `image '${id}' has no picture (only features)`);
    if (picture.kind === 'file') return { body: readFileSync(picture.path), contentType: picture.contentType };
    const svg = drawScene(picture.scene, key, { width: picture.scene.width, labels });
    const opening = svg.indexOf('>') + 1;
    return {
      body: Buffer.from(svg.slice(0, opening) + SCENE_STYLE + svg.slice(opening)),
      contentType: 'image/svg+xml; charset=utf-8',
    };
  }

  close(): void {
    for (const collection of this.#collections.values()) collection.store.close();
  }

  #collection(name: string): Collection {
    const found = this.#collections.get(name);
    if (found === undefined)
      throw new ServeRequestError(
        404,
        `unknown collection '${name}' (the gallery has ${[...this.#collections.keys()].join(', ') || 'none'})`,
      );
    return found;
  }

  #split(id: string): { collection: Collection; key: string } {
    if (typeof id !== 'string') throw new ServeRequestError(400, `an image id must be a string, got ${typeof id}`);
    const at = id.indexOf(':');
    const collection = at > 0 ? this.#collections.get(id.slice(0, at)) : undefined;
    const key = id.slice(at + 1);
    if (collection === undefined || !collection.store.has(key))
      throw new ServeRequestError(404, `unknown image id '${id}' (ids are <collection>:<key>, see GET /api/images)`);
    return { collection, key };
  }
}
