/**
 * GPTQ's and SparseGPT's dense linear algebra on a WebGPU device
 * ({@link SecondOrderOps} of the WebGPU engine), and the scheduler that
 * keeps it to few device polls (each awaited readback costs ≈11 ms of
 * polling on llvmpipe however little work is pending):
 *
 * - ops record into the engine's current batch and never wait: the
 *   factorization (a permuted, dampened gather, one Cholesky, one
 *   triangular inverse and a reversal; matrix_permute_gather.wgsl,
 *   cholesky*.wgsl, triangular_inverse*.wgsl) and the loops on its U
 *   (sparsegpt_threshold_select.wgsl, gptq_column_block.wgsl,
 *   matmul_at_b_update.wgsl) are recorded back to back; a failed pivot
 *   only sets the factor's sticky status, read with the loop's results —
 *   the algorithm retries with more dampening from there (speculation);
 * - reads issued while a task runs are coalesced: every read requested
 *   before the event loop turns goes out in one `readMany` (one poll);
 * - {@link SecondOrderOps.runConcurrently} starts the tasks of a wave
 *   together, so a layer's diagonals come back in one poll and its
 *   factorizations and loops in another; a wave closes before its
 *   estimated bytes exceed {@link SECOND_ORDER_WAVE_BYTES}.
 *
 * The weight of a loop lives transposed (Wᵀ, processing order) in row
 * chunks that each fit one storage binding.
 *
 * @module
 */

import type { CommandBatch } from "../gpu/batch.ts";
import type { Gpu } from "../gpu/device.ts";
import { kernelSync } from "../gpu/kernel.ts";
import { GpuTensor, type HostArray, readMany } from "../gpu/tensor.ts";
import {
  type CholeskyScratch,
  createCholeskyScratch,
  createFactorStatus,
  recordCholesky,
} from "./webgpu/second_order/cholesky.ts";
import { GptqConfigError, GptqShapeError } from "../modifiers/gptq/errors.ts";
import { HessianAccumulator } from "./webgpu/second_order/hessian_accumulator.ts";
import { recordAtBUpdate } from "./webgpu/second_order/matmul_at_b_update.ts";
import { lcm, PanelMatrix, roundUp } from "./webgpu/second_order/panel_matrix.ts";
import {
  GATHER_NONE,
  recordDiagonal,
  recordIdentity,
  recordPermuteGather,
} from "./webgpu/second_order/panel_ops.ts";
import {
  gpuOutputSquareSum,
  gpuReconstructionErrors,
  RECONSTRUCTION_CHUNK_BYTES,
} from "./webgpu/second_order/reconstruction_errors.ts";
import { accumulatorOf, GpuRunningHessian } from "./webgpu/second_order/running_hessian.ts";
import {
  createTriangularInverseScratch,
  recordLowerTriangularInverse,
  type TriangularInverseScratch,
} from "./webgpu/second_order/triangular_inverse.ts";
import { packUniform } from "./webgpu/second_order/_uniform.ts";
import type {
  ColumnLoop,
  ColumnLoopOutput,
  ColumnLoopWork,
  ColumnPruning,
  FactorPlan,
  InverseFactor,
  SecondOrderOps,
  SecondOrderTask,
} from "./engine.ts";

/** Default bound on the estimated bytes of one wave of {@link SecondOrderOps.runConcurrently}. */
export const SECOND_ORDER_WAVE_BYTES = 256 * 2 ** 20;

/** What the ops need of the engine: the device and its current batch. */
export interface WebGpuBatchSource {
  /** The device. */
  readonly gpu: Gpu;
  /** The batch ops record into now. */
  readonly batch: CommandBatch;
}

/** Options of {@link webGpuSecondOrder}. */
export interface WebGpuSecondOrderOptions {
  /** Bound on one wave's estimated bytes (default {@link SECOND_ORDER_WAVE_BYTES}). */
  readonly waveBytes?: number;
  /** Bound on a weight chunk's bytes (tests: exercise chunking). */
  readonly maxChunkBytes?: number;
  /** Bound on a panel of U's bytes (tests: exercise multi-panel factors). */
  readonly maxPanelBytes?: number;
  /**
   * Bound on a row chunk's bytes in `reconstructionErrors` (default
   * {@link RECONSTRUCTION_CHUNK_BYTES}; tests: exercise chunking).
   */
  readonly reconstructionChunkBytes?: number;
}

