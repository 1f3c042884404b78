/**
 * What `DecoderModel.runLayer` shows its subscribers while a layer runs (the
 * inputs of every Linear, attention's post-RoPE Q/K/V) and the hooks it
 * accepts (substituted weights, a transform of Linear inputs).
 *
 * Lifetime: every tensor in an event is alive on the layer's engine for the
 * rest of the layer's work. A subscriber records its own ops (a Hessian
 * XᵀX, a min/max) on `event.engine`, and they run with the layer's work
 * (on WebGPU: in the same submit); nothing is read back unless the
 * subscriber reads it. A subscriber that needs a tensor after the layer
 * returns copies it inside the callback. Subscribers must not destroy or
 * modify the tensors they are shown.
 *
 * @module
 */

import type { Engine, Tensor } from "../engine/engine.ts";
import type { ModelConfig } from "../io/model_config.ts";
import type { LayerWeights } from "./layer_weights.ts";
import { layerPrefix } from "./module_names.ts";
import { linearInputGroups } from "./moe_names.ts";

/**
 * The input activations of one or more Linear modules that read the same
 * tensor: q/k/v share the normed hidden state, gate/up the normed residual.
 */
export interface LinearInputTap {
  /** Discriminates the {@link TapEvent} union. */
  kind: "linear_input";
  /** The decoder layer's index. */
  layer: number;
  /** Full HF module names, e.g. `model.layers.3.self_attn.q_proj`, in forward order. */
  modules: readonly string[];
  /** The input, [sequences · seqLen, in_features]. */
  x: Tensor;
  /** The engine the layer runs on; record follow-up ops here. */
  engine: Engine;
  /** Sequences in the batch. */
  sequences: number;
  /** Tokens per sequence. */
  seqLen: number;
}

/** Attention's query, key and value states after RoPE (and Qwen3's q/k norms). */
export interface AttentionTap {
  /** Discriminates the {@link TapEvent} union. */
  kind: "attention";
  /** The decoder layer's index. */
  layer: number;
  /** The attention module, e.g. `model.layers.3.self_attn`. */
  module: string;
  /** Queries, [sequences · seqLen, heads · headDim]. */
  q: Tensor;
  /** Keys (what the KV cache would store), [sequences · seqLen, kvHeads · headDim]. */
  k: Tensor;
  /** Values, [sequences · seqLen, kvHeads · headDim]. */
  v: Tensor;
  /** Query heads. */
  heads: number;
  /** Key/value heads. */
  kvHeads: number;
  /** The head size. */
  headDim: number;
  /** The engine the layer runs on; record follow-up ops here. */
  engine: Engine;
  /** Sequences in the batch. */
  sequences: number;
  /** Tokens per sequence. */
  seqLen: number;
}

/**
 * The routing of a mixture-of-experts block: each token's top-k expert
 * weights, zero for the experts it is not routed to.
 */
export interface MoeRoutingTap {
  /** Discriminates the {@link TapEvent} union. */
  kind: "moe_routing";
  /** The decoder layer's index. */
  layer: number;
  /** The sparse block, e.g. `model.layers.3.mlp` or `model.layers.3.block_sparse_moe`. */
  module: string;
  /** Routing weights, [sequences · seqLen, experts]. */
  weights: Tensor;
  /** The engine the layer runs on; record follow-up ops here. */
  engine: Engine;
  /** Sequences in the batch. */
  sequences: number;
  /** Tokens per sequence. */
  seqLen: number;
}

/**
 * Everything a layer shows its subscribers.
 *
 * @example
 * ```ts ignore
 * import type { Tensor } from "../engine/engine.ts";
 * const maxima = new Map<string, Tensor>();
 * await model.runLayer(3, hidden, {
 *   taps: (e) => {
 *     // Per-token absmax of every Linear input, recorded with the layer's own work.
 *     if (e.kind === "linear_input") {
 *       maxima.set(e.modules[0], e.engine.reduceRows(e.x, "absmax"));
 *     }
 *   },
 * });
 * const values = await model.engine.read([...maxima.values()]);
 * ```
 */
export type TapEvent = LinearInputTap | AttentionTap | MoeRoutingTap;

/** A subscriber: called synchronously while the layer's kernels are being recorded. */
export type TapListener = (event: TapEvent) => void;

/**
 * Replaces the input of the Linear modules `modules` (e.g. with its
 * fake-quantized version for static activation quantization). Called after
 * the `linear_input` tap, so observers see the unmodified input. Returning
 * `x` itself changes nothing; a new tensor returned is owned by the layer,
 * which destroys it after use.
 */
export type LinearInputTransform = (
  modules: readonly string[],
  x: Tensor,
  engine: Engine,
) => Tensor;

/**
 * The experts `start … end−1` of an MoE layer's sparse block. The block's sum
 * runs over experts in index order (after the shared expert), so continuing
 * from the sum of the experts before `start` gives the same floating-point
 * result as one pass over all of them.
 *
 * @example
 * ```ts ignore
 * const slice: ExpertSlice = { start: 0, end: 4, onPartial: (sum) => keep(sum) };
 * await model.runLayer(k, hidden, { weights, moeExperts: slice });
 * ```
 */
