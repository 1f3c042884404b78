/**
 * gptqLayerWeights (quantizeWeight per Linear started together on the
 * WebGPU scheduler: one poll for every diagonal of a wave, then one for
 * every factorization and column loop, factors shared per input) against
 * gptqQuantize per Linear, each with its own factor and its own polls.
 * Results must be bit-identical, the round trips few, a failed first
 * factorization must fall back to the retries and RTN fallback, and a
 * small wave budget must not change anything.
 */

import assert from "node:assert/strict";
import type { Tensor } from "../../src/engine/engine.ts";
import { accumulatorOf } from "../../src/engine/webgpu/second_order/running_hessian.ts";
import { getGpu } from "../../src/gpu/device.ts";
import {
  gptqLayerWeights,
  type GptqWeightInput,
  LayerHessians,
} from "../../src/modifiers/gptq/gptq_weights.ts";
import { GptqConfigError } from "../../src/modifiers/gptq/errors.ts";
import { gptqQuantize, type GptqResult } from "../../src/modifiers/gptq/gptq_quantize.ts";
import { prepareGptqKernels } from "../../src/engine/webgpu/second_order/prepare_kernels.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import {
  countRoundTrips,
  type SyntheticLayer,
  syntheticLayer,
  uploadMatrix,
  webGpuEngine,
} from "./_helpers.ts";

const gpu = await getGpu();
await prepareGptqKernels(gpu);
const engine = await webGpuEngine(gpu);

const BLOCK = 32;
const DAMP = 0.01;

/** A layer's Hessians accumulated from synthetic inputs, 4 batches of one sequence each. */
async function layerHessians(inputs: Record<string, SyntheticLayer>): Promise<LayerHessians> {
  const hessians = LayerHessians.create(
    engine,
    new Map(Object.entries(inputs).map(([key, l]) => [key, l.cols])),
  );
  const xs: Tensor[] = [];
  for (const [key, layer] of Object.entries(inputs)) {
    const per = layer.tokens / 4;
    for (let b = 0; b < 4; b++) {
      const x = layer.inputs.subarray(b * per * layer.cols, (b + 1) * per * layer.cols);
      const t = engine.upload(x, [per, layer.cols]);
      hessians.add(key, t, 1);
      xs.push(t);
    }
  }
  await engine.flush();
  for (const t of xs) t.destroy();
  return hessians;
}

function linear(
  name: string,
  input: string,
  rows: number,
  cols: number,
  seed: number,
  spec: Record<string, unknown>,
): GptqWeightInput {
  return {
    name,
    input,
    values: syntheticLayer(rows, cols, 8, seed).weight,
    shape: [rows, cols],
    args: parseQuantizationArgs(spec, name),
    dtype: "F32",
  };
}

/** The plain path: gptqQuantize per Linear, each computing its own factor and waiting on it alone. */
async function plainPath(
  hessians: LayerHessians,
  linears: readonly GptqWeightInput[],
): Promise<GptqResult[]> {
  const out: GptqResult[] = [];
  for (const l of linears) {
    out.push(
      await gptqQuantize(engine, l.values, l.shape, hessians.get(l.input), l.args, {
        blockSize: BLOCK,
        dampeningFrac: DAMP,
        where: l.name,
      }),
    );
  }
  return out;
}

function assertIdentical(actual: GptqResult[], expected: GptqResult[], names: string[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => {
    const e = expected[i];
    const at = names[i];
    assert.deepEqual(Array.from(a.weight), Array.from(e.weight), `${at}: weight`);
    assert.deepEqual(Array.from(a.scale), Array.from(e.scale), `${at}: scale`);
    assert.deepEqual(Array.from(a.zeroPoint), Array.from(e.zeroPoint), `${at}: zero point`);
    assert.deepEqual(a.qparamShape, e.qparamShape, `${at}: qparam shape`);
    assert.deepEqual(a.gIdx && Array.from(a.gIdx), e.gIdx && Array.from(e.gIdx), `${at}: g_idx`);
    assert.ok(Object.is(a.loss, e.loss), `${at}: loss ${a.loss} vs ${e.loss}`);
    assert.equal(a.fellBackToRtn, e.fellBackToRtn, `${at}: fellBackToRtn`);
    assert.equal(a.dampeningUsed, e.dampeningUsed, `${at}: dampeningUsed`);
    assert.equal(a.attempts, e.attempts, `${at}: attempts`);
    assert.equal(a.deadColumns, e.deadColumns, `${at}: deadColumns`);
  });
}

/** Three inputs, five factor keys, seven Linears. */
function layerSetup() {
  const down = syntheticLayer(8, 200, 400, 203);
  for (let t = 0; t < down.tokens; t++) down.inputs[t * 200 + 7] = 0; // a dead column
  const inputs = {
    attn: syntheticLayer(8, 96, 384, 201),
    mlp: syntheticLayer(8, 128, 384, 202),
    down,
  };
  const sparse = linear("up", "mlp", 160, 128, 14, { num_bits: 4, strategy: "channel" });
  for (let i = 0; i < sparse.values.length; i += 4) sparse.values[i] = 0; // zeros preserved
  const linears = [
    linear("q", "attn", 96, 96, 11, { num_bits: 4, strategy: "channel" }),
    // Same input, activation-ordered: a second factor of the same Hessian.
    linear("k", "attn", 48, 96, 12, { num_bits: 4, group_size: 32, actorder: "group" }),
    // Shares q's factor.
    linear("v", "attn", 48, 96, 13, { num_bits: 4, strategy: "channel" }),
    linear("gate", "mlp", 160, 128, 15, { num_bits: 4, group_size: 64, symmetric: false }),
    sparse,
    linear("o", "attn", 96, 96, 16, { num_bits: 8, group_size: 48, actorder: "weight" }),
    linear("down", "down", 96, 200, 17, { num_bits: 8, strategy: "channel", symmetric: false }),
  ];
  return { inputs, linears, names: linears.map((l) => l.name) };
}

