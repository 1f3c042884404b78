/**
 * Which decoder layers use sliding-window attention, as transformers decides.
 *
 * @module
 */

import type { ModelConfig } from "../io/model_config.ts";

/** transformers' Qwen2Config / Qwen3Config default for `max_window_layers`. */
const QWEN_MAX_WINDOW_LAYERS = 28;

/**
 * The attention window of decoder layer `k`, or null for full causal
 * attention:
 *
 * - mistral: `sliding_window` on every layer;
 * - qwen2 / qwen3 (only with `use_sliding_window`): layers marked
 *   `"sliding_attention"` in `layer_types`, or, without `layer_types`, the
 *   layers from `max_window_layers` (default 28) on: the first
 *   `max_window_layers` layers attend fully;
 * - llama: never.
 *
 * @param config the model config (`slidingWindow` is already null when the
 *   architecture or `use_sliding_window` disables it)
 * @param k the layer index
 * @returns the number of keys each query sees (itself included), or null
 * @example
 * ```ts ignore
 * import { slidingWindowForLayer } from "./sliding_window.ts";
 * slidingWindowForLayer(mistralConfig, 0); // 4096
 * ```
 */
export function slidingWindowForLayer(config: ModelConfig, k: number): number | null {
  const window = config.slidingWindow;
  if (window === null || config.modelType === "llama") return null;
  if (config.modelType === "mistral" || config.modelType === "mixtral") return window;
  const layerTypes = config.raw.layer_types;
  if (Array.isArray(layerTypes)) return layerTypes[k] === "sliding_attention" ? window : null;
  const maxWindowLayers = config.raw.max_window_layers;
  const full = typeof maxWindowLayers === "number" ? maxWindowLayers : QWEN_MAX_WINDOW_LAYERS;
  return k >= full ? window : null;
}
