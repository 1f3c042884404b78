/**
 * The blocked column loop GPTQ and SparseGPT share, on the GPU: for each
 * block of `blockSize` (permuted) columns,
 *
 * 1. (SparseGPT, unstructured) the block's pruning threshold by radix
 *    select (sparsegpt_threshold_select.wgsl);
 * 2. the sequential in-block loop — prune, fake-quantize, error, in-block
 *    propagation — one invocation per row (gptq_column_block.wgsl);
 * 3. the inter-block update W[:, i2:] −= Err·U[i1:i2, i2:]
 *    (matmul_at_b_update.wgsl).
 *
 * The weight travels transposed (Wᵀ, columns in processing order, dead
 * columns zeroed) in row chunks that each fit one storage binding; all
 * blocks of all chunks are recorded into one batch, and the result comes
 * back with one wait. {@link recordColumnLoop} records into a caller's
 * batch instead, so several loops (and the factorizations they use) can
 * share one submit and one wait.
 *
 * @module
 */

import type { ColumnPruning } from "../../engine/engine.ts";
import { CommandBatch } from "../../gpu/batch.ts";
import type { Gpu } from "../../gpu/device.ts";
import { kernelSync } from "../../gpu/kernel.ts";
import { GpuTensor, type HostArray, readMany } from "../../gpu/tensor.ts";
import { GptqConfigError, GptqShapeError } from "./errors.ts";
import type { ColumnQuantization } from "./gptq_qparams.ts";
import type { InverseHessianFactor } from "./inverse_hessian_factor.ts";
import { recordAtBUpdate } from "./matmul_at_b_update.ts";
import { roundUp } from "./panel_matrix.ts";
import { packUniform } from "./_uniform.ts";

/** SparseGPT's pruning inside the loop. */
export type { ColumnPruning };

/** Everything one run of the loop needs. */
export interface ColumnLoopInput {
  /** The weight, row-major [rows, cols], original column order. */
  readonly weight: Float32Array;
  /** [rows, cols]. */
  readonly shape: readonly [number, number];
  /** U and the column order / dead columns it was computed with. */
  readonly factor: InverseHessianFactor;
  /** Columns per block (llm-compressor default 128); a multiple of 8. */
  readonly blockSize: number;
  /** Fake quantization per column, or none (pure SparseGPT). */
  readonly quantization?: ColumnQuantization;
  /** Pruning, or none (GPTQ). */
  readonly pruning?: ColumnPruning;
  /**
   * GPTQ's zero preservation: when ≥ 5% of the weight is exactly 0, updates
   * are multiplied by upstream's `~isclose(W, 0)` (|W| > 1e-8) so a sparse
   * weight stays sparse. (SparseGPT's
   * `pruning.preserve` masks only the inter-block update, as upstream.)
   */
  readonly preserveZeros?: boolean;
  /** Upper bound on a weight chunk's bytes (tests use it to exercise chunking). */
  readonly maxChunkBytes?: number;
}

/** What the loop produces. */
export interface ColumnLoopOutput {
  /** The processed weight, row-major, original column order. */
  readonly weight: Float32Array;
  /** Σ over rows and columns of (w − q)²/d², halved (llm-compressor's "error"). */
  readonly loss: number;
  /** Upload + loop + readback, ms. */
  readonly ms: number;
  /** Flops of the inter-block updates (2·rows·Σ count·remaining). */
  readonly updateFlops: number;
}

interface Chunk {
  readonly row0: number;
  readonly rows: number;
  readonly ld: number;
  readonly wt: GpuTensor;
  readonly err: GpuTensor;
  readonly loss: GpuTensor;
  readonly nz: GpuTensor | null;
}

/**
 * A column loop recorded into a caller's batch by {@link recordColumnLoop}:
 * read `readback` (together with anything else, in one `readMany`) once
 * the batch is submitted, turn the host copies into the result with
 * `finish`, and `destroy` it in any case.
 */
export interface RecordedColumnLoop {
  /** The tensors whose host copies `finish` needs, in that order. */
  readonly readback: readonly GpuTensor[];
  /** GPU bytes the loop allocated (weight chunks, masks, error blocks, losses). */
  readonly bytes: number;
  /**
   * Builds the output from the host copies of `readback`.
   *
   * @param host the copies, in `readback`'s order
   * @returns the weight in original column order and the loss; `ms` is
   *   the time since recording began
   */
  finish(host: readonly HostArray[]): ColumnLoopOutput;
  /** Releases the loop's tensors (the factor stays); idempotent. */
  destroy(): void;
}