/**
 * The WebGPU engine's second-order ops over `source`'s device and batch.
 *
 * @param source the engine (its device and current batch)
 * @param options wave budget, chunk and panel bounds
 * @returns the ops
 * @example
 * ```ts ignore
 * const ops = webGpuSecondOrder(engine);
 * const [r] = await ops.runConcurrently([{ bytes: 0, run: () => quantizeWeight(ops, w, shape, h, args) }]);
 * ```
 */
export function webGpuSecondOrder(
  source: WebGpuBatchSource,
  options: WebGpuSecondOrderOptions = {},
): SecondOrderOps {
  const reader = new CoalescedReader();
  // source.gpu is read at each call: an engine may hand itself over before it is complete.
  return {
    hessian: (h, n) => HessianAccumulator.fromMatrix(source.gpu, h, n, 1),
    runningHessian: (columns) => GpuRunningHessian.create(source, columns),
    diagonal: async (h) => {
      const acc = accumulatorOf(h);
      const batch = source.batch;
      acc.recordSymmetrize(batch);
      const d = recordDiagonal(batch, acc.matrix);
      try {
        const [host] = await reader.read([d]);
        return (host as Float32Array).slice(0, acc.columns);
      } finally {
        d.destroy();
      }
    },
    inverseFactor: (h, plan) => {
      const f = recordInverseFactor(source.batch, accumulatorOf(h), plan, options);
      return new GpuFactor(h.columns, f.u, f.status);
    },
    identityFactor: (n, blockSize) => {
      const u = PanelMatrix.create(source.gpu, n, {
        ...layoutOf(blockSize, options),
        zeroed: false,
      });
      recordIdentity(source.batch, u).destroy();
      return new GpuFactor(n, u, null);
    },
    columnLoop: (u, w, shape, blockSize, work) =>
      GpuLoop.create(source.gpu, factorOf(u), w, shape, blockSize, work, options.maxChunkBytes),
    columnBlock: (loop, i1, i2) => loopOf(loop).recordBlock(source.batch, i1, i2),
    trailingUpdate: (loop, i1, i2) => loopOf(loop).recordTrailing(source.batch, i1, i2),
    readLoop: async (loop) => {
      const l = loopOf(loop);
      try {
        return l.finish(await reader.read(l.readback));
      } finally {
        l.destroy();
      }
    },
    runConcurrently: (tasks, budgetBytes) =>
      inWaves(tasks, budgetBytes ?? options.waveBytes ?? SECOND_ORDER_WAVE_BYTES),
    reconstructionErrors: (h, original, shape, candidates) =>
      gpuReconstructionErrors(
        accumulatorOf(h),
        original,
        shape,
        candidates,
        options.reconstructionChunkBytes ?? RECONSTRUCTION_CHUNK_BYTES,
        (tensors) => reader.read(tensors),
      ),
    outputSquareSum: (h, m, shape) =>
      gpuOutputSquareSum(
        accumulatorOf(h),
        m,
        shape,
        options.reconstructionChunkBytes ?? RECONSTRUCTION_CHUNK_BYTES,
        (tensors) => reader.read(tensors),
      ),
  };
}

function factorOf(u: InverseFactor): GpuFactor {
  if (!(u instanceof GpuFactor)) throw new TypeError("WebGPU second-order ops: a foreign factor");
  return u;
}

function loopOf(l: ColumnLoop): GpuLoop {
  if (!(l instanceof GpuLoop)) throw new TypeError("WebGPU second-order ops: a foreign loop");
  return l;
}

/** U's panel layout: panel heights a multiple of the block size (and of 128). */
function layoutOf(blockSize: number, options: Pick<WebGpuSecondOrderOptions, "maxPanelBytes">) {
  return { rowAlign: lcm(128, blockSize), maxPanelBytes: options.maxPanelBytes };
}

/**
 * Runs tasks in waves: each wave's tasks start together (their reads
 * coalesce), a wave holds at least one task and closes before its bytes
 * would exceed `budget`. Every task of a wave settles before the first
 * failure is rethrown.
 */
async function inWaves<T>(tasks: readonly SecondOrderTask<T>[], budget: number): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  while (next < tasks.length) {
    const start = next;
    let bytes = tasks[next++].bytes;
    while (next < tasks.length && bytes + tasks[next].bytes <= budget) bytes += tasks[next++].bytes;
    const settled = await Promise.allSettled(tasks.slice(start, next).map((t) => t.run()));
    settled.forEach((s, i) => {
      if (s.status === "rejected") throw s.reason;
      out[start + i] = s.value;
    });
  }
  return out;
}

