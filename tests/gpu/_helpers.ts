/**
 * Test helpers for the GPU runtime: plain TypeScript references, so every
 * kernel is checked against arithmetic a reader can verify by eye. Seeded
 * inputs come from `seededRandom` (src/model/seeded_random.ts).
 *
 * @module
 */

import assert from "node:assert/strict";

/** n values uniform in [-1, 1). */
export function randomF32(random: () => number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = random() * 2 - 1;
  return out;
}

/** Reference y[m, n] = Σ_k x[m, k]·w[n, k] (+ bias[n]) in f64, and Σ|x||w| for tolerances. */
export function matmulRef(
  x: Float32Array,
  w: Float32Array,
  m: number,
  n: number,
  k: number,
  bias?: Float32Array,
): { y: Float64Array; magnitude: Float64Array } {
  const y = new Float64Array(m * n);
  const magnitude = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = bias ? bias[j] : 0;
      let a = bias ? Math.abs(bias[j]) : 0;
      for (let l = 0; l < k; l++) {
        const p = x[i * k + l] * w[j * k + l];
        s += p;
        a += Math.abs(p);
      }
      y[i * n + j] = s;
      magnitude[i * n + j] = a;
    }
  }
  return { y, magnitude };
}

/**
 * Asserts |got - want| ≤ rtol·scale + atol elementwise, where scale is the
 * magnitude of the summed terms (f32 summation-order error grows with it).
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  options: { rtol?: number; atol?: number; scale?: ArrayLike<number>; what?: string } = {},
): void {
  const { rtol = 1e-4, atol = 1e-6, scale, what = "value" } = options;
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const s = scale ? scale[i] : Math.abs(want[i]);
    const tol = rtol * s + atol;
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      assert.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]} (tolerance ${tol})`);
    }
  }
}
