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
  /**
   * True when every array the source returns (from `readF32`, and
   * `readRowsF32` where it has one) is new and belongs to the caller, who may
   * then free it at once with {@link releaseRead} instead of waiting for the
   * garbage collector. Absent or false: arrays may be shared or cached.
   */
  readonly returnsFreshArrays?: boolean;
}

/**
 * Frees an array the caller read from `source` and no longer needs, when
 * the source says its arrays are the caller's ({@link WeightSource.returnsFreshArrays})
 * and the array spans its whole buffer: the buffer is detached, so its
 * memory goes back at once. Layer weights are released this way right after
 * their upload; left to the garbage collector, a model's worth of uploaded
 * host copies can pile up between collections. Otherwise does nothing.
 *
 * @param source where `data` was read from
 * @param data the array, not used afterwards by anyone
 * @returns true when the memory was released
 * @example
 * ```ts ignore
 * import { releaseRead } from "./weight_source.ts";
 * const w = await model.readF32("model.norm.weight");
 * const t = engine.upload(w, [w.length]);
 * releaseRead(model, w);
 * ```
 */
export function releaseRead(source: WeightSource, data: Float32Array): boolean {
  const buffer = data.buffer;
  if (
    source.returnsFreshArrays !== true || !(buffer instanceof ArrayBuffer) ||
    data.byteOffset !== 0 || data.byteLength !== buffer.byteLength || buffer.byteLength === 0
  ) {
    return false;
  }
  buffer.transfer(0);
  return true;
}
