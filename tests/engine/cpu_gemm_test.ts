// The CPU engine's GEMM kernels against float64 references: odd shapes that
// cross every blocking boundary (MR 4 and 8, NR 8, KC 512, MC 128, stripes of
// up to 256 columns), accumulate semantics, the `out` parameter, one and two
// threads, and every kernel build (relaxed-SIMD FMA, plain SIMD, and the
// native AVX2 library where this machine can run it).

import assert from "node:assert/strict";
import { assertSameBits } from "../_shared.ts";
import { fastWalshHadamard } from "../../src/transform/block_apply.ts";
import {
  accumulateGram,
  causalAttention,
  type CpuGemm,
  CpuKernelError,
  cpuKernelInfo,
  createCpuGemm,
  type KernelVariant,
  matmul,
  matmulTransposed,
  type RowTransform,
  siluMul,
} from "../../src/engine/cpu/gemm.ts";
import { GemmRuntime, loadVariant } from "../../src/engine/cpu/_gemm_runtime.ts";
import { memoryBase, openNativeGemm, probeNativeGemm } from "../../src/engine/cpu/_gemm_native.ts";
import {
  type GemmExports,
  JOB,
  JOB_ADDRESS,
  JOB_SLOTS,
} from "../../src/engine/cpu/_gemm_layout.ts";

/** Deterministic values in [-1, 1). */
function values(length: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 31 - 1;
  });
}

/**
 * Asserts y ≈ Σ_p A(i,p)·B(p,j) in float64. The tolerance is the worst-case
 * float32 summation bound, k · 2⁻²³ · Σ|A(i,p)·B(p,j)|, per element: any
 * order of summation meets it, a wrong or missing term does not.
 */
function assertProduct(
  y: Float32Array,
  m: number,
  n: number,
  k: number,
  aAt: (i: number, p: number) => number,
  bAt: (p: number, j: number) => number,
  base: (i: number, j: number) => number = () => 0,
  label = "",
): void {
  assert.equal(y.length, m * n);
  // Materialized once, so the triple loop reads arrays instead of calling closures.
  const A = new Float64Array(m * k);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) A[i * k + p] = aAt(i, p);
  const Bt = new Float64Array(n * k);
  for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) Bt[j * k + p] = bAt(p, j);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = base(i, j);
      let abs = Math.abs(sum);
      for (let p = 0; p < k; p++) {
        const t = A[i * k + p] * Bt[j * k + p];
        sum += t;
        abs += Math.abs(t);
      }
      const got = y[i * n + j];
      const tol = (k + 2) * 2 ** -23 * abs + 1e-30;
      if (!(Math.abs(got - sum) <= tol)) {
        assert.fail(`${label} [${i},${j}]: got ${got}, expected ${sum} ± ${tol}`);
      }
    }
  }
}

const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [1, 3, 17],
  [3, 17, 5],
  [17, 3, 257],
  [64, 64, 64],
  [5, 172, 172],
  [133, 9, 31],
  [7, 300, 513],
  [257, 33, 260],
];

/** Whether this machine runs the native build; the tests that need it say so when it does not. */
const NATIVE = probeNativeGemm();
const BUILDS: KernelVariant[] = NATIVE.ok ? ["avx2", "relaxed", "simd"] : ["relaxed", "simd"];

// One instance per build and thread count for the whole file: starting a
// worker costs far more than the products these tests run. Their workers are
// unref'd and end with the process.
const GEMMS = BUILDS.flatMap((variant) =>
  [1, 2].map((threads) => ({
    gemm: createCpuGemm({ threads, variant }),
    threads,
    variant,
    label: `${variant}, ${threads} thread(s)`,
  }))
);

function forEachGemm(fn: (gemm: CpuGemm, label: string) => void): void {
  for (const { gemm, threads, variant, label } of GEMMS) {
    assert.deepEqual(gemm.info(), {
      threads,
      variant,
      relaxedSimd: variant !== "simd",
      simd: true,
      nativeNote: null,
    });
    fn(gemm, label);
  }
}

Deno.test("matmulTransposed matches float64 on odd shapes", () => {
  forEachGemm((gemm, label) => {
    for (const [m, n, k] of SHAPES) {
      const x = values(m * k, m * 31 + k);
      const w = values(n * k, n * 17 + k);
      const y = gemm.matmulTransposed(x, w, m, n, k);
      assertProduct(
        y,
        m,
        n,
        k,
        (i, p) => x[i * k + p],
        (p, j) => w[j * k + p],
        undefined,
        `${label} ${m}×${n}×${k}`,
      );
    }
  });
});

Deno.test("matmul matches float64 on odd shapes", () => {
  forEachGemm((gemm, label) => {
    for (const [m, n, k] of SHAPES) {
      const a = values(m * k, m * 7 + k);
      const b = values(k * n, n * 13 + k);
      const y = gemm.matmul(a, b, m, n, k);
      assertProduct(
        y,
        m,
        n,
        k,
        (i, p) => a[i * k + p],
        (p, j) => b[p * n + j],
        undefined,
        `${label} ${m}×${n}×${k}`,
      );
    }
  });
});

Deno.test("accumulateGram adds xᵀx to a symmetric h and writes the full symmetric matrix", () => {
  forEachGemm((gemm, label) => {
    for (const [rows, k] of [[1, 1], [3, 5], [17, 9], [300, 33], [64, 172], [5, 264]]) {
      // A symmetric start, so the accumulation is visible on both triangles.
      const start = values(k * k, k);
      for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) start[i * k + j] = start[j * k + i];
      const h = start.slice();
      const x1 = values(rows * k, rows + 3 * k);
      const x2 = values(rows * k, rows + 5 * k);
      gemm.accumulateGram(h, x1, rows, k);
      gemm.accumulateGram(h, x2, rows, k);
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < i; j++) assert.equal(h[i * k + j], h[j * k + i], `${label} symmetric`);
      }
      // Two calls of `rows` rows = one product over the 2·rows stacked rows.
      const at = (p: number, i: number) => p < rows ? x1[p * k + i] : x2[(p - rows) * k + i];
      assertProduct(
        h,
        k,
        k,
        2 * rows,
        (i, p) => at(p, i),
        (p, j) => at(p, j),
        (i, j) => start[i * k + j],
        `${label} ${rows}×${k}`,
      );
    }
  });
});

Deno.test("scaleAddGramUpper gives the bits of a Gram from zero, then h·beta + alpha·g, on the upper triangle only", () => {
  const chunked = BUILDS.map((variant) => ({
    gemm: createCpuGemm({ threads: 2, variant, streamBytes: 1 }),
    label: `${variant}, 2 threads, chunked`,
  }));
  try {
    const check = (gemm: CpuGemm, label: string) => {
      for (const [rows, k] of [[1, 1], [17, 9], [300, 33], [600, 70], [5, 264]]) {
        const h = values(k * k, 2 * k);
        const want = h.slice();
        for (const [n0, n1] of [[0, 3], [3, 4], [4, 9]]) {
          const x = values(rows * k, rows + n1 * k);
          gemm.scaleAddGramUpper(h, x, rows, k, n0 / n1, 2 / n1);
          const g = new Float32Array(k * k);
          gemm.accumulateGram(g, x, rows, k);
          for (let i = 0; i < k; i++) {
            for (let j = i; j < k; j++) {
              want[i * k + j] = want[i * k + j] * (n0 / n1) + (2 / n1) * g[i * k + j];
            }
          }
          assertSameBits(h, want, `${label} ${rows}×${k} after ${n1} samples`);
        }
      }
    };
    forEachGemm(check);
    for (const { gemm, label } of chunked) check(gemm, label);
  } finally {
    for (const { gemm } of chunked) gemm.close();
  }
});

Deno.test("scaleAddGramUpper's bits do not depend on the threads or the column stripes", () => {
  // One thread runs the triangle as one stripe; two threads as stripes of 48 columns
  // cut from the right (300 × 256: five and a 16-column one; 300 × 768: sixteen).
  for (const k of [256, 768]) {
    const x = values(300 * k, 7 * k);
    for (const variant of BUILDS) {
      const [one, two] = [1, 2].map((threads) =>
        GEMMS.find((g) => g.variant === variant && g.threads === threads)!.gemm
      );
      const h1 = values(k * k, 3 * k);
      const h2 = h1.slice();
      one.scaleAddGramUpper(h1, x, 300, k, 0.75, 0.5);
      two.scaleAddGramUpper(h2, x, 300, k, 0.75, 0.5);
      assertSameBits(h2, h1, `${variant} 300×${k}`);
    }
  }
});

