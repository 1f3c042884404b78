// The kernels' FP8 fake quantization of rows (gemm.c's J_OP 44,
// eight values at a time) against the TypeScript reference `fakeQuantize`,
// bit for bit, on every build.

import assert from "node:assert/strict";
import { assertSameBits } from "../_shared.ts";
import { CpuKernelError, createCpuGemm, type KernelVariant } from "../../src/engine/cpu/gemm.ts";
import { probeNativeGemm } from "../../src/engine/cpu/_gemm_native.ts";
import { fakeQuantizeRowRuns } from "../../src/engine/cpu/fake_quantize.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { fakeQuantize } from "../../src/quant/quantize.ts";

const BUILDS: KernelVariant[] = probeNativeGemm().ok
  ? ["avx2", "relaxed", "simd"]
  : ["relaxed", "simd"];

const FP8 = parseQuantizationArgs({ num_bits: 8, type: "float", strategy: "tensor" }, "in");

/**
 * Values of x / s on every path of the encoding: E4M3 subnormal steps and
 * the ties between them (odd multiples of 2⁻¹⁰), the smallest normal and
 * the tie below it, ties between normals (each mantissa step, both ways of
 * even), the largest value 448 and beyond it, float32 subnormals, ±0, ±∞
 * and NaN; then random ones.
 */
function quotients(): number[] {
  const q: number[] = [0, -0, Infinity, -Infinity, NaN, 448, 449, 464, 480, 1e30, 2 ** -149, 1e-40];
  for (let k = 0; k <= 16; k++) q.push(k * 2 ** -10, -k * 2 ** -10);
  q.push(2 ** -6, 2 ** -6 - 2 ** -10, 2 ** -6 - 2 ** -11, 2 ** -6 + 2 ** -10);
  for (let e = -6; e <= 8; e++) {
    for (let m = 0; m < 8; m++) {
      const v = 2 ** e * (1 + m / 8 + 1 / 16); // the tie above mantissa m
      q.push(v, -v, Math.fround(v * (1 + 2 ** -23)), Math.fround(v * (1 - 2 ** -23)));
    }
  }
  let s = 12345;
  for (let i = 0; i < 200; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    q.push(((s / 2 ** 32) * 2 - 1) * 600);
  }
  return q;
}

/** The reference: each row through `fakeQuantize` with its own scale. */
function reference(x: Float32Array, scale: Float32Array, rows: number): Float32Array {
  const cols = x.length / rows;
  const y = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    y.set(
      fakeQuantize(x.subarray(r * cols, (r + 1) * cols), [1, cols], {
        scale: scale.subarray(r, r + 1),
      }, FP8),
      r * cols,
    );
  }
  return y;
}

Deno.test("fakeQuantizeFp8Rows gives fakeQuantize's bits: every build, 1 and 2 threads, ties, saturation, ±0, ±∞, NaN, tiny chunks", () => {
  const q = quotients();
  const cols = q.length;
  // Scales: powers of two (x / s exact) and others (the division rounds); 3 rows, then
  // 600 rows (threaded, a partial last task).
  const scaleOf = (r: number) => [1, 0.5, 0.0123, 3.7, 2 ** -20][r % 5];
  for (const rows of [3, 600]) {
    const scale = Float32Array.from({ length: rows }, (_, r) => scaleOf(r));
    const x = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) x[r * cols + c] = q[(c + r) % cols] * scale[r];
    }
    const expected = reference(x, scale, rows);
    const gemms = BUILDS.flatMap((variant) =>
      [1, 2].map((threads) => ({
        gemm: createCpuGemm({ threads, variant }),
        label: variant as string,
      }))
    );
    gemms.push({ gemm: createCpuGemm({ threads: 2, streamBytes: 1 }), label: "tiny chunks" });
    try {
      for (const { gemm, label } of gemms) {
        const got = gemm.fakeQuantizeFp8Rows(x, scale, rows, cols, 448);
        assertSameBits(got, expected, `${label}, ${gemm.info().threads} thread(s), ${rows} rows`);
      }
    } finally {
      for (const { gemm } of gemms) gemm.close();
    }
  }
});

Deno.test("fakeQuantizeRowRuns takes the kernels for FP8 without a zero point, with the same bits as the runs", () => {
  const rows = 8;
  const cols = 50;
  const q = quotients();
  const x = Float32Array.from({ length: rows * cols }, (_, i) => q[i % q.length] * 0.25);
  // A sample's rows share a scale, as the calibration forwards' running scales do.
  const scale = Float32Array.from(
    { length: rows },
    (_, r) => [0.25, 0.25, 0.1, 0.1, 0.1, 2][r % 6],
  );
  const y = fakeQuantizeRowRuns(x, rows, scale, null, FP8, new Float32Array(rows * cols));
  assertSameBits(y, reference(x, scale, rows), "fp8 rows");
  const gemm = createCpuGemm({ threads: 1 });
  try {
    assert.throws(
      () => gemm.fakeQuantizeFp8Rows(x, scale.subarray(1), rows, cols, 448),
      (e) => e instanceof CpuKernelError && /scale holds 7 floats, needs 8/.test(e.message),
    );
  } finally {
    gemm.close();
  }
});

/**
 * Quotients x / s on every path of the integer grid: each integer and the
 * ties half way between (both ways of even), one float32 step either side
 * of a tie, values beyond both bounds, float32 subnormals, ±0, ±∞ and NaN;
 * then random ones.
 */