Deno.test("batched layer GPTQ is bit-identical to compute + gptqQuantize per Linear, in ≤ 2 round trips", async () => {
  const { inputs, linears, names } = layerSetup();
  const hessians = await layerHessians(inputs);
  try {
    const { value: batched, trips } = await countRoundTrips(() =>
      gptqLayerWeights(engine, 0, "llama", hessians, linears, {
        blockSize: BLOCK,
        dampeningFrac: DAMP,
      })
    );
    assert.ok(trips <= 2, `${trips} awaited round trips (at most 2)`);
    const plain = await plainPath(hessians, linears);
    assertIdentical(batched, plain, names);
    for (const r of batched) assert.equal(r.attempts, 1);
    assert.ok(batched[1].gIdx !== undefined, "k_proj has g_idx (actorder group)");
    assert.equal(batched[6].deadColumns, 1);
    for (let i = 0; i < linears[4].values.length; i += 4) assert.equal(batched[4].weight[i], 0);
  } finally {
    hessians.destroy();
  }
});

Deno.test("a wave budget that forces one factor per wave changes nothing", async () => {
  const { inputs, linears, names } = layerSetup();
  const hessians = await layerHessians(inputs);
  try {
    const options = { blockSize: BLOCK, dampeningFrac: DAMP };
    const one = await gptqLayerWeights(engine, 0, "llama", hessians, linears, options);
    const { value: many, trips } = await countRoundTrips(() =>
      gptqLayerWeights(engine, 0, "llama", hessians, linears, { ...options, waveBytes: 1 })
    );
    // Every weight its own wave: its diagonal, then its factor and loop.
    assert.equal(trips, 2 * linears.length);
    assertIdentical(many, one, names);
  } finally {
    hessians.destroy();
  }
});

/** A symmetric matrix with unit diagonal and couplings ±c between columns 2k, 2k+1. */
function coupled(n: number, c: number): Float32Array {
  const h = new Float32Array(n * n);
  for (let i = 0; i < n; i++) h[i * n + i] = 1;
  for (let i = 0; i + 1 < n; i += 2) h[i * n + i + 1] = h[(i + 1) * n + i] = c;
  return h;
}

Deno.test("a failed first factorization takes the slow path: retries and RTN fallback as compute", async () => {
  const hessians = await layerHessians({ good: syntheticLayer(8, 64, 256, 204) });
  // One LayerHessians holding all four: the good one's data and three made up.
  const all = LayerHessians.create(
    engine,
    new Map([["good", 64], ["retry", 32], ["hopeless", 32], ["nan", 32]]),
  );
  try {
    const matrix = (key: string) => accumulatorOf(all.get(key)).matrix;
    uploadMatrix(matrix("good"), await hessians.get("good").read());
    // Eigenvalues 1 ± 1.05: the first attempt fails, ×10 dampening factors.
    uploadMatrix(matrix("retry"), coupled(32, 1.05));
    // Eigenvalues 1 ± 51: every attempt fails, U = I.
    uploadMatrix(matrix("hopeless"), coupled(32, 51));
    uploadMatrix(matrix("nan"), new Float32Array(32 * 32).fill(NaN));
    const channel = { num_bits: 4, strategy: "channel" };
    const linears = [
      linear("g", "good", 32, 64, 21, { num_bits: 4, group_size: 32, actorder: "group" }),
      linear("r1", "retry", 16, 32, 22, channel),
      linear("h", "hopeless", 16, 32, 23, { num_bits: 4, group_size: 16 }),
      linear("r2", "retry", 24, 32, 24, { num_bits: 8, strategy: "channel", symmetric: false }),
      linear("n", "nan", 16, 32, 25, channel),
      linear("g2", "good", 16, 64, 26, channel),
    ];
    const batched = await gptqLayerWeights(engine, 0, "llama", all, linears, {
      blockSize: BLOCK,
      dampeningFrac: DAMP,
    });
    const plain = await plainPath(all, linears);
    assertIdentical(batched, plain, linears.map((l) => l.name));
    assert.deepEqual(batched.map((r) => r.attempts), [1, 2, 4, 2, 4, 1]);
    assert.deepEqual(
      batched.map((r) => r.fellBackToRtn),
      [false, false, true, false, true, false],
    );
    assert.ok(Math.abs(batched[1].dampeningUsed - 0.1) < 1e-12);
  } finally {
    hessians.destroy();
    all.destroy();
  }
});

Deno.test("unsupported args are refused before any GPU work", async () => {
  const hessians = LayerHessians.create(engine, new Map([["x", 16]]));
  try {
    const ok = linear("a", "x", 8, 16, 31, { num_bits: 4, strategy: "channel" });
    const dynamic = linear("b", "x", 8, 16, 32, { num_bits: 8, strategy: "tensor", dynamic: true });
    const { trips } = await countRoundTrips(() =>
      assert.rejects(
        () =>
          gptqLayerWeights(engine, 0, "llama", hessians, [ok, dynamic], {
            blockSize: BLOCK,
            dampeningFrac: DAMP,
          }),
        GptqConfigError,
      )
    );
    assert.equal(trips, 0);
    assert.deepEqual(
      await gptqLayerWeights(engine, 0, "llama", hessians, [], { blockSize: 32, dampeningFrac: 0 }),
      [],
    );
  } finally {
    hessians.destroy();
  }
});
