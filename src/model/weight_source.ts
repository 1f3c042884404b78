/**
 * Where a decoder's tensors come from. `HfModel` (a checkpoint directory)
 * satisfies it; tests and modifiers may pass anything else that does.
 *
 * @module
 */

import type { ModelConfig } from "../io/model_config.ts";

/**
 * A model config plus float32 access to its tensors by HF name.
 *
 * @example
 * ```ts ignore
 * import type { WeightSource } from "./weight_source.ts";
 * import { HfModel } from "../io/hf_model.ts";
 * const source: WeightSource = await HfModel.open("/models/llama");
 * const norm = await source.readF32("model.norm.weight");
 * ```
 */
export interface WeightSource {
  /** The parsed config.json. */
  readonly config: ModelConfig;
  /** Whether a tensor of that name exists. */
  has(name: string): boolean;
  /** The tensor's values converted to float32, row-major. */
  readF32(name: string): Promise<Float32Array>;
}
