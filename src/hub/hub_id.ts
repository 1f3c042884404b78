/**
 * Hub repository ids as users write them: `org/name` or `org/name@revision`.
 *
 * @module
 */

/** The kinds of Hub repositories llmc reads. */
export type RepoType = "model" | "dataset";

/** A parsed Hub repository reference. */
export interface HubRepo {
  /** `org/name`. */
  readonly repoId: string;
  /** A branch, tag or commit hash; `main` when none was given. */
  readonly revision: string;
  /** Model or dataset repository. */
  readonly repoType: RepoType;
}

// The Hub's own rule for names: letters, digits, '-', '_', '.'; no '--' or '..', no
// leading/trailing '-' or '.' (huggingface_hub's validate_repo_id).
const NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$/;

/**
 * Parses `org/name[@revision]`, also with a `datasets/` prefix for a dataset
 * (as in Hub URLs). Returns null for anything else (a local path such as
 * `./x`, `/abs/dir`, `a/b/c`), so callers can fall back to the file system.
 *
 * @param text what the user wrote
 * @param repoType the kind of repository meant, unless a `datasets/` prefix says otherwise
 * @returns the reference, or null when `text` is not a Hub id
 * @example
 * ```ts
 * import { parseHubId } from "./hub_id.ts";
 * parseHubId("karpathy/stories260K"); // { repoId: "karpathy/stories260K", revision: "main", repoType: "model" }
 * parseHubId("org/name@v1.0")?.revision; // "v1.0"
 * parseHubId("datasets/HuggingFaceH4/ultrachat_200k")?.repoType; // "dataset"
 * parseHubId("./models/x"); // null
 * ```
 */
export function parseHubId(text: string, repoType: RepoType = "model"): HubRepo | null {
  let rest = text;
  let type = repoType;
  if (rest.startsWith("datasets/")) {
    rest = rest.slice("datasets/".length);
    type = "dataset";
  }
  const at = rest.indexOf("@");
  const id = at < 0 ? rest : rest.slice(0, at);
  const revision = at < 0 ? "main" : rest.slice(at + 1);
  const parts = id.split("/");
  if (parts.length !== 2) return null;
  for (const p of parts) {
    if (!NAME.test(p) || p.includes("--") || p.includes("..")) return null;
  }
  if (revision === "" || revision.includes("..") || /[\s\\]/.test(revision)) return null;
  return { repoId: id, revision, repoType: type };
}

/**
 * Whether a revision is a full commit hash (then no `refs/` lookup is needed).
 *
 * @param revision a branch, tag or commit
 * @returns true for 40 lowercase hex digits
 * @example
 * ```ts
 * import { isCommitHash } from "./hub_id.ts";
 * isCommitHash("main"); // false
 * isCommitHash("0123456789abcdef0123456789abcdef01234567"); // true
 * ```
 */
export function isCommitHash(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

/**
 * How a reference reads in messages: `org/name@rev`, with `datasets/` for datasets.
 *
 * @param repo the reference
 * @returns the text
 * @example
 * ```ts
 * import { describeRepo } from "./hub_id.ts";
 * describeRepo({ repoId: "a/b", revision: "main", repoType: "dataset" }); // "datasets/a/b@main"
 * ```
 */
export function describeRepo(repo: HubRepo): string {
  return `${repo.repoType === "dataset" ? "datasets/" : ""}${repo.repoId}@${repo.revision}`;
}
