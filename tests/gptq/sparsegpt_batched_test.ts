/**
 * sparsegptPruneMany (sparsifyWeight per Linear started together on the
 * WebGPU scheduler: one poll for every diagonal of a wave, then one for
 * every factorization and pruning loop, factors shared per input) against
 * sparsegptPrune per weight, each with its own factor and its own polls.
 * Results must be bit-identical for N:M and unstructured masks, preserved
 * masks, pruning + quantization in one pass and dead columns; the round
 * trips few; a failed first factorization must fall back to the retries
 * and magnitude pruning of the per-Linear path; a small wave budget must
 * change nothing; refused options must cost no GPU work.
 */

import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { GptqConfigError, GptqShapeError } from "../../src/modifiers/gptq/errors.ts";
import { HessianAccumulator } from "../../src/engine/webgpu/second_order/hessian_accumulator.ts";
import { prepareGptqKernels } from "../../src/engine/webgpu/second_order/prepare_kernels.ts";
import { SparseGptConfigError } from "../../src/modifiers/sparsegpt/errors.ts";
import {
  sparsegptPrune,
  sparsegptPruneMany,
  type SparseGptResult,
  type SparseGptWeight,
  type SparseGptWeightOptions,
} from "../../src/modifiers/sparsegpt/sparsegpt_prune.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { accumulate, countRoundTrips, syntheticLayer, webGpuEngine } from "./_helpers.ts";

const gpu = await getGpu();
await prepareGptqKernels(gpu);
const engine = await webGpuEngine(gpu);

const BLOCK = 32;
const DAMP = 0.01;

type Hessians = Map<string, HessianAccumulator>;

function lookup(hessians: Hessians): (input: string) => HessianAccumulator {
  return (input) => {
    const h = hessians.get(input);
    if (h === undefined) throw new Error(`no Hessian '${input}'`);
    return h;
  };
}

function destroyAll(hessians: Hessians): void {
  for (const h of hessians.values()) h.destroy();
}

function weight(
  input: string,
  rows: number,
  cols: number,
  seed: number,
  options: SparseGptWeightOptions,
): SparseGptWeight {
  return {
    input,
    weight: syntheticLayer(rows, cols, 8, seed).weight,
    shape: [rows, cols],
    options,
  };
}

/** The per-Linear path: sparsegptPrune per weight, each computing its own factor. */
async function plainPath(
  hessians: Hessians,
  weights: readonly SparseGptWeight[],
): Promise<SparseGptResult[]> {
  const out: SparseGptResult[] = [];
  for (const w of weights) {
    out.push(
      await sparsegptPrune(engine, w.weight, w.shape, hessians.get(w.input)!, {
        ...w.options,
        blockSize: BLOCK,
        dampeningFrac: DAMP,
      }),
    );
  }
  return out;
}

function assertIdentical(
  actual: SparseGptResult[],
  expected: SparseGptResult[],
  weights: readonly SparseGptWeight[],
): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => {
    const e = expected[i];
    const at = weights[i].options.where ?? `#${i}`;
    assert.deepEqual(Array.from(a.weight), Array.from(e.weight), `${at}: weight`);
    assert.ok(Object.is(a.loss, e.loss), `${at}: loss ${a.loss} vs ${e.loss}`);
    assert.equal(a.sparsity, e.sparsity, `${at}: sparsity`);
    assert.equal(a.fellBackToMagnitude, e.fellBackToMagnitude, `${at}: fellBackToMagnitude`);
    assert.equal(a.dampeningUsed, e.dampeningUsed, `${at}: dampeningUsed`);
    assert.equal(a.attempts, e.attempts, `${at}: attempts`);
    assert.equal(a.deadColumns, e.deadColumns, `${at}: deadColumns`);
    const qa = a.quantization;
    const qe = e.quantization;
    assert.equal(qa === undefined, qe === undefined, `${at}: quantization present`);
    if (qa !== undefined && qe !== undefined) {
      assert.deepEqual(Array.from(qa.scale), Array.from(qe.scale), `${at}: scale`);
      assert.deepEqual(Array.from(qa.zeroPoint), Array.from(qe.zeroPoint), `${at}: zero point`);
      assert.deepEqual(qa.qparamShape, qe.qparamShape, `${at}: qparam shape`);
      assert.equal(qa.globalScale, qe.globalScale, `${at}: global scale`);
    }
  });
}

