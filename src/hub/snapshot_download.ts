/**
 * A repository revision as a local folder: the cache's snapshot, completed
 * from the Hub when files are missing, or served from the cache alone when
 * offline (huggingface_hub's `snapshot_download` for the files llmc needs).
 *
 * @module
 */

import { HubError, HubOfflineError } from "./hub_errors.ts";
import { describeRepo } from "./hub_id.ts";
import type { HubRepo } from "./hub_id.ts";
import { hubSettings } from "./hub_settings.ts";
import type { HubOptions } from "./hub_settings.ts";
import {
  blobPath,
  cachedCommit,
  linkSnapshotFile,
  repoCacheDir,
  resolvesToEntry,
  snapshotPath,
  writeRef,
} from "./hub_cache.ts";
import { fileMetadata, HubConnectionError, repoInfo } from "./_hub_http.ts";
import { downloadBlob } from "./_blob_download.ts";

/** What to fetch from a repository. */
export interface SnapshotRequest extends HubOptions {
  /** Which files of the listing to download (all by default). */
  readonly include?: (path: string) => boolean;
  /** Files that must be present in a snapshot served from the cache alone. */
  readonly required?: readonly string[];
  /** Called when the Hub cannot be reached and the cached snapshot is used instead. */
  readonly onWarning?: (message: string) => void;
}

/**
 * Makes a revision of a Hub repository available as a local folder and
 * returns it (`<cache>/models--org--name/snapshots/<commit>`).
 *
 * Online, the revision's listing names the commit; every wanted file not yet
 * in that snapshot is downloaded into `blobs/` (resumable, size- and
 * hash-checked) and linked into the snapshot, and `refs/<revision>` records
 * the commit. Offline (`HF_HUB_OFFLINE=1`), or when the endpoint cannot be
 * reached, the cached snapshot the revision points to is used as it is.
 *
 * @param repo the repository and revision
 * @param request which files, the cache, endpoint, token and offline mode
 * @returns the snapshot folder
 * @throws {HubOfflineError} offline (or unreachable) with the revision or a required file not cached
 * @throws {HubAuthError} for a gated or private repository without a token that may read it
 * @throws {HubNotFoundError} for a repository, revision or file the Hub does not have
 * @throws {HubChecksumError} when a download's size or hash differs from the Hub's
 * @example
 * ```ts ignore
 * import { snapshotDownload } from "./snapshot_download.ts";
 * const dir = await snapshotDownload(
 *   { repoId: "karpathy/stories260K", revision: "main", repoType: "model" },
 *   { include: (p) => !p.includes("/") },
 * );
 * ```
 */
export async function snapshotDownload(
  repo: HubRepo,
  request: SnapshotRequest = {},
): Promise<string> {
  const settings = hubSettings(request);
  const storage = repoCacheDir(settings.cacheDir, repo);
  if (settings.offline) {
    return await fromCache(storage, repo, request, "HF_HUB_OFFLINE is set");
  }
  let info;
  try {
    info = await repoInfo(settings, repo);
  } catch (e) {
    if (!(e instanceof HubConnectionError)) throw e;
    const dir = await fromCache(storage, repo, request, `${settings.endpoint} cannot be reached`);
    (request.onWarning ?? console.warn)(
      `${describeRepo(repo)}: ${e.message}; using the cached snapshot ${dir}`,
    );
    return dir;
  }
  const commit = info.commit;
  const include = request.include ?? (() => true);
  for (const f of info.files) {
    if (!include(f.path)) continue;
    // A listed path must stay inside the snapshot folder.
    if (
      f.path.startsWith("/") ||
      f.path.split("/").some((seg) => seg === "" || seg === "." || seg === "..")
    ) {
      throw new HubError(
        `${describeRepo(repo)}: the listing names an unsafe path ${JSON.stringify(f.path)}`,
      );
    }
    if (await resolvesToEntry(snapshotPath(storage, commit, f.path))) continue;
    const meta = await fileMetadata(settings, repo, commit, f.path);
    const etag = meta.etag ?? f.sha256;
    // The etag names a file in blobs/: plain characters only.
    if (etag === undefined || etag === null || !/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(etag)) {
      throw new HubError(
        `${describeRepo(repo)}: ${f.path}: the Hub gave no usable ETag (X-Linked-Etag or ETag)`,
      );
    }
    if (meta.commit !== null && meta.commit !== commit) {
      throw new HubError(
        `${describeRepo(repo)}: ${f.path}: X-Repo-Commit is ${meta.commit}, but the listing ` +
          `said ${commit}`,
      );
    }
    const blob = blobPath(storage, etag);
    if (!await resolvesToEntry(blob)) {
      settings.onDownload?.({ file: f.path, bytes: meta.size ?? f.size ?? null });
      await Deno.mkdir(`${storage}/blobs`, { recursive: true });
      await downloadBlob(settings, repo, meta.location, blob, {
        file: f.path,
        etag,
        size: meta.size ?? f.size ?? null,
      });
    }
    await linkSnapshotFile(storage, commit, f.path, etag);
  }
  await Deno.mkdir(snapshotPath(storage, commit), { recursive: true });
  await writeRef(storage, repo.revision, commit);
  return snapshotPath(storage, commit);
}

async function fromCache(
  storage: string,
  repo: HubRepo,
  request: SnapshotRequest,
  why: string,
): Promise<string> {
  const commit = await cachedCommit(storage, repo.revision);
  const dir = commit === null ? null : snapshotPath(storage, commit);
  if (dir === null || !await resolvesToEntry(dir)) {
    throw new HubOfflineError(
      `${describeRepo(repo)}: ${why} and the cache has no snapshot of this revision ` +
        `(looked in ${storage}); download it once online, or unset HF_HUB_OFFLINE`,
    );
  }
  for (const f of request.required ?? []) {
    if (!await resolvesToEntry(snapshotPath(storage, commit!, f))) {
      throw new HubOfflineError(
        `${describeRepo(repo)}: ${why} and ${f} is not in the cached snapshot ${dir}; ` +
          `download it once online, or unset HF_HUB_OFFLINE`,
      );
    }
  }
  return dir;
}