Deno.test("scaleAddGramUpper's upper triangle has the bits of the plain product xᵀ·x", () => {
  // The Gram packs x once for all its stripes (and, natively with two threads,
  // from x in place once x has 2^18 floats: 1100 × 256); a plain product sums
  // each element over the same KC slices in the same order, so with beta 0 and
  // alpha 1 the upper triangles agree bit for bit.
  forEachGemm((gemm, label) => {
    for (const [rows, k] of [[1100, 256], [700, 100], [5, 264], [1, 9]]) {
      const x = values(rows * k, rows + k);
      const xT = new Float32Array(k * rows);
      for (let p = 0; p < rows; p++) for (let i = 0; i < k; i++) xT[i * rows + p] = x[p * k + i];
      const want = gemm.matmul(xT, x, k, k, rows);
      const h = values(k * k, k);
      gemm.scaleAddGramUpper(h, x, rows, k, 0, 1);
      const upper = (m: Float32Array) => m.filter((_, e) => e % k >= Math.floor(e / k));
      assertSameBits(upper(h), upper(want), `${label} ${rows}×${k}`);
    }
  });
});

Deno.test("out is written and returned; k = 0 gives zeros; m = 0 gives nothing", () => {
  const { gemm } = GEMMS[0];
  {
    const x = values(3 * 4, 1);
    const w = values(5 * 4, 2);
    const out = new Float32Array(15).fill(NaN);
    assert.equal(gemm.matmulTransposed(x, w, 3, 5, 4, out), out);
    assertProduct(out, 3, 5, 4, (i, p) => x[i * 4 + p], (p, j) => w[j * 4 + p]);
    const out2 = new Float32Array(15).fill(NaN);
    assert.equal(gemm.matmul(x, w, 3, 5, 4, out2), out2);
    assertProduct(out2, 3, 5, 4, (i, p) => x[i * 4 + p], (p, j) => w[p * 5 + j]);
    const zeros = new Float32Array(6).fill(7);
    gemm.matmulTransposed(new Float32Array(0), new Float32Array(0), 2, 3, 0, zeros);
    assert.deepEqual(zeros, new Float32Array(6));
    assert.equal(gemm.matmul(new Float32Array(0), new Float32Array(8), 0, 2, 4).length, 0);
    // Longer arrays (pooled buffers): only the leading floats are read and written.
    const wide = new Float32Array(20).fill(-3);
    const xLong = new Float32Array([...x, 99, 99]);
    gemm.matmulTransposed(xLong, w, 3, 5, 4, wide);
    assert.deepEqual(wide.subarray(0, 15), out);
    assert.deepEqual(wide.subarray(15), new Float32Array(5).fill(-3));
    const hLong = new Float32Array(6).fill(0);
    gemm.accumulateGram(hLong, new Float32Array([1, 2, 3, 4, 5]), 2, 2);
    assert.deepEqual(hLong, new Float32Array([10, 14, 14, 20, 0, 0]));
    // Inputs are not modified.
    assert.deepEqual(x, values(3 * 4, 1));
    assert.deepEqual(w, values(5 * 4, 2));
  }
});

Deno.test("wrong lengths and shapes are rejected with the operand named", () => {
  const { gemm } = GEMMS[0];
  {
    assert.throws(
      () => gemm.matmulTransposed(new Float32Array(5), new Float32Array(6), 2, 3, 3),
      (e: Error) => e instanceof CpuKernelError && /x holds 5 floats, needs 6/.test(e.message),
    );
    assert.throws(
      () => gemm.matmul(new Float32Array(6), new Float32Array(9), 2, 3, 3, new Float32Array(5)),
      (e: Error) => e instanceof CpuKernelError && /out holds 5 floats, needs 6/.test(e.message),
    );
    assert.throws(
      () => gemm.accumulateGram(new Float32Array(9), new Float32Array(6), 2.5, 3),
      (e: Error) =>
        e instanceof CpuKernelError && /rows must be a non-negative integer/.test(e.message),
    );
    assert.throws(() => createCpuGemm({ threads: 0 }), CpuKernelError);
  }
});

Deno.test("two threads: the worker runs stripes and results stay exact", async () => {
  for (const { gemm, label } of GEMMS.filter((g) => g.threads === 2)) {
    // 2·m·n·k above the threading threshold, 12+ stripes to share.
    const [m, n, k] = [96, 600, 100];
    const x = values(m * k, 11);
    const w = values(n * k, 12);
    const first = gemm.matmulTransposed(x, w, m, n, k);
    assertProduct(first, m, n, k, (i, p) => x[i * k + p], (p, j) => w[j * k + p], undefined, label);
    // The worker starts in the background (under `deno test` its module is
    // type-checked first), which takes seconds on a busy machine: retry for up
    // to two minutes.
    const before = gemm.workerTasks;
    const giveUp = performance.now() + 120_000;
    while (gemm.workerTasks === before && performance.now() < giveUp) {
      await new Promise((r) => setTimeout(r, 25));
      // Stripes are claimed dynamically, so results must not depend on who ran what.
      assert.deepEqual(gemm.matmulTransposed(x, w, m, n, k), first);
    }
    assert.ok(gemm.workerTasks > before, `${label}: the worker thread never ran a stripe`);
    const h = new Float32Array(n * n);
    gemm.accumulateGram(h, w.subarray(0, 20 * n), 20, n);
    assertProduct(h, n, n, 20, (i, p) => w[p * n + i], (p, j) => w[p * n + j], undefined, label);
  }
});

Deno.test("a pool of web Workers: the worker gets its data by message, runs stripes, same bits", async () => {
  const [m, n, k] = [96, 600, 100];
  const x = values(m * k, 21);
  const w = values(n * k, 22);
  const one = createCpuGemm({ threads: 1 });
  const web = createCpuGemm({ threads: 2, workers: "web" });
  try {
    const expected = one.matmulTransposed(x, w, m, n, k);
    // As above: the worker starts in the background; retry until it has run a stripe.
    const before = web.workerTasks;
    const giveUp = performance.now() + 120_000;
    do {
      assertSameBits(web.matmulTransposed(x, w, m, n, k), expected, "web pool");
      if (web.workerTasks > before) break;
      await new Promise((r) => setTimeout(r, 25));
    } while (performance.now() < giveUp);
    assert.ok(web.workerTasks > before, "the web Worker never ran a stripe");
  } finally {
    one.close();
    // close() terminates the web Worker; otherwise it would keep the process alive.
    web.close();
  }
});

Deno.test("the module-level functions use the shared default instance", () => {
  const info = cpuKernelInfo();
  assert.ok(info.threads >= 1 && info.simd);
  const y = matmulTransposed(new Float32Array([1, 2]), new Float32Array([3, 4, 5, 6]), 1, 2, 2);
  assert.deepEqual(y, new Float32Array([11, 17]));
  assert.deepEqual(
    matmul(new Float32Array([1, 2]), new Float32Array([3, 4, 5, 6]), 1, 2, 2),
    new Float32Array([13, 16]),
  );
  const h = new Float32Array(4);
  accumulateGram(h, new Float32Array([1, 2, 3, 4]), 2, 2);
  assert.deepEqual(h, new Float32Array([10, 14, 14, 20]));
  const o = causalAttention(
    new Float32Array([0, 0]),
    new Float32Array([1, 1]),
    new Float32Array([2, 4]),
    { seq: 2, kvLen: 2, heads: 1, kvHeads: 1, headDim: 1 },
  );
  assert.deepEqual(o, new Float32Array([2, 3]));
});

Deno.test("operands beyond a wasm32 memory are refused with a clear error, before any allocation", () => {
  const rt = new GemmRuntime({ threads: 1 });
  try {
    assert.throws(
      () => rt.reserve(5 * 2 ** 30, "matmul of 40000 × 40000 × 1000"),
      (e: Error) =>
        e instanceof CpuKernelError &&
        /matmul of 40000 × 40000 × 1000 needs \d+ MiB/.test(e.message) &&
        /at most 4096 MiB/.test(e.message),
    );
    // A reservation that fits grows the memory.
    const before = rt.memory.buffer.byteLength;
    rt.reserve(before, "a test");
    assert.ok(rt.memory.buffer.byteLength >= rt.heapBase + before);
  } finally {
    rt.close();
  }
});