/** Three inputs (one with a dead column), three factors, eight weights of every kind. */
async function layerSetup() {
  const down = syntheticLayer(8, 200, 400, 303);
  for (let t = 0; t < down.tokens; t++) down.inputs[t * 200 + 7] = 0; // a dead column
  const hessians: Hessians = new Map([
    ["attn", await accumulate(gpu, syntheticLayer(8, 96, 384, 301))],
    ["mlp", await accumulate(gpu, syntheticLayer(8, 128, 384, 302))],
    ["down", await accumulate(gpu, down)],
  ]);
  const int4 = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
  const int8Group = parseQuantizationArgs(
    { num_bits: 8, group_size: 40, symmetric: false },
    "w",
  );
  const nvfp4 = parseQuantizationArgs({
    num_bits: 4,
    type: "float",
    strategy: "tensor_group",
    group_size: 16,
    scale_dtype: "torch.float8_e4m3fn",
    observer: "static_minmax",
  }, "w");
  const gate = weight("mlp", 160, 128, 15, { sparsity: 0.6, preserveSparsityMask: true });
  for (let i = 0; i < gate.weight.length; i += 4) gate.weight[i] = 0; // 25% already zero
  const up = weight("mlp", 160, 128, 16, {
    sparsity: 0.5,
    maskStructure: "2:4",
    preserveSparsityMask: true,
  });
  for (let i = 1; i < up.weight.length; i += 7) up.weight[i] = 0;
  const weights = [
    weight("attn", 96, 96, 11, { sparsity: 0.5, maskStructure: "2:4", where: "q" }),
    weight("attn", 48, 96, 12, { sparsity: 0.5, where: "k" }),
    // Rows not a multiple of 8.
    weight("attn", 44, 96, 13, { sparsity: 0.5, maskStructure: "4:8", where: "v" }),
    weight("attn", 96, 96, 14, {
      sparsity: 0.5,
      maskStructure: "2:4",
      quantization: int4,
      where: "o",
    }),
    { ...gate, options: { ...gate.options, where: "gate" } },
    { ...up, options: { ...up.options, where: "up" } },
    weight("down", 64, 200, 17, {
      sparsity: 0.5,
      maskStructure: "2:4",
      quantization: int8Group,
      where: "down",
    }),
    weight("attn", 32, 96, 18, {
      sparsity: 0.3,
      quantization: nvfp4,
      globalScale: 123.5,
      where: "nvfp4",
    }),
  ];
  return { hessians, weights };
}

Deno.test("batched SparseGPT is bit-identical to compute + sparsegptPrune per Linear, in ≤ 2 round trips", async () => {
  const { hessians, weights } = await layerSetup();
  try {
    const { value: batched, trips } = await countRoundTrips(() =>
      sparsegptPruneMany(engine, lookup(hessians), weights, {
        blockSize: BLOCK,
        dampeningFrac: DAMP,
      })
    );
    assert.equal(trips, 2, `${trips} awaited round trips`);
    const { value: plain, trips: plainTrips } = await countRoundTrips(() =>
      plainPath(hessians, weights)
    );
    // One weight at a time: its diagonal, then its factor and loop.
    assert.equal(plainTrips, 2 * weights.length);
    assertIdentical(batched, plain, weights);
    for (const r of batched) {
      assert.equal(r.attempts, 1);
      assert.equal(r.fellBackToMagnitude, false);
    }
    assert.equal(batched[6].deadColumns, 1);
    assert.ok(batched[3].quantization !== undefined && batched[6].quantization !== undefined);
    assert.equal(batched[7].quantization?.globalScale, 123.5);
    for (let i = 0; i < weights[4].weight.length; i += 4) assert.equal(batched[4].weight[i], 0);
    assert.ok(batched[1].sparsity >= 0.5 && batched[4].sparsity >= 0.6);
    // sparsegptPrune on the Hessian itself computes the same factor.
    const direct = await sparsegptPrune(
      engine,
      weights[0].weight,
      weights[0].shape,
      hessians.get("attn")!,
      {
        ...weights[0].options,
        blockSize: BLOCK,
        dampeningFrac: DAMP,
      },
    );
    assertIdentical([direct], [batched[0]], [weights[0]]);
  } finally {
    destroyAll(hessians);
  }
});

Deno.test("a wave budget that forces one factor per wave changes nothing", async () => {
  const { hessians, weights } = await layerSetup();
  try {
    const options = { blockSize: BLOCK, dampeningFrac: DAMP };
    const one = await sparsegptPruneMany(engine, lookup(hessians), weights, options);
    const { value: many, trips } = await countRoundTrips(() =>
      sparsegptPruneMany(engine, lookup(hessians), weights, { ...options, waveBytes: 1 })
    );
    // Every weight its own wave: its diagonal, then its factor and loop.
    assert.equal(trips, 2 * weights.length);
    assertIdentical(many, one, weights);
  } finally {
    destroyAll(hessians);
  }
});