/**
 * Records the blocked column loop into `batch` without waiting: the weight
 * is uploaded at once, the loop's dispatches are recorded after whatever
 * the batch already holds (e.g. the factorization of `input.factor`, whose
 * `perm` and `dead` must already be final).
 *
 * @param batch the batch to record into
 * @param input weight, factor, block size, quantization and/or pruning
 * @returns the tensors to read back, how to finish, how to release
 * @throws {GptqShapeError} when the weight and the factor disagree on columns
 *   (then nothing is allocated; a later failure releases what was, once the
 *   batch is submitted)
 * @throws {GptqConfigError} for a block size the kernels cannot use
 *
 * @example
 * ```ts
 * import { CommandBatch } from "../../gpu/batch.ts";
 * import { getGpu } from "../../gpu/device.ts";
 * import { readMany } from "../../gpu/tensor.ts";
 * import { recordColumnLoop } from "./column_loop.ts";
 * import { InverseHessianFactor } from "./inverse_hessian_factor.ts";
 * const gpu = await getGpu();
 * const factor = InverseHessianFactor.identity(gpu, 8);
 * const batch = new CommandBatch(gpu);
 * const loop = recordColumnLoop(batch, {
 *   weight: new Float32Array(16).fill(1), shape: [2, 8], factor, blockSize: 8,
 *   pruning: { kind: "n:m", n: 2, m: 4, preserve: false },
 * });
 * batch.submit();
 * const out = loop.finish(await readMany([...loop.readback]));
 * console.assert(out.weight.filter((v) => v === 0).length === 8);
 * loop.destroy();
 * factor.destroy();
 * ```
 */
export function recordColumnLoop(batch: CommandBatch, input: ColumnLoopInput): RecordedColumnLoop {
  const t0 = performance.now();
  const gpu = batch.gpu;
  const [rows, cols] = input.shape;
  const { factor, blockSize: bs, quantization: quant, pruning } = input;
  if (factor.size !== cols || input.weight.length !== rows * cols) {
    throw new GptqShapeError(
      `column loop: weight [${rows}, ${cols}] (${input.weight.length} values) does not match ` +
        `a factor of ${factor.size} columns`,
    );
  }
  checkBlockSize(bs, factor, pruning);
  const u = factor.u;
  const order = u.order;
  const perm = factor.perm;
  const chunks = uploadChunks(gpu, input, order);
  const qp = quant
    ? GpuTensor.fromArray(gpu, concat(quant.effectiveScale, quant.zeroPoint), [
      2 * quant.effectiveScale.length,
    ])
    : GpuTensor.fromArray(gpu, new Float32Array(4), [4]);
  // The kernel runs whole sub-blocks of 8 columns; padding columns use slot 0.
  const slotCount = roundUp(cols, 8);
  const slotData = new Uint32Array(slotCount);
  if (quant) slotData.set(quant.columnSlot);
  const slots = GpuTensor.fromArray(gpu, slotData, [slotCount]);
  const select = GpuTensor.empty(gpu, [8], "u32");
  const hist = GpuTensor.empty(gpu, [256], "u32");
  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    for (const c of chunks) {
      c.wt.destroy();
      c.err.destroy();
      c.loss.destroy();
      c.nz?.destroy();
    }
    qp.destroy();
    slots.destroy();
    select.destroy();
    hist.destroy();
  };
  const block = kernelSync(gpu, "gptq_column_block.wgsl");
  let updateFlops = 0;
  try {
    for (let i1 = 0; i1 < cols; i1 += bs) {
      const i2 = Math.min(i1 + bs, cols);
      const count = i2 - i1;
      const p = u.panelOf(i1);
      const uRow0 = u.panelStart(p);
      const panel = u.panels[p];
      if (pruning?.kind === "unstructured") {
        recordThreshold(batch, chunks, panel, uRow0, order, i1, count, rows, pruning, select, hist);
      }
      for (const c of chunks) {
        const params = packUniform(
          [
            i1,
            count,
            c.ld,
            c.rows,
            c.row0,
            order,
            uRow0,
            quant?.kind ?? 0,
            quant?.slotRowStride ?? 0,
            quant?.rowDiv ?? 1,
            quant?.effectiveScale.length ?? 0,
            input.preserveZeros ? 1 : 0,
            pruning ? (pruning.kind === "unstructured" ? 1 : 2) : 0,
            pruning?.kind === "n:m" ? pruning.n : 0,
            pruning?.kind === "n:m" ? pruning.m : 1,
            pruning?.preserve ? 1 : 0,
          ],
          [quant?.qmin ?? 0, quant?.qmax ?? 0],
        );
        batch.dispatch(
          block,
          [{ uniform: params }, c.wt, c.err, panel, qp, slots, c.loss, c.nz ?? qp, select],
          [Math.ceil(c.rows / 64)],
          "gptq_column_block",
        );
      }
      // After the last block only zero padding is left (on both sides).
      if (i2 >= cols) continue;
      const m = roundUp(cols, 8) - i2;
      for (const c of chunks) {
        recordAtBUpdate(batch, {
          m,
          n: c.ld,
          k: count,
          a: { tensor: panel, offset: (i1 - uRow0) * order + i2, ld: order },
          b: { tensor: c.err, offset: 0, ld: c.ld },
          c: { tensor: c.wt, offset: i2 * c.ld, ld: c.ld },
          // GPTQ's preserved zeros and SparseGPT's preserved mask take no update.
          mask: c.nz ? { tensor: c.nz, offset: i2 * c.ld, ld: c.ld } : undefined,
        });
        updateFlops += 2 * m * c.rows * count;
      }
    }
  } catch (e) {
    destroy();
    throw e;
  }
  let bytes = 0;
  for (const c of chunks) {
    bytes += c.wt.byteLength + c.err.byteLength + c.loss.byteLength + (c.nz?.byteLength ?? 0);
  }
  const finish = (host: readonly HostArray[]): ColumnLoopOutput => {
    const out = new Float32Array(rows * cols);
    let loss = 0;
    chunks.forEach((c, k) => {
      const wt = host[2 * k] as Float32Array;
      const lossRows = host[2 * k + 1] as Float32Array;
      for (let r = 0; r < c.rows; r++) loss += lossRows[r];
      for (let p = 0; p < cols; p++) {
        const col = perm ? perm[p] : p;
        const src = p * c.ld;
        for (let r = 0; r < c.rows; r++) out[(c.row0 + r) * cols + col] = wt[src + r];
      }
    });
    return { weight: out, loss, ms: performance.now() - t0, updateFlops };
  };
  return { readback: chunks.flatMap((c) => [c.wt, c.loss]), bytes, finish, destroy };
}

