/**
 * The few POSIX path operations llmc's I/O needs (no `@std/path` here, and
 * `node:path` would pull in Node's type definitions).
 *
 * @module
 */

/**
 * Joins path segments with single slashes.
 *
 * @param first the leading segment (kept absolute if it is)
 * @param rest further segments
 * @returns the joined path
 * @example
 * ```ts
 * import { joinPath } from "./_path.ts";
 * joinPath("out/", "model.safetensors"); // "out/model.safetensors"
 * ```
 */
export function joinPath(first: string, ...rest: string[]): string {
  let out = first;
  for (const r of rest) {
    if (r === "") continue;
    out = out === "" ? r : out.replace(/\/+$/, "") + "/" + r.replace(/^\/+/, "");
  }
  return out;
}

/**
 * Splits a path into its parent folder and last segment, ignoring trailing slashes.
 *
 * @param p a path
 * @returns `[parent, base]`; parent is "." for a bare name and "/" at the root
 * @example
 * ```ts
 * import { splitPath } from "./_path.ts";
 * splitPath("a/b/c/"); // ["a/b", "c"]
 * ```
 */
export function splitPath(p: string): [string, string] {
  const trimmed = p.length > 1 ? p.replace(/\/+$/, "") : p;
  const i = trimmed.lastIndexOf("/");
  if (i < 0) return [".", trimmed];
  if (i === 0) return ["/", trimmed.slice(1)];
  return [trimmed.slice(0, i), trimmed.slice(i + 1)];
}

/**
 * Whether a path exists (any kind of entry, links not followed).
 *
 * @param p a path
 * @returns true when something is there
 * @example
 * ```ts
 * import { pathExists } from "./_path.ts";
 * await pathExists("/"); // true
 * ```
 */
export async function pathExists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Removes a file or folder tree; a missing path is not an error.
 *
 * @param p a path
 * @example
 * ```ts
 * import { removeIfPresent } from "./_path.ts";
 * await removeIfPresent("/tmp/surely-not-here-llmc");
 * ```
 */
export async function removeIfPresent(p: string): Promise<void> {
  try {
    await Deno.remove(p, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Whether a folder entry is a file, following a symlink to its target (a
 * Hugging Face cache snapshot holds links into `blobs/`); a dangling link is not.
 *
 * @param dir the folder that was listed
 * @param entry one of its entries
 * @returns true for a file or a link to one
 * @example
 * ```ts
 * import { isFileEntry } from "./_path.ts";
 * for (const e of Deno.readDirSync("/")) isFileEntry("/", e);
 * ```
 */
export function isFileEntry(dir: string, entry: Deno.DirEntry): boolean {
  if (entry.isFile) return true;
  if (!entry.isSymlink) return false;
  try {
    return Deno.statSync(joinPath(dir, entry.name)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
