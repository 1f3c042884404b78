/**
 * HessianAccumulator against llm-compressor's running average, computed in
 * f64: H ← H·n/(n+b); n ← n+b; H ← H + (2/n)·XᵀX.
 */

import assert from "node:assert/strict";
import { CommandBatch } from "../../src/gpu/batch.ts";
import { getGpu } from "../../src/gpu/device.ts";
import type { MatmulPath } from "../../src/gpu/matmul_uniform.ts";
import { GpuTensor } from "../../src/gpu/tensor.ts";
import { GptqShapeError } from "../../src/modifiers/gptq/errors.ts";
import {
  HessianAccumulator,
  hessianTokenChunk,
} from "../../src/engine/webgpu/second_order/hessian_accumulator.ts";
import { prepareGptqKernels } from "../../src/engine/webgpu/second_order/prepare_kernels.ts";
import { gaussian } from "./_helpers.ts";

const gpu = await getGpu();
await prepareGptqKernels(gpu);

/**
 * Both update kernels: `add` takes the uniform-window Gram on a software
 * adapter and the storage kernel on real GPUs; LLMC_WGSL_MATMUL forces one.
 */
const PATHS: readonly MatmulPath[] = ["uniform", "storage"];

/** Runs `body` with `add` forced onto `path`, restoring the environment after. */
async function onPath<T>(path: MatmulPath, body: () => Promise<T>): Promise<T> {
  const before = Deno.env.get("LLMC_WGSL_MATMUL");
  Deno.env.set("LLMC_WGSL_MATMUL", path);
  try {
    return await body();
  } finally {
    if (before === undefined) Deno.env.delete("LLMC_WGSL_MATMUL");
    else Deno.env.set("LLMC_WGSL_MATMUL", before);
  }
}

/** Feeds batches of [tokens_i, cols] with b_i sequences; returns the GPU and f64 results. */
async function run(cols: number, batches: Array<[number, number]>, maxPanelBytes?: number) {
  const g = gaussian(cols);
  const h = HessianAccumulator.create(gpu, cols, { maxPanelBytes });
  const ref = new Float64Array(cols * cols);
  let n = 0;
  const batch = new CommandBatch(gpu);
  const xs: GpuTensor[] = [];
  for (const [tokens, b] of batches) {
    const x = Float32Array.from({ length: tokens * cols }, g);
    const t = GpuTensor.fromArray(gpu, x, [tokens, cols]);
    h.add(batch, t, b);
    xs.push(t);
    for (let i = 0; i < ref.length; i++) ref[i] *= n / (n + b);
    n += b;
    for (let k = 0; k < tokens; k++) {
      for (let i = 0; i < cols; i++) {
        const xi = (2 / n) * x[k * cols + i];
        for (let j = 0; j < cols; j++) ref[i * cols + j] += xi * x[k * cols + j];
      }
    }
  }
  const got = await h.read();
  for (const t of xs) t.destroy();
  const panels = h.matrix.panels.length;
  h.destroy();
  return { got, ref, n, panels };
}

function assertClose(got: Float32Array, ref: Float64Array): void {
  let scale = 0;
  for (const v of ref) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < ref.length; i++) {
    assert.ok(Math.abs(got[i] - ref[i]) <= 1e-5 * scale, `H[${i}] = ${got[i]} vs ${ref[i]}`);
  }
}

for (const path of PATHS) {
  Deno.test(`${path}: running average over batches of different sizes and sequence counts`, async () => {
    const { got, ref } = await onPath(path, () => run(96, [[32, 1], [64, 2], [16, 1], [48, 3]]));
    assertClose(got, ref);
    // H is symmetric and its diagonal positive.
    for (let i = 0; i < 96; i++) assert.ok(got[i * 96 + i] > 0);
  });

  Deno.test(`${path}: batches longer than a token chunk: narrow and wide inputs`, async () => {
    // 64 columns: chunks of 2048 tokens; 776 columns: chunks of 256 (storage kernel).
    assert.equal(hessianTokenChunk(64), 2048);
    assert.equal(hessianTokenChunk(776), 256);
    const narrow = await onPath(path, () => run(64, [[4500, 3], [2100, 1]]));
    assertClose(narrow.got, narrow.ref);
    const wide = await onPath(path, () => run(776, [[600, 2], [300, 1]]));
    assertClose(wide.got, wide.ref);
  });

  Deno.test(`${path}: a width that is a multiple of 4 but not of 8 keeps padding out of H`, async () => {
    const { got, ref } = await onPath(path, () => run(100, [[40, 1], [24, 1]]));
    assertClose(got, ref);
  });

  Deno.test(`${path}: accumulation across several row panels`, async () => {
    const { got, ref, panels } = await onPath(
      path,
      () => run(260, [[64, 1], [32, 1]], 128 * 320 * 4),
    );
    assert.equal(panels, 3);
    assertClose(got, ref);
  });
}

Deno.test("fromMatrix restores a read Hessian and keeps averaging", async () => {
  const cols = 8;
  const g = gaussian(5);
  const h = HessianAccumulator.create(gpu, cols);
  const batch = new CommandBatch(gpu);
  const x1 = GpuTensor.fromArray(gpu, Float32Array.from({ length: 4 * cols }, g), [4, cols]);
  const x2 = GpuTensor.fromArray(gpu, Float32Array.from({ length: 4 * cols }, g), [4, cols]);
  h.add(batch, x1, 1);
  const offloaded = await h.read();
  const restored = HessianAccumulator.fromMatrix(gpu, offloaded, cols, h.numSamples);
  h.add(batch, x2, 1);
  restored.add(batch, x2, 1);
  const [a, b] = [await h.read(), await restored.read()];
  assert.deepEqual(Array.from(a), Array.from(b));
  assert.equal(restored.numSamples, 2);
  for (const t of [x1, x2]) t.destroy();
  h.destroy();
  restored.destroy();
});

Deno.test("shape errors are typed", () => {
  assert.throws(() => HessianAccumulator.create(gpu, 6), GptqShapeError);
  const h = HessianAccumulator.create(gpu, 8);
  const x = GpuTensor.empty(gpu, [2, 12]);
  assert.throws(() => h.add(new CommandBatch(gpu), x, 1), GptqShapeError);
  assert.throws(
    () => h.add(new CommandBatch(gpu), GpuTensor.empty(gpu, [2, 8]), 0),
    GptqShapeError,
  );
  x.destroy();
  h.destroy();
});
