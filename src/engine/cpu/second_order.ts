/**
 * GPTQ's and SparseGPT's dense linear algebra on the CPU, in float32
 * storage ({@link SecondOrderOps} of the CPU engine):
 *
 * - the inverse-Hessian factor as the WGSL path computes it: with J the
 *   reversal permutation, `J·H·J = L·Lᵀ` (blocked Cholesky) gives
 *   `H = V·Vᵀ` with `V = J·L·J` upper, so `H⁻¹ = V⁻ᵀ·V⁻¹` and
 *   `U = V⁻¹ = J·L⁻¹·J` — the same U as upstream's three factorizations
 *   (Cholesky factors with a positive diagonal are unique) for a third of
 *   the flops. Both are blocked by panels of 128: the panel solves and
 *   trailing updates are SIMD products (`gemm.ts`), the 128 × 128 diagonal
 *   blocks' Cholesky factor and inverse the kernels' float64 loops
 *   (`choleskyBlock`, `lowerTriangularInverse`). Both work in
 *   place in the one n × n array that becomes U, and their products run in
 *   blocks of about 4 MiB, so a factor holds one Hessian-sized array besides
 *   its input (and the kernels' memory does not grow with n²);
 * - the in-block column loop (sequential per row, float64 arithmetic
 *   rounded to float32 on every store): on the kernels for an integer grid
 *   without pruning and for N:M pruning without quantization
 *   ({@link kernelColumnBlock}), else in TypeScript;
 * - the trailing update `W[:, i2:] −= Err·U[i1:i2, i2:]` as one SIMD product.
 *
 * Results agree with the float64 reference (src/modifiers/gptq/reference.ts)
 * to float32 rounding; a rounding decision that sits on a tie may go the
 * other way, as on the GPU.
 *
 * @module
 */

import { roundToF8E4M3 } from "../../io/floats.ts";
import { castToFp4 } from "../../quant/fp4.ts";
import { roundHalfEven } from "../../quant/round_half_even.ts";
import type {
  ColumnLoop,
  ColumnLoopOutput,
  ColumnLoopWork,
  ColumnQuantization,
  FactorPlan,
  InverseFactor,
  SecondOrderHessian,
  SecondOrderOps,
  SecondOrderTask,
} from "../engine.ts";
import {
  choleskyBlock,
  COLUMN_BLOCK_MAX_COUNT,
  gptqColumnBlock,
  type IntColumnBlock,
  lowerTriangularInverse,
  matmul,
  matmulTransposed,
  type PruneColumnBlock,
  sparsegptColumnBlock,
} from "./gemm.ts";
import { CpuHessian, cpuOutputSquareSum, cpuReconstructionErrors } from "./hessian.ts";
import { KC } from "./_gemm_layout.ts";

/** Columns per panel of the blocked factorizations. */
const PANEL = 128;

/** A host Hessian. */
class HostHessian implements SecondOrderHessian {
  constructor(readonly columns: number, readonly data: Float32Array) {}
  destroy(): void {}
}

/** U computed eagerly; null when the attempt failed. */
class HostFactor implements InverseFactor {
  constructor(readonly columns: number, public u: Float32Array | null) {}
  destroy(): void {
    this.u = null;
  }
}

/** A weight in the column loop: the host array itself, its U and the block's errors. */
class HostLoop implements ColumnLoop {
  loss = 0;
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly w: Float32Array,
    readonly u: Float32Array | null,
    readonly err: Float32Array,
    readonly work: ColumnLoopWork,
  ) {}
}

/**
 * One block `[i1, i2)` of the column loop over a host weight `w`
 * `[rows, cols]` (row-major, processing order) with U `[cols, cols]`.
 */
export interface HostColumnBlock extends ColumnLoopWork {
  /** The weight, modified in place. */
  readonly w: Float32Array;
  /** Rows of w. */
  readonly rows: number;
  /** Columns of w (and the order of U). */
  readonly cols: number;
  /** U, upper triangular, row-major. */
  readonly u: Float32Array;
  /** First column of the block. */
  readonly i1: number;
  /** One past its last column. */
  readonly i2: number;
  /** Written: the scaled errors `(w − q) / U[i, i]`, `[rows, i2 − i1]`. */
  readonly err: Float32Array;
}