/**
 * Runs the blocked column loop: {@link recordColumnLoop} into a batch of
 * its own, one submit, one `readMany`.
 *
 * @param gpu the device
 * @param input weight, factor, block size, quantization and/or pruning
 * @returns the new weight and the loss
 * @throws {GptqShapeError} when the weight and the factor disagree on columns
 * @throws {GptqConfigError} for a block size the kernels cannot use
 *
 * @example
 * ```ts
 * import { getGpu } from "../../gpu/device.ts";
 * import { runColumnLoop } from "./column_loop.ts";
 * import { InverseHessianFactor } from "./inverse_hessian_factor.ts";
 * const gpu = await getGpu();
 * const factor = InverseHessianFactor.identity(gpu, 8);
 * const out = await runColumnLoop(gpu, {
 *   weight: new Float32Array(16).fill(1), shape: [2, 8], factor, blockSize: 8,
 *   pruning: { kind: "n:m", n: 2, m: 4, preserve: false },
 * });
 * console.assert(out.weight.filter((v) => v === 0).length === 8);
 * factor.destroy();
 * ```
 */
export async function runColumnLoop(gpu: Gpu, input: ColumnLoopInput): Promise<ColumnLoopOutput> {
  const batch = new CommandBatch(gpu);
  let loop: RecordedColumnLoop | undefined;
  try {
    loop = recordColumnLoop(batch, input);
    return loop.finish(await readMany([...loop.readback]));
  } finally {
    batch.submit();
    loop?.destroy();
  }
}

function checkBlockSize(
  bs: number,
  factor: InverseHessianFactor,
  pruning: ColumnPruning | undefined,
): void {
  if (!Number.isInteger(bs) || bs < 8 || bs % 8 !== 0) {
    throw new GptqConfigError(`block_size must be a positive multiple of 8, got ${bs}`);
  }
  const u = factor.u;
  if (u.panels.length > 1 && u.rowsPerPanel % bs !== 0) {
    throw new GptqConfigError(
      `block_size ${bs} does not divide the inverse Hessian's panel height ${u.rowsPerPanel}; ` +
        `compute the factor with rowAlign a multiple of ${bs}`,
    );
  }
  if (pruning && bs > 256) {
    throw new GptqConfigError(`SparseGPT supports block_size ≤ 256, got ${bs}`);
  }
  if (pruning?.kind === "n:m") {
    const { n, m } = pruning;
    // The kernel keeps 8 columns in registers: a window must sit inside them or start them.
    const fits = m >= 1 && m <= 32 && (8 % m === 0 || m % 8 === 0) && bs % m === 0;
    if (!fits || !(n >= 0 && n <= m)) {
      throw new GptqConfigError(
        `mask structure ${n}:${m}: needs 0 ≤ N ≤ M, M one of 1, 2, 4, 8, 16, 24, 32 ` +
          `and M dividing block_size ${bs}`,
      );
    }
  }
}

