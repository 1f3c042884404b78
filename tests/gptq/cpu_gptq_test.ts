/**
 * GPTQ and SparseGPT on the CPU engine's float32 second-order ops
 * (src/engine/cpu/second_order.ts) through the one algorithm module
 * (quantize_weight.ts, sparsify_weight.ts), against the float64 references:
 * the inverse-Hessian factor across panel boundaries, GPTQ W4 group 128 on
 * 512 and 768 columns (several blocks) for every activation ordering, sym
 * and asym, with the same scales, zero points and g_idx and the same codes
 * except at rounding ties, and SparseGPT 2:4 / unstructured / preserved /
 * quantized.
 */

import assert from "node:assert/strict";
import { CPU_SECOND_ORDER, cpuInverseFactor } from "../../src/engine/cpu/second_order.ts";
import { CpuHessian } from "../../src/engine/cpu/hessian.ts";
import { type FactorCache, quantizeWeight } from "../../src/modifiers/gptq/quantize_weight.ts";
import { gptqReference, upperFactorOfInverse } from "../../src/modifiers/gptq/reference.ts";
import { sparsegptReference } from "../../src/modifiers/sparsegpt/reference.ts";
import type { SparseGptOptions } from "../../src/modifiers/sparsegpt/sparsegpt_prune.ts";
import { sparsifyWeight } from "../../src/modifiers/sparsegpt/sparsify_weight.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { fakeQuantize } from "../../src/quant/quantize.ts";
import {
  compareWithReference,
  coupled,
  nearRoundingTie,
  randomSpd,
  reconstructionError,
  type SyntheticLayer,
  syntheticLayer,
} from "./_helpers.ts";

/** The layer's Hessian accumulated on the host in 4 batches, as the CPU engine does. */
function hessianOf(layer: SyntheticLayer): Float32Array {
  const h = new CpuHessian(layer.cols);
  const per = layer.tokens / 4;
  for (let b = 0; b < 4; b++) {
    h.add(layer.inputs.subarray(b * per * layer.cols, (b + 1) * per * layer.cols), 1);
  }
  return h.matrix;
}

Deno.test("CPU inverse factor = the float64 UᵀU = H⁻¹ factor across panel boundaries; indefinite → null", () => {
  for (const n of [1, 5, 64, 129, 300]) {
    const h = randomSpd(n, 300 + n);
    const ref = upperFactorOfInverse(h, n)!;
    const u = cpuInverseFactor(Float32Array.from(h), n)!;
    let max = 0;
    let diff = 0;
    for (let i = 0; i < n * n; i++) {
      max = Math.max(max, Math.abs(ref[i]));
      diff = Math.max(diff, Math.abs(u[i] - ref[i]));
      if (Math.floor(i / n) > i % n) assert.equal(u[i], 0, `n ${n}: below the diagonal`);
    }
    assert.ok(diff <= 1e-4 * max, `n ${n}: max |U − ref| ${diff} (max |U| ${max})`);
  }
  assert.equal(cpuInverseFactor(coupled(70, 1.5), 70), null);
});

// Every actorder × sym/asym at 512 and 768 columns (several 128-column blocks and groups), as
// tests/gptq/gptq_parity_test.ts does on WebGPU.
const EVERY_ACTORDER: [string | null, boolean][] = [
  [null, true],
  [null, false],
  ["static", true],
  ["static", false],
  ["group", true],
  ["group", false],
  ["weight", true],
  ["weight", false],
];
const LAYERS: Record<string, SyntheticLayer> = {
  "64×512": syntheticLayer(64, 512, 1024, 211),
  "64×768": syntheticLayer(64, 768, 1536, 212),
};

