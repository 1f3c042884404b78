/**
 * The checkpoint tensors of one finished decoder layer: each quantized
 * Linear compressed in its format with its weight qparams and observed input
 * scales (§1.9, §1.9.10), each attention module's K/V (and Q) scales
 * (§1.9.12), every tensor a modifier rewrote (a smoothed norm weight, a
 * rescaled Linear left dense) in its stored dtype, and every other tensor of
 * the layer copied unchanged.
 *
 * @module
 */

import { applySparsityCompression, compressModule } from "../compress/compress_module.ts";
import { kvCacheScaleTensors } from "../compress/kv_cache_scales.ts";
import type { HfModel } from "../io/hf_model.ts";
import { f32ToBytes } from "../io/tensor_bytes.ts";
import { layerPrefix } from "../model/module_names.ts";
import { computeDTypeOf } from "../modifiers/quantization/linear_plan.ts";
import type { CheckpointTensor } from "../sink/checkpoint_sink.ts";
import type { LayerResult } from "../graph/modifier.ts";
import type { SparsityTracker } from "./sparsity_config.ts";

/** What a layer's tensors are read from. */
export type LayerTensorSource = Pick<HfModel, "tensorNames" | "info" | "readRaw">;

/**
 * Builds a finished layer's checkpoint tensors.
 *
 * @param source the source checkpoint (copied tensors, stored dtypes)
 * @param layer the decoder layer
 * @param result the layer's module results
 * @param sparsity with a sparsity modifier: measures each weight; sparse targets are
 *   sparsity-compressed after quantization compression (§1.9.9) when its format is not dense
 * @param parts tensors of the layer already built from earlier parts of it (expert groups,
 *   {@link linearCheckpointTensors}): kept, and not copied from the source again
 * @returns the tensors to hand to `sink.writeLayer`
 * @throws {CompressionError} (from compress) when a module's format precondition fails
 * @example
 * ```ts ignore
 * await sink.writeLayer(k, await layerCheckpointTensors(model, k, done.result));
 * ```
 */
export async function layerCheckpointTensors(
  source: LayerTensorSource,
  layer: number,
  result: LayerResult,
  sparsity: SparsityTracker | null = null,
  parts: readonly CheckpointTensor[] = [],
): Promise<CheckpointTensor[]> {
  const prefix = layerPrefix(layer) + ".";
  const out: CheckpointTensor[] = [...parts];
  const replaced = new Set<string>();
  // A compressed Linear's tensors are named after its module: its dense weight is not copied.
  for (const t of parts) replaced.add(t.name.replace(/\.[^.]+$/, ".weight"));
  out.push(...linearCheckpointTensors(source, result, sparsity));
  for (const l of result.linears) replaced.add(`${l.module}.weight`);
  for (const a of result.attention) {
    const name = `${a.module}.k_proj.weight`;
    const dtype = computeDTypeOf(source.info(name).dtype, name);
    out.push(...kvCacheScaleTensors(a.module, { k: a.k, v: a.v, q: a.q }, a.args, dtype));
  }
  for (const [name, values] of result.tensors ?? []) {
    if (replaced.has(name)) continue;
    const info = source.info(name);
    const n = info.shape.reduce((a, b) => a * b, 1);
    if (values.length !== n) {
      throw new RangeError(`${name}: rewritten tensor has ${values.length} values, expected ${n}`);
    }
    replaced.add(name);
    out.push({ name, dtype: info.dtype, shape: info.shape, data: f32ToBytes(info.dtype, values) });
  }
  for (const name of source.tensorNames()) {
    if (!name.startsWith(prefix) || replaced.has(name)) continue;
    const info = source.info(name);
    out.push({ name, dtype: info.dtype, shape: info.shape, data: await source.readRaw(name) });
  }
  return out;
}

/**
 * The checkpoint tensors of a result's Linears alone: each compressed in its
 * format with its qparams (a layer's expert groups are compressed as they finish).
 *
 * @param source the source checkpoint (stored dtypes)
 * @param result the results whose Linears to compress
 * @param sparsity as for {@link layerCheckpointTensors}
 * @returns the Linears' tensors
 * @throws {CompressionError} (from compress) when a module's format precondition fails
 * @example
 * ```ts ignore
 * const part = linearCheckpointTensors(model, groupResult);
 * ```
 */
export function linearCheckpointTensors(
  source: LayerTensorSource,
  result: LayerResult,
  sparsity: SparsityTracker | null = null,
): CheckpointTensor[] {
  const out: CheckpointTensor[] = [];
  for (const l of result.linears) {
    const name = `${l.module}.weight`;
    const dtype = computeDTypeOf(source.info(name).dtype, name);
    const tensors = compressModule(
      l.module,
      l.weight,
      l.shape,
      l.scheme,
      { weight: l.weightQParams, input: l.input },
      dtype,
      l.format,
    );
    const target = sparsity?.record(l.module, l.weight, l.shape[1]) ?? false;
    out.push(
      ...(target && sparsity!.format !== "dense"
        ? applySparsityCompression(l.module, tensors, sparsity!.format)
        : tensors),
    );
  }
  return out;
}
