// CpuEngine.attention (SIMD q·kᵀ and p·v, softmax in TypeScript) against a
// float64 reference of causal grouped-query attention with and without a
// sliding window.

import assert from "node:assert/strict";
import { CpuEngine } from "../../src/engine/cpu_engine.ts";
import type { AttentionShape } from "../../src/engine/engine.ts";

function values(length: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 31 - 1;
  });
}

/** Causal GQA attention in float64, one query at a time. */
function reference(q: Float32Array, k: Float32Array, v: Float32Array, shape: AttentionShape) {
  const { sequences, seqLen, heads, kvHeads, headDim } = shape;
  const group = heads / kvHeads;
  const window = shape.window ?? Infinity;
  const out = new Float64Array(q.length);
  for (let b = 0; b < sequences; b++) {
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      for (let t = 0; t < seqLen; t++) {
        const first = Math.max(0, t + 1 - window);
        const qAt = ((b * seqLen + t) * heads + h) * headDim;
        const scores: number[] = [];
        for (let j = first; j <= t; j++) {
          const kAt = ((b * seqLen + j) * kvHeads + g) * headDim;
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[qAt + d] * k[kAt + d];
          scores.push(dot / Math.sqrt(headDim));
        }
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, x) => a + x, 0);
        for (let j = first; j <= t; j++) {
          const vAt = ((b * seqLen + j) * kvHeads + g) * headDim;
          for (let d = 0; d < headDim; d++) out[qAt + d] += (e[j - first] / sum) * v[vAt + d];
        }
      }
    }
  }
  return out;
}

Deno.test("CpuEngine.attention matches float64 causal GQA attention, with and without a window", async () => {
  const engine = new CpuEngine();
  for (const window of [null, 1, 5, 300]) {
    for (
      const base of [
        { sequences: 2, seqLen: 19, heads: 4, kvHeads: 2, headDim: 8 },
        { sequences: 1, seqLen: 70, heads: 3, kvHeads: 1, headDim: 16 },
        // Past one 256-key slice, and scores large enough that most
        // probabilities underflow.
        { sequences: 1, seqLen: 300, heads: 2, kvHeads: 1, headDim: 16, big: true },
      ]
    ) {
      const { big, ...sizes } = { big: false, ...base };
      const shape: AttentionShape = { ...sizes, window };
      const { sequences, seqLen, heads, kvHeads, headDim } = shape;
      const rows = sequences * seqLen;
      const q = values(rows * heads * headDim, seqLen + 1).map((x) => big ? 12 * x : x);
      const k = values(rows * kvHeads * headDim, seqLen + 2);
      const v = values(rows * kvHeads * headDim, seqLen + 3);
      const y = engine.attention(
        engine.upload(q, [rows, heads * headDim]),
        engine.upload(k, [rows, kvHeads * headDim]),
        engine.upload(v, [rows, kvHeads * headDim]),
        shape,
      );
      const [got] = await engine.read([y]);
      const want = reference(q, k, v, shape);
      for (let i = 0; i < want.length; i++) {
        if (!(Math.abs(got[i] - want[i]) <= 2e-6 * (1 + Math.abs(want[i])))) {
          assert.fail(`window ${window} ${JSON.stringify(base)} [${i}]: ${got[i]} vs ${want[i]}`);
        }
      }
    }
  }
});