function hostOf<T>(x: unknown, type: new (...args: never[]) => T, what: string): T {
  if (!(x instanceof type)) throw new TypeError(`CPU second-order ops: ${what} of another engine`);
  return x;
}

/** The host matrix of a Hessian from {@link CPU_SECOND_ORDER}: an uploaded or a running one. */
function hostHessian(h: SecondOrderHessian): { columns: number; data: Float32Array } {
  return h instanceof CpuHessian
    ? { columns: h.columns, data: h.matrix }
    : hostOf(h, HostHessian, "a Hessian");
}

function blockOf(loop: ColumnLoop, i1: number, i2: number): HostColumnBlock | null {
  const l = hostOf(loop, HostLoop, "a column loop");
  // A failed factor: nothing to compute, the read says so.
  if (l.u === null) return null;
  return { ...l.work, w: l.w, rows: l.rows, cols: l.cols, u: l.u, i1, i2, err: l.err };
}

/**
 * H' = H[perm][:, perm] with dead columns' diagonal 1, plus `damp` on the
 * diagonal (float32, as torch).
 */
function dampedOrdered(h: Float32Array, n: number, plan: FactorPlan): Float32Array {
  const { perm, dead, damp } = plan;
  const out = new Float32Array(n * n);
  if (perm === null) out.set(h.subarray(0, n * n));
  else {
    for (let i = 0; i < n; i++) {
      const src = perm[i] * n;
      const row = i * n;
      for (let j = 0; j < n; j++) out[row + j] = h[src + perm[j]];
    }
  }
  for (let i = 0; i < n; i++) {
    out[i * n + i] = (dead[perm ? perm[i] : i] ? 1 : out[i * n + i]) + damp;
  }
  return out;
}

/**
 * The CPU engine's second-order ops: everything computed eagerly on host
 * arrays (a failed factorization leaves U null and the loops on it idle),
 * tasks run one after another.
 *
 * @example
 * ```ts
 * import { CPU_SECOND_ORDER as ops } from "./second_order.ts";
 * const h = ops.hessian(new Float32Array([4, 0, 0, 1]), 2);
 * const u = ops.inverseFactor(h, { perm: null, dead: new Uint8Array(2), damp: 0, blockSize: 2 });
 * const loop = ops.columnLoop(u, new Float32Array([1, 2]), [1, 2], 2, { nonZero: null, maskInBlock: false });
 * const out = await ops.readLoop(loop);
 * console.assert(out.ok && out.loss === 0);
 * ```
 */
export const CPU_SECOND_ORDER: SecondOrderOps = Object.freeze({
  hessian: (h: Float32Array, n: number) => new HostHessian(n, h),
  runningHessian: (columns: number) => new CpuHessian(columns),
  diagonal: (h: SecondOrderHessian) => {
    const { columns: n, data } = hostHessian(h);
    return Promise.resolve(Float32Array.from({ length: n }, (_, i) => data[i * n + i]));
  },
  inverseFactor: (h: SecondOrderHessian, plan: FactorPlan) => {
    const { columns: n, data } = hostHessian(h);
    return new HostFactor(n, cpuInverseFactor(dampedOrdered(data, n, plan), n));
  },
  identityFactor: (n: number) => {
    const u = new Float32Array(n * n);
    for (let i = 0; i < n; i++) u[i * n + i] = 1;
    return new HostFactor(n, u);
  },
  columnLoop: (
    u: InverseFactor,
    w: Float32Array,
    shape: readonly [number, number],
    blockSize: number,
    work: ColumnLoopWork,
  ) => {
    const [rows, cols] = shape;
    const f = hostOf(u, HostFactor, "a factor");
    const err = new Float32Array(rows * Math.min(blockSize, cols));
    return new HostLoop(rows, cols, w, f.u, err, work);
  },
  columnBlock: (loop: ColumnLoop, i1: number, i2: number) => {
    const block = blockOf(loop, i1, i2);
    if (block === null) return;
    (loop as HostLoop).loss += columnBlockOnKernels(block)
      ? kernelColumnBlock(block)
      : cpuColumnBlock(block);
  },
  trailingUpdate: (loop: ColumnLoop, i1: number, i2: number) => {
    const block = blockOf(loop, i1, i2);
    if (block !== null) cpuTrailingUpdate(block);
  },
  readLoop: (loop: ColumnLoop): Promise<ColumnLoopOutput> => {
    const l = hostOf(loop, HostLoop, "a column loop");
    return Promise.resolve({ weight: l.w, loss: l.loss, ok: l.u !== null });
  },
  runConcurrently: async <T>(tasks: readonly SecondOrderTask<T>[]): Promise<T[]> => {
    const out: T[] = [];
    for (const t of tasks) out.push(await t.run());
    return out;
  },
  reconstructionErrors: (
    h: SecondOrderHessian,
    original: Float32Array,
    shape: readonly [number, number],
    candidates: readonly Float32Array[],
  ) => Promise.resolve(cpuReconstructionErrors(hostHessian(h).data, original, shape, candidates)),
  outputSquareSum: (h: SecondOrderHessian, m: Float32Array, shape: readonly [number, number]) => {
    try {
      return Promise.resolve(cpuOutputSquareSum(hostHessian(h).data, m, shape));
    } catch (e) {
      return Promise.reject(e);
    }
  },
});

