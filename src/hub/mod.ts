/**
 * The Hugging Face Hub and its cache: `org/name[@revision]` ids resolved
 * through the cache layout huggingface_hub uses (`HF_HUB_CACHE`, `HF_HOME`),
 * completed from `HF_ENDPOINT` with `HF_TOKEN`, or served from the cache
 * alone with `HF_HUB_OFFLINE=1`.
 *
 * @example
 * ```ts ignore
 * import { resolveModelDir } from "./mod.ts";
 * const dir = await resolveModelDir("karpathy/stories260K@main");
 * ```
 *
 * @module
 */

export * from "./hub_errors.ts";
export * from "./hub_id.ts";
export * from "./hub_settings.ts";
export * from "./hub_cache.ts";
export * from "./snapshot_download.ts";
export * from "./resolve_model.ts";
