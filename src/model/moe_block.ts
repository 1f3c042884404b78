/**
 * The sparse MLP of a mixture-of-experts decoder layer on the GPU, recorded
 * into the layer's command batch. It computes what transformers'
 * `MixtralSparseMoeBlock` / `Qwen2MoeSparseMoeBlock` / `Qwen3MoeSparseMoeBlock`
 * compute:
 *
 *   w   = topk(softmax(router(x)))                 (renormalized: mixtral, norm_topk_prob)
 *   out = Σₑ w[:, e] · down_e(silu(gate_e(x)) · up_e(x))
 *       + sigmoid(shared_expert_gate(x)) · shared_expert(x)     (qwen2_moe)
 *
 * Every expert runs on every token and tokens not routed to it get weight 0,
 * so the output equals the routed sum while each expert's inputs exist for
 * all tokens: calibration with `moe_calibrate_all_experts` taps them as they
 * are, and without it taps them with the unrouted rows zeroed (zero rows add
 * nothing to a Hessian XᵀX nor move a min/max observer that includes 0),
 * which is what the expert would have seen of the routed tokens alone.
 *
 * @module
 */

import type { CommandBatch } from "../gpu/batch.ts";
import { matmul } from "../gpu/ops.ts";
import { GpuTensor } from "../gpu/tensor.ts";
import type { DecoderLayerContext } from "./decoder_layer.ts";
import type { LayerWeights } from "./layer_weights.ts";
import { layerPrefix } from "./module_names.ts";
import { accumulateWeighted, maskRows, routeTopK } from "./moe_ops.ts";
import { moeModuleNames } from "./moe_names.ts";

/**
 * Records the sparse MLP of layer `weights.layer` applied to the normed
 * residual `x` into `batch`.
 *
 * @param batch where the kernels are recorded
 * @param ctx config, kernels, shapes and hooks of the layer
 * @param weights the layer's GPU weights
 * @param x the post-attention RMSNorm output, [rows, hidden]; not modified
 * @param temp registers an intermediate the layer destroys after recording
 * @returns the block's output, [rows, hidden] (owned by the caller)
 * @example
 * ```ts ignore
 * import { encodeMoeBlock } from "./moe_block.ts";
 * const mlpOut = encodeMoeBlock(batch, ctx, weights, hn, temp);
 * ```
 */
export function encodeMoeBlock(
  batch: CommandBatch,
  ctx: DecoderLayerContext,
  weights: LayerWeights,
  x: GpuTensor,
  temp: (t: GpuTensor) => GpuTensor,
): GpuTensor {
  const { config, sequences, seqLen } = ctx;
  const moe = config.moe!;
  const layer = weights.layer;
  const prefix = layerPrefix(layer);
  const names = moeModuleNames(config);
  const allExperts = ctx.moeCalibrateAllExperts ?? true;
  const [rows, hidden] = [x.numel / config.hiddenSize, config.hiddenSize];

  // Taps `tapped` as the input of `group`; returns what the Linears compute with.
  const input = (group: readonly string[], tapped: GpuTensor, computed: GpuTensor) => {
    const modules = group.map((l) => `${prefix}.${l}`);
    ctx.taps?.({ kind: "linear_input", layer, modules, x: tapped, batch, sequences, seqLen });
    const transformed = ctx.transformLinearInput?.(modules, computed, batch) ?? computed;
    return transformed === computed ? computed : temp(transformed);
  };
  const linear = (l: string, v: GpuTensor) => temp(matmul(batch, v, weights.module(l)));
  // What an expert's statistics see: all tokens, or only those routed to it.
  const routed = (v: GpuTensor, routing: GpuTensor, e: number) =>
    allExperts || ctx.taps === undefined ? v : temp(maskRows(batch, v, routing, e));

  const shared = names.shared;
  const moeIn = input(
    shared === null ? [names.router] : [names.router, shared.gate, shared.up, shared.sharedGate],
    x,
    x,
  );
  const routing = temp(routeTopK(batch, linear(names.router, moeIn), moe.topK, moe.normTopkProb));
  ctx.taps?.({
    kind: "moe_routing",
    layer,
    module: `${prefix}.${names.block}`,
    weights: routing,
    batch,
    sequences,
    seqLen,
  });

  const out = GpuTensor.allocate(ctx.ops.gpu, [rows, hidden]);
  try {
    for (let e = 0; e < moe.numExperts; e++) {
      const n = names.expert(e);
      const xe = input([n.gate, n.up], routed(x, routing, e), x);
      const act = temp(ctx.ops.siluMul(batch, linear(n.gate, xe), linear(n.up, xe)));
      const y = linear(n.down, input([n.down], routed(act, routing, e), act));
      accumulateWeighted(batch, out, y, routing, e, { overwrite: e === 0 });
    }
    if (shared !== null) {
      const act = temp(
        ctx.ops.siluMul(batch, linear(shared.gate, moeIn), linear(shared.up, moeIn)),
      );
      const y = linear(shared.down, input([shared.down], act, act));
      const gate = linear(shared.sharedGate, moeIn);
      accumulateWeighted(batch, out, y, gate, 0, { sigmoid: true });
    }
  } catch (e) {
    out.destroy();
    throw e;
  }
  return out;
}