/** Every read requested before the event loop turns, in one `readMany`. */
class CoalescedReader {
  #pending: {
    tensors: readonly GpuTensor[];
    resolve: (host: HostArray[]) => void;
    reject: (e: unknown) => void;
  }[] = [];

  read(tensors: readonly GpuTensor[]): Promise<HostArray[]> {
    return new Promise((resolve, reject) => {
      if (this.#pending.length === 0) setTimeout(() => this.#flush(), 0);
      this.#pending.push({ tensors, resolve, reject });
    });
  }

  async #flush(): Promise<void> {
    const pending = this.#pending;
    this.#pending = [];
    try {
      const host = await readMany(pending.flatMap((p) => p.tensors));
      let at = 0;
      for (const p of pending) {
        p.resolve(host.slice(at, at + p.tensors.length));
        at += p.tensors.length;
      }
    } catch (e) {
      for (const p of pending) p.reject(e);
    }
  }
}

/** U in row panels, and the sticky status of its attempt (null: U = I, never fails). */
class GpuFactor implements InverseFactor {
  constructor(
    readonly columns: number,
    readonly u: PanelMatrix,
    readonly status: GpuTensor | null,
  ) {}

  destroy(): void {
    this.u.destroy();
    this.status?.destroy();
  }
}

/**
 * Records U of J·(P·H·Pᵀ ⊕ I + damp·I)·J = L̃·L̃ᵀ as J·L̃⁻¹·J: the gather
 * (dead columns' diagonal 1 — the kernel finds them — then the dampening),
 * the Cholesky, the triangular inverse and the reversal, into `batch`, with
 * no wait. The scratch is released at once (it returns to the pool when
 * the batch is submitted, which this does).
 *
 * @param batch the batch to record into
 * @param hessian the accumulated Hessian (mirrored into this batch if not yet)
 * @param plan order, dampening, the loops' block size (U's panels are a multiple of it and of 128)
 * @param options panel bound
 * @returns U and the attempt's sticky status (`[failed, pivot]`, see cholesky.ts)
 * @example
 * ```ts ignore
 * const { u, status } = recordInverseFactor(batch, h, { perm: null, dead, damp: 0.01, blockSize: 128 }, {});
 * ```
 */
export function recordInverseFactor(
  batch: CommandBatch,
  hessian: HessianAccumulator,
  plan: FactorPlan,
  options: Pick<WebGpuSecondOrderOptions, "maxPanelBytes">,
): { readonly u: PanelMatrix; readonly status: GpuTensor } {
  const gpu = batch.gpu;
  const n = hessian.columns;
  const layout = layoutOf(plan.blockSize, options);
  const a = PanelMatrix.create(gpu, n, { ...layout, zeroed: false });
  const order = a.order;
  // Output row i' of the gather reads H row perm[order-1-i'], padding rows first.
  const prepare = new Uint32Array(order).fill(GATHER_NONE);
  for (let i = order - n; i < order; i++) {
    const pos = order - 1 - i;
    prepare[i] = plan.perm ? plan.perm[pos] : pos;
  }
  const reverse = Uint32Array.from({ length: order }, (_, i) => order - 1 - i);
  const status = createFactorStatus(gpu);
  const prepareT = GpuTensor.fromArray(gpu, prepare, [order]);
  const reverseT = GpuTensor.fromArray(gpu, reverse, [order]);
  const chol: CholeskyScratch = createCholeskyScratch(gpu, order, status);
  const inv: TriangularInverseScratch = createTriangularInverseScratch(gpu, order, status);
  const b = PanelMatrix.create(gpu, n, { ...layout, zeroed: false });
  try {
    hessian.recordSymmetrize(batch);
    recordPermuteGather(batch, hessian.matrix, a, prepareT, { damp: plan.damp });
    recordCholesky(batch, a, chol);
    recordIdentity(batch, b).destroy();
    recordLowerTriangularInverse(batch, a, b, inv);
    recordPermuteGather(batch, b, a, reverseT);
  } catch (e) {
    a.destroy();
    status.destroy();
    throw e;
  } finally {
    for (const t of [prepareT, reverseT, chol.lkk, chol.panelT, inv.panelT, inv.blockRow]) {
      t.destroy();
    }
    b.destroy();
  }
  // Lets the scratch go back to the pool before the next factor is recorded.
  batch.submit();
  return { u: a, status };
}