for (const [label, layer] of Object.entries(LAYERS)) {
  Deno.test(`CPU GPTQ W4 group 128 on ${label} = reference (actorders, sym and asym)`, async () => {
    const shape = [layer.rows, layer.cols] as const;
    const h = hessianOf(layer);
    for (const [actorder, symmetric] of EVERY_ACTORDER) {
      const what = `actorder ${actorder}, ${symmetric ? "sym" : "asym"}`;
      const args = parseQuantizationArgs(
        { num_bits: 4, group_size: 128, symmetric, actorder },
        "w",
      );
      const r = await quantizeWeight(CPU_SECOND_ORDER, layer.weight, shape, h, args);
      const ref = gptqReference(layer.weight, shape, h, args);
      assert.equal(r.fellBackToRtn, false, what);
      assert.deepEqual(Array.from(r.scale), Array.from(ref.scale), `${what}: scales`);
      assert.deepEqual(Array.from(r.zeroPoint), Array.from(ref.zeroPoint), `${what}: zps`);
      assert.deepEqual(
        r.gIdx ? Array.from(r.gIdx) : null,
        ref.gIdx ? Array.from(ref.gIdx) : null,
        `${what}: g_idx`,
      );
      const cmp = compareWithReference(
        r.weight,
        ref,
        shape,
        (i) => nearRoundingTie(ref.preRound[i], args),
        { tol: 1e-6 },
      );
      const tolerance = cmp.flippedRows > 0 ? 2e-3 : 1e-4;
      assert.ok(Math.abs(r.loss - ref.loss) <= tolerance * ref.loss, `${what}: loss`);
      const rtn = fakeQuantize(layer.weight, shape, {
        scale: r.scale,
        zeroPoint: r.zeroPoint,
        gIdx: r.gIdx ?? null,
      }, args);
      const e = reconstructionError(layer, r.weight);
      assert.ok(e < 0.5 * reconstructionError(layer, rtn), `${what}: GPTQ ${e} vs RTN`);
    }
  });
}

Deno.test("CPU GPTQ: dead columns, a sparse weight's zeros kept, and the RTN fallback", async () => {
  const layer = syntheticLayer(16, 64, 256, 213);
  const shape = [layer.rows, layer.cols] as const;
  const h = hessianOf(layer);
  for (const c of [3, 40]) {
    for (let j = 0; j < 64; j++) h[c * 64 + j] = h[j * 64 + c] = 0;
  }
  const w = layer.weight.map((v, i) => (i % 7 === 0 ? 0 : v));
  const args = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
  const r = await quantizeWeight(CPU_SECOND_ORDER, w, shape, h, args, { blockSize: 16 });
  const ref = gptqReference(w, shape, h, args, { blockSize: 16 });
  assert.equal(r.deadColumns, 2);
  compareWithReference(r.weight, ref, shape, (i) => nearRoundingTie(ref.preRound[i], args), {
    tol: 1e-6,
  });
  for (let i = 0; i < w.length; i++) if (w[i] === 0) assert.equal(r.weight[i], 0, `zero ${i}`);
  const w70 = Float32Array.from({ length: 16 * 70 }, (_, i) => Math.sin(i));
  const hopeless = await quantizeWeight(CPU_SECOND_ORDER, w70, [16, 70], coupled(70, 1e4), args, {
    maxRetries: 1,
  });
  assert.equal(hopeless.fellBackToRtn, true);
  assert.equal(hopeless.attempts, 2);
});

const SPARSE = syntheticLayer(96, 256, 768, 201);
const RAGGED = syntheticLayer(64, 200, 600, 202);

async function checkSparse(layer: SyntheticLayer, options: SparseGptOptions) {
  const shape = [layer.rows, layer.cols] as const;
  const h = hessianOf(layer);
  const r = await sparsifyWeight(CPU_SECOND_ORDER, layer.weight, shape, h, options);
  const ref = sparsegptReference(layer.weight, shape, h, options);
  assert.equal(r.fellBackToMagnitude, false);
  const args = options.quantization;
  const cmp = compareWithReference(r.weight, ref, shape, (i) =>
    ref.decisionMargin[i] < 1e-3 ||
    (args !== undefined && nearRoundingTie(ref.preRound[i], args)));
  const tolerance = cmp.flippedRows > 0 ? 2e-3 : 1e-4;
  assert.ok(Math.abs(r.loss - ref.loss) <= tolerance * ref.loss, `loss ${r.loss} vs ${ref.loss}`);
  return r;
}

