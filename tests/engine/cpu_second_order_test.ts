/**
 * The CPU inverse factor works in place and in blocks: its result does not
 * depend on the block size, it is U with UᵀU = H⁻¹, and H is left as given.
 * GPTQ's integer-grid column block on the kernels gives the bits of the
 * TypeScript loop.
 */

import assert from "node:assert/strict";
import { assertSameBits } from "../_shared.ts";
import {
  accumulateGram,
  COLUMN_BLOCK_MAX_COUNT,
  CpuKernelError,
  createCpuGemm,
  gptqColumnBlock,
  type KernelVariant,
} from "../../src/engine/cpu/gemm.ts";
import { CpuHessian } from "../../src/engine/cpu/hessian.ts";
import { probeNativeGemm } from "../../src/engine/cpu/_gemm_native.ts";
import {
  columnBlockOnKernels,
  cpuColumnBlock,
  cpuInverseFactor,
  type HostColumnBlock,
  kernelColumnBlock,
} from "../../src/engine/cpu/second_order.ts";

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

Deno.test("GPTQ column block on the kernels = cpuColumnBlock, bit for bit, every build, 1 and 2 threads, with and without a zero mask", () => {
  const builds: KernelVariant[] = probeNativeGemm().ok
    ? ["avx2", "relaxed", "simd"]
    : ["relaxed", "simd"];
  let s = 12345;
  const rand = () => (s = (s * 16807) % 2147483647) / 2147483647 - 0.5;
  // Rows of 3 (one task) and 700 (threaded); a block inside wider weights;
  // channel slots, and group slots of 4 columns with 2 rows per slot row;
  // symmetric int4 and asymmetric uint8-like grids; a value past the clamp.
  const cases = [
    { rows: 3, cols: 40, i1: 8, i2: 40, rowDiv: 1, groupCols: 0, qmin: -8, qmax: 7, asym: false },
    {
      rows: 700,
      cols: 150,
      i1: 22,
      i2: 150,
      rowDiv: 2,
      groupCols: 4,
      qmin: 0,
      qmax: 255,
      asym: true,
    },
  ];
  const gemms = builds.flatMap((variant) =>
    [1, 2].map((threads) => ({ variant, threads, gemm: createCpuGemm({ variant, threads }) }))
  );
  try {
    for (const c of cases) {
      const { rows, cols, i1, i2 } = c;
      const w = Float32Array.from({ length: rows * cols }, () => 3 * rand());
      w[5] = 1e6; // clamps
      const u = new Float32Array(cols * cols);
      for (let i = 0; i < cols; i++) {
        u[i * cols + i] = 0.5 + Math.abs(rand());
        for (let j = i + 1; j < cols; j++) u[i * cols + j] = 0.3 * rand();
      }
      const groups = c.groupCols ? Math.ceil(cols / c.groupCols) : 1;
      const slotRows = Math.ceil(rows / c.rowDiv);
      const slots = slotRows * groups;
      const quantization = {
        kind: 1 as const,
        qmin: c.qmin,
        qmax: c.qmax,
        effectiveScale: Float32Array.from({ length: slots }, () => 0.05 + Math.abs(rand()) / 4),
        zeroPoint: Float32Array.from(
          { length: slots },
          () => (c.asym ? Math.round(100 * rand()) + 128 : 0),
        ),
        columnSlot: Uint32Array.from(
          { length: cols },
          (_, i) => (c.groupCols ? Math.floor(i / c.groupCols) : 0),
        ),
        rowDiv: c.rowDiv,
        slotRowStride: groups,
      };
      // A sparse weight's zero mask (GPTQ after SparseGPT): about half the
      // values, and one kept value that the updates would otherwise move.
      const mask = Uint8Array.from({ length: rows * cols }, () => (rand() < 0 ? 0 : 1));
      for (const nonZero of [null, mask]) {
        const block = (weight: Float32Array): HostColumnBlock => ({
          w: weight,
          rows,
          cols,
          u,
          i1,
          i2,
          err: new Float32Array(rows * (i2 - i1)),
          quantization,
          nonZero,
          maskInBlock: nonZero !== null,
        });
        const expected = block(w.slice());
        const expectedLoss = cpuColumnBlock(expected);
        for (const { variant, threads, gemm } of gemms) {
          const got = block(w.slice());
          const loss = kernelColumnBlock(got, gemm);
          const label = `${variant}, ${threads} thread(s), ${rows} rows, mask ${nonZero !== null}`;
          assertSameBits(got.w, expected.w, `${label}: weights`);
          assertSameBits(got.err, expected.err, `${label}: errors`);
          assert.equal(loss, expectedLoss, `${label}: loss`);
        }
      }
    }
  } finally {
    for (const { gemm } of gemms) gemm.close();
  }
});

