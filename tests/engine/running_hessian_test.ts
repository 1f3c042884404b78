/**
 * The second-order ops GPTQ's and SparseGPT's statistics go through, on
 * both engines: `runningHessian` keeps upstream's running average
 * `H = 2/n · Σ xᵀx` (n counting sequences) over batches of different sizes,
 * is a Hessian the same engine's ops read (its diagonal), and refuses a
 * tensor of another engine; `reconstructionErrors` gives
 * `tr(ΔHΔᵀ) / tr(WHWᵀ)` against float64 sums, and the two engines agree.
 */

import assert from "node:assert/strict";
import { CpuEngine } from "../../src/engine/cpu_engine.ts";
import { EngineError } from "../../src/engine/engine_error.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { ENGINE_KINDS, testEngine } from "../_engines.ts";

const random = seededRandom(41);
const randn = (n: number) => Float32Array.from({ length: n }, () => random() * 2 - 1);

// 20 columns: the WebGPU accumulator pads H to its panel order, which must not leak out.
const COLS = 20;
const BATCHES = [{ x: randn(7 * COLS), sequences: 1 }, { x: randn(12 * COLS), sequences: 3 }];
const W = randn(6 * COLS);
const CANDIDATES = [W.map((v) => Math.round(v * 8) / 8), W.map((v, i) => (i % 4 === 0 ? 0 : v))];

/** H = 2/n · Σ xᵀx over every batch, n the sequences, in float64. */
function expectedHessian(): Float64Array {
  const h = new Float64Array(COLS * COLS);
  let n = 0;
  for (const { x, sequences } of BATCHES) {
    n += sequences;
    for (let t = 0; t < x.length / COLS; t++) {
      for (let i = 0; i < COLS; i++) {
        for (let j = 0; j < COLS; j++) h[i * COLS + j] += x[t * COLS + i] * x[t * COLS + j];
      }
    }
  }
  return h.map((v) => (2 * v) / n);
}

/** tr(MHMᵀ) in float64 for M [W.length / COLS, COLS] given elementwise. */
function quadraticForm(h: Float64Array, d: (i: number) => number): number {
  let s = 0;
  for (let r = 0; r < W.length / COLS; r++) {
    for (let i = 0; i < COLS; i++) {
      for (let j = 0; j < COLS; j++) s += d(r * COLS + i) * h[i * COLS + j] * d(r * COLS + j);
    }
  }
  return s;
}

/** tr(ΔHΔᵀ) / tr(WHWᵀ) per candidate in float64. */
function expectedErrors(h: Float64Array): number[] {
  const base = quadraticForm(h, (i) => W[i]);
  return CANDIDATES.map((c) => quadraticForm(h, (i) => W[i] - c[i]) / base);
}

const errorsByKind = new Map<string, number[]>();

for (const kind of ENGINE_KINDS) {
  Deno.test({
    name: `${kind}: runningHessian averages over sequences; reconstructionErrors on it`,
    sanitizeResources: false,
    fn: async () => {
      const engine = await testEngine(kind);
      const h = engine.secondOrder.runningHessian(COLS);
      try {
        assert.equal(h.columns, COLS);
        for (const { x, sequences } of BATCHES) {
          const t = engine.upload(x, [x.length / COLS, COLS]);
          h.add(t, sequences);
          await engine.flush();
          t.destroy();
        }
        assert.equal(h.numSamples, 4);
        const want = expectedHessian();
        const got = await h.read();
        assert.equal(got.length, COLS * COLS);
        for (let i = 0; i < got.length; i++) {
          assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * Math.max(1, Math.abs(want[i])), `H[${i}]`);
        }
        const diag = await engine.secondOrder.diagonal(h);
        assert.deepEqual(
          Array.from(diag),
          Array.from({ length: COLS }, (_, i) => got[i * COLS + i]),
        );
        const errors = await engine.secondOrder.reconstructionErrors(h, W, [6, COLS], CANDIDATES);
        expectedErrors(want).forEach((e, k) => {
          assert.ok(Math.abs(errors[k] - e) <= 1e-5 * e, `candidate ${k}: ${errors[k]} vs ${e}`);
        });
        errorsByKind.set(kind, errors);
        // outputSquareSum: the absolute tr(MHMᵀ), of W and of one Δ.
        const delta = W.map((v, i) => v - CANDIDATES[0][i]);
        for (const [m, name] of [[W, "W"], [delta, "Δ"]] as const) {
          const got = await engine.secondOrder.outputSquareSum(h, m, [6, COLS]);
          const e = quadraticForm(want, (i) => m[i]);
          assert.ok(Math.abs(got - e) <= 1e-5 * e, `tr(${name}H${name}ᵀ): ${got} vs ${e}`);
        }
        await assert.rejects(
          () => engine.secondOrder.outputSquareSum(h, W, [5, COLS]),
          /\[5, 20\] matrix of 120 values/,
        );
        if (kind === "webgpu") {
          const foreign = new CpuEngine().upload(BATCHES[0].x, [7, COLS]);
          assert.throws(() => h.add(foreign, 1), EngineError);
        }
      } finally {
        h.destroy();
        engine.close();
      }
    },
  });
}

Deno.test("the engines' reconstruction errors agree", () => {
  const [a, b] = ENGINE_KINDS.map((k) => errorsByKind.get(k));
  assert.ok(a && b, "both engines ran");
  a.forEach((v, k) => assert.ok(Math.abs(v - b[k]) <= 1e-5 * v, `${v} vs ${b[k]}`));
});

Deno.test("the CPU engine refuses another engine's tensor and a bad order", () => {
  const engine = new CpuEngine();
  const ops = engine.secondOrder;
  const h = ops.runningHessian(4);
  const foreign = { shape: [1, 4], numel: 4, dtype: "f32" as const, destroy() {} };
  assert.throws(() => h.add(foreign, 1), EngineError);
  assert.throws(() => h.add(engine.upload(new Float32Array(3), [1, 3]), 1), /4 columns got 3/);
  assert.throws(() => ops.runningHessian(0), /positive integer/);
});