/** A symmetric matrix with unit diagonal and couplings ±c between columns 2k, 2k+1. */
function coupled(n: number, c: number): Float32Array {
  const h = new Float32Array(n * n);
  for (let i = 0; i < n; i++) h[i * n + i] = 1;
  for (let i = 0; i + 1 < n; i += 2) h[i * n + i + 1] = h[(i + 1) * n + i] = c;
  return h;
}

Deno.test("a failed first factorization takes the slow path: retries and magnitude fallback as compute", async () => {
  const hessians: Hessians = new Map([
    ["good", await accumulate(gpu, syntheticLayer(8, 64, 256, 304))],
    // Eigenvalues 1 ± 1.05: the first attempt fails, ×10 dampening factors.
    ["retry", HessianAccumulator.fromMatrix(gpu, coupled(32, 1.05), 32, 1)],
    // Eigenvalues 1 ± 51: every attempt fails, U = I (magnitude pruning).
    ["hopeless", HessianAccumulator.fromMatrix(gpu, coupled(32, 51), 32, 1)],
    ["nan", HessianAccumulator.fromMatrix(gpu, new Float32Array(32 * 32).fill(NaN), 32, 1)],
  ]);
  try {
    const int4 = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
    const weights = [
      weight("good", 32, 64, 21, { sparsity: 0.5, maskStructure: "2:4", where: "g" }),
      weight("retry", 16, 32, 22, { sparsity: 0.5, maskStructure: "2:4", where: "r1" }),
      weight("hopeless", 16, 32, 23, { sparsity: 0.5, where: "h" }),
      weight("retry", 24, 32, 24, { sparsity: 0.4, quantization: int4, where: "r2" }),
      weight("nan", 16, 32, 25, { sparsity: 0.5, maskStructure: "2:4", where: "n" }),
      weight("good", 16, 64, 26, { sparsity: 0.7, where: "g2" }),
    ];
    const batched = await sparsegptPruneMany(engine, lookup(hessians), weights, {
      blockSize: BLOCK,
      dampeningFrac: DAMP,
    });
    const plain = await plainPath(hessians, weights);
    assertIdentical(batched, plain, weights);
    assert.deepEqual(batched.map((r) => r.attempts), [1, 2, 4, 2, 4, 1]);
    assert.deepEqual(
      batched.map((r) => r.fellBackToMagnitude),
      [false, false, true, false, true, false],
    );
    assert.ok(Math.abs(batched[1].dampeningUsed - 0.1) < 1e-12);
  } finally {
    destroyAll(hessians);
  }
});

Deno.test("refused options and shapes cost no GPU work", async () => {
  const hessians: Hessians = new Map([["x", HessianAccumulator.create(gpu, 16)]]);
  try {
    const ok = weight("x", 8, 16, 31, { sparsity: 0.5 });
    const cases: Array<[SparseGptWeight, new (...a: never[]) => Error]> = [
      [weight("x", 8, 16, 32, { sparsity: 1 }), SparseGptConfigError],
      [weight("x", 8, 16, 33, { sparsity: 0.5, maskStructure: "2-4" }), SparseGptConfigError],
      [
        weight("x", 8, 16, 34, {
          sparsity: 0.5,
          quantization: parseQuantizationArgs(
            { num_bits: 4, group_size: 8, actorder: "group" },
            "w",
          ),
        }),
        SparseGptConfigError,
      ],
      [
        weight("x", 8, 16, 35, {
          sparsity: 0.5,
          quantization: parseQuantizationArgs(
            { num_bits: 8, strategy: "tensor", dynamic: true },
            "w",
          ),
        }),
        GptqConfigError,
      ],
      [weight("x", 8, 24, 36, { sparsity: 0.5 }), GptqShapeError],
    ];
    for (const [bad, error] of cases) {
      const { trips } = await countRoundTrips(() =>
        assert.rejects(
          () => sparsegptPruneMany(engine, lookup(hessians), [ok, bad], { blockSize: BLOCK }),
          error,
        )
      );
      assert.equal(trips, 0);
    }
    assert.deepEqual(await sparsegptPruneMany(engine, lookup(hessians), []), []);
  } finally {
    destroyAll(hessians);
  }
});