Deno.test("CPU column block: GPTQ's integer-grid blocks run on the kernels, masked or not", () => {
  const quantization = {
    kind: 1 as const,
    qmin: -8,
    qmax: 7,
    effectiveScale: new Float32Array([0.5]),
    zeroPoint: new Float32Array([0]),
    columnSlot: new Uint32Array(2),
    rowDiv: 1,
    slotRowStride: 1,
  };
  const block = (over: Partial<HostColumnBlock>): HostColumnBlock => ({
    w: new Float32Array(4),
    rows: 2,
    cols: 2,
    u: new Float32Array([1, 0, 0, 1]),
    i1: 0,
    i2: 2,
    err: new Float32Array(4),
    quantization,
    nonZero: null,
    maskInBlock: true,
    ...over,
  });
  // GPTQ asks for the in-block mask on every weight; a dense one has none.
  assert.ok(columnBlockOnKernels(block({})), "dense GPTQ block (maskInBlock, no mask)");
  assert.ok(columnBlockOnKernels(block({ maskInBlock: false })), "no mask asked for");
  assert.ok(columnBlockOnKernels(block({ nonZero: new Uint8Array(4) })), "a sparse weight's mask");
  // The kernels' lanes hold a block's columns in each thread's scratch.
  const wide = (i2: number) => block({ cols: 2 * COLUMN_BLOCK_MAX_COUNT, i1: 1, i2 });
  assert.ok(columnBlockOnKernels(wide(1 + COLUMN_BLOCK_MAX_COUNT)), "the widest kernel block");
  assert.ok(!columnBlockOnKernels(wide(2 + COLUMN_BLOCK_MAX_COUNT)), "a wider block");
  assert.throws(
    () =>
      gptqColumnBlock({
        w: new Float32Array(0),
        rows: 0,
        count: COLUMN_BLOCK_MAX_COUNT + 1,
        u: new Float32Array(0),
        err: new Float32Array(0),
        scale: new Float32Array(1),
        zero: new Float32Array(1),
        slot: new Uint32Array(0),
        rowDiv: 1,
        slotRowStride: 1,
        qmin: -8,
        qmax: 7,
      }),
    CpuKernelError,
  );
  assert.ok(!columnBlockOnKernels(block({ quantization: { ...quantization, kind: 2 } })), "fp8");
  assert.ok(
    !columnBlockOnKernels(block({ pruning: { kind: "n:m", n: 2, m: 4, preserve: false } })),
    "N:M pruning with quantization",
  );
  assert.ok(
    !columnBlockOnKernels(
      block({
        quantization: undefined,
        pruning: { kind: "unstructured", sparsity: 0.5, preserve: false },
      }),
    ),
    "unstructured pruning",
  );
  const nm = (m: number) =>
    block({ quantization: undefined, pruning: { kind: "n:m", n: 1, m, preserve: false } });
  assert.ok(columnBlockOnKernels(nm(32)), "N:M, M = 32");
  assert.ok(!columnBlockOnKernels(nm(64)), "N:M, M = 64 (past the kernel's 32-bit window)");
  const wideNm = (i2: number) =>
    block({
      quantization: undefined,
      pruning: { kind: "n:m", n: 2, m: 4, preserve: false },
      cols: 2 * COLUMN_BLOCK_MAX_COUNT,
      i1: 1,
      i2,
    });
  assert.ok(columnBlockOnKernels(wideNm(1 + COLUMN_BLOCK_MAX_COUNT)), "the widest N:M block");
  assert.ok(!columnBlockOnKernels(wideNm(2 + COLUMN_BLOCK_MAX_COUNT)), "a wider N:M block");
});

/** The diagonal block's Cholesky factor as TypeScript computed it (float64 sums, L rounded to float32). */
function referenceCholesky(a: Float32Array, b: number): Float32Array | null {
  const l = new Float32Array(b * b);
  for (let j = 0; j < b; j++) {
    let s = a[j * b + j];
    for (let k = 0; k < j; k++) s -= l[j * b + k] * l[j * b + k];
    if (!(s > 0) || !Number.isFinite(s)) return null;
    const d = Math.sqrt(s);
    l[j * b + j] = d;
    for (let i = j + 1; i < b; i++) {
      let t = a[i * b + j];
      for (let k = 0; k < j; k++) t -= l[i * b + k] * l[j * b + k];
      l[i * b + j] = t / d;
    }
  }
  return l;
}