Deno.test("attentionScores and attentionValues match float64 per head, with grouped key/value heads", () => {
  const shapes = [
    { seq: 5, kvLen: 7, heads: 4, kvHeads: 2, headDim: 3 },
    { seq: 33, kvLen: 33, heads: 6, kvHeads: 2, headDim: 16 },
    { seq: 130, kvLen: 130, heads: 2, kvHeads: 1, headDim: 64 },
  ];
  forEachGemm((gemm, label) => {
    for (const shape of shapes) {
      const { seq, kvLen, heads, kvHeads, headDim: d } = shape;
      const group = heads / kvHeads;
      const q = values(seq * heads * d, seq + d);
      const k = values(kvLen * kvHeads * d, kvLen + 2 * d);
      const v = values(kvLen * kvHeads * d, kvLen + 3 * d);
      const scores = gemm.attentionScores(q, k, shape);
      assert.equal(scores.length, heads * seq * kvLen);
      const out = gemm.attentionValues(scores, v, shape);
      assert.equal(out.length, seq * heads * d);
      const what = `${label} ${JSON.stringify(shape)}`;
      for (let h = 0; h < heads; h++) {
        const g = Math.floor(h / group);
        assertProduct(
          scores.subarray(h * seq * kvLen, (h + 1) * seq * kvLen),
          seq,
          kvLen,
          d,
          (i, p) => q[i * heads * d + h * d + p],
          (p, j) => k[j * kvHeads * d + g * d + p],
          undefined,
          `${what} scores head ${h}`,
        );
        const head = new Float32Array(seq * d);
        for (let i = 0; i < seq; i++) {
          head.set(out.subarray(i * heads * d + h * d, i * heads * d + (h + 1) * d), i * d);
        }
        assertProduct(
          head,
          seq,
          d,
          kvLen,
          (i, p) => scores[h * seq * kvLen + i * kvLen + p],
          (p, j) => v[p * kvHeads * d + g * d + j],
          undefined,
          `${what} values head ${h}`,
        );
      }
    }
  });
  assert.throws(
    () =>
      GEMMS[0].gemm.attentionScores(new Float32Array(12), new Float32Array(12), {
        seq: 1,
        kvLen: 1,
        heads: 3,
        kvHeads: 2,
        headDim: 4,
      }),
    (e: Error) =>
      e instanceof CpuKernelError &&
      /kvHeads \(2\) must be positive and divide heads \(3\)/.test(e.message),
  );
});

Deno.test("a batch larger than the 16-bit task counter runs as several jobs, B groups kept whole", () => {
  const rt = new GemmRuntime({ threads: 1 });
  try {
    // 70000 products of 1 × 1 × 1: c[b] = a[b] · B[⌊b / 7⌋].
    const batch = 70000, group = 7, groups = Math.ceil(batch / group);
    const aAt = rt.heapBase, bAt = aAt + batch * 4, cAt = bAt + groups * 4;
    rt.reserve(cAt + batch * 4 - rt.heapBase, "test");
    rt.f32(aAt, batch).set(Float32Array.from({ length: batch }, (_, b) => (b % 1000) + 1));
    rt.f32(bAt, groups).set(Float32Array.from({ length: groups }, (_, g) => (g % 7) + 1));
    rt.run({
      m: 1,
      n: 1,
      k: 1,
      a: aAt,
      aRowStride: 1,
      aColStride: 1,
      b: bAt,
      bRowStride: 1,
      bColStride: 1,
      c: cAt,
      ldc: 1,
      accumulate: false,
      batch,
      aBatchStride: 1,
      bBatchStride: 1,
      cBatchStride: 1,
      bGroup: group,
    });
    const c = rt.f32(cAt, batch);
    for (let b = 0; b < batch; b++) {
      const expected = ((b % 1000) + 1) * ((Math.floor(b / group) % 7) + 1);
      if (c[b] !== expected) assert.fail(`product ${b}: got ${c[b]}, expected ${expected}`);
    }
  } finally {
    rt.close();
  }
});

/**
 * c[4, 8] += a[4, 1] · b[1, 8] on `rt`: one stripe, too small to wake a
 * worker; returns c's address and the values it must keep.
 */
function tinyAccumulatedJob(rt: GemmRuntime): { cAt: number; once: number[] } {
  const aAt = rt.heapBase, bAt = aAt + 64, cAt = bAt + 64;
  rt.reserve(cAt + 4 * 8 * 4 - rt.heapBase, "test");
  rt.f32(aAt, 4).set([1, 2, 3, 4]);
  rt.f32(bAt, 8).fill(1);
  rt.f32(cAt, 32).fill(0);
  rt.run({
    m: 4,
    n: 8,
    k: 1,
    a: aAt,
    aRowStride: 1,
    aColStride: 1,
    b: bAt,
    bRowStride: 8,
    bColStride: 1,
    c: cAt,
    ldc: 8,
    accumulate: true,
  });
  const once = Array.from(rt.f32(cAt, 32));
  assert.deepEqual(once, Array.from({ length: 32 }, (_, i) => Math.floor(i / 8) + 1));
  return { cAt, once };
}

// The race behind a one-time engines_test failure under load (85,451 of
// 226,560 GPTQ weights differed): a worker still inside gemm_run for a
// finished job (woken late, or preempted between reading CLAIM and its
// compare-and-swap) read the next job's larger NTASKS, which the main thread
// writes before it publishes the new generation, and claimed "old" stripes
// with the new job's fields: an accumulated Gram got a stripe twice. Here
// the late worker is a second kernel instance on the shared memory, called at
// exactly that moment, so the interleaving is deterministic.
Deno.test("a worker late for a finished job claims no stripe once the next job's task count is written", () => {
  // thread 1's scratch exists; its worker stays asleep
  const rt = new GemmRuntime({ threads: 2, variant: "relaxed" });
  try {
    const job = new Int32Array(rt.memory.buffer, JOB_ADDRESS, JOB_SLOTS);
    const late = new WebAssembly.Instance(new WebAssembly.Module(loadVariant("relaxed")!), {
      env: { memory: rt.memory },
    }).exports as unknown as GemmExports;
    const { cAt, once } = tinyAccumulatedJob(rt);

    // The main thread has started the next job (8 tasks) but not published it.
    job[JOB.NTASKS] = 8;
    const finished = Atomics.load(job, JOB.CLAIM) >>> 16;
    assert.equal(late.gemm_run(JOB_ADDRESS, finished, 1), 0, "stripes claimed by a late worker");
    assert.equal(Atomics.load(job, JOB.DONE), 1, "the finished job's DONE is untouched");
    assert.deepEqual(Array.from(rt.f32(cAt, 32)), once, "c accumulated once");
  } finally {
    rt.close();
  }
  // Before the first job, generation 0 is closed the same way.
  const fresh = new GemmRuntime({ threads: 2, variant: "relaxed" });
  try {
    const job = new Int32Array(fresh.memory.buffer, JOB_ADDRESS, JOB_SLOTS);
    const late = new WebAssembly.Instance(new WebAssembly.Module(loadVariant("relaxed")!), {
      env: { memory: fresh.memory },
    }).exports as unknown as GemmExports;
    job[JOB.NTASKS] = 8;
    assert.equal(late.gemm_run(JOB_ADDRESS, Atomics.load(job, JOB.CLAIM) >>> 16, 1), 0);
  } finally {
    fresh.close();
  }
});

