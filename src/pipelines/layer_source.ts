/**
 * Reading one decoder layer's dense weights onto the host: every tensor of
 * the layer as float32 (validated against the config's shapes) with its
 * stored dtype, which scales are later stored in.
 *
 * @module
 */

import type { DType } from "../io/dtype.ts";
import type { HfModel } from "../io/hf_model.ts";
import { readLayerTensors } from "../model/layer_tensors.ts";
import type { LayerWeightsOnHost } from "./sequential.ts";

/**
 * Layer k's weights from a checkpoint.
 *
 * @param source the checkpoint
 * @param k the layer
 * @param substitutes tensors (by full name) that replace the checkpoint's
 * @param include which tensors to read (default: all)
 * @returns the weights and their dtypes
 * @throws {DecoderModelError} (from model) for a missing or misshapen tensor
 * @example
 * ```ts ignore
 * const { weights, dtypes } = await readLayerFromSource(hf, 0);
 * ```
 */
export async function readLayerFromSource(
  source: HfModel,
  k: number,
  substitutes?: ReadonlyMap<string, Float32Array>,
  include?: (name: string) => boolean,
): Promise<LayerWeightsOnHost> {
  const weights = await readLayerTensors(source, k, substitutes, include);
  const dtypes = new Map<string, DType>();
  for (const name of weights.keys()) dtypes.set(name, source.info(name).dtype);
  return { weights, dtypes };
}
