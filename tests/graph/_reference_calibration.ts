/**
 * An independent CPU reference of upstream's sequential calibration for an
 * FP8-static (tensor) recipe with an FP8 tensor KV cache: samples one at a
 * time (batch size 1), each Linear's input observed with the minmax EMA
 * (c = 0.01) and then fake-quantized with the updated scale, weights
 * fake-quantized with amax/448, K/V observed post-RoPE; after the layer,
 * a second pass with the final scales gives the next layer's inputs.
 *
 * It shares nothing with src/graph: no rounds, no GPU, no batching.
 *
 * @module
 */

import type { HfModel } from "../../src/io/hf_model.ts";
import { readLayerTensors } from "../../src/model/layer_tensors.ts";
import { attention, linear, rmsnorm, rope, siluMul } from "../../src/model/reference_ops.ts";
import { ropeTable } from "../../src/model/rope.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { fakeQuantize } from "../../src/quant/quantize.ts";

const FP8 = parseQuantizationArgs({ num_bits: 8, type: "float", strategy: "tensor" }, "fp8");
const KEEP = Math.fround(1 - 0.01);
const TAKE = Math.fround(0.01);

/** Scales the reference observed. */
export interface ReferenceScales {
  /** Input scale per Linear module name. */
  readonly input: Map<string, number>;
  /** k_scale / v_scale per attention module name. */
  readonly k: Map<string, number>;
  readonly v: Map<string, number>;
}

interface Ema {
  min: number;
  max: number;
}

function minMax(t: Float32Array): Ema {
  let min = Infinity;
  let max = -Infinity;
  for (const v of t) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

function fp8Scale(s: Ema): number {
  const amax = Math.max(Math.abs(Math.min(s.min, 0)), Math.max(s.max, 0));
  return Math.fround(amax / 448);
}

function fq(t: Float32Array, rows: number, scale: number): Float32Array {
  return fakeQuantize(t, [rows, t.length / rows], { scale: new Float32Array([scale]) }, FP8);
}

/**
 * Runs the reference over every layer.
 *
 * @param hf the model
 * @param samples calibration samples (equal length)
 * @param quantizationAware fake-quantize weights and inputs in the forwards (upstream's default)
 * @returns the observed scales
 */
export async function referenceFp8KvCalibration(
  hf: HfModel,
  samples: readonly Int32Array[],
  quantizationAware = true,
): Promise<ReferenceScales> {
  const c = hf.config;
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const { numAttentionHeads: heads, numKeyValueHeads: kvHeads, headDim } = c;
  const T = samples[0].length;
  const table = ropeTable(c, T);
  const embed = await hf.readF32("model.embed_tokens.weight");
  let xs = samples.map((ids) => {
    const x = new Float32Array(T * H);
    ids.forEach((id, t) => x.set(embed.subarray(id * H, (id + 1) * H), t * H));
    return x;
  });
  const out: ReferenceScales = { input: new Map(), k: new Map(), v: new Map() };
  for (let k = 0; k < c.numHiddenLayers; k++) {
    const p = `model.layers.${k}`;
    const w = await readLayerTensors(hf, k);
    const W = (n: string) => {
      const v = w.get(`${p}.${n}.weight`)!;
      let amax = 0;
      for (const x of v) amax = Math.max(amax, Math.abs(x));
      return quantizationAware ? fq(v, 1, Math.fround(amax / 448)) : v;
    };
    const Wq = W("self_attn.q_proj"), Wk = W("self_attn.k_proj"), Wv = W("self_attn.v_proj");
    const Wo = W("self_attn.o_proj"), Wg = W("mlp.gate_proj"), Wu = W("mlp.up_proj");
    const Wd = W("mlp.down_proj");
    const state = new Map<string, Ema>();
    const observe = (key: string, t: Float32Array) => {
      const cur = minMax(t);
      const s = state.get(key);
      state.set(
        key,
        s === undefined ? cur : {
          min: Math.fround(Math.fround(s.min * KEEP) + Math.fround(cur.min * TAKE)),
          max: Math.fround(Math.fround(s.max * KEEP) + Math.fround(cur.max * TAKE)),
        },
      );
    };
    const layer = (x: Float32Array, calibrate: boolean) => {
      const q = (key: string, t: Float32Array) => {
        if (calibrate) observe(key, t);
        return quantizationAware ? fq(t, T, fp8Scale(state.get(key)!)) : t;
      };
      const xn = q("qkv", rmsnorm(x, w.get(`${p}.input_layernorm.weight`)!, T, c.rmsNormEps));
      const qs = linear(xn, Wq, undefined, T, H, heads * headDim);
      const ks = linear(xn, Wk, undefined, T, H, kvHeads * headDim);
      const vs = linear(xn, Wv, undefined, T, H, kvHeads * headDim);
      rope(qs, table, T, heads, headDim);
      rope(ks, table, T, kvHeads, headDim);
      if (calibrate) {
        observe("k", ks);
        observe("v", vs);
      }
      const att = attention(qs, ks, vs, {
        sequences: 1,
        seqLen: T,
        heads,
        kvHeads,
        headDim,
        window: c.slidingWindow,
      });
      const o = linear(q("o", att), Wo, undefined, T, heads * headDim, H);
      const h = new Float32Array(T * H);
      for (let i = 0; i < h.length; i++) h[i] = x[i] + o[i];
      const hn = q(
        "gate_up",
        rmsnorm(h, w.get(`${p}.post_attention_layernorm.weight`)!, T, c.rmsNormEps),
      );
      const act = siluMul(linear(hn, Wg, undefined, T, H, I), linear(hn, Wu, undefined, T, H, I));
      const down = linear(q("down", act), Wd, undefined, T, I, H);
      for (let i = 0; i < h.length; i++) h[i] += down[i];
      return h;
    };
    for (const x of xs) layer(x, true);
    xs = xs.map((x) => layer(x, false));
    const scale = (key: string) => fp8Scale(state.get(key)!);
    for (const m of ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]) {
      out.input.set(`${p}.${m}`, scale("qkv"));
    }
    out.input.set(`${p}.self_attn.o_proj`, scale("o"));
    out.input.set(`${p}.mlp.gate_proj`, scale("gate_up"));
    out.input.set(`${p}.mlp.up_proj`, scale("gate_up"));
    out.input.set(`${p}.mlp.down_proj`, scale("down"));
    out.k.set(`${p}.self_attn`, scale("k"));
    out.v.set(`${p}.self_attn`, scale("v"));
  }
  return out;
}