Deno.test("causal attention: scores below the diagonal are exact, values skip only zero work", () => {
  const shapes = [
    { seq: 300, kvLen: 300, heads: 2, kvHeads: 1, headDim: 16 },
    { seq: 40, kvLen: 300, heads: 3, kvHeads: 3, headDim: 8 },
    { seq: 9, kvLen: 9, heads: 4, kvHeads: 2, headDim: 5 },
  ];
  forEachGemm((gemm, label) => {
    for (const base of shapes) {
      const shape = { ...base, causal: true };
      const { seq, kvLen, heads, kvHeads, headDim: d } = shape;
      const offset = kvLen - seq, group = heads / kvHeads;
      const q = values(seq * heads * d, seq + 7 * d);
      const k = values(kvLen * kvHeads * d, kvLen + 5 * d);
      const v = values(kvLen * kvHeads * d, kvLen + 9 * d);
      const full = gemm.attentionScores(q, k, base);
      const causal = gemm.attentionScores(
        q,
        k,
        shape,
        new Float32Array(heads * seq * kvLen).fill(NaN),
      );
      // Probabilities stand-in: the visible scores, zeros in the future.
      const p = new Float32Array(heads * seq * kvLen);
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < seq; i++) {
          for (let j = 0; j < kvLen; j++) {
            const at = (h * seq + i) * kvLen + j;
            assert.ok(!Number.isNaN(causal[at]), `${label} every score is written`);
            if (j <= i + offset) {
              assert.equal(
                causal[at],
                full[at],
                `${label} ${JSON.stringify(base)} [${h},${i},${j}]`,
              );
              p[at] = full[at];
            }
          }
        }
      }
      if (seq === 300) {
        // Keys 256.. form their own stripe, which skips queries 0..255: the
        // skipped tiles read 0 where the full product is not.
        const at = 0 * kvLen + 299;
        assert.equal(causal[at], 0);
        assert.notEqual(full[at], 0);
      }
      const expected = gemm.attentionValues(p, v, base);
      assert.deepEqual(gemm.attentionValues(p, v, shape), expected);
      for (let h = 0; h < heads; h++) {
        const g = Math.floor(h / group);
        const head = new Float32Array(seq * d);
        for (let i = 0; i < seq; i++) {
          head.set(expected.subarray(i * heads * d + h * d, i * heads * d + (h + 1) * d), i * d);
        }
        assertProduct(
          head,
          seq,
          d,
          kvLen,
          (i, j) => p[(h * seq + i) * kvLen + j],
          (j, e) => v[j * kvHeads * d + g * d + e],
          undefined,
          `${label} causal values head ${h}`,
        );
      }
    }
  });
  assert.throws(
    () =>
      GEMMS[0].gemm.attentionScores(new Float32Array(8), new Float32Array(4), {
        seq: 2,
        kvLen: 1,
        heads: 1,
        kvHeads: 1,
        headDim: 4,
        causal: true,
      }),
    (e: Error) => e instanceof CpuKernelError && /needs kvLen \(1\) ≥ seq \(2\)/.test(e.message),
  );
});

Deno.test("causalAttention: softmax over the visible keys, kvLen ≥ seq, window, scale", () => {
  const cases = [
    { seq: 7, kvLen: 20, heads: 4, kvHeads: 2, headDim: 8, window: null, scale: undefined },
    { seq: 33, kvLen: 33, heads: 2, kvHeads: 2, headDim: 4, window: 3, scale: 0.9 },
    { seq: 260, kvLen: 300, heads: 2, kvHeads: 1, headDim: 8, window: 100, scale: 2.5 },
  ];
  forEachGemm((gemm, label) => {
    for (const shape of cases) {
      const { seq, kvLen, heads, kvHeads, headDim: d } = shape;
      const offset = kvLen - seq, group = heads / kvHeads;
      const scale = shape.scale ?? 1 / Math.sqrt(d);
      const q = values(seq * heads * d, seq + 1);
      const k = values(kvLen * kvHeads * d, kvLen + 2);
      const v = values(kvLen * kvHeads * d, kvLen + 3);
      const got = gemm.causalAttention(q, k, v, shape);
      for (let h = 0; h < heads; h++) {
        const g = Math.floor(h / group);
        for (let i = 0; i < seq; i++) {
          const last = i + offset;
          const first = shape.window ? Math.max(0, last - shape.window + 1) : 0;
          const s: number[] = [];
          for (let j = first; j <= last; j++) {
            let dot = 0;
            for (let e = 0; e < d; e++) {
              dot += q[i * heads * d + h * d + e] * k[j * kvHeads * d + g * d + e];
            }
            s.push(dot * scale);
          }
          const max = Math.max(...s);
          const w = s.map((x) => Math.exp(x - max));
          const sum = w.reduce((a, x) => a + x, 0);
          for (let e = 0; e < d; e++) {
            let want = 0;
            for (let j = first; j <= last; j++) {
              want += (w[j - first] / sum) * v[j * kvHeads * d + g * d + e];
            }
            const at = i * heads * d + h * d + e;
            if (!(Math.abs(got[at] - want) <= 2e-6)) {
              assert.fail(
                `${label} ${JSON.stringify(shape)} [${i},${h},${e}]: ${got[at]} vs ${want}`,
              );
            }
          }
        }
      }
    }
  });
  assert.throws(
    () =>
      GEMMS[0].gemm.causalAttention(new Float32Array(4), new Float32Array(4), new Float32Array(4), {
        seq: 1,
        kvLen: 1,
        heads: 1,
        kvHeads: 1,
        headDim: 4,
        window: 0.5,
      }),
    (e: Error) =>
      e instanceof CpuKernelError && /window must be a positive integer/.test(e.message),
  );
});

Deno.test("siluMul: silu(gate) · up within a few ulp, from -100 to 100", () => {
  const n = 20003; // not a multiple of 4: the scalar tail runs too
  const gate = Float32Array.from({ length: n }, (_, i) => (i - n / 2) / 100);
  const up = values(n, 5);
  for (const { gemm, label } of GEMMS) {
    const y = gemm.siluMul(gate, up, n);
    for (let i = 0; i < n; i++) {
      const want = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
      // 4 ulp of the result; exp flushes below float32's normal range (2⁻¹²⁶).
      const flush = Math.abs(gate[i] * up[i]) * 2 ** -126;
      if (!(Math.abs(y[i] - want) <= 4 * 2 ** -23 * Math.abs(want) + flush)) {
        assert.fail(`${label} silu(${gate[i]}) · ${up[i]}: ${y[i]} vs ${want}`);
      }
    }
  }
  assert.deepEqual(siluMul(new Float32Array([0, 1]), new Float32Array([5, 2]), 2)[0], 0);
});

Deno.test("swiGlu with row transforms gives the bits of the products, walshHadamard and siluMul apart", () => {
  // Width 96: two runs of 48 (K 12, m 4) a row; 37 rows, chunks of 4 rows with a tiny budget.
  const [m, n, k, runLength, K] = [37, 96, 40, 48, 12];
  const x = values(m * k, 3).map((v) => 3 * v);
  const wg = values(n * k, 5);
  const wu = values(n * k, 7);
  const signs = values(runLength, 9).map((v, i) => (i % 3 === 0 ? -1 : 1) * (0.1 + Math.abs(v)));
  const base = values(K * K, 11);
  const withBase = (first: boolean) => ({
    n: runLength,
    scale: 1 / Math.sqrt(runLength),
    stride: K,
    options: { signs, signsFirst: first, base },
  });
  const plain = { n: runLength, scale: 0.25, stride: 3, options: { signs, signsFirst: false } };
  const cases = [
    { gate: withBase(true), up: withBase(false) },
    { gate: plain, up: withBase(true) },
    { gate: withBase(false) },
    { up: plain },
  ];
  for (const { gemm, label } of GEMMS) {
    for (const streamBytes of [1, 2 ** 40]) {
      const chunked = createCpuGemm({
        threads: gemm.info().threads,
        variant: gemm.info().variant,
        streamBytes,
      });
      try {
        for (const [i, after] of cases.entries()) {
          const apart = (w: Float32Array, t?: RowTransform) => {
            const y = gemm.matmulTransposed(x, w, m, n, k);
            if (t !== undefined) gemm.walshHadamard(y, t.n, t.scale, t.stride, t.options);
            return y;
          };
          const want = gemm.siluMul(apart(wg, after.gate), apart(wu, after.up), m * n);
          const got = chunked.swiGlu(x, wg, wu, m, n, k, undefined, after);
          assertSameBits(got, want, `case ${i}, ${label}, stream ${streamBytes}`);
        }
        assert.throws(
          () => chunked.swiGlu(x, wg, wu, m, n, k, undefined, { gate: { ...plain, n: 36 } }),
          /runs of 36/,
        );
      } finally {
        chunked.close();
      }
    }
  }
});

