// Engine.reduceRowsMinMax and reduceColumnsMinMax (both reductions of static
// observers and SmoothQuant in one pass) against reduceRows and reduceColumns,
// on both engines, and the kernels' ops (gemm.c's J_OP 35 and 36) against
// Math.min and Math.max on every build.

import assert from "node:assert/strict";
import { assertSameBits } from "../_shared.ts";
import { createCpuGemm, type KernelVariant } from "../../src/engine/cpu/gemm.ts";
import { probeNativeGemm } from "../../src/engine/cpu/_gemm_native.ts";
import { ENGINE_KINDS, readF32, testEngine } from "../_engines.ts";

const BUILDS: KernelVariant[] = probeNativeGemm().ok
  ? ["avx2", "relaxed", "simd"]
  : ["relaxed", "simd"];

/**
 * Rows of mixed signs and magnitudes, with some rows holding only signed
 * zeros (in either order), infinities, float32 subnormals, or one NaN.
 */
function rowsOf(rows: number, cols: number): Float32Array {
  let s = rows * 7919 + cols;
  const x = Float32Array.from({ length: rows * cols }, (_, i) => {
    s = (s * 1103515245 + 12345) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * 10 ** ((i % 9) - 4);
  });
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    switch (r % 7) {
      case 1:
        row.forEach((_, c) => (row[c] = c % 2 === 0 ? 0 : -0));
        break;
      case 2:
        row.forEach((_, c) => (row[c] = c % 2 === 0 ? -0 : 0));
        break;
      case 3:
        row[r % cols] = NaN;
        break;
      case 4:
        row[0] = -Infinity;
        row[cols - 1] = Infinity;
        break;
      case 5:
        row.forEach((_, c) => (row[c] = (c % 3 - 1) * 1e-42));
        break;
    }
  }
  return x;
}

/** Math.min and Math.max folded over each row, as reduceRows folds them. */
function folded(x: Float32Array, rows: number, cols: number) {
  const min = new Float32Array(rows);
  const max = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let lo = Infinity, hi = -Infinity;
    for (let c = 0; c < cols; c++) {
      lo = Math.min(lo, x[r * cols + c]);
      hi = Math.max(hi, x[r * cols + c]);
    }
    min[r] = lo;
    max[r] = hi;
  }
  return { min, max };
}

/** The column-wise fold of the same. */
function foldedColumns(x: Float32Array, rows: number, cols: number) {
  const t = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = x[r * cols + c];
  return folded(t, cols, rows);
}

/** Every build with 1 and 2 threads, and 2 threads with a tiny stream budget (one row per chunk). */
function kernelsUnderTest() {
  const gemms = BUILDS.flatMap((variant) =>
    [1, 2].map((threads) => ({
      gemm: createCpuGemm({ threads, variant }),
      label: `${variant}, ${threads} thread(s)`,
    }))
  );
  gemms.push({ gemm: createCpuGemm({ threads: 2, streamBytes: 1 }), label: "tiny chunks" });
  return gemms;
}

/** Same bits, except that any NaN matches any NaN (which NaN V8 stores varies with its tier). */
function assertSameValues(got: Float32Array, want: Float32Array, label: string): void {
  const nan = (a: Float32Array) => a.map((v) => (Number.isNaN(v) ? 0 : v));
  const nanRows = (a: Float32Array) => Array.from(a, (v) => Number.isNaN(v));
  assert.deepEqual(nanRows(got), nanRows(want), `${label}: NaN rows`);
  assertSameBits(nan(got), nan(want), label);
}

