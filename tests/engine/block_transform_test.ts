/**
 * Engine.blockTransform (the float64 kernels of fused rotations) on both
 * engines: against a float64 dense reference computed here (1e-12
 * relative), and bit for bit against the TypeScript float64 loops of
 * src/transform/block_apply.ts that fused rotations used before, for every
 * transform type, both sides, transposed or not, with and without
 * `randomize`'s permutation, over several blocks per dimension.
 */

import assert from "node:assert/strict";
import { BlockTransformKernels } from "../../src/engine/cpu/block_transform.ts";
import type { BlockTransform } from "../../src/engine/engine.ts";
import { EngineError } from "../../src/engine/engine_error.ts";
import { applyLeft, applyRight } from "../../src/transform/block_apply.ts";
import {
  blockTransformOf,
  buildTransform,
  permutedTransform,
  randomPermutation,
  type TransformType,
} from "../../src/transform/transform_matrix.ts";
import { ENGINE_KINDS, testEngine } from "../_engines.ts";

/** y = diag(M, …)·x or x·diag(M, …) with M = t.matrix (or Mᵀ), summed plainly in float64. */
function denseReference(
  x: Float64Array,
  rows: number,
  cols: number,
  t: BlockTransform,
  side: "left" | "right",
  transpose: boolean,
): Float64Array {
  const n = t.size;
  const m = (i: number, j: number) => (transpose ? t.matrix[j * n + i] : t.matrix[i * n + j]);
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let s = 0;
      if (side === "right") {
        const c0 = c - (c % n);
        for (let i = 0; i < n; i++) s += x[r * cols + c0 + i] * m(i, c - c0);
      } else {
        const r0 = r - (r % n);
        for (let k = 0; k < n; k++) s += m(r - r0, k) * x[(r0 + k) * cols + c];
      }
      y[r * cols + c] = s;
    }
  }
  return y;
}

const CASES: readonly [TransformType, number][] = [
  ["hadamard", 16],
  ["hadamard", 128], // a head_dim
  ["random-hadamard", 12], // Sloane's 12 alone
  ["random-hadamard", 48], // 12·2²: butterflies over K-chunks
  ["random-hadamard", 172], // stories260K's MLP width (Sloane's 172)
  ["random-hadamard", 768], // 192·4
  ["random-hadamard", 64], // a power of two: signs and butterflies only
  ["random-matrix", 12], // dense, not a multiple of 8 (a partial panel)
  ["random-matrix", 40],
];

for (const kind of ENGINE_KINDS) {
  Deno.test({
    name:
      `${kind}: blockTransform equals the float64 dense product (1e-12) and block_apply.ts bit for bit`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      for (const [type, n] of CASES) {
        const built = buildTransform(type, n, 7);
        const variants: [string, BlockTransform][] = [["", blockTransformOf(built)]];
        if (type !== "random-matrix") {
          const p = permutedTransform(built, randomPermutation(n, 7));
          variants.push([" permuted", blockTransformOf(p)]);
        }
        for (const [label, t] of variants) {
          // Two blocks on the transformed side, an odd count on the other (SIMD
          // tails; left: two 8-column register blocks and 5 columns past them).
          for (const side of ["right", "left"] as const) {
            const rows = side === "left" ? 2 * n : 3;
            const cols = side === "right" ? 2 * n : 21;
            const x = Float64Array.from(
              { length: rows * cols },
              (_, i) => Math.sin(i * 0.61) - 0.1,
            );
            for (const transpose of [false, true]) {
              const what = `${type} ${n}${label} ${side}${transpose ? " ᵀ" : ""}`;
              const got = x.slice();
              e.blockTransform(got, t, { rows, cols, side, transpose, what });
              const want = denseReference(x, rows, cols, t, side, transpose);
              let worst = 0;
              let norm = 0;
              for (let i = 0; i < x.length; i++) {
                worst = Math.max(worst, Math.abs(got[i] - want[i]));
                norm = Math.max(norm, Math.abs(want[i]));
              }
              assert.ok(worst <= 1e-12 * norm, `${what}: max error ${worst} of ${norm}`);
              const old = x.slice();
              if (side === "right") applyRight(old, rows, cols, t, transpose, what);
              else applyLeft(old, rows, cols, t, transpose, what);
              assert.deepEqual(got, old, `${what}: not bit-identical to block_apply.ts`);
            }
          }
        }
      }
    },
  });

  Deno.test({
    name: `${kind}: blockTransform refuses a block size that does not divide, naming the tensor`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const t = blockTransformOf(buildTransform("hadamard", 16, 0));
      const x = new Float64Array(3 * 24);
      assert.throws(
        () =>
          e.blockTransform(x, t, { rows: 3, cols: 24, side: "right", transpose: false, what: "w" }),
        (err: Error) => err instanceof EngineError && /w: 24 columns .* size 16/.test(err.message),
      );
      assert.throws(
        () =>
          e.blockTransform(x, t, { rows: 3, cols: 24, side: "left", transpose: false, what: "w" }),
        (err: Error) => err instanceof EngineError && /w: 3 rows/.test(err.message),
      );
      assert.throws(
        () =>
          e.blockTransform(x, t, { rows: 4, cols: 16, side: "left", transpose: false, what: "w" }),
        (err: Error) => err instanceof EngineError && /w: holds 72 values/.test(err.message),
      );
    },
  });
}

Deno.test("blockTransform over several chunks (right) and strips (left) stays bit-identical", () => {
  // 64 values per chunk and 16·5 per strip: 7 rows of 32 make four chunks (the last
  // partial), 13 columns under a 16-row block make three strips (the last partial).
  const kernels = new BlockTransformKernels({ chunkValues: 64, stripValues: 80 });
  const built = buildTransform("random-hadamard", 16, 3);
  for (
    const t of [
      blockTransformOf(built),
      blockTransformOf(permutedTransform(built, randomPermutation(16, 3))),
      blockTransformOf(buildTransform("random-matrix", 16, 3)),
    ]
  ) {
    for (const [side, rows, cols] of [["right", 7, 32], ["left", 32, 13]] as const) {
      const x = Float64Array.from({ length: rows * cols }, (_, i) => Math.cos(i * 0.29));
      const got = x.slice();
      kernels.blockTransform(got, t, { rows, cols, side, transpose: true, what: "w" });
      const old = x.slice();
      if (side === "right") applyRight(old, rows, cols, t, true, "w");
      else applyLeft(old, rows, cols, t, true, "w");
      assert.deepEqual(got, old, `${side}: differs from block_apply.ts`);
      assert.notDeepEqual(got, x, `${side}: unchanged`);
    }
  }
});
