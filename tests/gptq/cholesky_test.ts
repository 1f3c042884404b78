/**
 * The blocked Cholesky and triangular inverse on the GPU against the
 * definitions (L·Lᵀ = A, L·L⁻¹ = I), in one panel and across several
 * panels, and the on-GPU failure report for matrices that are not
 * positive definite.
 */

import assert from "node:assert/strict";
import { CommandBatch } from "../../src/gpu/batch.ts";
import { getGpu } from "../../src/gpu/device.ts";
import {
  createCholeskyScratch,
  createFactorStatus,
  readFactorStatus,
  recordCholesky,
} from "../../src/engine/webgpu/second_order/cholesky.ts";
import { PanelMatrix } from "../../src/engine/webgpu/second_order/panel_matrix.ts";
import { recordIdentity } from "../../src/engine/webgpu/second_order/panel_ops.ts";
import { prepareGptqKernels } from "../../src/engine/webgpu/second_order/prepare_kernels.ts";
import {
  createTriangularInverseScratch,
  recordLowerTriangularInverse,
} from "../../src/engine/webgpu/second_order/triangular_inverse.ts";
import { randomSpd, uploadMatrix } from "./_helpers.ts";

const gpu = await getGpu();
await prepareGptqKernels(gpu);

/** Factors and inverts `a` (size n) on the GPU; returns L, L⁻¹ (n×n) and the status. */
async function factorAndInvert(a: ArrayLike<number>, n: number, maxPanelBytes?: number) {
  const m = PanelMatrix.create(gpu, n, { maxPanelBytes });
  const inv = PanelMatrix.create(gpu, n, { maxPanelBytes });
  const status = createFactorStatus(gpu);
  const batch = new CommandBatch(gpu);
  uploadMatrix(m, a);
  const chol = createCholeskyScratch(gpu, m.order, status);
  const tri = createTriangularInverseScratch(gpu, m.order, status);
  recordCholesky(batch, m, chol);
  recordIdentity(batch, inv).destroy();
  recordLowerTriangularInverse(batch, m, inv, tri);
  await batch.done();
  const result = {
    l: await m.read(),
    li: await inv.read(),
    status: await readFactorStatus(status),
    m,
  };
  for (const t of [chol.lkk, chol.panelT, tri.panelT, tri.blockRow, status]) t.destroy();
  inv.destroy();
  m.destroy();
  return result;
}

function checkFactorization(a: Float64Array, n: number, l: Float32Array, li: Float32Array): void {
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale = Math.max(scale, Math.abs(a[i]));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (j > i) {
        assert.equal(li[i * n + j], 0, `L⁻¹ must stay lower-triangular (${i}, ${j})`);
        continue;
      }
      let llt = 0;
      for (let k = 0; k <= j; k++) llt += l[i * n + k] * l[j * n + k];
      assert.ok(
        Math.abs(llt - a[i * n + j]) <= 2e-6 * scale,
        `(L·Lᵀ)[${i}, ${j}] = ${llt} vs ${a[i * n + j]}`,
      );
      let id = 0;
      for (let k = j; k <= i; k++) id += l[i * n + k] * li[k * n + j];
      assert.ok(Math.abs(id - (i === j ? 1 : 0)) <= 1e-5, `(L·L⁻¹)[${i}, ${j}] = ${id}`);
    }
  }
}

Deno.test("Cholesky and triangular inverse of an SPD matrix in one panel", async () => {
  const n = 200;
  const a = randomSpd(n, 11);
  const r = await factorAndInvert(a, n);
  assert.equal(r.status.failed, false);
  checkFactorization(a, n, r.l, r.li);
});

Deno.test("Cholesky and triangular inverse across three row panels", async () => {
  const n = 300; // order 320, panels of 128 rows
  const a = randomSpd(n, 12);
  const r = await factorAndInvert(a, n, 128 * 320 * 4);
  assert.equal(r.m.panels.length, 3);
  assert.equal(r.status.failed, false);
  checkFactorization(a, n, r.l, r.li);
});

Deno.test("a non-positive pivot is reported with its index", async () => {
  const n = 130;
  const a = randomSpd(n, 13);
  // Make the leading 71×71 block indefinite: pivot 70 turns negative.
  a[70 * n + 70] = -5;
  const r = await factorAndInvert(a, n);
  assert.equal(r.status.failed, true);
  assert.equal(r.status.pivot, 70);
});

Deno.test("NaN in the matrix is reported as a failed factorization", async () => {
  const n = 64;
  const a = randomSpd(n, 14);
  a[5 * n + 3] = NaN;
  a[3 * n + 5] = NaN;
  const r = await factorAndInvert(a, n);
  assert.equal(r.status.failed, true);
});