Deno.test("swiGlu, matmulTransposedMany and matmulTransposedAdd give the bits of their separate ops, whole and in chunks", () => {
  for (const { gemm, label } of GEMMS) {
    // One quantum per chunk (4 rows) with a tiny stream budget, one chunk with a huge one.
    for (const streamBytes of [1, 2 ** 40]) {
      const chunked = createCpuGemm({
        threads: gemm.info().threads,
        variant: gemm.info().variant,
        streamBytes,
      });
      try {
        // n = 19 and m = 37: rows and elements whose counts are not multiples of 4;
        // 130 × 257 × 600: more than one KC slice, rows in several chunks.
        for (const [m, n, k] of [[37, 19, 30], [130, 257, 600], [5, 8, 0], [0, 3, 4]]) {
          const x = values(m * k, m + k).map((v) => 3 * v);
          const wg = values(n * k, n + 2 * k);
          const wu = values(n * k, n + 3 * k);
          const wq = values(2 * n * k, n + 4 * k);
          const g = gemm.matmulTransposed(x, wg, m, n, k);
          const u = gemm.matmulTransposed(x, wu, m, n, k);
          const what = `${m}×${n}×${k}, ${label}, stream ${streamBytes}`;
          assert.deepEqual(
            chunked.swiGlu(x, wg, wu, m, n, k),
            gemm.siluMul(g, u, m * n),
            `swiGlu ${what}`,
          );
          const outs = [
            new Float32Array(m * n + 3),
            new Float32Array(m * 2 * n),
            new Float32Array(m * n),
          ];
          const many = chunked.matmulTransposedMany(
            x,
            [{ w: wg, n }, { w: wq, n: 2 * n }, { w: wu, n }],
            m,
            k,
            outs,
          );
          assert.ok(many.every((y, i) => y === outs[i]), "writes the given outputs");
          // RoPE (heads of 2n) on the first product after its bias: the TypeScript
          // loop's bits, rows at positions r mod 7 across chunk boundaries.
          if (k > 0 && m > 0) {
            const headDim = 2 * n;
            const seqLen = 7;
            const cos = values(seqLen * n, 11), sin = values(seqLen * n, 12);
            const bias = values(2 * n, 13);
            const [qr, gr] = chunked.matmulTransposedMany(
              x,
              [{ w: wq, n: 2 * n, bias, rope: true }, { w: wg, n }],
              m,
              k,
              undefined,
              { cos, sin, seqLen, headDim },
            );
            const want = gemm.matmulTransposed(x, wq, m, 2 * n, k);
            for (let i = 0; i < want.length; i++) want[i] += bias[i % (2 * n)];
            for (let r = 0; r < m; r++) {
              const pos = (r % seqLen) * n;
              for (let i = 0; i < n; i++) {
                const [x1, x2] = [want[r * 2 * n + i], want[r * 2 * n + i + n]];
                want[r * 2 * n + i] = Math.fround(x1 * cos[pos + i]) -
                  Math.fround(x2 * sin[pos + i]);
                want[r * 2 * n + i + n] = Math.fround(x2 * cos[pos + i]) +
                  Math.fround(x1 * sin[pos + i]);
              }
            }
            assert.deepEqual(qr, want, `rope ${what}`);
            assert.deepEqual(gr, g, `unroped ${what}`);
          }
          assert.deepEqual(many[0].subarray(0, m * n), g, `many[0] ${what}`);
          assert.deepEqual(many[1], gemm.matmulTransposed(x, wq, m, 2 * n, k), `many[1] ${what}`);
          assert.deepEqual(many[2], u, `many[2] ${what}`);
          const res = values(m * n, m + n).map((v) => 50 * v);
          const sum = Float32Array.from(g, (v, i) => res[i] + v);
          assert.deepEqual(chunked.matmulTransposedAdd(x, wg, res, m, n, k), sum, `add ${what}`);
          const inPlace = res.slice();
          chunked.matmulTransposedAdd(x, wg, inPlace, m, n, k, inPlace);
          assert.deepEqual(inPlace, sum, `add in place ${what}`);
        }
      } finally {
        chunked.close();
      }
    }
  }
  const gemm = GEMMS[0].gemm;
  assert.throws(
    () => gemm.swiGlu(new Float32Array(6), new Float32Array(6), new Float32Array(5), 2, 2, 3),
    (e: Error) => e instanceof CpuKernelError && /weight 1 holds 5 floats, needs 6/.test(e.message),
  );
  const w6 = { w: new Float32Array(6), n: 2, rope: true };
  assert.throws(
    () => gemm.matmulTransposedMany(new Float32Array(6), [w6], 2, 3),
    (e: Error) => e instanceof CpuKernelError && /RoPE asked for without tables/.test(e.message),
  );
  const tables = { cos: new Float32Array(4), sin: new Float32Array(4), seqLen: 2, headDim: 4 };
  assert.throws(
    () => gemm.matmulTransposedMany(new Float32Array(6), [w6], 2, 3, undefined, tables),
    (e: Error) => e instanceof CpuKernelError && /2 columns, not whole heads of 4/.test(e.message),
  );
  assert.throws(
    () =>
      gemm.matmulTransposedMany(new Float32Array(6), [{ w: new Float32Array(6), n: 2 }], 2, 3, []),
    (e: Error) => e instanceof CpuKernelError && /1 weights but 0 outputs/.test(e.message),
  );
});

Deno.test("streaming token-length operands in chunks changes no bit and bounds the kernels' memory", () => {
  for (const variant of BUILDS) {
    for (const threads of [1, 2]) {
      const whole = createCpuGemm({ threads, variant, streamBytes: 2 ** 40 });
      // One quantum per chunk: 4 rows of a product, KC (512) rows of a Gram and
      // 4 rows of its accumulator h (so every Gram below runs in several
      // blocks of h), 4 SwiGLU elements.
      const chunked = createCpuGemm({ threads, variant, streamBytes: 1 });
      try {
        const label = `${variant}, ${threads} thread(s)`;
        for (const [m, n, k] of [[37, 19, 300], [130, 257, 33], [3, 5, 7]]) {
          const x = values(m * k, m + 3 * k);
          const w = values(n * k, n + 5 * k);
          const b = values(k * n, n + 7 * k);
          assert.deepEqual(
            chunked.matmulTransposed(x, w, m, n, k),
            whole.matmulTransposed(x, w, m, n, k),
            `matmulTransposed ${m}×${n}×${k}, ${label}`,
          );
          assert.deepEqual(
            chunked.matmul(x, b, m, n, k),
            whole.matmul(x, b, m, n, k),
            `matmul ${m}×${n}×${k}, ${label}`,
          );
        }
        for (const [rows, k] of [[1000, 40], [256, 9], [77, 130]]) {
          const x = values(rows * k, rows + k);
          // A symmetric, non-zero start: accumulation continues across chunks.
          const h0 = new Float32Array(k * k);
          whole.accumulateGram(h0, values(5 * k, k), 5, k);
          const a = h0.slice();
          const c = h0.slice();
          whole.accumulateGram(a, x, rows, k);
          chunked.accumulateGram(c, x, rows, k);
          assert.deepEqual(c, a, `accumulateGram ${rows}×${k}, ${label}`);
        }
        const n = 1003;
        const g = values(n, 1).map((v) => v * 30);
        const u = values(n, 2);
        assert.deepEqual(chunked.siluMul(g, u, n), whole.siluMul(g, u, n), `siluMul, ${label}`);
      } finally {
        whole.close();
        chunked.close();
      }
    }
  }
  // A SwiGLU of 4096 tokens × 2048 (three 32 MiB arrays), a product with
  // such an x and a Gram into a 2048 × 2048 Hessian (16 MiB) no longer grow
  // the kernels' memory to their size.
  const gemm = createCpuGemm({ threads: 1 });
  try {
    const n = 4096 * 2048;
    gemm.siluMul(new Float32Array(n), new Float32Array(n), n);
    gemm.matmulTransposed(new Float32Array(n), new Float32Array(64 * 2048), 4096, 64, 2048);
    gemm.accumulateGram(new Float32Array(2048 * 2048), new Float32Array(64 * 2048), 64, 2048);
    assert.ok(gemm.memoryBytes < 16 * 2 ** 20, `kernels' memory ${gemm.memoryBytes} bytes`);
  } finally {
    gemm.close();
  }
});

Deno.test("two threads give the bits of one at a small Llama's shapes (stripes partition the output)", async () => {
  // Shapes of a 3M Llama's forward (hidden 256, intermediate 768, 8 heads of
  // 32, 4 KV heads) with fewer tokens, each above the threading threshold:
  // the packed products split rows and column groups, the Grams and the
  // batched attention products split column stripes.
  const [hidden, inter, seq] = [256, 768, 192];
  const x = values(seq * inter, 31);
  const w = values(inter * hidden, 32);
  const attn = { seq, kvLen: seq, heads: 8, kvHeads: 4, headDim: 32 };
  const q = values(seq * 8 * 32, 33);
  const kv = values(seq * 4 * 32, 34);
  const run = (gemm: CpuGemm): Float32Array[] => {
    const gram = (k: number) => {
      const h = new Float32Array(k * k);
      gemm.accumulateGram(h, x.subarray(0, seq * k), seq, k);
      return h;
    };
    return [
      gemm.matmul(x, w, seq, hidden, inter),
      gemm.matmulTransposed(x.subarray(0, seq * hidden), w, seq, inter, hidden),
      gram(hidden),
      gram(inter),
      gemm.attentionScores(q, kv, attn),
      gemm.causalAttention(q, kv, kv, attn),
      // Above the threading threshold: chunks of whole vectors on both threads.
      gemm.siluMul(values(300_001, 35).map((v) => 8 * v), values(300_001, 36), 300_001),
    ];
  };
  for (const variant of BUILDS) {
    const [one, two] = [1, 2].map((threads) =>
      GEMMS.find((g) => g.variant === variant && g.threads === threads)!.gemm
    );
    const expected = run(one);
    // Wait (up to two minutes on a busy machine) until the worker has taken
    // stripes of these very products, so the comparison covers split work.
    const before = two.workerTasks;
    const giveUp = performance.now() + 120_000;
    do {
      const got = run(two);
      for (const [i, e] of expected.entries()) {
        assertSameBits(got[i], e, `${variant}: product ${i}, 1 and 2 threads`);
      }
      if (two.workerTasks > before) break;
      await new Promise((r) => setTimeout(r, 25));
    } while (performance.now() < giveUp);
    assert.ok(two.workerTasks > before, `${variant}: the worker thread never ran a stripe`);
  }
});