/**
 * U upper with H⁻¹ = UᵀU, or null when H is not (numerically) positive definite.
 *
 * @param h symmetric `[n, n]`, row-major (not modified)
 * @param n the order
 * @param blockFloats about how many floats one block of the products may
 *   hold (default 1 Mi, 4 MiB); the result does not depend on it (tests use
 *   a small one to prove that)
 * @returns U row-major (zeros below the diagonal), or null
 * @example
 * ```ts
 * import { cpuInverseFactor } from "./second_order.ts";
 * cpuInverseFactor(new Float32Array([4, 2, 2, 5]), 2); // U with UᵀU = H⁻¹
 * ```
 */
export function cpuInverseFactor(
  h: Float32Array,
  n: number,
  blockFloats: number = BLOCK_FLOATS,
): Float32Array | null {
  // A = J·H·J, factored in place into its lower Cholesky factor L, then
  // inverted in place into X = L⁻¹: the only n × n array this makes. J·H·J
  // maps (i, j) to (n−1−i, n−1−j): the row-major array reversed.
  const a = h.slice(0, n * n).reverse();
  if (!choleskyInPlace(a, n, blockFloats)) return null;
  if (!lowerInverseInPlace(a, n, blockFloats)) return null;
  // U = J·X·J: reversing the row-major array maps (i, j) to (n−1−i, n−1−j),
  // so X's lower triangle lands on U's upper one; below the diagonal lies
  // the factorizations' scratch, which U must hold as zeros.
  a.reverse();
  for (let i = 1; i < n; i++) a.fill(0, i * n, i * n + i);
  return a;
}

/**
 * About how many floats one block of a factorization's products may hold,
 * so that neither the temporaries nor the kernels' WebAssembly memory (which
 * never shrinks) grow with n²: 1 Mi floats, 4 MiB.
 */
const BLOCK_FLOATS = 1 << 20;

/** `count` rounded down to a multiple of `quantum`, at least one quantum. */
function roundDownTo(count: number, quantum: number): number {
  return Math.max(quantum, Math.floor(count / quantum) * quantum);
}

/**
 * Right-looking blocked Cholesky: the lower triangle of `a` becomes L (only
 * the lower triangle is read; the upper one is left as scratch). Per panel
 * of {@link PANEL} columns: the diagonal block by the unblocked algorithm
 * (float64 sums, `choleskyBlock`), the panel below it as `A₂₁·L₁₁⁻ᵀ` and the trailing update
 * `A₂₂ −= L₂₁·L₂₁ᵀ` on the lower triangle, by blocks of rows, both SIMD
 * products.
 */
