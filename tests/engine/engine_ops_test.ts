/**
 * Every op of the Engine interface on both engines against the plain
 * float64 loops of src/model/reference_ops.ts (or the op's formula), on
 * small seeded shapes (fake quantization against the float32 reference in
 * src/quant/quantize.ts); and the errors an engine gives for another engine's
 * tensor or an unknown engine name.
 */

import assert from "node:assert/strict";
import { parseEngineChoice } from "../../src/engine/choose.ts";
import { CpuEngine } from "../../src/engine/cpu_engine.ts";
import type { Engine, ProductTransform, Tensor } from "../../src/engine/engine.ts";
import { EngineError } from "../../src/engine/engine_error.ts";
import { referenceRoute } from "../../src/model/reference_moe.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { fakeQuantize } from "../../src/quant/quantize.ts";
import * as ref from "../../src/model/reference_ops.ts";
import { ropeTable } from "../../src/model/rope.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { sylvester } from "../../src/transform/hadamard.ts";
import { ENGINE_KINDS, testEngine } from "../_engines.ts";
import { assertSameBits } from "../_shared.ts";

const random = seededRandom(17);
const randn = (n: number) => Float32Array.from({ length: n }, () => random() * 2 - 1);

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    assert.ok(
      d <= tol * Math.max(1, Math.abs(expected[i])),
      `${what}[${i}]: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

async function read(engine: Engine, ...ts: Tensor[]): Promise<Float32Array[]> {
  return (await engine.read(ts)) as Float32Array[];
}

for (const kind of ENGINE_KINDS) {
  Deno.test({
    name: `${kind}: matmul (+bias), add (broadcast), rmsnorm, siluMul, reductions, transpose`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [m, k, n] = [5, 12, 7];
      const xs = randn(m * k), ws = randn(n * k), bs = randn(n), gs = randn(m * n);
      const x = e.upload(xs, [m, k]);
      const w = e.uploadWeight(ws, [n, k]);
      const b = e.upload(bs, [n]);
      const y = e.matmul(x, w, b);
      const sum = e.add(y, b);
      const norm = e.rmsnorm(y, b, 1e-5);
      const g = e.upload(gs, [m, n]);
      const act = e.siluMul(g, y);
      const mins = e.reduceRows(y, "min");
      const sums = e.reduceRows(e.reshape(y, [m * n / 7, 7]), "sum");
      const absmax = e.reduceRows(y, "absmax");
      const t = e.transpose(y);
      const [hy, hsum, hnorm, hact, hmin, hsums, habs, ht] = await read(
        e,
        y,
        sum,
        norm,
        act,
        mins,
        sums,
        absmax,
        t,
      );
      const ey = ref.linear(xs, ws, bs, m, k, n);
      close(hy, ey, 1e-5, "matmul");
      close(hsum, ey.map((v, i) => v + bs[i % n]), 1e-5, "add");
      close(hnorm, ref.rmsnorm(ey, bs, m, 1e-5), 1e-5, "rmsnorm");
      close(hact, ref.siluMul(gs, ey), 1e-5, "siluMul");
      for (let r = 0; r < m; r++) {
        const row = Array.from(ey.subarray(r * n, (r + 1) * n));
        close([hmin[r]], [Math.min(...row)], 1e-5, "min");
        close([habs[r]], [Math.max(...row.map(Math.abs))], 1e-5, "absmax");
        close([hsums[r]], [row.reduce((a, v) => a + v, 0)], 1e-5, "sum");
        for (let c = 0; c < n; c++) close([ht[c * m + r]], [ey[r * n + c]], 1e-5, "transpose");
      }
      for (const u of [x, w, b, y, sum, norm, g, act, mins, sums, absmax, t]) u.destroy();
    },
  });

  Deno.test({
    name: `${kind}: swiGlu is siluMul(matmul(x, gate), matmul(x, up)), bit for bit`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [m, k, n] = [9, 20, 13];
      const x = e.upload(randn(m * k).map((v) => 3 * v), [3, 3, k]);
      const gate = e.uploadWeight(randn(n * k), [n, k]);
      const up = e.uploadWeight(randn(n * k), [n, k]);
      const g = e.matmul(x, gate);
      const u = e.matmul(x, up);
      const fused = e.swiGlu(x, gate, up);
      const apart = e.siluMul(g, u);
      assert.deepEqual(fused.shape, [3, 3, n]);
      const [hf, ha] = await read(e, fused, apart);
      assert.deepEqual(hf, ha);
      assert.throws(() => e.swiGlu(x, gate, e.uploadWeight(randn(n * k), [k, n])), EngineError);
      for (const t of [x, gate, up, g, u, fused, apart]) t.destroy();
    },
  });

  Deno.test({
    name:
      `${kind}: swiGlu with product transforms is siluMul of walshHadamard(matmul), bit for bit`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      // Width 96: two runs of 48 (K 12) a row, as QuIP's u on gate_proj and up_proj.
      const [m, k, n, runLength, K] = [9, 20, 96, 48, 12];
      const x = e.upload(randn(m * k).map((v) => 3 * v), [3, 3, k]);
      const gate = e.uploadWeight(randn(n * k), [n, k]);
      const up = e.uploadWeight(randn(n * k), [n, k]);
      const signs = e.upload(randn(runLength), [runLength]);
      const base = e.upload(randn(K * K), [K, K]);
      const after = {
        gate: { n: runLength, scale: 0.5, stride: K, signs: { values: signs, first: true }, base },
        up: { n: runLength, scale: 0.25, stride: 3, signs: { values: signs, first: false } },
      };
      const temps: Tensor[] = [];
      const apart = (w: Tensor, t: ProductTransform) => {
        const y = e.matmul(x, w);
        temps.push(y);
        return e.walshHadamard(y, t.n, t.scale, t.stride, t.signs, t.base);
      };
      const products = [apart(gate, after.gate), apart(up, after.up)];
      const composed = e.siluMul(products[0], products[1]);
      const fused = e.swiGlu(x, gate, up, after);
      const gateOnly = e.swiGlu(x, gate, up, { gate: after.gate });
      const gateApart = e.siluMul(products[0], temps[1]);
      assert.deepEqual(fused.shape, [3, 3, n]);
      const [hf, hc, hg, hga] = await read(e, fused, composed, gateOnly, gateApart);
      assertSameBits(hf, hc, "both transformed");
      assertSameBits(hg, hga, "gate only");
      for (const t of [x, gate, up, signs, base, ...temps, ...products, composed, fused]) {
        t.destroy();
      }
      gateOnly.destroy();
      gateApart.destroy();
    },
  });

  Deno.test({
    name:
      `${kind}: matmulMany and matmulAdd with product transforms are walshHadamard(matmul) (then RoPE, add), bit for bit`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      // q (2 heads of 8, K 4 base), k (1 head, plain with signs), v (no transform); then o.
      const [seqLen, k] = [6, 12];
      const x = e.upload(randn(2 * seqLen * k), [2 * seqLen, k]);
      const [wq, wk, wv] = [16, 8, 8].map((n) => e.uploadWeight(randn(n * k), [n, k]));
      const biases = [e.upload(randn(16), [16]), undefined, e.upload(randn(8), [8])];
      const signs = e.upload(randn(16), [16]);
      const base = e.upload(randn(16), [4, 4]);
      const half = e.upload(randn(8), [8]);
      const after = [
        { n: 16, scale: 0.25, stride: 4, signs: { values: signs, first: true }, base },
        { n: 8, scale: 0.5, stride: 1, signs: { values: half, first: false } },
        undefined,
      ];
      const cos = e.upload(randn(seqLen * 4), [seqLen, 4]);
      const sin = e.upload(randn(seqLen * 4), [seqLen, 4]);
      const temps: Tensor[] = [];
      const keep = (t: Tensor) => (temps.push(t), t);
      const apart = [wq, wk, wv].map((w, i) => {
        const y = keep(e.matmul(x, w, biases[i]));
        const t = after[i];
        return t === undefined
          ? y
          : keep(e.walshHadamard(y, t.n, t.scale, t.stride, t.signs, t.base));
      });
      for (const y of apart.slice(0, 2)) {
        e.ropeInPlace(y, cos, sin, y.shape[1] / 8, 8);
      }
      const rope = { cos, sin, headDim: 8, count: 2 };
      const fused = e.matmulMany(x, [wq, wk, wv], biases, rope, after);
      const residual = e.upload(randn(2 * seqLen * 16), [2 * seqLen, 16]);
      const added = e.matmulAdd(x, wq, residual, after[0]);
      const t0 = after[0]!;
      const product = keep(e.matmul(x, wq));
      const rotated = keep(e.walshHadamard(product, t0.n, t0.scale, t0.stride, t0.signs, t0.base));
      const addedApart = e.add(residual, rotated);
      const got = await read(e, ...fused, ...apart, added, addedApart);
      for (let i = 0; i < 3; i++) assertSameBits(got[i], got[i + 3], `matmulMany product ${i}`);
      assertSameBits(got[6], got[7], "matmulAdd");
      assert.throws(
        () => e.matmulMany(x, [wq, wk], undefined, undefined, [undefined]),
        /transforms/,
      );
      const all = [x, wq, wk, wv, signs, base, half, cos, sin, residual, added, addedApart];
      for (const t of [...all, ...biases, ...temps, ...fused]) t?.destroy();
    },
  });

  Deno.test({
    name:
      `${kind}: matmulMany is matmul of each weight (+bias, then RoPE), matmulAdd add(r, matmul), bit for bit`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [m, k] = [10, 24];
      const x = e.upload(randn(m * k), [2, 5, k]);
      const ws = [16, 8, 8].map((n) => e.uploadWeight(randn(n * k), [n, k]));
      const bias = e.upload(randn(8), [8]);
      const many = e.matmulMany(x, ws, [undefined, bias, undefined]);
      const apart = ws.map((w, i) => e.matmul(x, w, i === 1 ? bias : undefined));
      assert.deepEqual(many.map((t) => t.shape), [[2, 5, 16], [2, 5, 8], [2, 5, 8]]);
      const got = await read(e, ...many, ...apart);
      for (let i = 0; i < 3; i++) assert.deepEqual(got[i], got[i + 3], `product ${i}`);
      assert.deepEqual(e.matmulMany(x, []), []);
      // RoPE on the first two products (heads of 8, 5 positions a sequence), bias before it.
      const table = ropeTable({
        headDim: 8,
        ropeTheta: 10000,
        ropeScaling: { type: "default" },
        maxPositionEmbeddings: 64,
      }, 5);
      const cos = e.upload(table.cos, [5, 4]);
      const sin = e.upload(table.sin, [5, 4]);
      const roped = e.matmulMany(x, ws, [undefined, bias, undefined], {
        cos,
        sin,
        headDim: 8,
        count: 2,
      });
      const apartRoped = ws.map((w, i) => e.matmul(x, w, i === 1 ? bias : undefined));
      e.ropeInPlace(apartRoped[0], cos, sin, 2, 8);
      e.ropeInPlace(apartRoped[1], cos, sin, 1, 8);
      const gotRoped = await read(e, ...roped, ...apartRoped);
      for (let i = 0; i < 3; i++) assert.deepEqual(gotRoped[i], gotRoped[i + 3], `roped ${i}`);
      assert.notDeepEqual(gotRoped[0], got[0], "RoPE changed q");
      assert.throws(
        () => e.matmulMany(x, ws, undefined, { cos, sin, headDim: 8, count: 4 }),
        EngineError,
      );
      for (const t of [cos, sin, ...roped, ...apartRoped]) t.destroy();
      const res = e.upload(randn(m * 16).map((v) => 10 * v), [2, 5, 16]);
      const fused = e.matmulAdd(x, ws[0], res);
      const added = e.add(res, apart[0]);
      const [hf, ha] = await read(e, fused, added);
      assert.deepEqual(hf, ha, "matmulAdd");
      assert.throws(() => e.matmulAdd(x, ws[1], res), EngineError);
      for (const t of [res, fused, added]) t.destroy();
      assert.throws(() => e.matmulMany(x, ws, [bias]), EngineError);
      for (const t of [x, ...ws, bias, ...many, ...apart]) t.destroy();
    },
  });

  Deno.test({
    name: `${kind}: rowSquaredError is reduceRows(mul(d, d), "sum"), d = a − b, bit for bit`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [m, n] = [64, 301];
      // Values of mixed magnitude, so that rounding each difference and square matters.
      const as = randn(m * n).map((v, i) => v * 10 ** ((i % 5) - 2));
      const bs = as.map((v, i) => v + randn(1)[0] * 10 ** ((i % 3) - 4));
      const a = e.upload(as, [m, n]);
      const b = e.upload(bs, [m, n]);
      const fused = e.rowSquaredError(a, b);
      const squares = e.rowSquaredError(a);
      const negated = e.scale(b, -1);
      const d = e.add(a, negated);
      const sq = e.mul(d, d);
      const composed = e.reduceRows(sq, "sum");
      const aa = e.mul(a, a);
      const composedSquares = e.reduceRows(aa, "sum");
      const [hf, hs, hc, hcs] = await read(e, fused, squares, composed, composedSquares);
      assert.deepEqual([...hf], [...hc], "Σ (a − b)²");
      assert.deepEqual([...hs], [...hcs], "Σ a²");
      for (let r = 0; r < m; r++) {
        let want = 0;
        for (let c = 0; c < n; c++) want += (as[r * n + c] - bs[r * n + c]) ** 2;
        close([hf[r]], [want], 1e-5, "Σ (a − b)² against float64");
      }
      const row = e.upload(bs.subarray(0, n), [n]);
      assert.throws(
        () => e.rowSquaredError(a, row),
        /rowSquaredError: a \[64,301\] and b \[301\] differ/,
      );
      for (const u of [a, b, fused, squares, negated, d, sq, composed, aa, composedSquares, row]) {
        u.destroy();
      }
    },
  });

  Deno.test({
    name:
      `${kind}: reduceColumns is reduceRows(transpose(x)) bit for bit; reduceRows' exact values`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [m, n] = [301, 37];
      // Mixed magnitudes (the sum's order shows), and a column of -0 and +0.
      const xs = randn(m * n).map((v, i) => v * 10 ** ((i % 7) - 3));
      for (let r = 0; r < m; r++) xs[r * n + 3] = r % 2 === 0 ? -0 : 0;
      const x = e.upload(xs, [m, n]);
      const t = e.transpose(x);
      for (const op of ["sum", "min", "max", "absmax"] as const) {
        const cols = e.reduceColumns(x, op);
        const composed = e.reduceRows(t, op);
        const rows = e.reduceRows(x, op);
        const [hc, hcomp, hr] = await read(e, cols, composed, rows);
        assert.deepEqual(cols.shape, [n], op);
        assertSameBits(hc, hcomp, `reduceColumns ${op}`);
        if (kind === "cpu") {
          // WGSL leaves min/max of signed zeros open; the CPU engine's are JavaScript's.
          assert.ok(Object.is(hc[3], op === "min" ? -0 : 0), `${op}: signed zeros`);
          // A NaN spreads to its column's value (which NaN V8 gives varies with its tier).
          const withNaN = e.upload(xs.map((v, i) => i === 100 * n + 5 ? NaN : v), [m, n]);
          const nanCols = e.reduceColumns(withNaN, op);
          const [hn] = await read(e, nanCols);
          assert.ok(Number.isNaN(hn[5]) && hn.every((v, c) => c === 5 || v === hc[c]), op);
          for (const u of [withNaN, nanCols]) u.destroy();
        }
        // Each row's value: float64 over the row in order (sums), rounded once to float32.
        const want = new Float32Array(m);
        for (let r = 0; r < m; r++) {
          let acc = op === "min" ? Infinity : op === "sum" ? 0 : -Infinity;
          if (op === "absmax") acc = 0;
          for (let c = 0; c < n; c++) {
            const v = xs[r * n + c];
            acc = op === "sum"
              ? acc + v
              : op === "min"
              ? Math.min(acc, v)
              : op === "max"
              ? Math.max(acc, v)
              : Math.max(acc, Math.abs(v));
          }
          want[r] = acc;
        }
        if (kind === "cpu") assertSameBits(hr, want, `reduceRows ${op}`);
        for (const u of [cols, composed, rows]) u.destroy();
      }
      assert.throws(() => e.reduceColumns(e.reshape(x, [m * n]), "sum"), /must be 2-D/);
      for (const u of [x, t]) u.destroy();
    },
  });

  Deno.test({
    name: `${kind}: add and mul (same shape and broadcast), scale, copy (outlives its source)`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [m, n] = [6, 5];
      const as = randn(m * n), bs = randn(m * n), rs = randn(n);
      const a = e.upload(as, [m, n]);
      const b = e.upload(bs, [m, n]);
      const row = e.upload(rs, [n]);
      const prod = e.mul(a, b);
      const rowProd = e.mul(a, row);
      const sum = e.add(a, b);
      const rowSum = e.add(a, row);
      const scaled = e.scale(a, -2.5);
      const src = e.upload(as, [m, n]);
      const copied = e.copy(src);
      src.destroy();
      const ids = e.upload(new Int32Array([3, -7, 11]), [3]);
      const idsCopy = e.copy(ids);
      const [hp, hr, hs, hc] = await read(e, prod, rowProd, scaled, copied);
      const [hi] = await e.read([idsCopy]);
      const [hsum, hrs] = await read(e, sum, rowSum);
      close(hsum, as.map((v, i) => Math.fround(v + bs[i])), 0, "add");
      close(hrs, as.map((v, i) => Math.fround(v + rs[i % n])), 0, "add broadcast");
      close(hp, as.map((v, i) => Math.fround(v * bs[i])), 0, "mul");
      close(hr, as.map((v, i) => Math.fround(v * rs[i % n])), 0, "mul broadcast");
      close(hs, as.map((v) => Math.fround(v * -2.5)), 0, "scale");
      close(hc, as, 0, "copy");
      assert.ok(hi instanceof Int32Array, "copy keeps the dtype");
      assert.deepEqual([...hi], [3, -7, 11]);
      assert.throws(() => e.mul(a, e.reshape(row, [1, n])), /mul: b \[1,5\] must equal a \[6,5\]/);
      for (const u of [a, b, row, prod, rowProd, sum, rowSum, scaled, copied, ids, idsCopy]) {
        u.destroy();
      }
    },
  });

  Deno.test({
    name: `${kind}: rope, GQA attention with a sliding window, embedding gather, copyColumns`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [S, T, H, KV, D] = [2, 6, 4, 2, 8];
      const rows = S * T;
      const qs = randn(rows * H * D), ks = randn(rows * KV * D), vs = randn(rows * KV * D);
      const table = ropeTable({
        headDim: D,
        ropeTheta: 10000,
        ropeScaling: { type: "default" },
        maxPositionEmbeddings: 64,
      }, T);
      const q = e.upload(qs, [rows, H * D]);
      const k = e.upload(ks, [rows, KV * D]);
      const v = e.upload(vs, [rows, KV * D]);
      const cos = e.upload(table.cos, [T, D / 2]);
      const sin = e.upload(table.sin, [T, D / 2]);
      e.ropeInPlace(q, cos, sin, H, D);
      e.ropeInPlace(k, cos, sin, KV, D);
      const shape = { sequences: S, seqLen: T, heads: H, kvHeads: KV, headDim: D, window: 3 };
      const att = e.attention(q, k, v, shape);
      const table8 = randn(5 * 3);
      const ids = e.upload(new Int32Array([4, 1, 3, 0]), [4]);
      const out = e.upload(new Float32Array(4 * 3), [4, 3]);
      // The table in two blocks of rows: 0..2 and 3..4.
      const block0 = e.upload(table8.subarray(0, 9), [3, 3]);
      const block1 = e.upload(table8.subarray(9), [2, 3]);
      e.embeddingGather(block0, 0, ids, out);
      e.embeddingGather(block1, 3, ids, out);
      const wide = e.upload(new Float32Array(2 * 5), [2, 5]);
      e.copyColumns(e.upload(Float32Array.of(1, 2, 3, 4), [2, 2]), wide, 3);
      const [hq, hatt, hout, hwide] = await read(e, q, att, out, wide);
      const eq = qs.slice(), ek = ks.slice();
      ref.rope(eq, table, rows, H, D);
      ref.rope(ek, table, rows, KV, D);
      close(hq, eq, 1e-5, "rope");
      close(hatt, ref.attention(eq, ek, vs, shape), 1e-5, "attention");
      const expectedRows = [4, 1, 3, 0].flatMap((id) => [...table8.subarray(id * 3, id * 3 + 3)]);
      close(hout, expectedRows, 0, "embedding gather");
      close(hwide, [0, 0, 0, 1, 2, 0, 0, 0, 3, 4], 0, "copyColumns");
    },
  });

  Deno.test({
    name: `${kind}: walshHadamard equals the dense Sylvester product per run, input untouched`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [rows, cols, n] = [3, 64, 16];
      const xs = randn(rows * cols);
      const x = e.upload(xs, [rows, cols]);
      const [hy, hx] = await read(e, e.walshHadamard(x, n, 0.25), x);
      const h = sylvester(n);
      const expected = new Float32Array(xs.length);
      for (let run = 0; run < xs.length; run += n) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let i = 0; i < n; i++) s += xs[run + i] * h[i * n + j];
          expected[run + j] = s * 0.25;
        }
      }
      close(hy, expected, 1e-5, "walshHadamard");
      close(hx, xs, 0, "input");
      assert.throws(() => e.walshHadamard(x, 12, 1));
    },
  });

  Deno.test({
    name: `${kind}: walshHadamard with signs is mul and walshHadamard composed, bit for bit`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [rows, cols, n, stride] = [5, 96, 48, 3];
      const x = e.upload(randn(rows * cols), [rows, cols]);
      const signs = e.upload(randn(n), [n]);
      const runs = (t: Tensor) => e.reshape(t, [t.numel / n, n]);
      const signedFirst = e.mul(runs(x), signs);
      const plain = e.walshHadamard(x, n, 0.5, stride);
      const composed = [
        e.walshHadamard(signedFirst, n, 0.5, stride),
        e.mul(runs(plain), signs),
      ];
      const fused = [true, false].map((first) =>
        e.walshHadamard(x, n, 0.5, stride, { values: signs, first })
      );
      const got = await read(e, ...fused, ...composed);
      for (const [i, first] of ["first", "last"].entries()) {
        assert.deepEqual(fused[i].shape, [rows, cols]);
        assertSameBits(got[i], got[i + 2], `signs ${first}`);
      }
      assert.throws(
        () => e.walshHadamard(x, n, 1, 1, { values: e.upload(randn(3), [3]), first: true }),
        /signs \[3\] must hold n = 48/,
      );
      for (const t of [x, signs, signedFirst, plain, ...composed, ...fused]) t.destroy();
    },
  });

  Deno.test({
    name:
      `${kind}: walshHadamard with a base is mul, the K-column matmul and walshHadamard composed`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      // K 12 (two partial 8-wide blocks) and 20, m 4; rows whose size is not a multiple of n's rows.
      for (const [rows, cols, n, k] of [[5, 96, 48, 12], [3, 160, 80, 20]]) {
        const x = e.upload(randn(rows * cols), [rows, cols]);
        const signs = e.upload(randn(n), [n]);
        const base = e.upload(randn(k * k), [k, k]);
        const runs = (t: Tensor) => e.reshape(t, [t.numel / n, n]);
        const product = (t: Tensor) => e.matmul(e.reshape(t, [t.numel / k, k]), base);
        const signedFirst = e.mul(runs(x), signs);
        const steps = [signedFirst, product(signedFirst), product(x)];
        steps.push(e.walshHadamard(steps[1], n, 0.5, k), e.walshHadamard(steps[2], n, 0.5, k));
        const composed = [steps[3], e.mul(runs(steps[4]), signs)];
        const fused = [true, false].map((first) =>
          e.walshHadamard(x, n, 0.5, k, { values: signs, first }, base)
        );
        const got = await read(e, ...fused, ...composed);
        for (const [i, first] of ["first", "last"].entries()) {
          assert.deepEqual(fused[i].shape, [rows, cols]);
          assertSameBits(got[i], got[i + 2], `K ${k}, signs ${first}`);
        }
        assert.throws(() => e.walshHadamard(x, n, 1, k, undefined, signs), /base \[\d+\] must be/);
        for (const t of [x, signs, base, ...steps, ...composed, ...fused]) t.destroy();
      }
    },
  });

  Deno.test({
    name: `${kind}: log-softmax NLL over vocabulary blocks equals the whole-row formula`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [rows, V] = [4, 11];
      const logits = Float32Array.from(randn(rows * V), (x) => x * 8);
      const targets = new Int32Array([3, -1, 10, 0]);
      const t = e.upload(targets, [rows]);
      const state = e.allocate([rows, 3]);
      const nll = e.allocate([rows]);
      // Blocks [0, 4), [4, 8), [8, 11), out of order after the first.
      const blocks = [[0, 4], [8, 11], [4, 8]];
      blocks.forEach(([v0, v1], i) => {
        const block = new Float32Array(rows * (v1 - v0));
        for (let r = 0; r < rows; r++) {
          block.set(logits.subarray(r * V + v0, r * V + v1), r * (v1 - v0));
        }
        const b = e.upload(block, [rows, v1 - v0]);
        e.logSoftmaxNll(b, t, state, nll, v0, i === 0, i === blocks.length - 1);
        b.destroy();
      });
      const [got] = await read(e, nll);
      close(got, ref.logSoftmaxNll(logits, targets, V), 1e-5, "nll");
    },
  });

  Deno.test({
    name: `${kind}: MoE ops: routeTopK (ties, renormalization), accumulateWeighted, maskRows`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [rows, experts, cols] = [6, 5, 7];
      const ls = Float32Array.from(randn(rows * experts), (x) => x * 4);
      // Row 1 ties experts 2 and 3 for the second place: the lower index wins.
      ls.set([0, 3, 1, 1, -2], experts);
      const logits = e.upload(ls, [rows, experts]);
      const routed = [false, true].map((normalize) => e.routeTopK(logits, 2, normalize));
      const ys = randn(rows * cols), xs = randn(rows * cols), accs = randn(rows * cols);
      const y = e.upload(ys, [rows, cols]);
      const acc = e.upload(accs, [rows, cols]);
      const fresh = e.allocate([rows, cols]);
      const gate = e.upload(ls.subarray(0, rows), [rows, 1]);
      e.accumulateWeighted(acc, y, routed[1], 3);
      e.accumulateWeighted(fresh, y, routed[0], 1, { overwrite: true });
      e.accumulateWeighted(fresh, y, gate, 0, { sigmoid: true });
      const masked = e.maskRows(e.upload(xs, [rows, cols]), routed[0], 4);
      const [plain, normed, hacc, hfresh, hmask] = await read(e, ...routed, acc, fresh, masked);
      const want = [false, true].map((normalize) => {
        const w = new Float32Array(rows * experts);
        for (let r = 0; r < rows; r++) {
          const { experts: chosen, weights } = referenceRoute(
            ls.subarray(r * experts, (r + 1) * experts),
            2,
            normalize,
          );
          chosen.forEach((x, i) => w[r * experts + x] = weights[i]);
        }
        return w;
      });
      close(plain, want[0], 1e-5, "routeTopK");
      close(normed, want[1], 1e-5, "routeTopK normalized");
      assert.deepEqual([...normed.subarray(experts, 2 * experts)].map((v) => v > 0), [
        false,
        true,
        true,
        false,
        false,
      ]);
      const expect = (f: (r: number, c: number) => number) =>
        Float32Array.from({ length: rows * cols }, (_, i) => f(Math.floor(i / cols), i % cols));
      const at = (r: number, c: number) => r * cols + c;
      close(
        hacc,
        expect((r, c) => accs[at(r, c)] + want[1][r * experts + 3] * ys[at(r, c)]),
        1e-5,
        "accumulate",
      );
      const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
      close(
        hfresh,
        expect((r, c) => (want[0][r * experts + 1] + sigmoid(ls[r])) * ys[at(r, c)]),
        1e-5,
        "overwrite + sigmoid",
      );
      close(
        hmask,
        expect((r, c) => want[0][r * experts + 4] !== 0 ? xs[at(r, c)] : 0),
        0,
        "maskRows",
      );
      assert.throws(() => e.routeTopK(logits, 6, true), EngineError);
      assert.throws(() => e.maskRows(y, routed[0], 5), /do not fit/);
    },
  });
}

