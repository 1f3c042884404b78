/**
 * The sparse MLP of a mixture-of-experts layer on the CPU, written from
 * transformers' `MixtralSparseMoeBlock.forward`, `Qwen2MoeSparseMoeBlock.forward`
 * and `Qwen3MoeSparseMoeBlock.forward`: per token, the router's softmax
 * (in double precision here; float32 there), the top-k experts, their
 * weights renormalized when the architecture says so, and the weighted sum of
 * only those experts' SwiGLU outputs; qwen2_moe adds
 * `sigmoid(shared_expert_gate(x)) · shared_expert(x)`. Unlike the GPU block
 * (moe_block.ts), which runs every expert on every token and weights the
 * unrouted ones by 0, this computes only the routed experts, as transformers
 * does, so the two are independent implementations of the same function.
 *
 * @module
 */

import type { ModelConfig } from "../io/model_config.ts";
import { DecoderModelError } from "./model_error.ts";
import { layerPrefix } from "./module_names.ts";
import { moeModuleNames } from "./moe_names.ts";

/**
 * The routing of one token: the top-k experts by router probability
 * (ties: the lower index, as the GPU router), with their weights.
 *
 * @param logits the router's logits for the token
 * @param topK experts to keep
 * @param normalize divide the kept probabilities by their sum
 * @returns the experts in descending weight and their weights
 * @example
 * ```ts
 * import { referenceRoute } from "./reference_moe.ts";
 * const r = referenceRoute([0, Math.log(3), 0], 1, true);
 * // r.experts: [1], r.weights: [1]
 * ```
 */
export function referenceRoute(
  logits: ArrayLike<number>,
  topK: number,
  normalize: boolean,
): { experts: number[]; weights: number[] } {
  const n = logits.length;
  let max = -Infinity;
  for (let e = 0; e < n; e++) max = Math.max(max, logits[e]);
  const p = Array.from({ length: n }, (_, e) => Math.exp(logits[e] - max));
  const total = p.reduce((a, b) => a + b, 0);
  const order = [...p.keys()].sort((a, b) => logits[b] - logits[a] || a - b);
  const experts = order.slice(0, topK);
  let weights = experts.map((e) => p[e] / total);
  if (normalize) {
    const sum = weights.reduce((a, b) => a + b, 0);
    weights = weights.map((w) => w / sum);
  }
  return { experts, weights };
}

/**
 * The sparse block of layer `k` applied to the normed residual `x`.
 *
 * @param config an MoE model's config
 * @param weights the layer's tensors by full HF name
 * @param k the layer index
 * @param x [rows, hidden]
 * @param rows the tokens in x
 * @returns the block's output, [rows, hidden]
 * @throws {DecoderModelError} when a tensor is missing
 * @example
 * ```ts ignore
 * import { referenceMoeBlock } from "./reference_moe.ts";
 * const y = referenceMoeBlock(config, weights, 0, hn, rows);
 * ```
 */
export function referenceMoeBlock(
  config: ModelConfig,
  weights: ReadonlyMap<string, Float32Array>,
  k: number,
  x: Float32Array,
  rows: number,
): Float32Array {
  const moe = config.moe!;
  const H = config.hiddenSize;
  const p = layerPrefix(k);
  const names = moeModuleNames(config);
  const w = (module: string) => {
    const t = weights.get(`${p}.${module}.weight`);
    if (!t) throw new DecoderModelError(`${p}.${module}.weight: missing from the layer's weights`);
    return t;
  };
  const router = w(names.router);
  const out = new Float32Array(rows * H);
  const acc = new Float64Array(H);
  for (let r = 0; r < rows; r++) {
    const xr = x.subarray(r * H, (r + 1) * H);
    acc.fill(0);
    const logits = dot(router, xr, moe.numExperts, H);
    const { experts, weights: gates } = referenceRoute(logits, moe.topK, moe.normTopkProb);
    experts.forEach((e, i) => {
      const n = names.expert(e);
      swiglu(acc, xr, w(n.gate), w(n.up), w(n.down), moe.expertIntermediateSize, gates[i]);
    });
    const s = names.shared;
    if (s !== null) {
      const g = dot(w(s.sharedGate), xr, 1, H)[0];
      const gate = 1 / (1 + Math.exp(-g));
      swiglu(acc, xr, w(s.gate), w(s.up), w(s.down), moe.sharedExpertIntermediateSize!, gate);
    }
    for (let i = 0; i < H; i++) out[r * H + i] = acc[i];
  }
  return out;
}

/** W x for one token, W [out, n], in double precision. */
function dot(wt: Float32Array, x: Float32Array, out: number, n: number): Float64Array {
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += wt[o * n + i] * x[i];
    y[o] = s;
  }
  return y;
}

/** acc += scale · down(silu(gate x) · up x) for one token. */
function swiglu(
  acc: Float64Array,
  x: Float32Array,
  gate: Float32Array,
  up: Float32Array,
  down: Float32Array,
  inter: number,
  scale: number,
): void {
  const H = x.length;
  const g = dot(gate, x, inter, H);
  const u = dot(up, x, inter, H);
  const act = new Float32Array(inter);
  for (let j = 0; j < inter; j++) act[j] = (g[j] / (1 + Math.exp(-g[j]))) * u[j];
  const y = dot(down, act, H, inter);
  for (let i = 0; i < H; i++) acc[i] += scale * y[i];
}
