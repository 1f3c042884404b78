/**
 * The WebAssembly kernels give the same bits on two threads as on one, call
 * after call. Every thread instantiates the module on the shared memory, and
 * a function that spills to the shadow stack (a local array indexed in a
 * loop) puts it at the same address in every instance: two threads running
 * it at once then overwrite each other's values. RMSNorm's four row sums
 * once did, and a 3M-parameter GPTQ checkpoint differed from run to run on
 * the WebAssembly builds (never on the native one, whose threads have stacks
 * of their own).
 */

import { assertSameBits } from "../_shared.ts";
import { createCpuGemm } from "../../src/engine/cpu/gemm.ts";

Deno.test("rmsnorm on two threads = on one, call after call, both WebAssembly builds", () => {
  // Threaded (5 · rows · cols ≥ 4 Mi operations), many small tasks.
  const rows = 4096;
  const cols = 512;
  let s = 1;
  const x = Float32Array.from(
    { length: rows * cols },
    () => (s = (s * 16807) % 2147483647) / 2147483647 - 0.5,
  );
  const w = Float32Array.from({ length: cols }, (_, i) => 1 + i / cols);
  for (const variant of ["relaxed", "simd"] as const) {
    const one = createCpuGemm({ variant, threads: 1 });
    const two = createCpuGemm({ variant, threads: 2 });
    try {
      const expected = one.rmsnorm(x, w, rows, cols, 1e-5);
      for (let k = 0; k < 60; k++) {
        assertSameBits(two.rmsnorm(x, w, rows, cols, 1e-5), expected, `${variant}, call ${k}`);
      }
    } finally {
      one.close();
      two.close();
    }
  }
});