function choleskyInPlace(a: Float32Array, n: number, blockFloats: number): boolean {
  for (let k0 = 0; k0 < n; k0 += PANEL) {
    const k1 = Math.min(k0 + PANEL, n);
    const b = k1 - k0;
    // L₁₁ of the diagonal block (its lower triangle, zeros above).
    const l11 = new Float32Array(b * b);
    for (let i = 0; i < b; i++) {
      l11.set(a.subarray((k0 + i) * n + k0, (k0 + i) * n + k0 + i + 1), i * b);
    }
    if (!choleskyBlock(l11, b)) return false;
    for (let i = 0; i < b; i++) {
      a.set(l11.subarray(i * b, i * b + i + 1), (k0 + i) * n + k0);
    }
    const m = n - k1;
    if (m === 0) break;
    // L₂₁ = A₂₁·L₁₁⁻ᵀ.
    const inv = lowerTriangularInverse(l11, b);
    if (inv === null) return false;
    const a21 = new Float32Array(m * b);
    for (let i = 0; i < m; i++) a21.set(a.subarray((k1 + i) * n + k0, (k1 + i) * n + k1), i * b);
    const l21 = matmulTransposed(a21, inv, m, b, b);
    for (let i = 0; i < m; i++) a.set(l21.subarray(i * b, (i + 1) * b), (k1 + i) * n + k0);
    // A₂₂ −= L₂₁·L₂₁ᵀ on and below the diagonal, rows [r0, r1) at a time
    // against L₂₁'s first r1 rows. Each product is summed over the panel's
    // columns in order, as a Gram of L₂₁ᵀ would sum it, and a − p is the
    // −(−a + p) the Gram kernel's accumulation gave: the same bits. Blocks
    // of at most a panel's rows keep the products near the triangle (about
    // half the flops of the whole square).
    const rowsPerBlock = Math.min(m, roundDownTo(Math.min(blockFloats / m, PANEL), 4));
    const p = new Float32Array(rowsPerBlock * m);
    for (let r0 = 0; r0 < m; r0 += rowsPerBlock) {
      const r1 = Math.min(r0 + rowsPerBlock, m);
      matmulTransposed(l21.subarray(r0 * b, r1 * b), l21, r1 - r0, r1, b, p);
      for (let i = r0; i < r1; i++) {
        const row = (k1 + i) * n + k1;
        const pr = (i - r0) * r1;
        for (let j = 0; j <= i; j++) a[row + j] -= p[pr + j];
      }
    }
  }
  return true;
}

/**
 * Replaces the lower triangle of `l` (L) by L⁻¹, by block rows: the
 * diagonal blocks by forward substitution (`lowerTriangularInverse`), then
 * `X[I, :I] = −X[I, I] · (L[I, :I] · X[:I, :I])`, both products SIMD, the
 * first in blocks of X's columns from their diagonal down. Block row I of L is read before X's is
 * written over it, and X[:I, :I] is already in place above it. False when
 * a value overflows.
 */
function lowerInverseInPlace(l: Float32Array, n: number, blockFloats: number): boolean {
  for (let r0 = 0; r0 < n; r0 += PANEL) {
    const r1 = Math.min(r0 + PANEL, n);
    const b = r1 - r0;
    const lii = new Float32Array(b * b);
    for (let i = 0; i < b; i++) {
      lii.set(l.subarray((r0 + i) * n + r0, (r0 + i) * n + r0 + i + 1), i * b);
    }
    const xii = lowerTriangularInverse(lii, b);
    if (xii === null) return false;
    if (r0 > 0) {
      // s = L[I, :I] · X[:I, :I], X's columns [c0, c0 + c) at a time. X is
      // lower triangular (its upper triangle in l is scratch), so a block's
      // rows k < c0 are zeros and its product starts at row c0, about half
      // the flops of the square. Every value keeps the bits of the whole
      // product: that one sums each value over k in KC-deep slices, each a
      // fused chain from +0, added in order; here the same slices (cut at
      // the same multiples of KC) are summed and added in the same order,
      // and the skipped terms L[I, k]·0 are ones that leave a chain from +0
      // at +0 (a non-finite L[I, k] still meets X[k, k] ≠ 0 in its own
      // column's block, so the factor fails as before).
      const s = new Float32Array(b * r0);
      const width = Math.min(r0, PANEL, roundDownTo(blockFloats / r0, 8));
      const part = new Float32Array(b * width);
      for (let c0 = 0; c0 < r0; c0 += width) {
        const c = Math.min(width, r0 - c0);
        for (let k0 = c0; k0 < r0;) {
          const k1 = Math.min(r0, (Math.floor(k0 / KC) + 1) * KC);
          const depth = k1 - k0;
          const left = new Float32Array(b * depth);
          for (let i = 0; i < b; i++) {
            const from = (r0 + i) * n + k0;
            left.set(l.subarray(from, from + depth), i * depth);
          }
          const top = new Float32Array(depth * c);
          for (let k = k0; k < k1; k++) {
            const from = k * n + c0;
            top.set(l.subarray(from, from + Math.min(c, k - c0 + 1)), (k - k0) * c);
          }
          const slice = matmul(left, top, b, c, depth);
          if (k0 === c0) part.set(slice);
          // The kernels add a later slice to C in float32 (float64 then float32 is the same rounding).
          else for (let i = 0; i < b * c; i++) part[i] = Math.fround(slice[i] + part[i]);
          k0 = k1;
        }
        for (let i = 0; i < b; i++) s.set(part.subarray(i * c, (i + 1) * c), i * r0 + c0);
      }
      const xi = matmul(xii, s, b, r0, b);
      for (let i = 0; i < b; i++) {
        const row = (r0 + i) * n;
        for (let j = 0; j < r0; j++) {
          const v = -xi[i * r0 + j];
          // v − v is NaN exactly when v is infinite or NaN.
          if (v - v !== 0) return false;
          l[row + j] = v;
        }
      }
    }
    // X[I, I] is finite (lowerTriangularInverse checks it).
    for (let i = 0; i < b; i++) l.set(xii.subarray(i * b, i * b + i + 1), (r0 + i) * n + r0);
  }
  return true;
}

