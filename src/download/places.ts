// Where published files go and come from: the checkpoint cache folder and the base address.
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { type PublishedFile } from './catalogue.js';

/** The checkpoint cache: $VILBERT_CACHE, else ~/.cache/vilbert. */
export function cacheFolder(): string {
  return process.env.VILBERT_CACHE || join(homedir(), '.cache', 'vilbert');
}

/** The mirror that replaces the published base addresses: $VILBERT_MIRROR, or none. */
export function defaultMirror(): string | undefined {
  return process.env.VILBERT_MIRROR || undefined;
}

export interface Places {
  /** The data folder (datasets/, data/); default the current folder. */
  dir?: string;
  /** Default cacheFolder(). */
  cacheDir?: string;
}

/** Where a published file lands. */
export function localPath(file: PublishedFile, places: Places = {}): string {
  return join(file.place === 'cache' ? (places.cacheDir ?? cacheFolder()) : (places.dir ?? '.'), file.target);
}

export function isUrl(value: string): boolean {
  return /^https?:\/\//i.test(value);
}

/** The cache file of an address given directly: urls/<16 hex digits of its SHA-256>-<its last path segment>. */
export function urlCachePath(url: string, cacheDir = cacheFolder()): string {
  const name = basename(new URL(url).pathname) || 'download';
  return join(cacheDir, 'urls', `${createHash('sha256').update(url).digest('hex').slice(0, 16)}-${name}`);
}
