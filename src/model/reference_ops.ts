/**
 * The CPU arithmetic of a Llama-family decoder, one function per operation,
 * each the plain loop nest of its formula (llama2.c style). The reference
 * forward is built from these, and the GPU kernels are tested against them.
 *
 * Accumulations run in float64 and results are stored as float32, so these
 * are at least as accurate as the float32 model they check.
 *
 * @module
 */

import type { RopeTable } from "./rope.ts";

/** Sizes of one attention call (see `AttentionShape` in src/engine/engine.ts). */
export interface ReferenceAttentionShape {
  /** Sequences in the batch. */
  sequences: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads; divides `heads`. */
  kvHeads: number;
  /** The head size. */
  headDim: number;
  /** Keys visible to each query including itself; null for plain causal attention. */
  window: number | null;
}

/**
 * RMSNorm of each row: `x / sqrt(mean(x²) + eps) · weight`.
 *
 * @param x [rows, cols]
 * @param weight [cols]
 * @param rows the number of rows
 * @param eps added to the mean of squares
 * @returns [rows, cols]
 * @example
 * ```ts
 * import { rmsnorm } from "./reference_ops.ts";
 * rmsnorm(new Float32Array([3, 4]), new Float32Array([1, 1]), 1, 0); // ≈ [0.849, 1.131]
 * ```
 */
export function rmsnorm(
  x: Float32Array,
  weight: Float32Array,
  rows: number,
  eps: number,
): Float32Array {
  const n = weight.length;
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[r * n + i] * x[r * n + i];
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[r * n + i] = weight[i] * (x[r * n + i] * inv);
  }
  return out;
}

/**
 * nn.Linear: `y = x · Wᵀ + b` with W stored [outF, inF].
 *
 * @param x [rows, inF]
 * @param w [outF, inF]
 * @param bias [outF] or undefined
 * @param rows the number of rows of x
 * @param inF input features
 * @param outF output features
 * @returns [rows, outF]
 * @example
 * ```ts
 * import { linear } from "./reference_ops.ts";
 * linear(new Float32Array([1, 2]), new Float32Array([1, 1, 0, 1]), undefined, 1, 2, 2); // [3, 2]
 * ```
 */
export function linear(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | undefined,
  rows: number,
  inF: number,
  outF: number,
): Float32Array {
  const y = new Float32Array(rows * outF);
  for (let m = 0; m < rows; m++) {
    for (let o = 0; o < outF; o++) {
      let acc = bias ? bias[o] : 0;
      const xr = m * inF;
      const wr = o * inF;
      for (let i = 0; i < inF; i++) acc += x[xr + i] * w[wr + i];
      y[m * outF + o] = acc;
    }
  }
  return y;
}

/**
 * RoPE in place in the rotate_half convention; the position of row r is
 * `r % table.seqLen`.
 *
 * @param x [rows, heads · headDim], modified
 * @param table the cos/sin tables
 * @param rows the number of rows
 * @param heads heads per row
 * @param headDim the head size
 * @example
 * ```ts
 * import { rope } from "./reference_ops.ts";
 * import { ropeTable } from "./rope.ts";
 * const table = ropeTable({
 *   headDim: 2, ropeTheta: 10000, ropeScaling: { type: "default" }, maxPositionEmbeddings: 8,
 * }, 2);
 * const x = new Float32Array([1, 0, 1, 0]);
 * rope(x, table, 2, 1, 2); // row 1 rotated by 1 radian
 * ```
 */
export function rope(
  x: Float32Array,
  table: RopeTable,
  rows: number,
  heads: number,
  headDim: number,
): void {
  const half = headDim / 2;
  for (let r = 0; r < rows; r++) {
    const pos = r % table.seqLen;
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = table.cos[pos * half + i];
        const s = table.sin[pos * half + i];
        const x1 = x[base + i];
        const x2 = x[base + i + half];
        x[base + i] = x1 * c - x2 * s;
        x[base + i + half] = x2 * c + x1 * s;
      }
    }
  }
}

