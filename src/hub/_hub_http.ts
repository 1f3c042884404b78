/**
 * The Hub's HTTP routes llmc uses, and how their failures read:
 * `GET api/{models|datasets}/{repo}/revision/{rev}` (the file listing),
 * `HEAD {repo}/resolve/{rev}/{file}` (commit, etag, size) and
 * `GET` of the same URL (the bytes, following the redirect to the CDN).
 *
 * @module
 */

import { HubAuthError, HubError, HubNotFoundError } from "./hub_errors.ts";
import { describeRepo } from "./hub_id.ts";
import type { HubRepo } from "./hub_id.ts";
import type { HubSettings } from "./hub_settings.ts";

/** The endpoint could not be reached at all (no HTTP answer). */
export class HubConnectionError extends HubError {}

/** One file of a repository listing. */
export interface RepoFile {
  /** Its path in the repository. */
  readonly path: string;
  /** Its size in bytes, when the listing gives it. */
  readonly size?: number;
  /** The sha256 of an LFS file, when the listing gives it. */
  readonly sha256?: string;
}

/** What the listing says about a revision. */
export interface RepoInfo {
  /** The commit the revision points to. */
  readonly commit: string;
  /** Every file at that commit. */
  readonly files: readonly RepoFile[];
}

/** What a `HEAD` of a file's resolve URL says. */
export interface FileMetadata {
  /** `X-Repo-Commit`. */
  readonly commit: string | null;
  /** `X-Linked-Etag`, else `ETag`, without quotes or a weak `W/` prefix. */
  readonly etag: string | null;
  /** `X-Linked-Size`, else `Content-Length` of a non-redirect answer. */
  readonly size: number | null;
  /** Where the bytes are: the redirect's `Location`, else the resolve URL. */
  readonly location: string;
}

function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

/**
 * The resolve URL of a file: `{endpoint}/[datasets/]{repo}/resolve/{rev}/{file}`.
 *
 * @param settings endpoint
 * @param repo the repository
 * @param revision a branch, tag or commit
 * @param file the path in the repository
 * @returns the URL
 */
export function resolveUrl(
  settings: HubSettings,
  repo: HubRepo,
  revision: string,
  file: string,
): string {
  const prefix = repo.repoType === "dataset" ? "datasets/" : "";
  return `${settings.endpoint}/${prefix}${repo.repoId}/resolve/${encodeURIComponent(revision)}/${
    encodePath(file)
  }`;
}

/**
 * The request headers: the token as a bearer token, and no compression so
 * sizes and byte ranges mean the file's own bytes.
 *
 * @param settings the token
 * @param extra more headers
 * @returns the headers
 */
export function hubHeaders(settings: HubSettings, extra: Record<string, string> = {}): Headers {
  const h = new Headers({ "Accept-Encoding": "identity", "User-Agent": "llmc", ...extra });
  if (settings.token !== null) h.set("Authorization", `Bearer ${settings.token}`);
  return h;
}

/**
 * Fetches, turning a failure to connect into {@link HubConnectionError}.
 *
 * @param url the URL
 * @param init the request
 * @returns the response, whatever its status
 */
