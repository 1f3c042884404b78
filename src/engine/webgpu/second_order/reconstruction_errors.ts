/**
 * The reconstruction errors of the WebGPU engine
 * (`SecondOrderOps.reconstructionErrors`): [W; Δ₁; Δ₂; …] multiplied by H
 * on the device in row chunks, multiplied elementwise by itself and summed
 * per row there; the row sums come back in one read and are added up in
 * float64 on the host.
 *
 * @module
 */

import { CommandBatch } from "../../../gpu/batch.ts";
import { ChunkedWeight } from "../../../gpu/chunked.ts";
import { matmul, mul, reduceRows } from "../../../gpu/ops.ts";
import { GpuTensor, type HostArray } from "../../../gpu/tensor.ts";
import { GptqShapeError } from "../../../modifiers/gptq/errors.ts";
import type { HessianAccumulator } from "./hessian_accumulator.ts";

/** Default bound on the bytes of one row chunk of [W; Δ…] (and of its product with H). */
export const RECONSTRUCTION_CHUNK_BYTES = 64 * 2 ** 20;

/**
 * Relative output errors ‖X(W − Ŵ)ᵀ‖²_F / ‖XWᵀ‖²_F of each candidate Ŵ on
 * the inputs the accumulator folded in, as tr(Δ H Δᵀ) / tr(W H Wᵀ). Every
 * chunk is recorded and submitted before the one read, so its operands go
 * back to the pool before the next chunk.
 *
 * @param h the accumulator (any state; the upper triangle is mirrored)
 * @param original W `[out, in]`, row-major
 * @param shape `[out, in]`
 * @param candidates approximations Ŵ of W
 * @param maxChunkBytes bound on one row chunk's bytes
 * @param read brings tensors back (the ops' coalesced reader)
 * @returns one relative error per candidate (0 when XWᵀ = 0)
 * @example
 * ```ts ignore
 * const [gptq, rtn] = await gpuReconstructionErrors(acc, w, [64, 64], [gptqW, rtnW], 2 ** 26, readMany);
 * ```
 */
export async function gpuReconstructionErrors(
  h: HessianAccumulator,
  original: Float32Array,
  shape: readonly [number, number],
  candidates: readonly Float32Array[],
  maxChunkBytes: number,
  read: (tensors: readonly GpuTensor[]) => Promise<HostArray[]>,
): Promise<number[]> {
  const [out, cols] = shape;
  const rows = await rowSquareSums(
    h,
    out * (1 + candidates.length),
    cols,
    (k, r, dst) => {
      // Row r of [W; Δ₁; Δ₂; …].
      const w = original.subarray(r * cols, (r + 1) * cols);
      if (k === 0) dst.set(w);
      else {
        const c = candidates[k - 1];
        for (let j = 0; j < cols; j++) dst[j] = w[j] - c[r * cols + j];
      }
    },
    out,
    maxChunkBytes,
    read,
  );
  const part = (k: number) => {
    let s = 0;
    for (let r = k * out; r < (k + 1) * out; r++) s += rows[r];
    return s;
  };
  const base = part(0);
  return candidates.map((_, k) => base > 0 ? part(k + 1) / base : 0);
}

/**
 * `tr(M H Mᵀ)` of a matrix M `[out, in]` on the accumulator's H (the WebGPU
 * engine's `SecondOrderOps.outputSquareSum`): M's rows multiplied by H on
 * the device in row chunks, each row's dot with itself summed there, the
 * row sums added up in float64 on the host. M is copied before the first
 * await, so the caller may reuse it at once.
 *
 * @param h the accumulator (any state; the upper triangle is mirrored)
 * @param m M `[out, in]`, row-major
 * @param shape `[out, in]`
 * @param maxChunkBytes bound on one row chunk's bytes
 * @param read brings tensors back (the ops' coalesced reader)
 * @returns the sum
 * @throws {GptqShapeError} when m or H does not have the shape's size
 * @example
 * ```ts ignore
 * const err = await gpuOutputSquareSum(acc, delta, [64, 64], 2 ** 26, readMany);
 * ```
 */
export async function gpuOutputSquareSum(
  h: HessianAccumulator,
  m: Float32Array,
  shape: readonly [number, number],
  maxChunkBytes: number,
  read: (tensors: readonly GpuTensor[]) => Promise<HostArray[]>,
): Promise<number> {
  const [out, cols] = shape;
  if (h.columns !== cols || m.length !== out * cols) {
    throw new GptqShapeError(
      `outputSquareSum: a [${out}, ${cols}] matrix of ${m.length} values on a Hessian of ` +
        `order ${h.columns}`,
    );
  }
  const rows = await rowSquareSums(
    h,
    out,
    cols,
    (_, r, dst) => {
      dst.set(m.subarray(r * cols, (r + 1) * cols));
    },
    out,
    maxChunkBytes,
    read,
  );
  let s = 0;
  for (const v of rows) s += v;
  return s;
}

/**
 * `d·H·dᵀ` for every row d of a stacked matrix of `total` rows: `fill(k, r, dst)`
 * writes row r of its k-th `[out, cols]` block into dst. Every chunk is
 * recorded and submitted before the one read.
 */
async function rowSquareSums(
  h: HessianAccumulator,
  total: number,
  cols: number,
  fill: (k: number, r: number, dst: Float32Array) => void,
  out: number,
  maxChunkBytes: number,
  read: (tensors: readonly GpuTensor[]) => Promise<HostArray[]>,
): Promise<Float64Array> {
  const gpu = h.gpu;
  const m = h.matrix;
  const panels = new ChunkedWeight(
    gpu,
    [m.order, m.order],
    m.panels.map((tensor, q) => ({
      tensor,
      row0: m.panelStart(q),
      rows: m.panelEnd(q) - m.panelStart(q),
    })),
  );
  const chunkRows = Math.max(1, Math.floor(maxChunkBytes / (m.order * 4)));
  const sums: GpuTensor[] = [];
  try {
    for (let r0 = 0; r0 < total; r0 += chunkRows) {
      const rows = Math.min(chunkRows, total - r0);
      // Columns past `cols` stay 0, as H's padding rows and columns may hold junk.
      const stacked = new Float32Array(rows * m.order);
      for (let i = 0; i < rows; i++) {
        const at = i * m.order;
        fill(Math.floor((r0 + i) / out), (r0 + i) % out, stacked.subarray(at, at + cols));
      }
      const batch = new CommandBatch(gpu);
      h.recordSymmetrize(batch);
      const d = GpuTensor.fromArray(gpu, stacked, [rows, m.order]);
      // H is symmetric, so D·Hᵀ (what matmul computes) is D·H.
      const dh = matmul(batch, d, panels);
      const prod = mul(batch, dh, d);
      sums.push(reduceRows(batch, prod, "sum"));
      // Submitted per chunk so its operands go back to the pool before the
      // next chunk: only the row sums stay until the single readback.
      batch.submit();
      d.destroy();
      dh.destroy();
      prod.destroy();
    }
    const host = await read(sums);
    const rows = new Float64Array(total);
    let at = 0;
    for (const part of host) for (const v of part as Float32Array) rows[at++] = v;
    return rows;
  } finally {
    for (const t of sums) t.destroy();
  }
}
