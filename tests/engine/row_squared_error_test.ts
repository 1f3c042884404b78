// The kernels' rows' sums of squared differences (gemm.c's J_OP 41, under
// CpuEngine.rowSquaredError: every AWQ grid point's loss on every batch)
// against the TypeScript loop they replaced, bit for bit, on every build:
// odd shapes, one column, no rows, ±0, ±∞, NaN, squares past float32's range,
// host arrays read in place and rows streamed in chunks.

import assert from "node:assert/strict";
import { assertSameBits } from "../_shared.ts";
import { createCpuGemm, type KernelVariant } from "../../src/engine/cpu/gemm.ts";
import { probeNativeGemm } from "../../src/engine/cpu/_gemm_native.ts";
import { readF32, testEngine } from "../_engines.ts";

const BUILDS: KernelVariant[] = probeNativeGemm().ok
  ? ["avx2", "relaxed", "simd"]
  : ["relaxed", "simd"];

/** CpuEngine.rowSquaredError's loop before the kernels: the reference bits. */
function reference(a: Float32Array, b: Float32Array | null, rows: number, cols: number) {
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let acc = 0;
    if (b === null) {
      for (let c = base; c < base + cols; c++) acc += Math.fround(a[c] * a[c]);
    } else {
      for (let c = base; c < base + cols; c++) {
        const d = Math.fround(a[c] - b[c]);
        acc += Math.fround(d * d);
      }
    }
    y[r] = acc;
  }
  return y;
}

/** The same sums over the columns in reverse: what a kernel summing out of order would give. */
function reversed(a: Float32Array, b: Float32Array | null, rows: number, cols: number) {
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let c = r * cols + cols - 1; c >= r * cols; c--) {
      const d = Math.fround(a[c] - (b === null ? 0 : b[c]));
      acc += Math.fround(d * d);
    }
    y[r] = acc;
  }
  return y;
}

/**
 * Values spanning 24 decades (so that a float64 sum depends on its order),
 * with some rows of signed zeros, an infinity, ∞ in both (∞ − ∞), a NaN,
 * squares beyond float32 (1e20² overflows), and subnormals.
 */
function valuesOf(rows: number, cols: number, seed: number): Float32Array {
  let s = seed;
  const x = Float32Array.from({ length: rows * cols }, (_, i) => {
    s = (s * 1103515245 + 12345) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * 10 ** ((i * 7 + seed) % 25 - 12);
  });
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    switch ((r + seed) % 9) {
      case 1:
        row.forEach((_, c) => (row[c] = c % 2 === 0 ? 0 : -0));
        break;
      case 2:
        row[r % cols] = Infinity;
        break;
      case 3:
        row[(r * 3) % cols] = NaN;
        break;
      case 4:
        row[0] = 1e20;
        break;
      case 5:
        row.forEach((_, c) => (row[c] = (c % 3 - 1) * 1e-42));
        break;
      case 6:
        row[cols - 1] = -Infinity;
        break;
    }
  }
  return x;
}

/** Same bits, except that any NaN matches any NaN (which NaN V8 stores varies with its tier). */
function assertSameValues(got: Float32Array, want: Float32Array, label: string): void {
  const nanRows = (a: Float32Array) => Array.from(a, (v) => Number.isNaN(v));
  assert.deepEqual(nanRows(got), nanRows(want), `${label}: NaN rows`);
  const clean = (a: Float32Array) => a.map((v) => (Number.isNaN(v) ? 0 : v));
  assertSameBits(clean(got), clean(want), label);
}