Deno.test({
  name: `the native AVX2 build gives the relaxed build's bits (${
    NATIVE.ok ? "runs here" : `not run: ${NATIVE.reason}`
  })`,
  ignore: !NATIVE.ok,
  fn() {
    // Every op through both builds, at the odd shapes and at a small Llama's
    // (packed products, Grams with their upper-triangle stripes, grouped
    // attention with its causal skips and softmax), one and two threads.
    const run = (gemm: CpuGemm): Float32Array[] => {
      const out: Float32Array[] = [];
      for (const [m, n, k] of SHAPES) {
        const x = values(m * k, m * 7 + k);
        const w = values(n * k, n * 5 + k);
        out.push(gemm.matmulTransposed(x, w, m, n, k), gemm.matmul(x, w, m, n, k));
        const h = values(k * k, k);
        gemm.accumulateGram(h, x, m, k);
        out.push(h);
      }
      const [hidden, inter, seq] = [256, 768, 200];
      const x = values(seq * inter, 41);
      const w = values(inter * hidden, 42);
      const attn = { seq, kvLen: seq, heads: 8, kvHeads: 4, headDim: 32 };
      const q = values(seq * 8 * 32, 43);
      const kv = values(seq * 4 * 32, 44);
      const h = new Float32Array(inter * inter);
      gemm.accumulateGram(h, x, seq, inter);
      out.push(
        gemm.matmul(x, w, seq, hidden, inter),
        gemm.matmulTransposed(x.subarray(0, seq * hidden), w, seq, inter, hidden),
        h,
        gemm.attentionScores(q, kv, attn),
        gemm.causalAttention(q, kv, kv, attn),
        gemm.siluMul(values(300_001, 45).map((v) => 8 * v), values(300_001, 46), 300_001),
      );
      return out;
    };
    for (const threads of [1, 2]) {
      const [native, relaxed] = (["avx2", "relaxed"] as const).map((variant) =>
        GEMMS.find((g) => g.variant === variant && g.threads === threads)!.gemm
      );
      const expected = run(relaxed);
      for (const [i, got] of run(native).entries()) {
        assertSameBits(got, expected[i], `${threads} thread(s): product ${i}`);
      }
    }
  },
});

Deno.test({
  name:
    `native, 2 threads: operands of 1 MiB and more are copied, or read and written in place, by the threads, same bits (${
      NATIVE.ok ? "runs here" : `not run: ${NATIVE.reason}`
    })`,
  ignore: !NATIVE.ok,
  fn() {
    // 1100 rows of 256 floats (1.07 MiB) in and out: above the threaded copy's
    // threshold on 2 threads, below nothing on 1 (the calling thread copies).
    // On 2 threads the products read x in place, the residual sum, the
    // SwiGLU and matmulTransposedMany (with its RoPE) write y in place. 401 rows of 768 (two KC slices, a last row
    // short of a panel) for a down projection's shape.
    const [m, n, k] = [1100, 256, 256];
    const x = values(m * k, 51);
    const w = values(n * k, 52);
    const u = values(n * k, 53);
    const r = values(m * n, 54);
    const [m2, k2] = [401, 768];
    const x2 = values(m2 * k2, 56);
    const w2 = values(n * k2, 57);
    const r2 = values(m2 * n, 58);
    // Attention of 4 sequences of 275 tokens: q and out (1.07 MiB) in place,
    // k and v copied with 4 key/value heads and in place with 8.
    const attn = { sequences: 4, seq: 275, kvLen: 275, heads: 8, headDim: 32 };
    const kv = values(m * k, 59);
    const run = (gemm: CpuGemm): Float32Array[] => [
      gemm.causalAttention(x, kv.subarray(0, m * k / 2), r.subarray(0, m * k / 2), {
        ...attn,
        kvHeads: 4,
      }),
      gemm.causalAttention(x, kv, r, { ...attn, kvHeads: 8 }),
      gemm.matmulTransposed(x, w, m, n, k),
      gemm.matmulTransposedAdd(x, w, r, m, n, k),
      gemm.matmulTransposedAdd(x2, w2, r2, m2, n, k2),
      gemm.matmulTransposed(x2, w2, m2, n, k2),
      gemm.swiGlu(x, w, u, m, n, k),
      ...gemm.matmulTransposedMany(x, [{ w, n }, { w: u, n }], m, k),
      // Written in place, RoPE there too.
      ...gemm.matmulTransposedMany(x, [{ w, n, rope: true }, { w: u, n }], m, k, undefined, {
        cos: values(275 * 16, 60),
        sin: values(275 * 16, 61),
        seqLen: 275,
        headDim: 32,
      }),
      gemm.rmsnorm(x, values(k, 55), m, k, 1e-6),
      // An output that is a view into a larger array: only its floats are written.
      gemm.matmulTransposed(x, w, m, n, k, new Float32Array(m * n + 7).subarray(3, 3 + m * n)),
    ];
    const [one, two] = [1, 2].map((threads) =>
      GEMMS.find((g) => g.variant === "avx2" && g.threads === threads)!.gemm
    );
    const expected = run(one);
    for (const [i, got] of run(two).entries()) assertSameBits(got, expected[i], `op ${i}`);
  },
});

Deno.test({
  name: `a native worker late for a finished job claims no stripe (${
    NATIVE.ok ? "runs here" : `not run: ${NATIVE.reason}`
  })`,
  ignore: !NATIVE.ok,
  fn() {
    // The native entry's claim loop, as the late-worker test above checks the
    // WebAssembly one: a job published and finished, then a late native
    // thread for its generation while the next job's task count is written.
    const rt = new GemmRuntime({ threads: 2, variant: "avx2" });
    const late = openNativeGemm((NATIVE as { path: string }).path);
    try {
      const job = new Int32Array(rt.memory.buffer, JOB_ADDRESS, JOB_SLOTS);
      const { cAt, once } = tinyAccumulatedJob(rt);
      job[JOB.NTASKS] = 8;
      const finished = Atomics.load(job, JOB.CLAIM) >>> 16;
      assert.equal(late.run(memoryBase(rt.memory), JOB_ADDRESS, finished, 1), 0);
      assert.equal(Atomics.load(job, JOB.DONE), 1);
      assert.deepEqual(Array.from(rt.f32(cAt, 32)), once, "c accumulated once");
    } finally {
      late.close();
      rt.close();
    }
  },
});

Deno.test("the build choice: without FFI permission the WebAssembly build runs and says why; LLMC_CPU_KERNELS is checked", async () => {
  const gemmUrl = new URL("../../src/engine/cpu/gemm.ts", import.meta.url).href;
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(
    script,
    `import { cpuKernelInfo } from "${gemmUrl}"; console.log(JSON.stringify(cpuKernelInfo()));`,
  );
  const run = async (flags: string[], env: Record<string, string> = {}) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-check", "--allow-read", "--allow-env", ...flags, script],
      env: { NO_COLOR: "1", ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  try {
    await checkBuildChoice(run);
  } finally {
    await Deno.remove(script);
  }
});

async function checkBuildChoice(
  run: (
    flags: string[],
    env?: Record<string, string>,
  ) => Promise<{ code: number; stdout: string; stderr: string }>,
): Promise<void> {
  // Read and env only: no FFI.
  const denied = await run([]);
  assert.equal(denied.code, 0, denied.stderr);
  const info = JSON.parse(denied.stdout);
  assert.equal(info.variant, "relaxed");
  assert.match(info.nativeNote, NATIVE.ok ? /--allow-ffi/ : /./);
  const bad = await run(["--allow-ffi"], { LLMC_CPU_KERNELS: "avx512" });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /LLMC_CPU_KERNELS=avx512 is not one of avx2, relaxed, simd/);
  const forced = await run(["--allow-ffi"], { LLMC_CPU_KERNELS: "simd" });
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(JSON.parse(forced.stdout).variant, "simd");
  if (NATIVE.ok) {
    const allowed = await run(["--allow-ffi"]);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(JSON.parse(allowed.stdout).variant, "avx2");
  }
}