/**
 * Whether a block runs on the kernels ({@link kernelColumnBlock}): GPTQ's
 * blocks, an integer grid without pruning, with or without a sparse
 * weight's zero mask on the in-block updates, up to
 * `COLUMN_BLOCK_MAX_COUNT` columns (the kernels' scratch); and SparseGPT's
 * N:M pruning (M ≤ 32) without quantization, as wide at most. (Unstructured pruning, the
 * fp8 / fp4 grids and wider blocks stay on the TypeScript loop.)
 *
 * @param block the block
 * @returns true when `columnBlock` runs it on the kernels
 * @example
 * ```ts
 * import { columnBlockOnKernels } from "./second_order.ts";
 * const quantization = { kind: 1 as const, qmin: -8, qmax: 7, effectiveScale: new Float32Array([0.5]),
 *   zeroPoint: new Float32Array([0]), columnSlot: new Uint32Array(2), rowDiv: 1, slotRowStride: 1 };
 * console.assert(columnBlockOnKernels({ w: new Float32Array(2), rows: 1, cols: 2, u: new Float32Array(4),
 *   i1: 0, i2: 2, err: new Float32Array(2), quantization, nonZero: null, maskInBlock: true }));
 * ```
 */
export function columnBlockOnKernels(block: HostColumnBlock): boolean {
  const { pruning, quantization } = block;
  if (pruning === undefined) {
    return quantization?.kind === 1 && block.i2 - block.i1 <= COLUMN_BLOCK_MAX_COUNT;
  }
  // The kernel keeps a window's picks in 32 bits.
  return pruning.kind === "n:m" && pruning.m <= 32 && quantization === undefined &&
    !(block.maskInBlock && block.nonZero !== null) &&
    block.i2 - block.i1 <= COLUMN_BLOCK_MAX_COUNT;
}

/** The column-block kernels {@link kernelColumnBlock} calls. */
export interface ColumnBlockKernels {
  /** GPTQ's block on an integer grid. */
  gptqColumnBlock(block: IntColumnBlock): number;
  /** SparseGPT's block with N:M pruning. */
  sparsegptColumnBlock(block: PruneColumnBlock): number;
}

/**
 * {@link cpuColumnBlock} on the kernels' threads for the blocks
 * {@link columnBlockOnKernels} accepts (gemm.c's run_column_block and
 * run_prune_block give the same bits): the block's columns of w, U's block
 * and the block's part of the zero mask go in compact, come back into w,
 * and the kernels sum the loss terms in cpuColumnBlock's order.
 *
 * @param block an integer-grid block without pruning, or an N:M block without quantization
 * @param kernels the kernel calls; default the shared instance's
 * @returns the block's loss
 * @example
 * ```ts
 * import { kernelColumnBlock } from "./second_order.ts";
 * const w = new Float32Array([1.3, 2.1]);
 * const quantization = { kind: 1 as const, qmin: -8, qmax: 7, effectiveScale: new Float32Array([0.5]),
 *   zeroPoint: new Float32Array([0]), columnSlot: new Uint32Array(2), rowDiv: 1, slotRowStride: 1 };
 * kernelColumnBlock({ w, rows: 1, cols: 2, u: new Float32Array([1, 0, 0, 1]), i1: 0, i2: 2,
 *   err: new Float32Array(2), quantization, nonZero: null, maskInBlock: false });
 * console.assert(w[0] === 1.5 && w[1] === 2);
 * ```
 */