/** One row chunk of Wᵀ with its error block, per-row losses and zero mask. */
interface Chunk {
  readonly row0: number;
  readonly rows: number;
  readonly ld: number;
  readonly wt: GpuTensor;
  readonly err: GpuTensor;
  readonly loss: GpuTensor;
  readonly nz: GpuTensor | null;
}

/** A weight in the loop: Wᵀ chunks on the device, the loop's constants, its factor. */
class GpuLoop implements ColumnLoop {
  private constructor(
    readonly rows: number,
    readonly cols: number,
    readonly factor: GpuFactor,
    readonly work: ColumnLoopWork,
    readonly chunks: readonly Chunk[],
    readonly qp: GpuTensor,
    readonly slots: GpuTensor,
    readonly select: GpuTensor,
    readonly hist: GpuTensor,
  ) {}

  static create(
    gpu: Gpu,
    factor: GpuFactor,
    w: Float32Array,
    shape: readonly [number, number],
    blockSize: number,
    work: ColumnLoopWork,
    maxChunkBytes: number | undefined,
  ): GpuLoop {
    const [rows, cols] = shape;
    if (factor.columns !== cols || w.length !== rows * cols) {
      throw new GptqShapeError(
        `column loop: weight [${rows}, ${cols}] (${w.length} values) does not match ` +
          `a factor of ${factor.columns} columns`,
      );
    }
    checkBlockSize(blockSize, factor.u, work.pruning);
    const quant = work.quantization;
    const qp = GpuTensor.fromArray(
      gpu,
      quant ? concat(quant.effectiveScale, quant.zeroPoint) : new Float32Array(4),
      [quant ? 2 * quant.effectiveScale.length : 4],
    );
    // The kernel runs whole sub-blocks of 8 columns; padding columns use slot 0.
    const slotData = new Uint32Array(roundUp(cols, 8));
    if (quant) slotData.set(quant.columnSlot);
    return new GpuLoop(
      rows,
      cols,
      factor,
      work,
      uploadChunks(gpu, w, shape, factor.u.order, blockSize, work.nonZero, maxChunkBytes),
      qp,
      GpuTensor.fromArray(gpu, slotData, [slotData.length]),
      GpuTensor.empty(gpu, [8], "u32"),
      GpuTensor.empty(gpu, [256], "u32"),
    );
  }

  /** The block's threshold (unstructured pruning) and the in-block loop of every chunk. */
  recordBlock(batch: CommandBatch, i1: number, i2: number): void {
    const u = this.factor.u;
    const { quantization: quant, pruning } = this.work;
    const p = u.panelOf(i1);
    const uRow0 = u.panelStart(p);
    const panel = u.panels[p];
    if (pruning?.kind === "unstructured") this.#recordThreshold(batch, i1, i2 - i1, pruning);
    const kernel = kernelSync(batch.gpu, "gptq_column_block.wgsl");
    for (const c of this.chunks) {
      const params = packUniform(
        [
          i1,
          i2 - i1,
          c.ld,
          c.rows,
          c.row0,
          u.order,
          uRow0,
          quant?.kind ?? 0,
          quant?.slotRowStride ?? 0,
          quant?.rowDiv ?? 1,
          quant?.effectiveScale.length ?? 0,
          this.work.maskInBlock && c.nz !== null ? 1 : 0,
          pruning ? (pruning.kind === "unstructured" ? 1 : 2) : 0,
          pruning?.kind === "n:m" ? pruning.n : 0,
          pruning?.kind === "n:m" ? pruning.m : 1,
          pruning?.preserve ? 1 : 0,
        ],
        [quant?.qmin ?? 0, quant?.qmax ?? 0],
      );
      batch.dispatch(
        kernel,
        [
          { uniform: params },
          c.wt,
          c.err,
          panel,
          this.qp,
          this.slots,
          c.loss,
          c.nz ?? this.qp,
          this
            .select,
        ],
        [Math.ceil(c.rows / 64)],
        "gptq_column_block",
      );
    }
  }

  /** W[:, i2:] −= Err·U[i1:i2, i2:] per chunk (after the last block only padding is left). */
  recordTrailing(batch: CommandBatch, i1: number, i2: number): void {
    if (i2 >= this.cols) return;
    const u = this.factor.u;
    const p = u.panelOf(i1);
    const uRow0 = u.panelStart(p);
    const order = u.order;
    const m = roundUp(this.cols, 8) - i2;
    for (const c of this.chunks) {
      recordAtBUpdate(batch, {
        m,
        n: c.ld,
        k: i2 - i1,
        a: { tensor: u.panels[p], offset: (i1 - uRow0) * order + i2, ld: order },
        b: { tensor: c.err, offset: 0, ld: c.ld },
        c: { tensor: c.wt, offset: i2 * c.ld, ld: c.ld },
        // GPTQ's preserved zeros and SparseGPT's preserved mask take no update.
        mask: c.nz ? { tensor: c.nz, offset: i2 * c.ld, ld: c.ld } : undefined,
      });
    }
  }