/** Llama's RMSNorm as the CPU engine computed it in TypeScript before the kernels did. */
function rmsnormReference(
  x: Float32Array,
  w: Float32Array,
  rows: number,
  cols: number,
  eps: number,
) {
  const y = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[base + c] * x[base + c];
    const inv = Math.fround(1 / Math.sqrt(Math.fround(ss / cols) + eps));
    for (let c = 0; c < cols; c++) y[base + c] = Math.fround(x[base + c] * inv) * w[c];
  }
  return y;
}

Deno.test("rmsnorm gives the TypeScript loop's bits: every build, 1 and 2 threads, ragged row counts, tiny chunks", () => {
  // 3 and 5 rows (one task, a partial group of four), 4097 × 64 (threaded,
  // tasks that are not multiples of 4 at the end), 1000 × 768 with one row of
  // zeros and one of huge values; a tiny stream budget cuts rows into chunks.
  const cases: Array<[number, number, number]> = [[3, 7, 1e-5], [5, 64, 1e-6], [4097, 64, 1e-5], [
    1000,
    768,
    1e-5,
  ]];
  const small = createCpuGemm({ threads: 2, streamBytes: 1 });
  try {
    for (const [rows, cols, eps] of cases) {
      const x = values(rows * cols, rows + cols).map((v) => 4 * v);
      if (rows === 1000) {
        x.fill(0, 0, cols);
        x.fill(3e18, cols, 2 * cols);
      }
      const w = values(cols, cols).map((v) => 1 + v);
      const expected = rmsnormReference(x, w, rows, cols, eps);
      for (const { gemm, label } of [...GEMMS, { gemm: small, label: "2 threads, tiny chunks" }]) {
        assertSameBits(
          gemm.rmsnorm(x, w, rows, cols, eps),
          expected,
          `${label}: ${rows} × ${cols}`,
        );
      }
    }
  } finally {
    small.close();
  }
});

Deno.test("causalAttention of several sequences gives each sequence's own bits, in one job or several", () => {
  const shape = { seq: 70, kvLen: 90, heads: 4, kvHeads: 2, headDim: 24, window: 40 };
  const { seq, kvLen, heads, kvHeads, headDim: d } = shape;
  const sequences = 5;
  const [qn, kvn] = [seq * heads * d, kvLen * kvHeads * d];
  const q = values(sequences * qn, 61);
  const k = values(sequences * kvn, 62);
  const v = values(sequences * kvn, 63);
  for (const { gemm, label, threads, variant } of GEMMS) {
    const one = (b: number) =>
      gemm.causalAttention(
        q.subarray(b * qn, (b + 1) * qn),
        k.subarray(b * kvn, (b + 1) * kvn),
        v.subarray(b * kvn, (b + 1) * kvn),
        shape,
      );
    const expected = new Float32Array(sequences * qn);
    for (let b = 0; b < sequences; b++) expected.set(one(b), b * qn);
    // All five in one job, and one sequence a job (a tiny streaming budget).
    const tiny = createCpuGemm({ threads, variant, streamBytes: 1 });
    try {
      for (const g of [gemm, tiny]) {
        const out = new Float32Array(sequences * qn + 5);
        g.causalAttention(q, k, v, { ...shape, sequences }, out);
        assertSameBits(out.subarray(0, sequences * qn), expected, label);
        assert.deepEqual(Array.from(out.subarray(sequences * qn)), [0, 0, 0, 0, 0]);
      }
    } finally {
      tiny.close();
    }
    assert.throws(
      () => gemm.causalAttention(q, k.subarray(1), v, { ...shape, sequences }),
      (e: Error) => e instanceof CpuKernelError && /k holds/.test(e.message),
    );
  }
});

Deno.test("causalAttention (one fused job) gives the bits of attentionScores → attentionSoftmax → attentionValues", () => {
  // Rows not a multiple of the task's 32, more than one MC block of rows,
  // kvLen > seq (a cached prefix) and past one k slice of 512 (the values'
  // slice skips), grouped heads, an odd head dimension, a window, a scale.
  const shapes = [
    { seq: 1, kvLen: 1, heads: 1, kvHeads: 1, headDim: 3 },
    { seq: 70, kvLen: 70, heads: 4, kvHeads: 2, headDim: 20 },
    { seq: 300, kvLen: 300, heads: 2, kvHeads: 1, headDim: 32, window: 50 },
    { seq: 200, kvLen: 700, heads: 3, kvHeads: 3, headDim: 16, scale: 0.3 },
    { seq: 600, kvLen: 600, heads: 1, kvHeads: 1, headDim: 8 },
  ];
  for (const shape of shapes) {
    const { seq, kvLen, heads, kvHeads, headDim: d } = shape;
    const q = values(seq * heads * d, seq + d);
    const k = values(kvLen * kvHeads * d, kvLen + 1);
    const v = values(kvLen * kvHeads * d, kvLen + 2);
    for (const { gemm, label } of GEMMS) {
      const p = gemm.attentionScores(q, k, { ...shape, causal: true });
      gemm.attentionSoftmax(p, shape);
      const expected = gemm.attentionValues(p, v, { ...shape, causal: true });
      assertSameBits(
        gemm.causalAttention(q, k, v, shape),
        expected,
        `${label}: ${JSON.stringify(shape)}`,
      );
    }
  }
});

Deno.test("causalAttention's spans, tiles and softmax give the three jobs' bits: GQA, head sizes, sequences, huge and NaN scores", () => {
  // Each task packs one key/value head's keys for its query blocks (24 rows)
  // and both heads of its group; with two threads and one key/value head
  // (200 × 200: enough work to thread), a head's blocks are split into spans. Head sizes reach every
  // values tile (8: 8 × 8, 24: 4 × 24, 32 and 64: 6 × 16, 40: both, 12: a
  // ragged last vector); sequence lengths are not multiples of 24 or 8;
  // scores of ±150 push most exps past the clamp (the full exp), and NaN
  // scores take the lean exp's fix-up.
  const cases = [
    { sequences: 3, seq: 61, kvLen: 61, heads: 8, kvHeads: 4, headDim: 32, big: 1 },
    { sequences: 2, seq: 50, kvLen: 50, heads: 2, kvHeads: 1, headDim: 64, big: 1 },
    { sequences: 1, seq: 100, kvLen: 100, heads: 2, kvHeads: 1, headDim: 8, big: 1 },
    { sequences: 1, seq: 200, kvLen: 200, heads: 2, kvHeads: 1, headDim: 32, big: 3 },
    { sequences: 2, seq: 29, kvLen: 37, heads: 3, kvHeads: 1, headDim: 24, big: 1 },
    { sequences: 1, seq: 53, kvLen: 53, heads: 2, kvHeads: 2, headDim: 40, big: 1, window: 9 },
    { sequences: 1, seq: 45, kvLen: 45, heads: 4, kvHeads: 2, headDim: 12, big: 1 },
    { sequences: 1, seq: 40, kvLen: 40, heads: 2, kvHeads: 1, headDim: 32, big: 150 },
    { sequences: 1, seq: 40, kvLen: 40, heads: 2, kvHeads: 1, headDim: 32, big: 2, nan: true },
  ];
  for (const { sequences, big, nan, ...shape } of cases) {
    const { seq, kvLen, heads, kvHeads, headDim: d } = shape;
    const [qn, kvn] = [seq * heads * d, kvLen * kvHeads * d];
    const q = values(sequences * qn, seq + d).map((x) => big * x);
    const k = values(sequences * kvn, kvLen + 1);
    const v = values(sequences * kvn, kvLen + 2);
    if (nan) {
      q[5 * heads * d + 3] = NaN; // every score of query 5, head 0
      k[30 * kvHeads * d + 7] = NaN; // key 30's scores
    }
    for (const { gemm, label } of GEMMS) {
      const expected = new Float32Array(sequences * qn);
      for (let b = 0; b < sequences; b++) {
        const p = gemm.attentionScores(q.subarray(b * qn, (b + 1) * qn), k.subarray(b * kvn), {
          ...shape,
          causal: true,
        });
        gemm.attentionSoftmax(p, shape);
        expected.set(
          gemm.attentionValues(p, v.subarray(b * kvn, (b + 1) * kvn), { ...shape, causal: true }),
          b * qn,
        );
      }
      assertSameBits(
        gemm.causalAttention(q, k, v, { ...shape, sequences }),
        expected,
        `${label}: ${JSON.stringify({ sequences, big, nan, ...shape })}`,
      );
    }
  }
});