Deno.test("CPU SparseGPT = reference: 2:4, unstructured 50 % and 70 % on a ragged width, 4:8", async () => {
  const nm = await checkSparse(SPARSE, { sparsity: 0.5, maskStructure: "2:4" });
  assert.ok(nm.sparsity >= 0.5);
  const un = await checkSparse(SPARSE, { sparsity: 0.5 });
  assert.ok(Math.abs(un.sparsity - 0.5) < 0.01, `${un.sparsity}`);
  await checkSparse(RAGGED, { sparsity: 0.7, blockSize: 64 });
  await checkSparse(RAGGED, { sparsity: 0.5, maskStructure: "4:8", blockSize: 40 });
});

Deno.test("CPU SparseGPT = reference: a preserved mask, and pruning + int4 quantization in one pass", async () => {
  const w = SPARSE.weight.map((v, i) => (i % 5 === 0 ? 0 : v));
  const layer = { ...SPARSE, weight: w };
  const r = await checkSparse(layer, { sparsity: 0.5, preserveSparsityMask: true });
  for (let i = 0; i < w.length; i++) if (w[i] === 0) assert.equal(r.weight[i], 0);
  const quantization = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
  const q = await checkSparse(SPARSE, { sparsity: 0.5, maskStructure: "2:4", quantization });
  assert.ok(q.quantization !== undefined && q.sparsity >= 0.5);
});

Deno.test("CPU reconstruction errors: tr(ΔHΔᵀ)/tr(WHWᵀ) = ‖XΔᵀ‖²/‖XWᵀ‖² on the accumulated inputs", async () => {
  const layer = syntheticLayer(40, 96, 384, 214);
  const shape = [layer.rows, layer.cols] as const;
  const h = new CpuHessian(layer.cols);
  h.add(layer.inputs, 3);
  const a = layer.weight.map((v) => Math.round(v * 20) / 20);
  const b = layer.weight.map((v, i) => (i % 3 === 0 ? 0 : v));
  // Through the engine op on the running Hessian, and on an uploaded copy of it.
  const got = await CPU_SECOND_ORDER.reconstructionErrors(h, layer.weight, shape, [a, b]);
  const copy = CPU_SECOND_ORDER.hessian(await h.read(), layer.cols);
  assert.deepEqual(
    await CPU_SECOND_ORDER.reconstructionErrors(copy, layer.weight, shape, [a, b]),
    got,
  );
  const base = reconstructionError(layer, new Float32Array(layer.weight.length));
  for (const [k, c] of [a, b].entries()) {
    const want = reconstructionError(layer, c) / base;
    assert.ok(Math.abs(got[k] - want) <= 1e-4 * want, `candidate ${k}: ${got[k]} vs ${want}`);
  }
});

Deno.test("CPU GPTQ / SparseGPT: weights sharing a Hessian share its factor, with identical results", async () => {
  const layer = syntheticLayer(32, 128, 512, 215);
  const shape = [layer.rows, layer.cols] as const;
  const h = hessianOf(layer);
  const other = layer.weight.map((v) => -v);
  const args = parseQuantizationArgs({ num_bits: 4, group_size: 64, actorder: "group" }, "w");
  const factors: FactorCache = new Map();
  for (const w of [layer.weight, other]) {
    const shared = await quantizeWeight(CPU_SECOND_ORDER, w, shape, h, args, { factors });
    const alone = await quantizeWeight(CPU_SECOND_ORDER, w, shape, h, args);
    assert.deepEqual(shared.weight, alone.weight);
    const opts = { sparsity: 0.5, maskStructure: "2:4" };
    const s1 = await sparsifyWeight(CPU_SECOND_ORDER, w, shape, h, opts, factors);
    assert.deepEqual(s1.weight, (await sparsifyWeight(CPU_SECOND_ORDER, w, shape, h, opts)).weight);
  }
  assert.deepEqual([...factors.keys()].sort(), ["actorder|128", "columns|128"]);
});
