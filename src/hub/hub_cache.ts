/**
 * The Hugging Face cache layout, read and written as huggingface_hub does,
 * so transformers and huggingface_hub reuse what llmc downloads and llmc
 * reuses what they downloaded:
 *
 * ```
 * <cache>/models--org--name/
 *   refs/main                       the commit hash "main" pointed to (no newline)
 *   blobs/<etag>                    file contents, named by sha256 (LFS) or git blob sha1
 *   snapshots/<commit>/<file>       relative symlinks into ../../blobs/<etag>
 * ```
 *
 * @module
 */

import { joinPath, splitPath } from "../io/_path.ts";
import { isCommitHash } from "./hub_id.ts";
import type { HubRepo } from "./hub_id.ts";

/**
 * The folder of a repository inside the cache: `models--org--name` (or `datasets--…`).
 *
 * @param cacheDir the hub cache folder
 * @param repo the repository
 * @returns the folder
 * @example
 * ```ts
 * import { repoCacheDir } from "./hub_cache.ts";
 * repoCacheDir("/c", { repoId: "karpathy/stories260K", revision: "main", repoType: "model" });
 * // "/c/models--karpathy--stories260K"
 * ```
 */
export function repoCacheDir(cacheDir: string, repo: HubRepo): string {
  const kind = repo.repoType === "dataset" ? "datasets" : "models";
  return joinPath(cacheDir, [kind, ...repo.repoId.split("/")].join("--"));
}

/**
 * The commit a revision points to according to the cache: the revision
 * itself when it is a commit hash, else the content of `refs/<revision>`.
 *
 * @param storage the repository's cache folder
 * @param revision branch, tag or commit
 * @returns the commit, or null when the cache has no such ref
 * @example
 * ```ts
 * import { cachedCommit } from "./hub_cache.ts";
 * await cachedCommit("/nonexistent/models--a--b", "main"); // null
 * ```
 */
export async function cachedCommit(storage: string, revision: string): Promise<string | null> {
  if (isCommitHash(revision)) return revision;
  try {
    const c = (await Deno.readTextFile(joinPath(storage, "refs", revision))).trim();
    return c === "" ? null : c;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Records that a revision points to a commit (`refs/<revision>`), written
 * atomically; nothing is written for a revision that is a commit hash.
 *
 * @param storage the repository's cache folder
 * @param revision branch or tag
 * @param commit the commit hash
 * @example
 * ```ts ignore
 * await writeRef(storage, "main", "0123456789abcdef0123456789abcdef01234567");
 * ```
 */
export async function writeRef(storage: string, revision: string, commit: string): Promise<void> {
  if (isCommitHash(revision) || revision === commit) return;
  const path = joinPath(storage, "refs", revision);
  await Deno.mkdir(splitPath(path)[0], { recursive: true });
  await writeAtomically(path, commit);
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-llmc-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Where a blob lives: `blobs/<etag>`.
 *
 * @param storage the repository's cache folder
 * @param etag the normalized etag (sha256 or git sha1)
 * @returns the path
 * @example
 * ```ts
 * import { blobPath } from "./hub_cache.ts";
 * blobPath("/c/models--a--b", "abc"); // "/c/models--a--b/blobs/abc"
 * ```
 */
export function blobPath(storage: string, etag: string): string {
  return joinPath(storage, "blobs", etag);
}

/**
 * A file's path in a snapshot: `snapshots/<commit>/<file>`.
 *
 * @param storage the repository's cache folder
 * @param commit the commit hash
 * @param file the file's path in the repository (may contain `/`)
 * @returns the path
 * @example
 * ```ts
 * import { snapshotPath } from "./hub_cache.ts";
 * snapshotPath("/c/models--a--b", "c0ffee", "config.json"); // "/c/models--a--b/snapshots/c0ffee/config.json"
 * ```
 */
export function snapshotPath(storage: string, commit: string, file = ""): string {
  return joinPath(storage, "snapshots", commit, file);
}

/**
 * Points `snapshots/<commit>/<file>` at `blobs/<etag>` with a relative
 * symlink (as huggingface_hub makes them), replacing any existing entry
 * atomically. Where symlinks cannot be made, the blob is copied instead.
 *
 * @param storage the repository's cache folder
 * @param commit the commit hash
 * @param file the file's path in the repository
 * @param etag the blob's name
 * @example
 * ```ts ignore
 * await linkSnapshotFile(storage, commit, "config.json", etag);
 * ```
 */
export async function linkSnapshotFile(
  storage: string,
  commit: string,
  file: string,
  etag: string,
): Promise<void> {
  const dst = snapshotPath(storage, commit, file);
  const [folder] = splitPath(dst);
  await Deno.mkdir(folder, { recursive: true });
  // snapshots/<commit>/a/b.json → ../../../blobs/<etag>: one ".." per folder below the storage.
  const depth = 2 + file.split("/").length - 1;
  const target = `${"../".repeat(depth)}blobs/${etag}`;
  const tmp = `${dst}.tmp-llmc-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    try {
      await Deno.symlink(target, tmp);
    } catch {
      await Deno.copyFile(blobPath(storage, etag), tmp);
    }
    await Deno.rename(tmp, dst);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Whether a path exists, following symlinks (a dangling link is missing).
 *
 * @param path the path
 * @returns true when it resolves to a file or folder
 * @example
 * ```ts
 * import { resolvesToEntry } from "./hub_cache.ts";
 * await resolvesToEntry("/"); // true
 * ```
 */
export async function resolvesToEntry(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