Deno.test("walshHadamard gives fastWalshHadamard's bits: every build, 1 and 2 threads, strides, scales, tiny chunks", () => {
  // Sizes with stride 1 and with a base block left (768 = 3 · 256, 172 = 43 · 4);
  // an irrational scale, 1 (no multiply) and a power of two; 1 run and 1500 (threaded).
  const cases: Array<[number, number, number, number]> = [
    [8, 1, 1, 1],
    [256, 1, 1 / 16, 3],
    [768, 3, 1 / Math.sqrt(768), 1500],
    [172, 43, 1 / Math.sqrt(172), 40],
  ];
  const small = createCpuGemm({ threads: 2, streamBytes: 1 });
  try {
    for (const [n, stride, scale, runs] of cases) {
      const x = values(n * runs, n + runs).map((v) => 3 * v);
      const expected = x.slice();
      fastWalshHadamard(expected, n, scale, stride);
      for (const { gemm, label } of [...GEMMS, { gemm: small, label: "2 threads, tiny chunks" }]) {
        const got = x.slice();
        gemm.walshHadamard(got, n, scale, stride);
        assertSameBits(got, expected, `${label}: n ${n}, stride ${stride}, ${runs} runs`);
      }
    }
    assert.throws(() => small.walshHadamard(new Float32Array(12), 12), CpuKernelError);
    assert.throws(() => small.walshHadamard(new Float32Array(10), 4), /whole runs of n = 4/);
  } finally {
    small.close();
  }
});

Deno.test("walshHadamard with signs: a float32 product before or after, bit for bit; out leaves x", () => {
  const small = createCpuGemm({ threads: 2, streamBytes: 1 });
  try {
    for (
      const [n, stride, scale, runs] of [[256, 1, 1, 3], [768, 3, 1 / Math.sqrt(768), 700]] as const
    ) {
      const x = values(n * runs, n + runs).map((v) => 3 * v);
      // ±1/√n-like factors of mixed magnitude, so that each product rounds.
      const signs = values(n, 7).map((v, i) => (i % 3 === 0 ? -1 : 1) * (0.1 + Math.abs(v)));
      const times = (a: Float32Array) => a.map((v, i) => v * signs[i % n]);
      const before = times(x);
      fastWalshHadamard(before, n, scale, stride);
      const after = x.slice();
      fastWalshHadamard(after, n, scale, stride);
      const afterSigned = times(after);
      for (const { gemm, label } of [...GEMMS, { gemm: small, label: "2 threads, tiny chunks" }]) {
        for (const [first, expected] of [[true, before], [false, afterSigned]] as const) {
          const input = x.slice();
          const out = new Float32Array(x.length);
          gemm.walshHadamard(input, n, scale, stride, { out, signs, signsFirst: first });
          assertSameBits(out, expected, `${label}: n ${n}, signs ${first ? "first" : "last"}`);
          assertSameBits(input, x, `${label}: x untouched`);
        }
      }
    }
    assert.throws(
      () => small.walshHadamard(new Float32Array(8), 4, 1, 1, { signs: new Float32Array(3) }),
      /signs holds 3 floats, needs 4/,
    );
  } finally {
    small.close();
  }
});

Deno.test("matmulTransposedMany and matmulTransposedAdd with row transforms: the products and walshHadamard apart, over many chunks and 1 or 2 threads", () => {
  // 37 rows (chunks of a few rows with a tiny budget), q-like 96 wide (runs of 48 with a
  // K 12 base, signs first, a bias, RoPE), k-like 48 (plain butterflies, signs after, RoPE),
  // v-like 48 (a base with signs after, no RoPE).
  const [m, k, seqLen, K] = [37, 40, 5, 12];
  const x = values(m * k, 3);
  const signs = values(48, 13).map((v, i) => (i % 3 === 0 ? -1 : 1) * (0.1 + Math.abs(v)));
  const base = values(K * K, 11);
  const withBase = (first: boolean) => ({
    n: 48,
    scale: 0.125,
    stride: K,
    options: { signs, signsFirst: first, base },
  });
  const plain = { n: 48, scale: 0.25, stride: 3, options: { signs, signsFirst: false } };
  const ws = [
    { w: values(96 * k, 5), n: 96, bias: values(96, 31), rope: true, after: withBase(true) },
    { w: values(48 * k, 7), n: 48, rope: true, after: plain },
    { w: values(48 * k, 9), n: 48, after: withBase(false) },
  ];
  const rope = { cos: values(seqLen * 4, 21), sin: values(seqLen * 4, 23), seqLen, headDim: 8 };
  const residual = values(m * 96, 41);
  const whole = createCpuGemm({ threads: 1, streamBytes: 2 ** 40 });
  try {
    const want = whole.matmulTransposedMany(x, ws, m, k, undefined, rope);
    // The product without RoPE against the ops apart (RoPE's own place is checked in
    // tests/engine/engine_ops_test.ts; here the chunks must not move it).
    const v = whole.matmulTransposed(x, ws[2].w, m, 48, k);
    whole.walshHadamard(v, 48, 0.125, K, withBase(false).options);
    assertSameBits(want[2], v, "v apart");
    const q = whole.matmulTransposed(x, ws[0].w, m, 96, k);
    whole.walshHadamard(q, 48, 0.125, K, withBase(true).options);
    const added = q.map((y, i) => y + residual[i]);
    for (const threads of [1, 2]) {
      for (const streamBytes of [1, 3000]) {
        const chunked = createCpuGemm({ threads, streamBytes });
        try {
          const label = `${threads} thread(s), stream ${streamBytes}`;
          const got = chunked.matmulTransposedMany(x, ws, m, k, undefined, rope);
          got.forEach((y, i) => assertSameBits(y, want[i], `product ${i}, ${label}`));
          const sum = chunked.matmulTransposedAdd(x, ws[0].w, residual, m, 96, k, undefined, {
            ...withBase(true),
          });
          assertSameBits(sum, added, `matmulTransposedAdd, ${label}`);
        } finally {
          chunked.close();
        }
      }
    }
  } finally {
    whole.close();
  }
});

Deno.test("walshHadamard with a base: signs, the K-row product, the butterflies composed, bit for bit", () => {
  const small = createCpuGemm({ threads: 2, streamBytes: 1 });
  try {
    // K 12 (768 = 12 · 64, QuIP's MLP size), 20 and 4 (whole and partial 8-lane blocks), 1.
    const cases = [[768, 12, 300], [160, 20, 9], [16, 4, 33], [8, 1, 5]] as const;
    for (const [n, k, runs] of cases) {
      const x = values(n * runs, n + k).map((v) => 3 * v);
      const signs = values(n, 7).map((v, i) => (i % 3 === 0 ? -1 : 1) * (0.1 + Math.abs(v)));
      // A general K × K weight (not ±1), so that each multiply-add rounds.
      const base = values(k * k, 11);
      const times = (a: Float32Array) => a.map((v, i) => v * signs[i % n]);
      for (const first of [true, false]) {
        for (
          const { gemm, label } of [...GEMMS, { gemm: small, label: "2 threads, tiny chunks" }]
        ) {
          const signed = first ? times(x) : x;
          const expected = gemm.matmulTransposed(signed, base, x.length / k, k, k);
          gemm.walshHadamard(expected, n, 1 / Math.sqrt(n), k);
          const want = first ? expected : times(expected);
          const input = x.slice();
          const out = new Float32Array(x.length);
          const options = { out, signs, signsFirst: first, base };
          gemm.walshHadamard(input, n, 1 / Math.sqrt(n), k, options);
          assertSameBits(out, want, `${label}: n ${n}, K ${k}, signs ${first ? "first" : "last"}`);
          assertSameBits(input, x, `${label}: x untouched`);
        }
      }
    }
    assert.throws(
      () => small.walshHadamard(new Float32Array(24), 12, 1, 12, { base: new Float32Array(12) }),
      /base holds 12 floats, needs 144/,
    );
  } finally {
    small.close();
  }
});