export async function hubFetch(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    throw new HubConnectionError(`cannot reach ${url}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Throws the error a failed answer means, naming the repository, revision
 * and file: 401/403 ask for `HF_TOKEN`, 404 says which of repository,
 * revision or file is missing (from `X-Error-Code`).
 *
 * @param res the answer
 * @param repo the repository
 * @param settings whether a token was sent
 * @param file the file asked for, if any
 */
export async function throwForStatus(
  res: Response,
  repo: HubRepo,
  settings: HubSettings,
  file?: string,
): Promise<void> {
  if (res.ok || (res.status >= 300 && res.status < 400)) return;
  const code = res.headers.get("X-Error-Code");
  const serverMessage = res.headers.get("X-Error-Message") ??
    (await res.text().catch(() => "")).slice(0, 200);
  await res.body?.cancel().catch(() => {});
  const what = `${describeRepo(repo)}${file === undefined ? "" : `: ${file}`}`;
  const said = serverMessage === "" ? "" : ` (the Hub said: ${serverMessage.trim()})`;
  if (res.status === 401 || res.status === 403) {
    const gated = code === "GatedRepo" ? "gated " : "";
    const advice = settings.token === null
      ? "it is gated or private: accept its terms on the Hub if it is gated, then set HF_TOKEN " +
        "to an access token (or run `huggingface-cli login`)"
      : "the token in HF_TOKEN has no access to it: accept its terms on the Hub if it is gated, " +
        "or use a token that can read it";
    throw new HubAuthError(
      `${what}: access to this ${gated}repository was refused (HTTP ${res.status}); ${advice}${said}`,
    );
  }
  if (res.status === 404) {
    const why = code === "EntryNotFound"
      ? `file '${file}' does not exist at revision '${repo.revision}'`
      : code === "RevisionNotFound"
      ? `revision '${repo.revision}' does not exist`
      : `repository '${repo.repoId}' was not found (check the id; a private repository needs HF_TOKEN)`;
    throw new HubNotFoundError(`${what}: ${why} (HTTP 404)${said}`);
  }
  throw new HubError(`${what}: the Hub answered HTTP ${res.status}${said}`);
}

/**
 * Lists a revision's files: `GET {endpoint}/api/{models|datasets}/{repo}/revision/{rev}?blobs=true`.
 *
 * @param settings endpoint and token
 * @param repo the repository and revision
 * @returns the commit and the files
 * @throws {HubAuthError} / {HubNotFoundError} / {HubError} / {HubConnectionError}
 */
export async function repoInfo(settings: HubSettings, repo: HubRepo): Promise<RepoInfo> {
  const kind = repo.repoType === "dataset" ? "datasets" : "models";
  const url = `${settings.endpoint}/api/${kind}/${repo.repoId}/revision/${
    encodeURIComponent(repo.revision)
  }?blobs=true`;
  const res = await hubFetch(url, { headers: hubHeaders(settings) });
  await throwForStatus(res, repo, settings);
  let json: unknown;
  try {
    json = await res.json();
  } catch (e) {
    throw new HubError(`${describeRepo(repo)}: ${url} did not answer JSON`, { cause: e });
  }
  const o = json as { sha?: unknown; siblings?: unknown } | null;
  if (typeof o?.sha !== "string" || !Array.isArray(o.siblings)) {
    throw new HubError(`${describeRepo(repo)}: ${url} answered no 'sha' and 'siblings'`);
  }
  const files: RepoFile[] = [];
  for (const s of o.siblings as { rfilename?: unknown; size?: unknown; lfs?: unknown }[]) {
    if (typeof s?.rfilename !== "string") continue;
    const lfs = s.lfs as { sha256?: unknown; size?: unknown } | undefined;
    files.push({
      path: s.rfilename,
      size: typeof lfs?.size === "number"
        ? lfs.size
        : typeof s.size === "number"
        ? s.size
        : undefined,
      sha256: typeof lfs?.sha256 === "string" ? lfs.sha256 : undefined,
    });
  }
  return { commit: o.sha, files };
}

function normalizeEtag(etag: string | null): string | null {
  if (etag === null) return null;
  return etag.replace(/^W\//, "").replace(/^"|"$/g, "");
}

/**
 * `HEAD` of a file's resolve URL, following only relative redirects (a
 * renamed repository); an absolute redirect (to the CDN, for LFS files) is
 * where the bytes are, and its headers carry the linked etag and size.
 *
 * @param settings endpoint and token
 * @param repo the repository
 * @param commit the commit to read from
 * @param file the path in the repository
 * @returns the metadata
 */
export async function fileMetadata(
  settings: HubSettings,
  repo: HubRepo,
  commit: string,
  file: string,
): Promise<FileMetadata> {
  let url = resolveUrl(settings, repo, commit, file);
  for (let hops = 0;; hops++) {
    const res = await hubFetch(url, {
      method: "HEAD",
      headers: hubHeaders(settings),
      redirect: "manual",
    });
    await throwForStatus(res, repo, settings, file);
    const location = res.headers.get("Location");
    const redirect = res.status >= 300 && res.status < 400 && location !== null;
    if (redirect && location.startsWith("/") && hops < 5) {
      url = new URL(location, url).href;
      continue;
    }
    const h = (name: string) => res.headers.get(name);
    const sizeText = h("X-Linked-Size") ?? (redirect ? null : h("Content-Length"));
    return {
      commit: h("X-Repo-Commit"),
      etag: normalizeEtag(h("X-Linked-Etag") ?? h("ETag")),
      size: sizeText === null || !/^\d+$/.test(sizeText) ? null : Number(sizeText),
      location: redirect ? new URL(location, url).href : url,
    };
  }
}
