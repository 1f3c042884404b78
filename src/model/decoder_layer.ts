/**
 * One Llama-family decoder layer, recorded on a compute engine.
 * It reads top to bottom like modeling_llama.py:
 *
 *   h   = x + o_proj(attention(rope(q_proj(rmsnorm(x))), rope(k_proj(…)), v_proj(…)))
 *   out = h + down_proj(silu(gate_proj(rmsnorm(h))) · up_proj(rmsnorm(h)))
 *
 * with Qwen3's per-head q_norm/k_norm before RoPE and biases where the
 * architecture has them. The sparse layers of mixture-of-experts models
 * replace the MLP by moe_block.ts.
 *
 * @module
 */

import type { Engine, ProductTransform, Tensor } from "../engine/engine.ts";
import type { ModelConfig } from "../io/model_config.ts";
import type { LayerWeights } from "./layer_weights.ts";
import { DecoderModelError } from "./model_error.ts";
import { type LayerLinear, layerPrefix, LINEAR_INPUT_GROUPS } from "./module_names.ts";
import { encodeMoeBlock } from "./moe_block.ts";
import { isSparseLayer } from "./moe_names.ts";
import { slidingWindowForLayer } from "./sliding_window.ts";
import type { OnlineRotations } from "./online_rotations.ts";
import type {
  ExpertSlice,
  LayerPart,
  LayerResume,
  LinearInputTransform,
  TapListener,
} from "./taps.ts";

/** What a layer needs besides its weights and input. */
export interface DecoderLayerContext {
  /** The model config. */
  config: ModelConfig;
  /** The engine the layer runs on. */
  engine: Engine;
  /** RoPE cos table for this seqLen, [seqLen, headDim/2]. */
  cos: Tensor;
  /** RoPE sin table for this seqLen, [seqLen, headDim/2]. */
  sin: Tensor;
  /** Sequences in the input. */
  sequences: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Receives the layer's activations (see taps.ts). */
  taps?: TapListener;
  /** Replaces Linear inputs (see taps.ts). */
  transformLinearInput?: LinearInputTransform;
  /**
   * The layer's online transforms (a checkpoint's R3/R4/QuIP u, v): applied
   * before the taps, so calibration sees the rotated activations the
   * weights were fused for.
   */
  online?: OnlineRotations;
  /**
   * MoE layers: whether every expert's input taps show all tokens (default)
   * or only those routed to it (see moe_block.ts).
   */
  moeCalibrateAllExperts?: boolean;
  /** MoE layers: run only these experts (see taps.ts); absent: all. */
  moeExperts?: ExpertSlice;
  /** Which part of the layer runs (see taps.ts); absent: all of it. */
  part?: LayerPart;
  /** The RMSNorm output of the part's input, when the caller has it (see taps.ts). */
  normed?: Tensor;
  /** Start at a point an earlier forward reached (see taps.ts); absent: at `x`. */
  resume?: LayerResume;
}

const [QKV, O, GATE_UP, DOWN] = LINEAR_INPUT_GROUPS;

/**
 * The RMSNorm a half of the layer starts with, applied to that half's input
 * (what {@link DecoderLayerContext.normed} may carry in).
 *
 * @param engine the engine
 * @param config the model config (its epsilon)
 * @param weights the layer's weights
 * @param part the half: `self_attn` (input_layernorm) or `mlp` (post_attention_layernorm)
 * @param x the half's input, [tokens, hidden]; not modified
 * @returns the normed input (the caller owns it)
 * @example
 * ```ts ignore
 * const xn = partNorm(engine, config, weights, "self_attn", hidden);
 * ```
 */
export function partNorm(
  engine: Engine,
  config: ModelConfig,
  weights: LayerWeights,
  part: "self_attn" | "mlp",
  x: Tensor,
): Tensor {
  const norm = part === "self_attn" ? "input_layernorm" : "post_attention_layernorm";
  return engine.rmsnorm(x, weights.norm(norm), config.rmsNormEps);
}

/**
 * Records decoder layer `weights.layer` applied to `x` on `ctx.engine`.
 * Nothing is flushed; intermediates are destroyed once their work ran.
 *
 * @param ctx config, engine, RoPE tables, shapes and hooks
 * @param weights the layer's GPU weights
 * @param x the layer's input, [sequences · seqLen, hidden]; not modified
 * @returns the layer's output, [sequences · seqLen, hidden]
 * @example
 * ```ts ignore
 * import { encodeDecoderLayer } from "./decoder_layer.ts";
 * const out = encodeDecoderLayer(ctx, weights, hidden);
 * await ctx.engine.flush();
 * ```
 */
