/**
 * Rotary position embedding tables, computed as transformers 4.57 computes
 * them for every `rope_scaling` type llmc supports (default, linear, dynamic,
 * llama3): the inverse frequencies, the attention scaling that multiplies cos
 * and sin, and the per-position cos/sin tables the `rope.wgsl` kernel and the
 * reference forward both read.
 *
 * transformers does this arithmetic on float32 tensors, so each step here is
 * rounded to float32 (`Math.fround`) in the same order; the tables then agree
 * with PyTorch's to the last bit or two rather than to 1e-7 relative.
 *
 * @module
 */

import type { ModelConfig } from "../io/model_config.ts";

/** The fields of a model config that RoPE depends on. */
export type RopeConfig = Pick<
  ModelConfig,
  "headDim" | "ropeTheta" | "ropeScaling" | "maxPositionEmbeddings"
>;

/** Inverse frequencies of one head's rotation pairs and the cos/sin scaling. */
export interface RopeFrequencies {
  /** `inv_freq[i]` for the pairs i = 0 … head_dim/2 − 1 (float32 values). */
  invFreq: Float32Array;
  /** transformers' `attention_scaling`; 1 for every supported type. */
  attentionScaling: number;
}

/** Per-position rotation tables for positions 0 … seqLen − 1. */
export interface RopeTable {
  /** The number of positions. */
  seqLen: number;
  /** head_dim / 2: the number of rotation pairs per head. */
  half: number;
  /** cos(position · inv_freq[i]) · attention_scaling, row-major [seqLen, half]. */
  cos: Float32Array;
  /** sin(position · inv_freq[i]) · attention_scaling, row-major [seqLen, half]. */
  sin: Float32Array;
}

const f = Math.fround;

function defaultInvFreq(base: number, dim: number): Float32Array {
  // 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in float32.
  const out = new Float32Array(dim / 2);
  const b = f(base);
  for (let i = 0; i < dim / 2; i++) {
    const exponent = f((2 * i) / dim);
    out[i] = f(1 / f(Math.pow(b, exponent)));
  }
  return out;
}

/**
 * The inverse frequencies for a sequence of `seqLen` positions.
 *
 * - default: `1 / theta^(2i/d)`;
 * - linear: divided by `factor`;
 * - dynamic (NTK): the base grows to `theta · (factor·L/M − (factor−1))^(d/(d−2))`
 *   with `L = max(seqLen, M)` and `M = max_position_embeddings`, which is the
 *   stateless reading of transformers' `dynamic_rope_update` (the frequencies
 *   of a fresh module after one forward of `seqLen` tokens);
 * - llama3: wavelengths longer than `original_max / low_freq_factor` are
 *   divided by `factor`, shorter than `original_max / high_freq_factor` kept,
 *   and the band between interpolated smoothly.
 *
 * @param config the model's head size, theta, scaling and max positions
 * @param seqLen the number of positions the forward covers (only dynamic uses it)
 * @returns `invFreq` [head_dim/2] and the attention scaling
 * @example
 * ```ts
 * import { ropeFrequencies } from "./rope.ts";
 * const { invFreq } = ropeFrequencies({
 *   headDim: 8,
 *   ropeTheta: 10000,
 *   ropeScaling: { type: "default" },
 *   maxPositionEmbeddings: 512,
 * }, 16);
 * invFreq[0]; // 1
 * ```
 */
export function ropeFrequencies(config: RopeConfig, seqLen: number): RopeFrequencies {
  const dim = config.headDim;
  const scaling = config.ropeScaling;
  switch (scaling.type) {
    case "default":
      return { invFreq: defaultInvFreq(config.ropeTheta, dim), attentionScaling: 1 };
    case "linear": {
      const invFreq = defaultInvFreq(config.ropeTheta, dim);
      for (let i = 0; i < invFreq.length; i++) invFreq[i] = f(invFreq[i] / scaling.factor);
      return { invFreq, attentionScaling: 1 };
    }
    case "dynamic": {
      const maxPos = config.maxPositionEmbeddings;
      const len = Math.max(seqLen, maxPos);
      const growth = f(f(f(scaling.factor * len) / maxPos) - (scaling.factor - 1));
      const base = f(config.ropeTheta * f(Math.pow(growth, dim / (dim - 2))));
      return { invFreq: defaultInvFreq(base, dim), attentionScaling: 1 };
    }
    case "llama3": {
      const invFreq = defaultInvFreq(config.ropeTheta, dim);
      const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings } = scaling;
      const lowFreqWavelen = originalMaxPositionEmbeddings / lowFreqFactor;
      const highFreqWavelen = originalMaxPositionEmbeddings / highFreqFactor;
      for (let i = 0; i < invFreq.length; i++) {
        const inv = invFreq[i];
        // torch evaluates `scalar / tensor` as `reciprocal(tensor) * scalar`.
        const wavelen = f(f(1 / inv) * f(2 * Math.PI));
        if (wavelen > lowFreqWavelen) {
          invFreq[i] = f(inv / factor);
        } else if (wavelen >= highFreqWavelen) {
          const smooth = f(
            f(f(f(1 / wavelen) * originalMaxPositionEmbeddings) - lowFreqFactor) /
              (highFreqFactor - lowFreqFactor),
          );
          invFreq[i] = f(f(f(f(1 - smooth) * inv) / factor) + f(smooth * inv));
        }
      }
      return { invFreq, attentionScaling: 1 };
    }
  }
}

/**
 * The cos/sin tables for positions 0 … seqLen − 1, as transformers builds them:
 * `freqs = inv_freq · position` in float32, `cos = cos(freqs) · attention_scaling`.
 * The tables hold one entry per rotation pair; HF's `cat(freqs, freqs)` repeats
 * them for the second half of the head, which `rope.wgsl` reads from the same
 * entry.
 *
 * @param config the model's head size, theta, scaling and max positions
 * @param seqLen the number of positions
 * @returns the tables, each row-major [seqLen, head_dim/2]
 * @example
 * ```ts
 * import { ropeTable } from "./rope.ts";
 * const t = ropeTable({
 *   headDim: 4,
 *   ropeTheta: 10000,
 *   ropeScaling: { type: "linear", factor: 2 },
 *   maxPositionEmbeddings: 64,
 * }, 3);
 * t.cos.length; // 6
 * ```
 */
export function ropeTable(config: RopeConfig, seqLen: number): RopeTable {
  const { invFreq, attentionScaling } = ropeFrequencies(config, seqLen);
  const half = invFreq.length;
  const cos = new Float32Array(seqLen * half);
  const sin = new Float32Array(seqLen * half);
  for (let pos = 0; pos < seqLen; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = f(invFreq[i] * pos);
      cos[pos * half + i] = f(f(Math.cos(angle)) * attentionScaling);
      sin[pos * half + i] = f(f(Math.sin(angle)) * attentionScaling);
    }
  }
  return { seqLen, half, cos, sin };
}