function intQuotients(bound: number): number[] {
  const q: number[] = [0, -0, Infinity, -Infinity, NaN, 1e30, -1e30, 2 ** -149, -1e-40, 0.3, -0.3];
  for (let k = -bound - 2; k <= bound + 2; k++) {
    const tie = k + 0.5;
    q.push(k, tie, Math.fround(tie * (1 + 2 ** -23)), Math.fround(tie * (1 - 2 ** -23)));
  }
  let s = 54321;
  for (let i = 0; i < 200; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    q.push(((s / 2 ** 32) * 2 - 1) * 1.5 * bound);
  }
  return q;
}

/**
 * Bits equal, except that any NaN matches any NaN: the TypeScript
 * reference's NaN bits depend on V8's compiler tier (0xffc00000 or
 * 0xffffffff), the kernels always give 0xffc00000.
 */
function assertSameBitsAnyNaN(got: Float32Array, expected: Float32Array, label: string): void {
  const canon = (a: Float32Array) => Float32Array.from(a, (v) => Number.isNaN(v) ? NaN : v);
  assert.equal(got.length, expected.length, label);
  for (let i = 0; i < got.length; i++) {
    assert.equal(Number.isNaN(got[i]), Number.isNaN(expected[i]), `${label}: element ${i} NaN`);
  }
  assertSameBits(canon(got), canon(expected), label);
}

/** The reference of an integer grid: each row through `fakeQuantize` with its scale (and zero point). */
function intReference(
  x: Float32Array,
  scale: Float32Array,
  zero: Float32Array | null,
  rows: number,
  args: ReturnType<typeof parseQuantizationArgs>,
): Float32Array {
  const cols = x.length / rows;
  const y = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    y.set(
      fakeQuantize(x.subarray(r * cols, (r + 1) * cols), [1, cols], {
        scale: scale.subarray(r, r + 1),
        ...(zero === null ? {} : { zeroPoint: zero.subarray(r, r + 1) }),
      }, args),
      r * cols,
    );
  }
  return y;
}

Deno.test("fakeQuantizeIntRows gives fakeQuantize's bits: every build, 1 and 2 threads, int4/int8, zero points (0 and not), ties, clamps, ±0, ±∞, NaN, tiny chunks", () => {
  const cases = [
    { args: { num_bits: 4, type: "int", strategy: "tensor" }, zero: false },
    { args: { num_bits: 8, type: "int", strategy: "tensor", symmetric: false }, zero: true },
    { args: { num_bits: 4, type: "int", strategy: "tensor", symmetric: false }, zero: true },
  ];
  const gemms = BUILDS.flatMap((variant) =>
    [1, 2].map((threads) => ({
      gemm: createCpuGemm({ threads, variant }),
      label: variant as string,
    }))
  );
  gemms.push({ gemm: createCpuGemm({ threads: 2, streamBytes: 1 }), label: "tiny chunks" });
  try {
    for (const c of cases) {
      const args = parseQuantizationArgs(c.args, "w");
      const [qMin, qMax] = args.numBits === 4 ? [-8, 7] : [-128, 127];
      const q = intQuotients(qMax);
      const cols = q.length;
      const scaleOf = (r: number) => [1, 0.5, 0.0123, 3.7, 2 ** -20][r % 5];
      // Zero points: 0 (whose sum turns a −0 quotient into +0), integers, a non-integer.
      const zeroOf = (r: number) => [0, -3, 5, 0.5, 0][r % 5];
      for (const rows of [3, 600]) {
        const scale = Float32Array.from({ length: rows }, (_, r) => scaleOf(r));
        const zero = c.zero ? Float32Array.from({ length: rows }, (_, r) => zeroOf(r)) : null;
        const x = new Float32Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          for (let k = 0; k < cols; k++) x[r * cols + k] = q[(k + r) % cols] * scale[r];
        }
        const expected = intReference(x, scale, zero, rows, args);
        for (const { gemm, label } of gemms) {
          const got = gemm.fakeQuantizeIntRows(x, scale, zero, rows, cols, qMin, qMax);
          assertSameBitsAnyNaN(
            got,
            expected,
            `${label}, ${gemm.info().threads} thread(s), ${rows} rows, ${JSON.stringify(c.args)}`,
          );
        }
        // The engine's rows take the kernels with the same bits.
        const y = fakeQuantizeRowRuns(x, rows, scale, zero, args, new Float32Array(rows * cols));
        assertSameBitsAnyNaN(y, expected, `fakeQuantizeRowRuns, ${rows} rows`);
      }
    }
    const gemm = gemms[0].gemm;
    const x = new Float32Array(4);
    assert.throws(
      () => gemm.fakeQuantizeIntRows(x, new Float32Array(1), new Float32Array(2), 2, 2, -8, 7),
      (e) => e instanceof CpuKernelError && /scale holds 1 floats, needs 2/.test(e.message),
    );
    assert.throws(
      () => gemm.fakeQuantizeIntRows(x, new Float32Array(2), null, 2, 2, 0, 15),
      (e) => e instanceof CpuKernelError && /bounds \[0, 15\] must be integers/.test(e.message),
    );
  } finally {
    for (const { gemm } of gemms) gemm.close();
  }
});
