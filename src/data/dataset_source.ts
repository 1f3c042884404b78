/**
 * What `--dataset` names, made local: a text file, a dataset file or
 * folder, one of llm-compressor's named datasets, or a Hub dataset id
 * `org/name[@revision]` fetched through the Hugging Face cache.
 *
 * @module
 */

import { parseHubId } from "../hub/hub_id.ts";
import { resolvesToEntry } from "../hub/hub_cache.ts";
import { snapshotDownload } from "../hub/snapshot_download.ts";
import type { HubOptions } from "../hub/hub_settings.ts";
import { datasetPreset } from "./dataset_presets.ts";
import type { DatasetPreset } from "./dataset_presets.ts";
import { isRowFile } from "./dataset_rows.ts";
import { fileInSplit, parseSplit } from "./dataset_split.ts";

/** A dataset ready to read from disk. */
export interface ResolvedDataset {
  /** A local file or folder. */
  readonly path: string;
  /** The split expression to read (e.g. `train_sft[:512]`), if any. */
  readonly split?: string;
  /** The named dataset it came from, if any. */
  readonly preset?: DatasetPreset;
}

/**
 * Resolves a dataset argument. An existing path is used as it is. A
 * preset name (`ultrachat_200k`, `open_platypus`) becomes its Hub dataset
 * and default split. A Hub id (`org/name[@revision]`, or `datasets/org/name`)
 * is downloaded into (or, offline, read from) the Hugging Face cache: only
 * its data files (`.parquet`, `.jsonl`, `.json`, `.arrow`), and only the
 * requested split's when a split is given.
 *
 * @param dataset what the user passed
 * @param options the split expression and how to reach the Hub
 * @returns the local path, the split, and the preset
 * @throws {HubError} subclasses when the Hub id cannot be resolved
 * @example
 * ```ts ignore
 * import { resolveDataset } from "./dataset_source.ts";
 * await resolveDataset("HuggingFaceH4/ultrachat_200k", { splits: "train_sft[:512]" });
 * ```
 */
export async function resolveDataset(
  dataset: string,
  options: { splits?: string; hub?: HubOptions; onWarning?: (m: string) => void } = {},
): Promise<ResolvedDataset> {
  if (await resolvesToEntry(dataset)) return { path: dataset, split: options.splits };
  const preset = datasetPreset(dataset);
  let split = options.splits;
  let id = dataset;
  if (preset !== undefined) {
    id = preset.repoId;
    split = split === undefined ? preset.defaultSplit : renameSplit(split, preset);
  }
  const repo = parseHubId(id, "dataset");
  if (repo === null) return { path: dataset, split };
  const name = split === undefined ? undefined : parseSplit(split).name;
  const path = await snapshotDownload({ ...repo, repoType: "dataset" }, {
    ...options.hub,
    onWarning: options.onWarning,
    include: (p) => isRowFile(p) && (name === undefined || fileInSplit(p, name)),
  });
  return { path, split, preset };
}

function renameSplit(split: string, preset: DatasetPreset): string {
  if (preset.splitName === undefined) return split;
  const s = parseSplit(split);
  const renamed = preset.splitName(s.name);
  return renamed === s.name ? split : renamed + split.trim().slice(s.name.length);
}
