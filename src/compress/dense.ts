/**
 * `dense` (§1.9.1): the weight stays a plain `weight` tensor in the model
 * dtype. When the module was quantized, the caller passes the weight it wants
 * stored (the fake-quantized values after GPTQ, say) and `compressModule`
 * adds every qparam, zero points included even for symmetric args. vLLM
 * cannot serve quantized dense checkpoints; this is `save_compressed=False`.
 *
 * @module
 */

import { requireTensor, tensorFromValues, tensorValues } from "./compressed_tensor.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { CompressionError } from "./errors.ts";
import type { ModelDType } from "./qparam_tensors.ts";

/**
 * The `weight` tensor of a dense module.
 *
 * @param prefix the module name
 * @param weight the weight values
 * @param shape the weight's shape
 * @param modelDtype the dtype to store
 * @returns `[P.weight]`
 * @example
 * ```ts
 * import { compressDense } from "./dense.ts";
 * compressDense("m", new Float32Array([1, 2]), [1, 2], "BF16")[0].dtype; // "BF16"
 * ```
 */
export function compressDense(
  prefix: string,
  weight: Float32Array,
  shape: readonly number[],
  modelDtype: ModelDType,
): CompressedTensor[] {
  return [tensorFromValues(`${prefix}.weight`, modelDtype, shape, weight)];
}

/**
 * Reads a dense module's weight.
 *
 * @param prefix the module name
 * @param tensors the module's tensors
 * @returns the weight values and its 2-D shape
 * @throws {CompressionError} when `weight` is missing or not 2-D
 * @example
 * ```ts
 * import { compressDense, decompressDense } from "./dense.ts";
 * decompressDense("m", compressDense("m", new Float32Array([1, 2]), [1, 2], "F32")).weight; // [1, 2]
 * ```
 */
export function decompressDense(
  prefix: string,
  tensors: readonly CompressedTensor[],
): { weight: Float32Array; shape: [number, number] } {
  const w = requireTensor(tensors, `${prefix}.weight`);
  if (w.shape.length !== 2) {
    throw new CompressionError(`${w.name}: expected a 2-D weight, got [${w.shape}]`);
  }
  return { weight: tensorValues(w), shape: [w.shape[0], w.shape[1]] };
}
