/**
 * The KV-cache qparam tensors of an attention module (§1.9.12):
 * `k_scale`, `v_scale` (and `q_scale` with attention quantization) in the
 * model dtype, `[1]` for tensor or `[heads, 1, 1]` for attn_head; zero points
 * only for asymmetric args (which vLLM rejects).
 *
 * @module
 */

import type { QuantizationArgs } from "../quant/args.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { CompressionError } from "./errors.ts";
import { scaleTensor, zeroPointTensor } from "./qparam_tensors.ts";
import type { ModelDType } from "./qparam_tensors.ts";

/** Observed qparams of one of K, V or Q. */
export interface CacheQParams {
  /** Scales (`[1]` or one per head). */
  readonly scale: Float32Array;
  /** Zero points (asymmetric args only). */
  readonly zeroPoint?: Float32Array | null;
}

/**
 * The tensors of an attention module's KV-cache (and query) quantization.
 *
 * @param attention the attention module name, e.g. `model.layers.0.self_attn`
 * @param qparams observed qparams of k, v and optionally q
 * @param args the `kv_cache_scheme` args
 * @param modelDtype the model's dtype
 * @returns `k_scale`, `v_scale`, optional `q_scale`, and zero points when asymmetric
 * @throws {CompressionError} for a strategy other than tensor / attn_head
 * @example
 * ```ts
 * import { kvCacheScaleTensors } from "./kv_cache_scales.ts";
 * import { parseQuantizationArgs } from "../quant/args.ts";
 * const kv = parseQuantizationArgs({ num_bits: 8, type: "float", strategy: "tensor" }, "kv_cache_scheme");
 * kvCacheScaleTensors("model.layers.0.self_attn", { k: { scale: new Float32Array([0.01]) }, v: { scale: new Float32Array([0.02]) } }, kv, "BF16")
 *   .map((t) => t.name); // ["model.layers.0.self_attn.k_scale", "model.layers.0.self_attn.v_scale"]
 * ```
 */
export function kvCacheScaleTensors(
  attention: string,
  qparams: { k: CacheQParams; v: CacheQParams; q?: CacheQParams | null },
  args: QuantizationArgs,
  modelDtype: ModelDType,
): CompressedTensor[] {
  if (args.strategy !== "tensor" && args.strategy !== "attn_head") {
    throw new CompressionError(
      `${attention}: kv_cache_scheme strategy must be tensor or attn_head, got ${args.strategy}`,
    );
  }
  const out: CompressedTensor[] = [];
  for (const [name, qp] of [["k", qparams.k], ["v", qparams.v], ["q", qparams.q]] as const) {
    if (!qp) continue;
    const shape = args.strategy === "tensor" ? [1] : [qp.scale.length, 1, 1];
    out.push(scaleTensor(`${attention}.${name}_scale`, qp.scale, shape, args, modelDtype));
    if (!args.symmetric) {
      out.push(
        zeroPointTensor(
          `${attention}.${name}_zero_point`,
          qp.zeroPoint ?? new Float32Array(qp.scale.length),
          shape,
          args,
        ),
      );
    }
  }
  return out;
}