/**
 * Causal grouped-query attention with an optional sliding window:
 * query t of head h sees keys max(0, t + 1 − window) … t of KV head
 * h / (heads / kvHeads), weighted by softmax(q·k / √headDim).
 *
 * @param q [sequences · seqLen, heads · headDim]
 * @param k [sequences · seqLen, kvHeads · headDim]
 * @param v [sequences · seqLen, kvHeads · headDim]
 * @param shape the sizes and window
 * @returns [sequences · seqLen, heads · headDim]
 * @example
 * ```ts
 * import { attention } from "./reference_ops.ts";
 * const one = new Float32Array([1, 2]);
 * attention(one, one, one, {
 *   sequences: 1, seqLen: 1, heads: 1, kvHeads: 1, headDim: 2, window: null,
 * }); // [1, 2]: a single key gets all the weight
 * ```
 */
export function attention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  shape: ReferenceAttentionShape,
): Float32Array {
  const { sequences, seqLen, heads, kvHeads, headDim } = shape;
  const groupSize = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const window = shape.window ?? Infinity;
  const out = new Float32Array(sequences * seqLen * heads * headDim);
  const att = new Float64Array(seqLen);
  for (let b = 0; b < sequences; b++) {
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / groupSize);
      for (let t = 0; t < seqLen; t++) {
        const first = Math.max(0, t + 1 - window);
        const qBase = ((b * seqLen + t) * heads + h) * headDim;
        let max = -Infinity;
        for (let j = first; j <= t; j++) {
          const kBase = ((b * seqLen + j) * kvHeads + g) * headDim;
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[qBase + d] * k[kBase + d];
          att[j] = dot * scale;
          if (att[j] > max) max = att[j];
        }
        let sum = 0;
        for (let j = first; j <= t; j++) {
          att[j] = Math.exp(att[j] - max);
          sum += att[j];
        }
        for (let d = 0; d < headDim; d++) {
          let acc = 0;
          for (let j = first; j <= t; j++) {
            acc += att[j] * v[((b * seqLen + j) * kvHeads + g) * headDim + d];
          }
          out[qBase + d] = acc / sum;
        }
      }
    }
  }
  return out;
}

/**
 * The gated activation `silu(gate) · up`, elementwise.
 *
 * @param gate gate_proj's output
 * @param up up_proj's output
 * @returns a new array
 * @example
 * ```ts
 * import { siluMul } from "./reference_ops.ts";
 * siluMul(new Float32Array([0]), new Float32Array([5])); // [0]
 * ```
 */
export function siluMul(gate: Float32Array, up: Float32Array): Float32Array {
  const out = new Float32Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i];
    out[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
  return out;
}

/**
 * Per-row negative log-likelihood: `logsumexp(logits[r]) − logits[r, target[r]]`,
 * 0 where the target is negative.
 *
 * @param logits [rows, vocab]
 * @param targets [rows]
 * @param vocab the row length
 * @returns [rows], float64
 * @example
 * ```ts
 * import { logSoftmaxNll } from "./reference_ops.ts";
 * logSoftmaxNll(new Float32Array([0, 0]), new Int32Array([1]), 2); // [ln 2]
 * ```
 */
export function logSoftmaxNll(
  logits: Float32Array,
  targets: Int32Array,
  vocab: number,
): Float64Array {
  const out = new Float64Array(targets.length);
  for (let r = 0; r < targets.length; r++) {
    if (targets[r] < 0) continue;
    let max = -Infinity;
    for (let c = 0; c < vocab; c++) max = Math.max(max, logits[r * vocab + c]);
    let sum = 0;
    for (let c = 0; c < vocab; c++) sum += Math.exp(logits[r * vocab + c] - max);
    out[r] = max + Math.log(sum) - logits[r * vocab + targets[r]];
  }
  return out;
}