/** L⁻¹ as TypeScript computed it: forward substitution in float64, rounded once to float32. */
function referenceLowerInverse(l: Float32Array, b: number): Float32Array | null {
  const x = new Float64Array(b * b);
  for (let c = 0; c < b; c++) {
    for (let i = c; i < b; i++) {
      let s = i === c ? 1 : 0;
      for (let k = c; k < i; k++) s -= l[i * b + k] * x[k * b + c];
      x[i * b + c] = s / l[i * b + i];
    }
  }
  const out = Float32Array.from(x);
  return out.every(Number.isFinite) ? out : null;
}

/** The lower triangle of a [b, b] array (zeros above the diagonal). */
function lowerOf(a: Float32Array, b: number): Float32Array {
  return a.map((v, idx) => (idx % b <= Math.floor(idx / b) ? v : 0));
}

Deno.test("Cholesky and triangular inverse blocks on the kernels = TypeScript's float64 loops, bit for bit, every build, 1 and 2 threads", () => {
  const builds: KernelVariant[] = probeNativeGemm().ok
    ? ["avx2", "relaxed", "simd"]
    : ["relaxed", "simd"];
  const gemms = builds.flatMap((variant) =>
    [1, 2].map((threads) => ({ variant, threads, gemm: createCpuGemm({ variant, threads }) }))
  );
  try {
    // 128: the factor's panel; 5: tiny; 260: the inverse's columns threaded.
    for (const b of [128, 5, 260]) {
      const h = hessian(b, b + 3);
      // Only the lower triangle may be read: the upper one holds something else.
      for (let i = 0; i < b; i++) for (let j = i + 1; j < b; j++) h[i * b + j] = 1e30;
      const l = referenceCholesky(h, b)!;
      const x = referenceLowerInverse(l, b)!;
      assert.ok(l !== null && x !== null, `b = ${b}: the reference factors`);
      for (const { variant, threads, gemm } of gemms) {
        const label = `${variant}, ${threads} thread(s), b = ${b}`;
        const got = h.slice();
        assert.ok(gemm.choleskyBlock(got, b), `${label}: positive definite`);
        assertSameBits(lowerOf(got, b), l, `${label}: L`);
        for (let i = 0; i < b; i++) {
          for (let j = i + 1; j < b; j++) {
            assert.equal(got[i * b + j], Math.fround(1e30), `${label}: upper kept`);
          }
        }
        // L's upper triangle holds 1e30s: not read either.
        const inv = gemm.lowerTriangularInverse(got, b)!;
        assert.ok(inv !== null, `${label}: finite inverse`);
        assertSameBits(inv, x, `${label}: L⁻¹`);
      }
    }
    // Not positive definite (a negative pivot in the middle); an inverse that overflows.
    const bad = hessian(6, 1);
    bad[3 * 6 + 3] = -1;
    assert.equal(referenceCholesky(bad, 6), null);
    const tiny = new Float32Array([1e-20, 0, 1, 1e-20]);
    assert.equal(referenceLowerInverse(tiny, 2), null);
    for (const { variant, threads, gemm } of gemms) {
      const label = `${variant}, ${threads} thread(s)`;
      assert.equal(gemm.choleskyBlock(bad.slice(), 6), false, `${label}: indefinite`);
      assert.equal(gemm.lowerTriangularInverse(tiny, 2), null, `${label}: overflow`);
      // The status of a failed call does not stick to the next one.
      assert.ok(gemm.lowerTriangularInverse(new Float32Array([2, 0, 1, 4]), 2), `${label}: after`);
      assert.ok(gemm.choleskyBlock(new Float32Array([4, 0, 2, 5]), 2), `${label}: after`);
    }
  } finally {
    for (const { gemm } of gemms) gemm.close();
  }
});

Deno.test("quadraticSum on the kernels = the product's rows dotted in TypeScript, bit for bit, every build, threads, streaming", () => {
  const builds: KernelVariant[] = probeNativeGemm().ok
    ? ["avx2", "relaxed", "simd"]
    : ["relaxed", "simd"];
  let s = 777;
  const rand = () => (s = (s * 16807) % 2147483647) / 2147483647 - 0.5;
  for (const [m, k] of [[3, 5], [300, 70]]) {
    const x = Float32Array.from({ length: m * k }, rand);
    const w = hessian(k, k);
    for (const variant of builds) {
      // 4 KiB streams the 300 rows through in several chunks.
      for (const [threads, streamBytes] of [[1, undefined], [2, undefined], [2, 4096]]) {
        const gemm = createCpuGemm({ variant, threads, streamBytes });
        try {
          const y = gemm.matmulTransposed(x, w, m, k, k);
          let expected = 0;
          for (let i = 0; i < m * k; i++) expected += y[i] * x[i];
          const label = `${variant}, ${threads} thread(s), stream ${streamBytes}, ${m} × ${k}`;
          assert.equal(gemm.quadraticSum(x, w, m, k), expected, label);
          assert.equal(gemm.quadraticSum(x, w, 0, k), 0, `${label}: no rows`);
        } finally {
          gemm.close();
        }
      }
    }
  }
});

