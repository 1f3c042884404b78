/**
 * The CPU inverse factor works in place and in blocks: its result does not
 * depend on the block size, it is U with UᵀU = H⁻¹, and H is left as given.
 */

import assert from "node:assert/strict";
import { accumulateGram } from "../../src/engine/cpu/gemm.ts";
import { cpuInverseFactor } from "../../src/engine/cpu/second_order.ts";

/** A seeded symmetric positive definite [n, n]: a Gram of random rows plus a small diagonal. */
function hessian(n: number, seed: number): Float32Array {
  let s = seed;
  const x = Float32Array.from(
    { length: (n + 20) * n },
    () => (s = (s * 16807) % 2147483647) / 2147483647 - 0.5,
  );
  const h = new Float32Array(n * n);
  accumulateGram(h, x, n + 20, n);
  for (let i = 0; i < n; i++) h[i * n + i] += 0.05;
  return h;
}

Deno.test("CPU inverse factor: block size changes no bit, UᵀU·H = I, H untouched", () => {
  // 300 crosses the 128-column panels twice; 4096 floats per block makes
  // every trailing update and every L⁻¹ row product run in several blocks.
  for (const n of [300, 131]) {
    const h = hessian(n, n);
    const given = h.slice();
    const u = cpuInverseFactor(h, n)!;
    const small = cpuInverseFactor(h, n, 4096)!;
    assert.deepEqual(h, given, "H is not modified");
    assert.deepEqual(small, u, `n = ${n}: tiny blocks give the same bits`);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < i; j++) assert.equal(u[i * n + j], 0, `U[${i}, ${j}] below the diagonal`);
    }
    // (UᵀU)·H in float64, against the identity.
    const m = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < n; k++) {
        let s = 0;
        for (let p = 0; p <= Math.min(i, k); p++) s += u[p * n + i] * u[p * n + k];
        for (let j = 0; j < n; j++) m[i * n + j] += s * h[k * n + j];
      }
    }
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        worst = Math.max(worst, Math.abs(m[i * n + j] - (i === j ? 1 : 0)));
      }
    }
    assert.ok(worst < 1e-2, `n = ${n}: max |UᵀU·H − I| = ${worst}`);
  }
});

Deno.test("CPU inverse factor: an indefinite H gives null", () => {
  const n = 140;
  const h = hessian(n, 7);
  h[139 * n + 139] = -1;
  assert.equal(cpuInverseFactor(h, n), null);
  assert.equal(cpuInverseFactor(h, n, 4096), null);
});
