/**
 * What `--model` (and the API's `model`) accepts: a local folder, or a Hub
 * id `org/name[@revision]` resolved through the Hugging Face cache.
 *
 * @module
 */

import { isAuxiliaryFileName } from "../io/hf_model.ts";
import { type HubError, HubNotFoundError, HubOfflineError } from "./hub_errors.ts";
import { parseHubId } from "./hub_id.ts";
import { resolvesToEntry } from "./hub_cache.ts";
import { snapshotDownload } from "./snapshot_download.ts";
import type { SnapshotRequest } from "./snapshot_download.ts";

/**
 * Whether a file of a model repository is one llmc reads or carries over:
 * config.json, safetensors weights and their index, and the auxiliary files
 * (tokenizer, chat template, generation and processor configs, `*.py`);
 * files in subfolders and other weight formats (`*.bin`, `*.gguf`) are not.
 *
 * @param path the file's path in the repository
 * @returns true when a model download should fetch it
 * @example
 * ```ts
 * import { isModelRepoFile } from "./resolve_model.ts";
 * isModelRepoFile("model-00001-of-00002.safetensors"); // true
 * isModelRepoFile("pytorch_model.bin"); // false
 * ```
 */
export function isModelRepoFile(path: string): boolean {
  if (path.includes("/")) return false;
  return path === "config.json" || path.endsWith(".safetensors") ||
    path === "model.safetensors.index.json" || isAuxiliaryFileName(path);
}

/**
 * Resolves a model argument to a local folder: an existing path is used as
 * it is; otherwise `org/name[@revision]` is looked up in the Hugging Face
 * cache and completed from the Hub (see `snapshotDownload`), returning the
 * snapshot folder. Anything else is returned unchanged, so the caller
 * reports the missing folder.
 *
 * @param model a folder or a Hub id
 * @param options the cache, endpoint, token and offline mode (default: from the environment)
 * @returns the folder to open
 * @throws {HubError} subclasses when the Hub id cannot be resolved
 * @example
 * ```ts ignore
 * import { resolveModelDir } from "./resolve_model.ts";
 * const dir = await resolveModelDir("karpathy/stories260K"); // ~/.cache/huggingface/hub/models--karpathy--stories260K/snapshots/<commit>
 * ```
 */
export async function resolveModelDir(
  model: string,
  options: Omit<SnapshotRequest, "include" | "required"> = {},
): Promise<string> {
  if (await resolvesToEntry(model)) return model;
  const repo = parseHubId(model, "model");
  if (repo === null || repo.repoType !== "model") return model;
  try {
    return await snapshotDownload(repo, {
      ...options,
      include: isModelRepoFile,
      required: ["config.json"],
    });
  } catch (e) {
    // A mistyped local folder looks like an id too: say both readings failed.
    if (e instanceof HubNotFoundError || e instanceof HubOfflineError) {
      const Kind = e.constructor as typeof HubError;
      throw new Kind(`'${model}' is not a local folder, and as a Hub id: ${e.message}`, {
        cause: e,
      });
    }
    throw e;
  }
}