/** Wᵀ chunks (columns in processing order, dead ones zeroed), plus the nonzero masks. */
function uploadChunks(gpu: Gpu, input: ColumnLoopInput, order: number): Chunk[] {
  const [rows, cols] = input.shape;
  const { weight, factor } = input;
  const needNz = input.preserveZeros === true || input.pruning?.preserve === true;
  // GPTQ masks with `~torch.isclose(W, 0)` (default atol 1e-8), SparseGPT with `W != 0`.
  const zeroBelow = input.preserveZeros === true ? 1e-8 : 0;
  const limit = Math.min(
    gpu.limits.maxStorageBufferBindingSize,
    gpu.limits.maxBufferSize,
    input.maxChunkBytes ?? Infinity,
  );
  const maxRows = Math.floor(limit / (order * 4) / 8) * 8;
  if (maxRows < 8) {
    throw new GptqShapeError(`column loop: 8 rows of ${order} columns exceed one storage binding`);
  }
  const count = Math.ceil(rows / maxRows);
  const perChunk = Math.ceil(rows / count);
  const chunks: Chunk[] = [];
  for (let row0 = 0; row0 < rows; row0 += perChunk) {
    const n = Math.min(perChunk, rows - row0);
    const ld = roundUp(n, 8);
    const wt = new Float32Array(order * ld);
    const nz = needNz ? new Float32Array(order * ld) : null;
    for (let p = 0; p < cols; p++) {
      const col = factor.perm ? factor.perm[p] : p;
      // Dead columns are zeroed before the zero mask is taken (SparseGPT's
      // order; for GPTQ U decouples dead columns, so the order is moot).
      if (factor.dead[col] === 1) continue;
      const dst = p * ld;
      for (let r = 0; r < n; r++) {
        const v = weight[(row0 + r) * cols + col];
        wt[dst + r] = v;
        if (nz && Math.abs(v) > zeroBelow) nz[dst + r] = 1;
      }
    }
    chunks.push({
      row0,
      rows: n,
      ld,
      wt: GpuTensor.fromArray(gpu, wt, [order, ld]),
      err: GpuTensor.empty(gpu, [input.blockSize, ld]),
      loss: GpuTensor.empty(gpu, [ld]),
      nz: nz ? GpuTensor.fromArray(gpu, nz, [order, ld]) : null,
    });
  }
  return chunks;
}

/** The 4-pass radix select of one block's threshold over every chunk. */
function recordThreshold(
  batch: CommandBatch,
  chunks: readonly Chunk[],
  panel: GpuTensor,
  uRow0: number,
  order: number,
  i1: number,
  count: number,
  rows: number,
  pruning: Extract<ColumnPruning, { kind: "unstructured" }>,
  select: GpuTensor,
  hist: GpuTensor,
): void {
  const gpu = batch.gpu;
  const file = "sparsegpt_threshold_select.wgsl";
  const k = Math.floor(rows * count * pruning.sparsity);
  const uniform = (pass: number, c?: Chunk) =>
    packUniform([
      i1,
      count,
      c?.ld ?? 0,
      c?.rows ?? 0,
      order,
      uRow0,
      pass,
      pruning.preserve ? 1 : 0,
      k,
    ]);
  batch.dispatch(
    kernelSync(gpu, file, { entryPoint: "reset" }),
    [{ uniform: uniform(0) }, select, hist],
    [1],
    "sparsegpt_threshold_reset",
  );
  const histogram = kernelSync(gpu, file, { entryPoint: "histogram" });
  const digit = kernelSync(gpu, file, { entryPoint: "select_digit" });
  for (let pass = 0; pass < 4; pass++) {
    for (const c of chunks) {
      batch.dispatch(
        histogram,
        [{ uniform: uniform(pass, c) }, select, hist, c.wt, panel, c.nz ?? c.wt],
        [Math.ceil(c.rows / 64)],
        "sparsegpt_threshold_histogram",
      );
    }
    batch.dispatch(
      digit,
      [{ uniform: uniform(pass) }, select, hist],
      [1],
      "sparsegpt_threshold_select_digit",
    );
  }
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