export interface ExpertSlice {
  /** The first expert run. */
  readonly start: number;
  /** One past the last expert run. */
  readonly end: number;
  /**
   * The block's sum so far (the shared expert and the experts before
   * `start`), `[rows, hidden]`; not modified. Absent: the sum starts at 0
   * (right for `start = 0`; a calibration forward whose output nobody reads
   * may omit it for any slice).
   */
  readonly partial?: Tensor;
  /**
   * Receives the sum after expert `end − 1` (a tensor the receiver owns and
   * destroys), when `end` is not the last expert: the layer's output is not
   * complete then.
   */
  readonly onPartial?: (sum: Tensor) => void;
}

/**
 * Options of `DecoderModel.runLayer`.
 *
 * @example
 * ```ts ignore
 * const options: RunLayerOptions = {
 *   weights: new Map([["model.layers.0.mlp.down_proj.weight", fakeQuantized]]),
 *   transformLinearInput: (modules, x, engine) => x, // identity
 * };
 * const out = await model.runLayer(0, hidden, options);
 * ```
 */
export interface RunLayerOptions {
  /** Receives the layer's activations while they are on the GPU. */
  taps?: TapListener;
  /**
   * Run with other weights: a map of full HF tensor names to values (e.g.
   * `model.layers.3.mlp.down_proj.weight` fake-quantized) that replace the
   * checkpoint's for this call, or a {@link LayerWeights} the caller uploaded
   * and keeps (it is not destroyed).
   */
  weights?: ReadonlyMap<string, Float32Array> | LayerWeights;
  /** Extension point for static activation quantization. */
  transformLinearInput?: LinearInputTransform;
  /**
   * MoE models: every expert's input taps show every token (true, the
   * default: upstream's `moe_calibrate_all_experts`) or only the tokens the
   * router sends it, the others zeroed (false). The layer's output is the
   * routed one either way.
   */
  moeCalibrateAllExperts?: boolean;
  /**
   * MoE layers: run only a slice of the experts (experts processed in
   * groups, see graph/expert_groups.ts); absent: every expert.
   */
  moeExperts?: ExpertSlice;
  /**
   * Sequences packed in `hidden`. Needed only for a hidden state this model
   * did not produce (one re-uploaded from a cache); otherwise remembered.
   */
  sequences?: number;
  /** Which part of the layer runs (default `"layer"`: all of it); see {@link LayerPart}. */
  part?: LayerPart;
  /**
   * With `part` `"self_attn"` or `"mlp"`: the output of that half's RMSNorm
   * (input_layernorm or post_attention_layernorm) of `hidden`, when the
   * caller has it; the half then starts from it instead of recomputing it
   * (AWQ's grid search runs a half once per candidate on the same inputs, and
   * its candidates never change the norm). Not modified or destroyed.
   */
  normed?: Tensor;
  /**
   * Start at a point an earlier forward of this layer reached instead of at
   * `hidden` (a calibration round repeating the previous round's prefix);
   * see {@link LayerResume}. Needs a {@link TapPart} past that point.
   */
  resume?: LayerResume;
}

/**
 * Where a calibration forward may resume: at q/k/v's input (the normed
 * input; `hidden` is still the layer's input, the attention's residual), at
 * o_proj's input (attention's output; `hidden` as before) or at the MLP's
 * input (gate/up's, the normed `h`; `hidden` is not read, and a dense
 * layer's part must be `"inputs"`). These are exactly what the parts
 * `"through_qkv_input"`, `"through_o_input"` and `"through_mlp_input"`
 * return, before any online transform or input transform of that input; a forward that resumes from
 * one computes from there what the whole forward would, bit for bit, when
 * the weights and the transforms before that point are the same.
 *
 * @example
 * ```ts ignore
 * const att = await model.runLayer(k, hidden, { weights, part: "through_o_input" });
 * await model.runLayer(k, hidden, {
 *   weights,
 *   part: "through_mlp_input",
 *   resume: { at: "o_input", input: att },
 * });
 * ```
 */
export interface LayerResume {
  /** The point. */
  readonly at: ResumePoint;
  /** The activation there, `[rows, cols]`; not modified or destroyed. */
  readonly input: Tensor;
}

/**
 * The points a forward may resume at (see {@link LayerResume}).
 *
 * @example
 * ```ts
 * import type { ResumePoint } from "./taps.ts";
 * const at: ResumePoint = "mlp_input";
 * ```
 */
export type ResumePoint = "qkv_input" | "o_input" | "mlp_input";

/**
 * The point whose activation a part stopping there returns, when a later
 * forward may resume from it; null for the other parts.
 *
 * @param part a part
 * @returns its resume point
 * @example
 * ```ts
 * import { resumePointOf } from "./taps.ts";
 * resumePointOf("through_o_input"); // "o_input"
 * resumePointOf("through_attention"); // null
 * resumePointOf("inputs"); // null
 * ```
 */