for (const kind of ENGINE_KINDS) {
  Deno.test({
    name: `${kind}: fakeQuantizeRows is the reference fakeQuantize of each row, bit for bit; trim`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      const [rows, cols] = [6, 10];
      const xs = Float32Array.from(randn(rows * cols), (v) => v * 3);
      const x = e.upload(xs, [rows, cols]);
      const scales = Float32Array.from({ length: rows }, (_, r) => 0.05 + 0.1 * Math.floor(r / 2));
      const zeros = Float32Array.from({ length: rows }, (_, r) => (r % 3) - 1);
      const s = e.upload(scales, [rows]);
      const z = e.upload(zeros, [rows]);
      const cases = [
        { args: { num_bits: 4, type: "float", strategy: "tensor" }, zp: null },
        { args: { num_bits: 8, type: "float", strategy: "tensor" }, zp: null },
        { args: { num_bits: 4, symmetric: false, strategy: "tensor" }, zp: zeros },
      ];
      const outs = cases.map((c) =>
        e.fakeQuantizeRows(x, s, c.zp === null ? null : z, parseQuantizationArgs(c.args, "in"))
      );
      e.trim(); // pooled storage goes; live tensors stay readable
      const got = await read(e, ...outs);
      cases.forEach((c, i) => {
        const args = parseQuantizationArgs(c.args, "in");
        for (let r = 0; r < rows; r++) {
          const want = fakeQuantize(xs.subarray(r * cols, (r + 1) * cols), [1, cols], {
            scale: scales.subarray(r, r + 1),
            ...(c.zp === null ? {} : { zeroPoint: zeros.subarray(r, r + 1) }),
          }, args);
          assert.deepEqual(got[i].subarray(r * cols, (r + 1) * cols), want, `case ${i} row ${r}`);
        }
      });
      const fp8 = parseQuantizationArgs(cases[1].args, "in");
      const short = e.upload(scales.subarray(1), [rows - 1]);
      assert.throws(() => e.fakeQuantizeRows(x, short, null, fp8), EngineError);
      for (const t of [x, s, z, short, ...outs]) t.destroy();
    },
  });
}

Deno.test("a tensor of another engine and an unknown engine name are refused by name", () => {
  const cpu = new CpuEngine();
  const foreign = { shape: [1], numel: 1, dtype: "f32" as const, destroy() {} };
  assert.throws(() => cpu.add(foreign, foreign), EngineError);
  assert.throws(
    () => parseEngineChoice("metal", "--engine"),
    /--engine metal: expected one of auto, webgpu, cpu/,
  );
  assert.equal(parseEngineChoice("CPU", "--engine"), "cpu");
});