  /** The tensors {@link GpuLoop.finish} needs, in its order. */
  get readback(): GpuTensor[] {
    const status = this.factor.status;
    return [...(status ? [status] : []), ...this.chunks.flatMap((c) => [c.wt, c.loss])];
  }

  /** The weight (row-major, processing order), the loss and the status from the host copies. */
  finish(host: readonly HostArray[]): ColumnLoopOutput {
    const { rows, cols } = this;
    const first = this.factor.status ? 1 : 0;
    const ok = first === 0 || (host[0] as Uint32Array)[0] === 0;
    const weight = new Float32Array(rows * cols);
    let loss = 0;
    this.chunks.forEach((c, k) => {
      const wt = host[first + 2 * k] as Float32Array;
      const lossRows = host[first + 2 * k + 1] as Float32Array;
      for (let r = 0; r < c.rows; r++) loss += lossRows[r];
      for (let p = 0; p < cols; p++) {
        const src = p * c.ld;
        for (let r = 0; r < c.rows; r++) weight[(c.row0 + r) * cols + p] = wt[src + r];
      }
    });
    return { weight, loss, ok };
  }

  destroy(): void {
    for (const c of this.chunks) {
      c.wt.destroy();
      c.err.destroy();
      c.loss.destroy();
      c.nz?.destroy();
    }
    for (const t of [this.qp, this.slots, this.select, this.hist]) t.destroy();
  }

  /** The 4-pass radix select of one block's threshold over every chunk. */
  #recordThreshold(
    batch: CommandBatch,
    i1: number,
    count: number,
    pruning: Extract<ColumnPruning, { kind: "unstructured" }>,
  ): void {
    const gpu = batch.gpu;
    const u = this.factor.u;
    const p = u.panelOf(i1);
    const uRow0 = u.panelStart(p);
    const panel = u.panels[p];
    const file = "sparsegpt_threshold_select.wgsl";
    const k = Math.floor(this.rows * count * pruning.sparsity);
    const { select, hist } = this;
    const uniform = (pass: number, c?: Chunk) =>
      packUniform([
        i1,
        count,
        c?.ld ?? 0,
        c?.rows ?? 0,
        u.order,
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
      for (const c of this.chunks) {
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
}

function checkBlockSize(bs: number, u: PanelMatrix, pruning: ColumnPruning | undefined): void {
  if (!Number.isInteger(bs) || bs < 8 || bs % 8 !== 0) {
    throw new GptqConfigError(`block_size must be a positive multiple of 8, got ${bs}`);
  }
  if (u.panels.length > 1 && u.rowsPerPanel % bs !== 0) {
    throw new GptqConfigError(
      `block_size ${bs} does not divide the inverse Hessian's panel height ${u.rowsPerPanel}`,
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

/** Wᵀ chunks (processing order) of at most one storage binding each, with their zero masks. */
function uploadChunks(
  gpu: Gpu,
  w: Float32Array,
  shape: readonly [number, number],
  order: number,
  blockSize: number,
  nonZero: Uint8Array | null,
  maxChunkBytes: number | undefined,
): Chunk[] {
  const [rows, cols] = shape;
  const limit = Math.min(
    gpu.limits.maxStorageBufferBindingSize,
    gpu.limits.maxBufferSize,
    maxChunkBytes ?? Infinity,
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
    const nz = nonZero ? new Float32Array(order * ld) : null;
    for (let p = 0; p < cols; p++) {
      const dst = p * ld;
      for (let r = 0; r < n; r++) {
        const src = (row0 + r) * cols + p;
        wt[dst + r] = w[src];
        if (nz) nz[dst + r] = nonZero![src];
      }
    }
    chunks.push({
      row0,
      rows: n,
      ld,
      wt: GpuTensor.fromArray(gpu, wt, [order, ld]),
      err: GpuTensor.empty(gpu, [blockSize, ld]),
      loss: GpuTensor.empty(gpu, [ld]),
      nz: nz ? GpuTensor.fromArray(gpu, nz, [order, ld]) : null,
    });
  }
  return chunks;
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