Deno.test("SparseGPT N:M column block on the kernels = cpuColumnBlock, bit for bit, every build, 1 and 2 threads, preserved zeros", () => {
  const builds: KernelVariant[] = probeNativeGemm().ok
    ? ["avx2", "relaxed", "simd"]
    : ["relaxed", "simd"];
  const gemms = builds.flatMap((variant) =>
    [1, 2].map((threads) => ({ variant, threads, gemm: createCpuGemm({ variant, threads }) }))
  );
  let s = 4242;
  const rand = () => (s = (s * 16807) % 2147483647) / 2147483647 - 0.5;
  try {
    // 2:4 (vLLM's), 1:3 (a partial last window), 3:8; 3 rows (one task) and 600 (threaded).
    for (
      const [n, m, rows, cols, i1, i2] of [[2, 4, 3, 40, 8, 40], [1, 3, 600, 100, 0, 64], [
        3,
        8,
        5,
        64,
        0,
        64,
      ]]
    ) {
      const w = Float32Array.from({ length: rows * cols }, () => 2 * rand());
      const u = new Float32Array(cols * cols);
      for (let i = 0; i < cols; i++) {
        // The first window's diagonal is 1: its metrics are W².
        u[i * cols + i] = i < i1 + m ? 1 : 0.5 + Math.abs(rand());
        for (let j = i + 1; j < cols; j++) u[i * cols + j] = 0.3 * rand();
      }

      // Existing zeros (about a quarter), which `preserve` keeps pruned.
      const nonZero = Uint8Array.from(w, (_, idx) => (idx % 4 === 3 || rand() < -0.4 ? 0 : 1));
      for (let idx = 0; idx < w.length; idx++) if (nonZero[idx] === 0) w[idx] = 0;
      // A tie across the cut in each row's first window: ±0.5 after a smaller value.
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < m; j++) {
          w[r * cols + i1 + j] = [0.1, 0.5, -0.5, 0.5][j] ?? 0.9;
          nonZero[r * cols + i1 + j] = 1;
        }
      }
      for (const preserve of [false, true]) {
        const block = (weight: Float32Array): HostColumnBlock => ({
          w: weight,
          rows,
          cols,
          u,
          i1,
          i2,
          err: new Float32Array(rows * (i2 - i1)),
          pruning: { kind: "n:m", n, m, preserve },
          nonZero: preserve ? nonZero : null,
          maskInBlock: false,
        });
        assert.ok(columnBlockOnKernels(block(w)), "N:M without quantization runs on the kernels");
        const expected = block(w.slice());
        const expectedLoss = cpuColumnBlock(expected);
        for (const { variant, threads, gemm } of gemms) {
          const got = block(w.slice());
          const loss = kernelColumnBlock(got, gemm);
          const label =
            `${variant}, ${threads} thread(s), ${n}:${m}, ${rows} rows, preserve ${preserve}`;
          assertSameBits(got.w, expected.w, `${label}: weights`);
          assertSameBits(got.err, expected.err, `${label}: errors`);
          assert.equal(loss, expectedLoss, `${label}: loss`);
        }
      }
    }
  } finally {
    for (const { gemm } of gemms) gemm.close();
  }
});

Deno.test("CpuHessian: H = H·n₀/n₁ + 2/n₁·xᵀx on the whole matrix, bit for bit, read between adds or not", async () => {
  for (const k of [7, 70]) {
    const h = new CpuHessian(k);
    const want = new Float32Array(k * k);
    let n0 = 0;
    let s = k;
    for (const [rows, sequences] of [[30, 2], [600, 5], [9, 1]]) {
      const x = Float32Array.from(
        { length: rows * k },
        () => (s = (s * 16807) % 2147483647) / 2147483647 - 0.5,
      );
      h.add(x, sequences);
      // The whole-matrix update: a full symmetric Gram, then every element.
      const g = new Float32Array(k * k);
      accumulateGram(g, x, rows, k);
      const n1 = n0 + sequences;
      for (let i = 0; i < k * k; i++) want[i] = want[i] * (n0 / n1) + (2 / n1) * g[i];
      n0 = n1;
      if (rows !== 600) assertSameBits(h.matrix, want, `k = ${k}, ${n1} samples`);
    }
    assertSameBits(await h.read(), want, `k = ${k}, read`);
    assert.equal(h.numSamples, n0);
  }
});