Deno.test("rowMinMax gives Math.min's and Math.max's values: every build, 1 and 2 threads, ±0, ±∞, NaN, subnormals, tiny chunks", () => {
  const gemms = kernelsUnderTest();
  try {
    // One row of one value; a few rows; 600 rows (threaded) of a width not a multiple of 8.
    for (const [rows, cols] of [[1, 1], [7, 5], [600, 37]]) {
      const x = rowsOf(rows, cols);
      const want = folded(x, rows, cols);
      for (const { gemm, label } of gemms) {
        const min = new Float32Array(rows);
        const max = new Float32Array(rows);
        gemm.rowMinMax(x, rows, cols, min, max);
        assertSameValues(min, want.min, `${label}, ${rows} × ${cols}: min`);
        assertSameValues(max, want.max, `${label}, ${rows} × ${cols}: max`);
        // A NaN row gives the quiet NaN itself.
        if (rows > 3) {
          assert.equal(new Uint32Array(min.buffer)[3], 0x7fc00000, `${label}: the NaN's bits`);
        }
      }
    }
    assert.throws(
      () =>
        gemms[0].gemm.rowMinMax(
          new Float32Array(0),
          2,
          0,
          new Float32Array(2),
          new Float32Array(2),
        ),
      /no columns/,
    );
  } finally {
    for (const { gemm } of gemms) gemm.close();
  }
});

Deno.test("columnMinMax gives Math.min's and Math.max's values: every build, 1 and 2 threads, ±0, ±∞, NaN, subnormals, row chunks", () => {
  // Its tiny stream budget: one row per chunk, each chunk's result folded into the last.
  const gemms = kernelsUnderTest();
  try {
    // Rows whose columns are all zeros, infinities or one NaN (rowsOf's rows, transposed
    // by the fold): 1 × 1, 5 × 7, and 200 × 301 (threaded, strips not a multiple of 16).
    for (const [rows, cols] of [[1, 1], [5, 7], [200, 301]]) {
      const x = rowsOf(cols, rows);
      const t = new Float32Array(x.length);
      for (let c = 0; c < cols; c++) {
        for (let r = 0; r < rows; r++) t[r * cols + c] = x[c * rows + r];
      }
      const want = foldedColumns(t, rows, cols);
      for (const { gemm, label } of gemms) {
        const min = new Float32Array(cols);
        const max = new Float32Array(cols);
        gemm.columnMinMax(t, rows, cols, min, max);
        assertSameValues(min, want.min, `${label}, ${rows} × ${cols}: min`);
        assertSameValues(max, want.max, `${label}, ${rows} × ${cols}: max`);
      }
    }
    assert.throws(
      () =>
        gemms[0].gemm.columnMinMax(
          new Float32Array(0),
          0,
          2,
          new Float32Array(2),
          new Float32Array(2),
        ),
      /no rows/,
    );
  } finally {
    for (const { gemm } of gemms) gemm.close();
  }
});

for (const kind of ENGINE_KINDS) {
  Deno.test({
    name: `${kind}: reduceRowsMinMax is reduceRows' min and max`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      for (const shape of [[301, 37], [2, 3, 5], [11]]) {
        const cols = shape[shape.length - 1];
        const numel = shape.reduce((a, b) => a * b);
        const xs = rowsOf(numel / cols, cols);
        const x = e.upload(xs, shape);
        const { min, max } = e.reduceRowsMinMax(x);
        const lo = e.reduceRows(x, "min");
        const hi = e.reduceRows(x, "max");
        assert.deepEqual(min.shape, lo.shape, `${shape}: min's shape`);
        assert.deepEqual(max.shape, hi.shape, `${shape}: max's shape`);
        assertSameValues(await readF32(e, min), await readF32(e, lo), `${shape}: min`);
        assertSameValues(await readF32(e, max), await readF32(e, hi), `${shape}: max`);
        for (const t of [x, min, max, lo, hi]) t.destroy();
      }
    },
  });

  Deno.test({
    name: `${kind}: reduceColumnsMinMax is reduceColumns' min and max`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [rows, cols] = [37, 301];
      const x = e.upload(rowsOf(rows, cols), [rows, cols]);
      const { min, max } = e.reduceColumnsMinMax(x);
      const lo = e.reduceColumns(x, "min");
      const hi = e.reduceColumns(x, "max");
      assert.deepEqual([min.shape, max.shape], [[cols], [cols]]);
      assertSameValues(await readF32(e, min), await readF32(e, lo), "min");
      assertSameValues(await readF32(e, max), await readF32(e, hi), "max");
      for (const t of [x, min, max, lo, hi]) t.destroy();
    },
  });
}