export function kernelColumnBlock(
  block: HostColumnBlock,
  kernels: ColumnBlockKernels = { gptqColumnBlock, sparsegptColumnBlock },
): number {
  const { w, rows, cols, u, i1, i2, pruning } = block;
  const count = i2 - i1;
  const wb = new Float32Array(rows * count);
  for (let r = 0; r < rows; r++) wb.set(w.subarray(r * cols + i1, r * cols + i2), r * count);
  const ub = new Float32Array(count * count);
  for (let i = 0; i < count; i++) {
    ub.set(u.subarray((i1 + i) * cols + i1, (i1 + i) * cols + i2), i * count);
  }
  // GPTQ: the in-block updates' mask; N:M: the zeros pruning preserves.
  const masked = pruning === undefined ? block.maskInBlock : pruning.preserve;
  const nonZero = masked ? block.nonZero : null;
  let mask: Uint8Array | undefined;
  if (nonZero !== null) {
    mask = new Uint8Array(rows * count);
    for (let r = 0; r < rows; r++) {
      mask.set(nonZero.subarray(r * cols + i1, r * cols + i2), r * count);
    }
  }
  const err = block.err.subarray(0, rows * count);
  let sum: number;
  if (pruning?.kind === "n:m") {
    sum = kernels.sparsegptColumnBlock({
      w: wb,
      rows,
      count,
      u: ub,
      err,
      n: pruning.n,
      m: pruning.m,
      ...(mask ? { keep: mask } : {}),
    });
  } else {
    const quant = block.quantization!;
    sum = kernels.gptqColumnBlock({
      w: wb,
      rows,
      count,
      u: ub,
      err,
      scale: quant.effectiveScale,
      zero: quant.zeroPoint,
      slot: quant.columnSlot.subarray(i1, i2),
      rowDiv: quant.rowDiv,
      slotRowStride: quant.slotRowStride,
      qmin: quant.qmin,
      qmax: quant.qmax,
      ...(mask ? { mask } : {}),
    });
  }
  for (let r = 0; r < rows; r++) w.set(wb.subarray(r * count, (r + 1) * count), r * cols + i1);
  return sum / 2;
}

/** f32 fake quantization of one value, as gptq_column_block.wgsl does it. */
function fakeQuantize(x: number, s: number, zp: number, q: ColumnQuantization): number {
  let t = Math.fround(Math.fround(x / s) + zp);
  t = t < q.qmin ? q.qmin : t > q.qmax ? q.qmax : t;
  const c = q.kind === 1 ? roundHalfEven(t) : q.kind === 2 ? roundToF8E4M3(t) : castToFp4(t);
  return Math.fround(Math.fround(c - zp) * s);
}

/** The pruning metric W²/d² in f32, as the WGSL kernels compute it. */
function metric(w: number, d: number): number {
  return Math.fround(Math.fround(w * w) / Math.fround(d * d));
}

/**
 * One block of the column loop (see {@link SecondOrderOps.columnBlock}).
 *
 * @param block the weight, U, the block's columns, quantization, pruning, masks
 * @returns the block's loss
 * @example
 * ```ts
 * import { cpuColumnBlock } from "./second_order.ts";
 * const w = new Float32Array([1, 2, 3, 4]);
 * const u = new Float32Array([1, 0.5, 0, 1]);
 * const err = new Float32Array(4);
 * cpuColumnBlock({ w, rows: 2, cols: 2, u, i1: 0, i2: 2, err, nonZero: null, maskInBlock: false,
 *   pruning: { kind: "n:m", n: 1, m: 2, preserve: false } });
 * console.assert(w[0] === 0 && w[2] === 0); // the smaller of each pair is pruned
 * ```
 */
