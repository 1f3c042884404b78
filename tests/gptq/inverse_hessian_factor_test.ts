/**
 * InverseHessianFactor (one Cholesky + one triangular inverse through the
 * reversal identity) against upstream's three-step recipe in f64
 * (`cholesky(cholesky_inverse(cholesky(H)), upper=True)`), with activation
 * ordering, dead columns, dampening, several panels, the dampening retries
 * and the fallback to U = I.
 */

import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { HessianAccumulator } from "../../src/engine/webgpu/second_order/hessian_accumulator.ts";
import { InverseHessianFactor } from "../../src/engine/webgpu/second_order/inverse_hessian_factor.ts";
import { activationOrder, dampeningSchedule } from "../../src/modifiers/gptq/dampening.ts";
import { prepareGptqKernels } from "../../src/engine/webgpu/second_order/prepare_kernels.ts";
import { upperFactorOfInverse } from "../../src/modifiers/gptq/reference.ts";
import { accumulate, coupled, syntheticLayer } from "./_helpers.ts";

const gpu = await getGpu();
await prepareGptqKernels(gpu);

/** U of upstream's recipe for H (f64), permuted, dead columns fixed, damped. */
function referenceU(h: Float32Array, n: number, frac: number, actorder: boolean) {
  const diag = Array.from({ length: n }, (_, i) => h[i * n + i]);
  const perm = actorder ? activationOrder(diag) : Int32Array.from({ length: n }, (_, i) => i);
  const hp = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) hp[i * n + j] = h[perm[i] * n + perm[j]];
  let mean = 0;
  for (let i = 0; i < n; i++) {
    if (hp[i * n + i] === 0) hp[i * n + i] = 1;
    mean += hp[i * n + i];
  }
  const damp = Math.fround((frac * mean) / n);
  for (let i = 0; i < n; i++) hp[i * n + i] = Math.fround(hp[i * n + i] + damp);
  return { u: upperFactorOfInverse(hp, n), perm };
}

async function checkAgainstReference(
  h: HessianAccumulator,
  actorder: boolean,
  maxPanelBytes?: number,
) {
  const n = h.columns;
  const hostH = await h.read();
  const f = await InverseHessianFactor.compute(gpu, h, { actorder, maxPanelBytes });
  try {
    assert.equal(f.fellBack, false);
    assert.equal(f.attempts, 1);
    const ref = referenceU(hostH, n, 0.01, actorder);
    assert.ok(ref.u !== null);
    if (actorder) assert.deepEqual(Array.from(f.perm!), Array.from(ref.perm));
    else assert.equal(f.perm, null);
    const u = await f.u.read();
    let scale = 0;
    for (const v of ref.u) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        const d = Math.abs(u[i * n + j] - ref.u[i * n + j]);
        assert.ok(d <= 1e-4 * scale, `U[${i}, ${j}] = ${u[i * n + j]} vs ${ref.u[i * n + j]}`);
      }
    }
    return f;
  } finally {
    f.destroy();
  }
}

Deno.test("U matches upstream's cholesky / cholesky_inverse / cholesky (no actorder)", async () => {
  const h = await accumulate(gpu, syntheticLayer(8, 96, 384, 1));
  await checkAgainstReference(h, false);
  h.destroy();
});

Deno.test("U matches with activation ordering, across several panels", async () => {
  const opts = { maxPanelBytes: 128 * 256 * 4 };
  const h = await accumulate(gpu, syntheticLayer(8, 200, 600, 2), 4, opts);
  assert.equal(h.matrix.panels.length, 2);
  await checkAgainstReference(h, true, opts.maxPanelBytes);
  h.destroy();
});

Deno.test("dead columns (zero inputs) are decoupled and reported", async () => {
  const layer = syntheticLayer(8, 64, 256, 3);
  for (let t = 0; t < layer.tokens; t++) {
    layer.inputs[t * 64 + 5] = 0;
    layer.inputs[t * 64 + 40] = 0;
  }
  const h = await accumulate(gpu, layer);
  const f = await InverseHessianFactor.compute(gpu, h);
  try {
    assert.deepEqual([...f.dead.keys()].filter((i) => f.dead[i]), [5, 40]);
    const u = await f.u.read();
    for (let j = 0; j < 64; j++) {
      if (j !== 5) assert.equal(u[5 * 64 + j], 0);
    }
    assert.ok(Math.abs(u[5 * 64 + 5] - 1 / Math.sqrt(1 + f.damp)) < 1e-6);
  } finally {
    f.destroy();
    h.destroy();
  }
});

Deno.test("an indefinite Hessian is retried with 10× dampening until it factors", async () => {
  // Eigenvalues 1 ± 1.05: the smallest, −0.05, needs damping > 0.05·mean(diag).
  const h = HessianAccumulator.fromMatrix(gpu, coupled(64, 1.05), 64, 1);
  const f = await InverseHessianFactor.compute(gpu, h, { dampeningFrac: 0.01 });
  try {
    assert.equal(f.fellBack, false);
    assert.equal(f.attempts, 2);
    assert.ok(Math.abs(f.dampeningFrac - 0.1) < 1e-12);
    assert.ok(Math.abs(f.damp - 0.1) < 1e-6);
  } finally {
    f.destroy();
    h.destroy();
  }
});

Deno.test("a hopeless Hessian falls back to U = I after every retry", async () => {
  // Smallest eigenvalue −50: even dampening_frac 10 leaves it negative.
  const h = HessianAccumulator.fromMatrix(gpu, coupled(32, 51), 32, 1);
  const f = await InverseHessianFactor.compute(gpu, h, { dampeningFrac: 0.01, maxRetries: 3 });
  try {
    assert.equal(f.fellBack, true);
    assert.equal(f.attempts, 4);
    const u = await f.u.read();
    for (let i = 0; i < 32; i++) {
      for (let j = 0; j < 32; j++) assert.equal(u[i * 32 + j], i === j ? 1 : 0);
    }
  } finally {
    f.destroy();
    h.destroy();
  }
});

Deno.test("dampening schedule", () => {
  assert.deepEqual(dampeningSchedule(0.01, 2).map((x) => +x.toPrecision(6)), [0.01, 0.1, 1]);
  assert.deepEqual(dampeningSchedule(0, 1).map((x) => +x.toPrecision(6)), [0, 0.01]);
});