export function encodeDecoderLayer(
  ctx: DecoderLayerContext,
  weights: LayerWeights,
  x: Tensor,
): Tensor {
  const { config, engine, sequences, seqLen } = ctx;
  const { numAttentionHeads: heads, numKeyValueHeads: kvHeads, headDim } = config;
  const eps = config.rmsNormEps;
  const layer = weights.layer;
  const prefix = layerPrefix(layer);
  const temps: Tensor[] = [];
  const temp = (t: Tensor) => (temps.push(t), t);
  // Intermediates are released as soon as the last op reading them is recorded
  // (destroy is idempotent; the finally releases the rest on any path). On the
  // CPU engine that bounds the live host arrays to a few per op instead of all
  // of a forward's; on WebGPU a buffer returns to the pool only once the work
  // recorded before its destroy was submitted, so this is safe there too.
  const release = (...ts: Tensor[]) => {
    for (const t of ts) t.destroy();
  };

  // The input each Linear of `group` reads: its online input transform (if any),
  // then the tap and the caller's transform. Linears whose online transforms are
  // equal share one rotated input and one tap (q/k/v under QuIP's v).
  // `tapsOnly`: the forward stops after these taps, so the inputs are not transformed or returned.
  const linearInputs = (
    group: readonly LayerLinear[],
    input: Tensor,
    tapsOnly = false,
  ): Map<LayerLinear, Tensor> => {
    const byKey = new Map<string, LayerLinear[]>();
    for (const l of group) {
      const key = ctx.online?.keyOf(`${prefix}.${l}`, "input") ?? "";
      byKey.set(key, [...(byKey.get(key) ?? []), l]);
    }
    const out = new Map<LayerLinear, Tensor>();
    for (const [key, linears] of byKey) {
      const modules = linears.map((l) => `${prefix}.${l}`);
      const rotated = key === "" ? input : temp(ctx.online!.apply(modules[0], "input", input)!);
      ctx.taps?.({ kind: "linear_input", layer, modules, x: rotated, engine, sequences, seqLen });
      if (tapsOnly) continue;
      const transformed = ctx.transformLinearInput?.(modules, rotated, engine) ?? rotated;
      const x = transformed === rotated ? rotated : temp(transformed);
      for (const l of linears) out.set(l, x);
    }
    return out;
  };
  const linearInput = (group: readonly LayerLinear[], input: Tensor): Tensor =>
    linearInputs(group, input).get(group[0])!;
  // A Linear's output y after its online output transform (QuIP's u).
  const output = (l: LayerLinear, y: Tensor) => {
    const rotated = ctx.online?.apply(`${prefix}.${l}`, "output", y) ?? null;
    return rotated === null ? y : temp(rotated);
  };
  const linear = (l: LayerLinear, input: Tensor) =>
    output(l, temp(engine.matmul(input, weights.linear(l), weights.bias(l))));
  // Whether nothing comes between a Linear's product and what follows it (no
  // online output transform), and whether Linears have no bias.
  const direct = (l: LayerLinear) => (ctx.online?.keyOf(`${prefix}.${l}`, "output") ?? "") === "";
  const unbiased = (...ls: LayerLinear[]) => ls.every((l) => weights.bias(l) === undefined);
  // A Linear's online output transform (QuIP's u) as the `after` of the op
  // computing its product: undefined when it has none, null when it is not
  // one Walsh–Hadamard transform (then it runs apart, after the product).
  const after = (l: LayerLinear) =>
    direct(l) ? undefined : ctx.online!.productTransform(`${prefix}.${l}`, "output");
  // x + l(input): one engine op when nothing needs the product apart (no
  // bias; an online output transform, if any, that the op runs); the CPU
  // engine transforms the product and adds x in its kernels' memory.
  const residual = (x: Tensor, l: LayerLinear, input: Tensor): Tensor => {
    const transform = after(l);
    if (unbiased(l) && transform !== null) {
      return engine.matmulAdd(input, weights.linear(l), x, transform);
    }
    const y = linear(l, input);
    const h = engine.add(x, y);
    release(y);
    return h;
  };
  // Several Linears' outputs, the first `roped` of them with RoPE applied (q
  // and k). When they all read one input, one engine op (the CPU engine
  // stages that input once for all the products), their online output
  // transforms included when the op can run every one of them, and RoPE
  // when it can run those or none comes between a rotated product and it.
  const linears = (
    ls: readonly LayerLinear[],
    inputs: Map<LayerLinear, Tensor>,
    roped: number,
  ): Tensor[] => {
    const x = inputs.get(ls[0])!;
    const oneInput = ls.every((l) => inputs.get(l) === x);
    const transforms = ls.map(after);
    const inOp = transforms.every((t) => t !== null);
    const ropeInOp = oneInput && roped > 0 && (inOp || ls.slice(0, roped).every(direct));
    let ys: Tensor[];
    if (!oneInput) ys = ls.map((l) => linear(l, inputs.get(l)!));
    else {
      const ws = ls.map((l) => weights.linear(l));
      const rope = ropeInOp ? { cos: ctx.cos, sin: ctx.sin, headDim, count: roped } : undefined;
      const biases = ls.map((l) => weights.bias(l));
      const afters = inOp && transforms.some((t) => t !== undefined)
        ? transforms as (ProductTransform | undefined)[]
        : undefined;
      const products = engine.matmulMany(x, ws, biases, rope, afters);
      ys = products.map((y, i) => inOp ? temp(y) : output(ls[i], temp(y)));
    }
    if (!ropeInOp) {
      for (const y of ys.slice(0, roped)) {
        engine.ropeInPlace(y, ctx.cos, ctx.sin, y.shape[y.shape.length - 1] / headDim, headDim);
      }
    }
    return ys;
  };

  // silu(gate_proj(xg)) · up_proj(xu). One engine op when both read one input,
  // neither has a bias and their online output transforms (QuIP's u) are each
  // one Walsh–Hadamard transform or none: the CPU engine then keeps the
  // products in its kernels' memory and transforms them there (same bits).
  const swiGlu = (xg: Tensor, xu: Tensor): Tensor => {
    const [gateAfter, upAfter] = [after("mlp.gate_proj"), after("mlp.up_proj")];
    const fused = unbiased("mlp.gate_proj", "mlp.up_proj") && gateAfter !== null &&
      upAfter !== null;
    if (xg === xu && fused) {
      const transforms = gateAfter === undefined && upAfter === undefined
        ? undefined
        : { gate: gateAfter, up: upAfter };
      const [gate, up] = [weights.linear("mlp.gate_proj"), weights.linear("mlp.up_proj")];
      return engine.swiGlu(xg, gate, up, transforms);
    }
    const gate = linear("mlp.gate_proj", xg);
    const up = linear("mlp.up_proj", xu);
    const act = engine.siluMul(gate, up);
    release(gate, up);
    return act;
  };

  const part = ctx.part ?? "layer";
  // Only the half that runs alone may start from it (runLayer checks).
  const normed = part === "self_attn" || part === "mlp" ? ctx.normed ?? null : null;
  const resume = ctx.resume ?? null;
  checkResume(config, layer, part, resume);
  // The caller's resume input, which the layer neither returns nor destroys.
  const given = (t: Tensor) => t === normed || t === resume?.input;
  // A part that stops after a tap returns one of its intermediates: the caller only destroys it.
  const keep = (t: Tensor) => {
    const i = temps.indexOf(t);
    if (i < 0) {
      throw new DecoderModelError(`layer ${layer}: part ${part} kept a tensor it does not own`);
    }
    temps.splice(i, 1);
    return t;
  };
  try {
    // Attention block (the MLP half alone takes x as h, exactly what a zero o_proj gives;
    // a forward resumed at the MLP's input has no h).
    const attention = part === "mlp"
      ? { h: x }
      : resume?.at === "mlp_input"
      ? { h: null }
      : attentionBlock();
    if ("stopped" in attention) return attention.stopped;
    const h = attention.h;
    if (part === "self_attn") return h!;
    if (h !== null && h !== x) temp(h);

    // MLP block.
    const hn = resume?.at === "mlp_input"
      ? resume.input
      : normed ?? temp(partNorm(engine, config, weights, "mlp", h!));
    if (isSparseLayer(config, layer)) {
      return engine.add(h!, temp(encodeMoeBlock(ctx, weights, hn, temp)));
    }
    if (part === "through_mlp_input") {
      linearInputs(GATE_UP, hn, true);
      return keep(hn);
    }
    const mlpIn = linearInputs(GATE_UP, hn);
    const act = temp(swiGlu(mlpIn.get("mlp.gate_proj")!, mlpIn.get("mlp.up_proj")!));
    release(...[hn, ...mlpIn.values()].filter((t) => !given(t)));
    const downIn = linearInput(DOWN, act);
    if (part === "inputs") {
      // Every tap has been shown; nobody reads the layer's output.
      if (h === null) {
        if (downIn !== act) release(downIn);
        return keep(act);
      }
      release(act, downIn);
      temps.splice(temps.indexOf(h), 1);
      return h;
    }
    const out = residual(h!, "mlp.down_proj", downIn);
    release(act, downIn);
    return out;
  } finally {
    for (const t of temps) t.destroy();
  }

  /**
   * x + attn(x), or the intermediate to return when the part stops inside
   * the block; the other intermediates are released, the result is the caller's.
   */
  function attentionBlock(): { h: Tensor } | { stopped: Tensor } {
    if (resume?.at === "o_input") return outputProjection(resume.input);
    const xn = resume?.at === "qkv_input"
      ? resume.input
      : normed ?? temp(partNorm(engine, config, weights, "self_attn", x));
    if (part === "through_qkv_input") {
      linearInputs(QKV, xn, true);
      return { stopped: keep(xn) };
    }
    const attnIn = linearInputs(QKV, xn);
    // RoPE on q and k goes with their products unless Qwen3's q/k norms come between.
    const qkv = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"] as const;
    let [q, k, v] = linears(qkv, attnIn, config.qkNorm ? 0 : 2);
    if (config.qkNorm) {
      q = temp(engine.rmsnorm(q, weights.norm("self_attn.q_norm"), eps));
      k = temp(engine.rmsnorm(k, weights.norm("self_attn.k_norm"), eps));
      engine.ropeInPlace(q, ctx.cos, ctx.sin, heads, headDim);
      engine.ropeInPlace(k, ctx.cos, ctx.sin, kvHeads, headDim);
    }
    // R3: post-RoPE queries and keys (the KV cache stores rotated keys).
    const attn = `${prefix}.self_attn`;
    const qr = ctx.online?.apply(attn, "q_attn", q) ?? null;
    if (qr !== null) q = temp(qr);
    const kr = ctx.online?.apply(attn, "k_cache", k) ?? null;
    if (kr !== null) k = temp(kr);
    ctx.taps?.({
      kind: "attention",
      layer,
      module: `${prefix}.self_attn`,
      q,
      k,
      v,
      heads,
      kvHeads,
      headDim,
      engine,
      sequences,
      seqLen,
    });
    if (part === "through_attention") return { stopped: keep(q) };
    const att = engine.attention(q, k, v, {
      sequences,
      seqLen,
      heads,
      kvHeads,
      headDim,
      window: slidingWindowForLayer(config, layer),
    });
    release(...temps.splice(0)); // the norm, the q/k/v inputs and q, k, v
    temp(att);
    if (part === "through_o_input") {
      linearInputs(O, att, true);
      return { stopped: keep(att) };
    }
    return outputProjection(att);
  }

  /** x + o_proj(att): the attention block from o_proj's input on. */
  function outputProjection(att: Tensor): { h: Tensor } {
    const oIn = linearInput(O, att);
    const h = residual(x, "self_attn.o_proj", oIn);
    release(...[att, oIn].filter((t) => !given(t)));
    return { h };
  }
}

/**
 * A forward resumes only at a point its part passes (so the part returns
 * none of the caller's tensors): q/k/v's input for a part through the
 * attention or further, o_proj's input for a part through the MLP's input
 * or further, the MLP's input of a dense layer for `"inputs"`.
 */
function checkResume(
  config: ModelConfig,
  layer: number,
  part: LayerPart,
  resume: LayerResume | null,
): void {
  if (resume === null) return;
  const parts: readonly LayerPart[] = resume.at === "qkv_input"
    ? ["through_attention", "through_o_input", "through_mlp_input", "inputs"]
    : resume.at === "o_input"
    ? ["through_mlp_input", "inputs"]
    : isSparseLayer(config, layer)
    ? []
    : ["inputs"];
  if (!parts.includes(part)) {
    throw new DecoderModelError(
      `layer ${layer}: a forward resumed at ${resume.at} cannot run part ${part}` +
        (parts.length === 0 ? " (a sparse MoE layer)" : ` (only ${parts.join(" or ")})`),
    );
  }
}
