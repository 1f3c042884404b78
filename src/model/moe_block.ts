/**
 * The sparse MLP of a mixture-of-experts decoder layer, recorded on the
 * layer's compute engine (WebGPU or CPU: it uses only {@link Engine} ops). It computes what transformers'
 * `MixtralSparseMoeBlock` / `Qwen2MoeSparseMoeBlock` / `Qwen3MoeSparseMoeBlock`
 * compute:
 *
 *   w   = topk(softmax(router(x)))                 (renormalized: mixtral, norm_topk_prob)
 *   out = sigmoid(shared_expert_gate(x)) · shared_expert(x)     (qwen2_moe)
 *       + Σₑ w[:, e] · down_e(silu(gate_e(x)) · up_e(x))        (e = 0, 1, … in order)
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

import type { Engine, Tensor } from "../engine/engine.ts";
import type { DecoderLayerContext } from "./decoder_layer.ts";
import type { LayerWeights } from "./layer_weights.ts";
import { layerPrefix } from "./module_names.ts";
import { moeModuleNames } from "./moe_names.ts";

/**
 * Records the sparse MLP of layer `weights.layer` applied to the normed
 * residual `x` on `ctx.engine`.
 *
 * @param ctx config, engine, shapes and hooks of the layer
 * @param weights the layer's weights
 * @param x the post-attention RMSNorm output, [rows, hidden]; not modified
 * @param temp registers an intermediate the layer destroys after its work ran
 * @returns the block's output, [rows, hidden] (owned by the caller)
 * @example
 * ```ts ignore
 * import { encodeMoeBlock } from "./moe_block.ts";
 * const mlpOut = encodeMoeBlock(ctx, weights, hn, temp);
 * ```
 */
export function encodeMoeBlock(
  ctx: DecoderLayerContext,
  weights: LayerWeights,
  x: Tensor,
  temp: (t: Tensor) => Tensor,
): Tensor {
  const { config, sequences, seqLen } = ctx;
  const engine: Engine = ctx.engine;
  const moe = config.moe!;
  const layer = weights.layer;
  const prefix = layerPrefix(layer);
  const names = moeModuleNames(config);
  const allExperts = ctx.moeCalibrateAllExperts ?? true;
  const [rows, hidden] = [x.numel / config.hiddenSize, config.hiddenSize];

  // Taps `tapped` as the input of `group`; returns what the Linears compute with.
  const input = (group: readonly string[], tapped: Tensor, computed: Tensor) => {
    const modules = group.map((l) => `${prefix}.${l}`);
    ctx.taps?.({ kind: "linear_input", layer, modules, x: tapped, engine, sequences, seqLen });
    const transformed = ctx.transformLinearInput?.(modules, computed, engine) ?? computed;
    return transformed === computed ? computed : temp(transformed);
  };
  const linear = (l: string, v: Tensor) => temp(engine.matmul(v, weights.module(l)));
  // What an expert's statistics see: all tokens, or only those routed to it.
  const routed = (v: Tensor, routing: Tensor, e: number) =>
    allExperts || ctx.taps === undefined ? v : temp(engine.maskRows(v, routing, e));

  const shared = names.shared;
  const moeIn = input(
    shared === null ? [names.router] : [names.router, shared.gate, shared.up, shared.sharedGate],
    x,
    x,
  );
  const routing = temp(engine.routeTopK(linear(names.router, moeIn), moe.topK, moe.normTopkProb));
  ctx.taps?.({
    kind: "moe_routing",
    layer,
    module: `${prefix}.${names.block}`,
    weights: routing,
    engine,
    sequences,
    seqLen,
  });

  // The sum starts with the shared expert and adds the experts in index order, so a
  // layer whose experts run in groups (ctx.moeExperts) continues the same sum.
  const slice = ctx.moeExperts ?? { start: 0, end: moe.numExperts };
  if (slice.start < 0 || slice.end > moe.numExperts || slice.start >= slice.end) {
    throw new RangeError(
      `layer ${layer}: experts ${slice.start}…${slice.end - 1} are not a slice of 0…${
        moe.numExperts - 1
      }`,
    );
  }
  // Without the sum so far (a calibration forward, whose output nobody reads) it starts at 0.
  const out = slice.partial ? engine.copy(slice.partial) : engine.allocate([rows, hidden]);
  try {
    let first = slice.partial === undefined;
    if (shared !== null && slice.start === 0) {
      const act = temp(engine.siluMul(linear(shared.gate, moeIn), linear(shared.up, moeIn)));
      const y = linear(shared.down, input([shared.down], act, act));
      const gate = linear(shared.sharedGate, moeIn);
      engine.accumulateWeighted(out, y, gate, 0, { sigmoid: true, overwrite: true });
      first = false;
    }
    for (let e = slice.start; e < slice.end; e++) {
      const n = names.expert(e);
      const xe = input([n.gate, n.up], routed(x, routing, e), x);
      const act = temp(engine.siluMul(linear(n.gate, xe), linear(n.up, xe)));
      const y = linear(n.down, input([n.down], routed(act, routing, e), act));
      engine.accumulateWeighted(out, y, routing, e, { overwrite: first });
      first = false;
    }
    if (slice.end < moe.numExperts) slice.onPartial?.(engine.copy(out));
  } catch (e) {
    out.destroy();
    throw e;
  }
  return out;
}
