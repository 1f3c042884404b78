// The reconstruction errors' sums with H packed once (quadraticSums) against
// the per-candidate, per-chunk quadraticSum they replace, bit for bit.

import assert from "node:assert/strict";
import { createCpuGemm, type KernelVariant } from "../../src/engine/cpu/gemm.ts";
import { probeNativeGemm } from "../../src/engine/cpu/_gemm_native.ts";

const BUILDS: KernelVariant[] = probeNativeGemm().ok
  ? ["avx2", "relaxed", "simd"]
  : ["relaxed", "simd"];

function values(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

Deno.test("quadraticSums: W and each W − Ĉ, H packed once, give quadraticSum's chunk sums bit for bit (every build, 1 and 2 threads, several chunks, tiny row steps)", () => {
  const [m, k] = [37, 24];
  const w = values(m * k, 1);
  const candidates = [values(m * k, 2), Float32Array.from(w, (v, i) => v + (i % 5) * 1e-3)];
  const x = values(k * k, 3);
  const h = new Float32Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) h[i * k + j] = x[i * k + j] + x[j * k + i];
  }
  const gemms = BUILDS.flatMap((variant) =>
    [1, 2].map((threads) => ({
      gemm: createCpuGemm({ threads, variant }),
      label: variant as string,
    }))
  );
  gemms.push({ gemm: createCpuGemm({ threads: 2, streamBytes: 1 }), label: "tiny row steps" });
  try {
    for (const { gemm, label } of gemms) {
      for (const rowsPerChunk of [m, 10, 1]) {
        // What cpuReconstructionErrors computed before: each chunk's difference, one quadraticSum each.
        const want = [null, ...candidates].map((c) => {
          let sum = 0;
          for (let r0 = 0; r0 < m; r0 += rowsPerChunk) {
            const rows = Math.min(rowsPerChunk, m - r0);
            const d = w.slice(r0 * k, (r0 + rows) * k);
            if (c !== null) { for (let i = 0; i < d.length; i++) d[i] -= c[r0 * k + i]; }
            sum += gemm.quadraticSum(d, h, rows, k);
          }
          return sum;
        });
        const got = gemm.quadraticSums(w, candidates, h, m, k, rowsPerChunk);
        assert.deepEqual(
          got,
          want,
          `${label}, ${gemm.info().threads} thread(s), chunks of ${rowsPerChunk}`,
        );
      }
      assert.deepEqual(gemm.quadraticSums(new Float32Array(0), [], h, 0, k, 4), [0]);
    }
  } finally {
    for (const { gemm } of gemms) gemm.close();
  }
});