export function cpuColumnBlock(block: HostColumnBlock): number {
  const { w, rows, cols, u, i1, i2, err, quantization: quant, pruning, nonZero } = block;
  const count = i2 - i1;
  const preserve = pruning?.preserve === true && nonZero !== null;
  const isPreserved = (idx: number) => preserve && nonZero![idx] === 0;
  const pruned = new Uint8Array(rows * count);
  if (pruning?.kind === "unstructured") {
    // upstream: thresh = sort((W1² / d²).flatten())[int(numel · sparsity)]
    const k = Math.floor(rows * count * pruning.sparsity);
    const metrics = new Float32Array(rows * count);
    let preservedCount = 0;
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < count; i++) {
        const idx = r * cols + i1 + i;
        const c = i1 + i;
        const p = isPreserved(idx);
        if (p) preservedCount++;
        metrics[r * count + i] = p ? 0 : metric(w[idx], u[c * cols + c]);
      }
    }
    const thresh = metrics.slice().sort()[k];
    const extend = !pruning.preserve || k > preservedCount;
    for (let j = 0; j < rows * count; j++) {
      const idx = Math.floor(j / count) * cols + i1 + (j % count);
      if (isPreserved(idx) || (extend && metrics[j] <= thresh)) pruned[j] = 1;
    }
  } else if (pruning?.kind === "n:m" && preserve) {
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < count; i++) if (isPreserved(r * cols + i1 + i)) pruned[r * count + i] = 1;
    }
  }
  const maskIn = block.maskInBlock && nonZero !== null;
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    const slotRow = quant ? Math.floor(r / quant.rowDiv) * quant.slotRowStride : 0;
    for (let i = i1; i < i2; i++) {
      if (pruning?.kind === "n:m" && (i - i1) % pruning.m === 0) {
        // The N smallest W²/d² of the window (preserved ones count as 0; ties: lower column).
        const end = Math.min(i + pruning.m, i2);
        const window: { j: number; m: number }[] = [];
        for (let j = i; j < end; j++) {
          window.push({ j, m: isPreserved(row + j) ? 0 : metric(w[row + j], u[j * cols + j]) });
        }
        window.sort((a, b) => a.m - b.m || a.j - b.j);
        for (let t = 0; t < Math.min(pruning.n, window.length); t++) {
          pruned[r * count + window[t].j - i1] = 1;
        }
      }
      const x = w[row + i];
      const ui = i * cols;
      const d = u[ui + i];
      let q = pruned[r * count + i - i1] ? 0 : x;
      if (quant) {
        const s = slotRow + quant.columnSlot[i];
        q = fakeQuantize(q, quant.effectiveScale[s], quant.zeroPoint[s], quant);
      }
      loss += (x - q) * (x - q) / (d * d);
      const e = Math.fround((x - q) / d);
      if (maskIn) {
        for (let j = i + 1; j < i2; j++) w[row + j] -= e * u[ui + j] * nonZero![row + j];
      } else {
        for (let j = i + 1; j < i2; j++) w[row + j] -= e * u[ui + j];
      }
      w[row + i] = q;
      err[r * count + i - i1] = e;
    }
  }
  return loss / 2;
}

/**
 * The block's errors to the later columns (see {@link SecondOrderOps.trailingUpdate}).
 *
 * @param block the block {@link cpuColumnBlock} has run on
 * @example
 * ```ts
 * import { cpuTrailingUpdate } from "./second_order.ts";
 * const w = new Float32Array([0, 1]);
 * cpuTrailingUpdate({ w, rows: 1, cols: 2, u: new Float32Array([1, 2, 0, 1]), i1: 0, i2: 1,
 *   err: new Float32Array([0.25]), nonZero: null, maskInBlock: false });
 * console.assert(w[1] === 0.5);
 * ```
 */
export function cpuTrailingUpdate(block: HostColumnBlock): void {
  const { w, rows, cols, u, i1, i2, err, nonZero } = block;
  const n = cols - i2;
  const k = i2 - i1;
  if (n <= 0 || rows === 0) return;
  const ub = new Float32Array(k * n);
  for (let i = 0; i < k; i++) ub.set(u.subarray((i1 + i) * cols + i2, (i1 + i + 1) * cols), i * n);
  const p = matmul(err, ub, rows, n, k);
  for (let r = 0; r < rows; r++) {
    const row = r * cols + i2;
    const pr = r * n;
    if (nonZero === null) {
      for (let j = 0; j < n; j++) w[row + j] -= p[pr + j];
    } else {
      for (let j = 0; j < n; j++) if (nonZero[row + j]) w[row + j] -= p[pr + j];
    }
  }
}
