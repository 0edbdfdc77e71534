// Unpacking a downloaded .tar.gz with node-tar, after reading the whole listing first: an
// archive with any member that would land outside the target folder (an absolute path, a
// `..` step, a link pointing out) or that is not a file, folder or link is refused before
// anything is written.
import { mkdirSync } from 'node:fs';
import { isAbsolute, posix } from 'node:path';
import * as tar from 'tar';
import { UnsafeArchiveError } from './download-error.js';

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

/** Why `path` (a member's name, or a link's resolved target) leaves the folder, or null. */
function escapes(path: string): string | null {
  if (isAbsolute(path) || posix.isAbsolute(path) || /^[a-zA-Z]:/.test(path)) return 'has an absolute path';
  const normal = posix.normalize(path.replace(/\\/g, '/'));
  if (normal === '..' || normal.startsWith('../')) return 'would land outside the target folder';
  return null;
}

function memberProblem(entry: { path: string; type: string; linkpath?: string }): string | null {
  if (!ALLOWED_TYPES.has(entry.type)) return `is a ${entry.type}, not a file, folder or link`;
  const own = escapes(entry.path);
  if (own) return own;
  if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
    const link = entry.linkpath ?? '';
    if (posix.isAbsolute(link) || isAbsolute(link)) return `links to the absolute path '${link}'`;
    // A symbolic link resolves from its own folder, a hard link from the archive's root.
    const target = entry.type === 'SymbolicLink' ? posix.join(posix.dirname(entry.path), link) : link;
    if (escapes(target)) return `links to '${link}', outside the target folder`;
  }
  return null;
}

/** Every member's path, after checking each one; throws UnsafeArchiveError at the first hostile member. */
export async function checkTarGz(archive: string): Promise<string[]> {
  const members: string[] = [];
  let refused: UnsafeArchiveError | undefined;
  await tar.t({
    file: archive,
    strict: true,
    onReadEntry: (entry) => {
      const problem = memberProblem(entry);
      if (problem && !refused) refused = new UnsafeArchiveError(archive, entry.path, problem);
      members.push(entry.path);
    },
  });
  if (refused) throw refused;
  return members;
}

/** Unpacks `archive` into `folder` once every member is known to stay inside it; returns the member count. */
export async function unpackTarGz(archive: string, folder: string): Promise<number> {
  const members = await checkTarGz(archive);
  mkdirSync(folder, { recursive: true });
  await tar.x({
    file: archive,
    cwd: folder,
    strict: true,
    // Checked above; kept here so that no member the listing did not show can pass.
    filter: (_path, entry) => 'type' in entry && memberProblem(entry as tar.ReadEntry) === null,
  });
  return members.length;
}