Deno.test("rowSquaredError gives the TypeScript loop's bits: every build, 1 and 2 threads, odd shapes, ±0, ±∞, NaN, tiny chunks", () => {
  const gemms = BUILDS.flatMap((variant) =>
    [1, 2].map((threads) => ({
      gemm: createCpuGemm({ threads, variant }),
      label: `${variant}, ${threads} thread(s)`,
    }))
  );
  // Streamed a few rows at a time (the wasm builds' and small arrays' path).
  gemms.push({ gemm: createCpuGemm({ threads: 2, streamBytes: 1 }), label: "tiny chunks" });
  try {
    // No rows; one column; fewer rows than a group of eight; odd widths; 1100 × 239
    // (past the size the native threads read in place); 1031 × 1021, past the 2^20 elements
    // from which the op splits its rows among the threads.
    const shapes = [[0, 5], [1, 1], [13, 1], [7, 3], [9, 5], [37, 301], [1100, 239], [1031, 1021]];
    for (const [rows, cols] of shapes) {
      const a = valuesOf(rows, cols, rows + cols);
      const b = valuesOf(rows, cols, rows * 3 + 1);
      const want = reference(a, b, rows, cols);
      const wantSquares = reference(a, null, rows, cols);
      for (const { gemm, label } of gemms) {
        const at = `${label}, ${rows} × ${cols}`;
        assertSameValues(gemm.rowSquaredError(a, b, rows, cols), want, `${at}: (a − b)²`);
        assertSameValues(gemm.rowSquaredError(a, null, rows, cols), wantSquares, `${at}: a²`);
      }
    }
    // Rows whose sums tell the orders apart: squares 1, 2^-24 and four 2^-54. In column
    // order each 2^-54 is lost against 1 + 2^-24 (a float32 tie, rounded to 1); summed
    // first they make 2^-52, which tips it to 1 + 2^-23. Cyclic shifts put the small
    // ones before and after the large, in the vector loop and in its tail.
    const [rows, cols] = [19, 13];
    const pattern = [1, 2 ** -12, 2 ** -27, 2 ** -27, 2 ** -27, 2 ** -27];
    const tips = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      pattern.forEach((v, i) => (tips[r * cols + (i + r) % cols] = v));
    }
    const want = reference(tips, null, rows, cols);
    assert.ok(
      want.some((v, r) => v !== reversed(tips, null, rows, cols)[r]),
      "no row's sum depends on the order of its columns",
    );
    for (const { gemm, label } of gemms) {
      assertSameBits(gemm.rowSquaredError(tips, null, rows, cols), want, `${label}: order`);
      const zeros = new Float32Array(tips.length);
      assertSameBits(gemm.rowSquaredError(tips, zeros, rows, cols), want, `${label}: order, b`);
    }
    const { gemm } = gemms[0];
    // Rows of no columns sum to +0; a too-short operand is refused.
    assertSameBits(
      gemm.rowSquaredError(new Float32Array(0), null, 3, 0),
      new Float32Array(3),
      "0 cols",
    );
    assert.throws(
      () => gemm.rowSquaredError(new Float32Array(6), new Float32Array(5), 2, 3),
      /rowSquaredError: b holds 5 floats, needs 6/,
    );
  } finally {
    for (const { gemm } of gemms) gemm.close();
  }
});

Deno.test({
  name: "cpu: rowSquaredError on the engine gives the TypeScript loop's bits, with and without b",
  sanitizeResources: false,
  async fn() {
    const e = await testEngine("cpu");
    for (const shape of [[2, 1100, 239], [3, 5], [11], [1, 1]]) {
      const cols = shape[shape.length - 1];
      const numel = shape.reduce((x, y) => x * y);
      const [as, bs] = [valuesOf(numel / cols, cols, 5), valuesOf(numel / cols, cols, 8)];
      const [a, b] = [e.upload(as, shape), e.upload(bs, shape)];
      const d = e.rowSquaredError(a, b);
      const sq = e.rowSquaredError(a);
      assert.deepEqual(d.shape, shape.length === 1 ? [1] : shape.slice(0, -1));
      assertSameValues(await readF32(e, d), reference(as, bs, numel / cols, cols), `${shape}: d`);
      assertSameValues(await readF32(e, sq), reference(as, null, numel / cols, cols), `${shape}`);
      for (const t of [a, b, d, sq]) t.destroy();
    }
  },
});