export function resumePointOf(part: LayerPart): ResumePoint | null {
  if (part === "through_qkv_input") return "qkv_input";
  if (part === "through_o_input") return "o_input";
  if (part === "through_mlp_input") return "mlp_input";
  return null;
}

/**
 * The part of a decoder layer `runLayer` runs, for callers that need less
 * than its output:
 * - `"layer"`: the whole layer, `h + mlp(h)` with `h = x + attn(x)`;
 * - `"self_attn"`: the attention half alone, returning `x + attn(x)` (the
 *   MLP does not run);
 * - `"mlp"`: the MLP half alone on `x` taken as `h`, returning `x + mlp(x)`
 *   (the attention does not run);
 * - `"inputs"`: every Linear's input and every tap, for a calibration
 *   forward whose output nobody reads: a dense layer's last projection
 *   (down_proj) and the final residual are skipped, and the tensor returned
 *   is `h` (a sparse MoE layer runs whole; resumed at the MLP's input, `h`
 *   is unknown and the tensor returned is only the caller's to destroy);
 * - a {@link TapPart} short of `"inputs"`: the layer's taps up to and
 *   including that one, then it stops (a calibration round that observes
 *   only the earlier taps); the tensor returned is the caller's to destroy:
 *   for `"through_o_input"` and `"through_mlp_input"` the input at that tap
 *   (what {@link LayerResume} takes), otherwise an intermediate of no other use.
 *
 * The halves give exactly the values the whole layer gives with the other
 * half's output projection zeroed, without its work; a part that stops
 * early shows the same taps, bit for bit, as the whole layer.
 *
 * @example
 * ```ts
 * import type { LayerPart } from "./taps.ts";
 * const part: LayerPart = "self_attn";
 * ```
 */
export type LayerPart = "layer" | "self_attn" | "mlp" | TapPart;

/**
 * How far a calibration forward runs, in forward order (see
 * {@link TAP_PARTS}): through q/k/v's input tap, through the attention
 * tap (post-RoPE Q/K/V), through o_proj's input tap, through the MLP's
 * input tap (gate/up's; a sparse MoE layer runs its whole block), or
 * through every tap (`"inputs"`).
 *
 * @example
 * ```ts
 * import type { TapPart } from "./taps.ts";
 * const part: TapPart = "through_attention";
 * ```
 */
export type TapPart =
  | "through_qkv_input"
  | "through_attention"
  | "through_o_input"
  | "through_mlp_input"
  | "inputs";

/**
 * The {@link TapPart}s in forward order: each shows every tap the ones
 * before it show.
 */
export const TAP_PARTS: readonly TapPart[] = Object.freeze([
  "through_qkv_input",
  "through_attention",
  "through_o_input",
  "through_mlp_input",
  "inputs",
]);

/**
 * The part that shows every tap any of `parts` shows: the furthest one
 * (`"inputs"` when there are none, so a caller that names no part loses no tap).
 *
 * @param parts what each observer needs
 * @returns the furthest part
 * @example
 * ```ts
 * import { furthestTapPart } from "./taps.ts";
 * furthestTapPart(["through_attention", "through_qkv_input"]); // "through_attention"
 * ```
 */
export function furthestTapPart(parts: readonly TapPart[]): TapPart {
  if (parts.length === 0) return "inputs";
  return TAP_PARTS[Math.max(...parts.map((p) => TAP_PARTS.indexOf(p)))];
}

/**
 * The part that shows only the taps all of `parts` show: the nearest one
 * (`"inputs"` when there are none).
 *
 * @param parts parts
 * @returns the nearest
 * @example
 * ```ts
 * import { nearestTapPart } from "./taps.ts";
 * nearestTapPart(["through_attention", "through_qkv_input"]); // "through_qkv_input"
 * ```
 */
export function nearestTapPart(parts: readonly TapPart[]): TapPart {
  if (parts.length === 0) return "inputs";
  return TAP_PARTS[Math.min(...parts.map((p) => TAP_PARTS.indexOf(p)))];
}

/** The parts through each of a layer's first three input groups (q/k/v, o, the MLP's). */
const INPUT_GROUP_PARTS: readonly TapPart[] = [
  "through_qkv_input",
  "through_o_input",
  "through_mlp_input",
];

/**
 * The part of layer `k` whose last tap is the input of `module`: the
 * calibration forward an observer of that input alone needs.
 *
 * @param config the model config
 * @param k the layer
 * @param module a Linear of the layer, full name
 * @returns the part (`"inputs"` for down_proj, experts, or a module the layer lacks)
 * @example
 * ```ts ignore
 * tapPartOfInput(config, 0, "model.layers.0.mlp.up_proj"); // "through_mlp_input"
 * ```
 */
export function tapPartOfInput(config: ModelConfig, k: number, module: string): TapPart {
  const prefix = `${layerPrefix(k)}.`;
  const i = linearInputGroups(config, k).findIndex((g) =>
    g.linears.some((l) => prefix + l === module)
  );
  return INPUT_GROUP_PARTS[i] ?? "inputs";
}
