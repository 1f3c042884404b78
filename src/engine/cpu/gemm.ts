/**
 * Float32 matrix products on the CPU, and the row-wise work around them
 * (softmax, SwiGLU, RMSNorm, GPTQ's integer-grid column loop): the kernels of
 * `kernels/gemm.c` run by the calling thread and a pool of worker threads over
 * one shared memory, as the native AVX2 + FMA build where this process can
 * load it (see _gemm_native.ts), else as WebAssembly SIMD (f32x4.relaxed_madd
 * where the runtime has it); the native and relaxed builds give the same bits.
 *
 * Every function is synchronous: it copies its operands into the kernels'
 * memory, runs the product on all threads, and copies the result out. The
 * default pool has `navigator.hardwareConcurrency` threads (the caller plus
 * that many minus one workers), or `LLMC_CPU_THREADS` when that is set; the
 * workers never keep the process alive. {@linkcode createCpuGemm} makes a
 * separate instance with its own thread count or kernel build.
 *
 * Arrays may be longer than their operand (pooled buffers): only the leading
 * m·k, n·k, m·n or k·k floats are read or written; shorter ones are an error.
 *
 * Memory: the kernels' WebAssembly memory grows to the largest call and a
 * wasm memory never shrinks, so the operands that grow with the number of
 * tokens (the rows of x and y in a product, the rows of x in a Gram, the
 * SwiGLU arrays) are streamed through it in chunks of about
 * {@linkcode STREAM_BYTES}; only a weight (or a Gram's k × k accumulator)
 * is held whole. Chunking changes no result bit: a product row depends only
 * on its own row of x, a Gram's chunks are whole KC-deep slices of the rows
 * (gemm.c adds each slice's partial sums into h in row order, chunked or
 * not), and the SwiGLU is element-wise.
 *
 * @example
 * ```ts
 * import { matmulTransposed } from "./gemm.ts";
 * // y[1,2] = x[1,3] · w[2,3]ᵀ
 * const y = matmulTransposed(
 *   new Float32Array([1, 2, 3]),
 *   new Float32Array([1, 0, 0, 0, 1, 1]),
 *   1,
 *   2,
 *   3,
 * );
 * console.log(y); // Float32Array [1, 5]
 * ```
 *
 * @module
 */

import {
  align,
  CpuKernelError,
  type GemmJob,
  GemmRuntime,
  type KernelVariant,
  lowerInverseStride,
  type PoolWorkers,
} from "./_gemm_runtime.ts";
import { attentionScratchBytes, KC, NR, SCRATCH_STRIDE } from "./_gemm_layout.ts";

export { CpuKernelError, type KernelVariant, type PoolWorkers };

/**
 * About how many bytes of token-length operands one kernel call copies into
 * the WebAssembly memory at a time (see the module's Memory note).
 */
export const STREAM_BYTES = 8 * 2 ** 20;

/** Query rows per block of the fused attention (a multiple of _gemm_layout.ts's ATTENTION_ROW_MULTIPLE). */
const ATTENTION_ROWS = 24;

/** gemm.c's KC: a Gram's row chunks are whole multiples of it (same sums). */
const GRAM_ROW_QUANTUM = KC;

/**
 * Rows per chunk when each row costs `rowBytes`: about `budget` bytes worth,
 * a multiple of `quantum` and at least one quantum. (A product re-packs its
 * weight for every chunk; at the default budget a chunk has hundreds of rows
 * for layer-sized weights, so that costs about 1 % more copying.)
 */
function chunkRows(budget: number, rowBytes: number, quantum: number): number {
  return Math.max(quantum, Math.floor(budget / rowBytes / quantum) * quantum);
}

/** Options of {@linkcode createCpuGemm}. */
export interface CpuGemmOptions {
  /** Threads including the calling one; default navigator.hardwareConcurrency. */
  threads?: number;
  /**
   * "avx2" (the native x86-64 library), "relaxed" (WebAssembly, fused
   * multiply-add) or "simd"; default LLMC_CPU_KERNELS when set, else the
   * fastest this process can run.
   */
  variant?: KernelVariant;
  /**
   * About how many bytes of token-length operands a call copies into the
   * kernels' memory at a time; default {@linkcode STREAM_BYTES}. Results do
   * not depend on it (tests use a tiny one to prove that).
   */
  streamBytes?: number;
  /** What the pool threads are (default "node"; see {@linkcode PoolWorkers}). */
  workers?: PoolWorkers;
}

/** What {@linkcode cpuKernelInfo} reports. */
export interface CpuKernelInfo {
  /** Threads a product runs on, the calling one included. */
  threads: number;
  /** The build that runs the products. */
  variant: KernelVariant;
  /**
   * Whether products use a fused multiply-add: f32x4.relaxed_madd (fused on
   * x64 with FMA3) or the native build's vfmadd231ps, which give the same bits.
   */
  relaxedSimd: boolean;
  /** Why the native build is not in use, when it was not asked for and cannot run. */
  nativeNote: string | null;
  /** Whether the kernels use 128-bit SIMD (always true: there is no scalar build). */
  simd: boolean;
}

/** Rows gemm.c's column blocks run side by side (LANES there). */
const COLUMN_BLOCK_LANES = 8;

/**
 * The widest column block the kernels run ({@linkcode CpuGemm.gptqColumnBlock},
 * {@linkcode CpuGemm.sparsegptColumnBlock}): a thread's scratch region holds
 * its lanes' columns (w, err and GPTQ's mask in float32, the loss terms in
 * float64: 20 bytes a lane and column) and their slot rows (or a pruning
 * window's flags, less). Wider blocks (a `block_size` past about 4900) stay
 * in TypeScript.
 *
 * @example
 * ```ts
 * import { COLUMN_BLOCK_MAX_COUNT } from "./gemm.ts";
 * console.assert(COLUMN_BLOCK_MAX_COUNT >= 128);
 * ```
 */
export const COLUMN_BLOCK_MAX_COUNT = Math.floor(
  (SCRATCH_STRIDE - COLUMN_BLOCK_LANES * 4) / (COLUMN_BLOCK_LANES * 20),
);

/**
 * One block of GPTQ's column loop on an integer grid for
 * {@linkcode CpuGemm.gptqColumnBlock}: the block's K columns of every row
 * of the weight, U's K × K block, the slots' grid, and where the results go.
 */
export interface IntColumnBlock {
  /** The block's columns of the weight, `[rows, count]` row-major; fake-quantized in place. */
  w: Float32Array;
  rows: number;
  /** Columns in the block. */
  count: number;
  /** U's block (rows and columns of the block), `[count, count]`, upper triangular. */
  u: Float32Array;
  /** Written: the scaled errors `(w − q) / U[i, i]`, `[rows, count]`. */
  err: Float32Array;
  /**
   * Written when given: the loss terms `(w − q)² / U[i, i]²` in float64,
   * `[rows, count]` (their sum in row-major order is the call's result).
   */
  terms?: Float64Array;
  /** Effective scale per slot. */
  scale: Float32Array;
  /** Zero point per slot. */
  zero: Float32Array;
  /** Slot column of each of the block's columns. */
  slot: Uint32Array;
  /** Rows that share a slot row. */
  rowDiv: number;
  /** Slots per slot row. */
  slotRowStride: number;
  /** Clamp bounds of x / s + zp. */
  qmin: number;
  qmax: number;
  /**
   * A sparse weight's zero mask of the block, `[rows, count]` (1 keeps):
   * the in-block updates are multiplied by it, as `cpuColumnBlock`'s
   * masked loop does. Absent: no mask.
   */
  mask?: Uint8Array;
}

/**
 * One block of SparseGPT's column loop with N:M pruning and no quantization
 * for {@linkcode CpuGemm.sparsegptColumnBlock}: as {@linkcode IntColumnBlock}
 * without the grid.
 */
export interface PruneColumnBlock {
  /** The block's columns of the weight, `[rows, count]` row-major; pruned in place. */
  w: Float32Array;
  rows: number;
  /** Columns in the block (windows of `m` from its first column). */
  count: number;
  /** U's block, `[count, count]`, upper triangular. */
  u: Float32Array;
  /** Written: the scaled errors `(w − q) / U[i, i]`, `[rows, count]`. */
  err: Float32Array;
  /** Pruned per window. */
  n: number;
  /** Window length, 1 to 32. */
  m: number;
  /** The weight's existing zeros to keep pruned, `[rows, count]` (0: such a zero); absent: none. */
  keep?: Uint8Array;
}

/** One product of {@linkcode CpuGemm.matmulTransposedMany}. */
export interface ManyProduct {
  /** The weight, n × k. */
  readonly w: Float32Array;
  /** Its rows. */
  readonly n: number;
  /** Added to every row of the product (n floats), as a Linear's bias. */
  readonly bias?: Float32Array;
  /** Whether RoPE applies to the product (needs the call's RoPE tables). */
  readonly rope?: boolean;
  /** Its rows' online transform, after the bias and before RoPE. */
  readonly after?: RowTransform;
}

/** The RoPE of {@linkcode CpuGemm.matmulTransposedMany}: rotate_half over heads of `headDim`. */
export interface RopeTables {
  /** cos, [seqLen, headDim / 2]. */
  readonly cos: Float32Array;
  /** sin, [seqLen, headDim / 2]. */
  readonly sin: Float32Array;
  /** Tokens per sequence: row r of x is position r mod seqLen. */
  readonly seqLen: number;
  /** Dimension of one head: even, and it divides n of every product RoPE applies to. */
  readonly headDim: number;
}

/** Checks the RoPE of a matmulTransposedMany call; returns headDim / 2 (0 without RoPE). */
function checkRope(what: string, ws: readonly ManyProduct[], rope?: RopeTables): number {
  if (rope === undefined) {
    if (ws.some((w) => w.rope)) throw new CpuKernelError(`${what}: RoPE asked for without tables`);
    return 0;
  }
  const { headDim, seqLen } = rope;
  if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
    throw new CpuKernelError(
      `${what}: RoPE head dimension must be even and positive, got ${headDim}`,
    );
  }
  if (!Number.isInteger(seqLen) || seqLen < 1) {
    throw new CpuKernelError(`${what}: RoPE needs a positive seqLen, got ${seqLen}`);
  }
  const half = headDim / 2;
  checkLength(what, "cos", rope.cos, seqLen * half);
  checkLength(what, "sin", rope.sin, seqLen * half);
  for (const [i, { n, rope: rotated }] of ws.entries()) {
    if (rotated && n % headDim !== 0) {
      throw new CpuKernelError(
        `${what}: product ${i} has ${n} columns, not whole heads of ${headDim}`,
      );
    }
  }
  return half;
}

/** Options of {@linkcode CpuGemm.walshHadamard}. */
export interface WalshHadamardOptions {
  /** Where the result goes (x's length); absent: x itself. */
  out?: Float32Array;
  /** One factor per run position, multiplied in as a float32 product. */
  signs?: Float32Array;
  /** Whether the factors multiply before the butterflies (else after the scale). */
  signsFirst?: boolean;
  /**
   * A random-hadamard matrix's K × K base (K = the stride), as a Linear's
   * weight `[K, K]`: each run of K values v becomes `v · baseᵀ` (the bits of
   * {@linkcode CpuGemm.matmulTransposed} on those rows) after the leading
   * signs, before the butterflies.
   */
  base?: Float32Array;
}

/**
 * A {@linkcode CpuGemm.walshHadamard} of every row of a product, as
 * {@linkcode CpuGemm.swiGlu}, {@linkcode CpuGemm.matmulTransposedAdd} and
 * {@linkcode CpuGemm.matmulTransposedMany} apply it to their products (an
 * online output transform): runs of `n`, the scale, the stride and the
 * options' signs and base (not `out`).
 */
export interface RowTransform {
  /** Run length; divides the product's width. */
  readonly n: number;
  /** Multiplies every result (float64, rounded once). */
  readonly scale: number;
  /** Span of the first butterflies (K with a base). */
  readonly stride: number;
  /** The signs, their place and the base. */
  readonly options: Omit<WalshHadamardOptions, "out">;
}

/** The shape of {@linkcode attentionScores} and {@linkcode attentionValues}. */
export interface AttentionGemmShape {
  /** Query positions. */
  seq: number;
  /** Key/value positions. */
  kvLen: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads; must divide heads. */
  kvHeads: number;
  /** Dimension of one head. */
  headDim: number;
  /**
   * Causal attention (query i sees keys j ≤ i + kvLen − seq; needs kvLen ≥ seq):
   * attentionScores then leaves the scores above that diagonal 0 where whole
   * tiles lie above it (the caller masks them in any case), and
   * attentionValues expects p to be 0 there and skips work it would waste.
   */
  causal?: boolean;
}

/** The shape of {@linkcode causalAttention}. */
export interface CausalAttentionShape {
  /**
   * Sequences, stored one after another in q, k, v and the output (default
   * 1); each attends only to itself.
   */
  sequences?: number;
  /** Query positions (the last `seq` of the kvLen positions). */
  seq: number;
  /** Key/value positions; at least seq. */
  kvLen: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads; must divide heads. */
  kvHeads: number;
  /** Dimension of one head. */
  headDim: number;
  /** Keys each query sees, itself included; null or absent for all earlier ones. */
  window?: number | null;
  /** Multiplies the scores before the softmax; default headDim^-0.5. */
  scale?: number;
}

function checkAttention(what: string, shape: AttentionGemmShape): AttentionGemmShape {
  for (const name of ["seq", "kvLen", "heads", "kvHeads", "headDim"] as const) {
    checkShape(what, name, shape[name]);
  }
  if (shape.causal && shape.kvLen < shape.seq) {
    throw new CpuKernelError(
      `${what}: causal attention needs kvLen (${shape.kvLen}) ≥ seq (${shape.seq})`,
    );
  }
  if (shape.kvHeads === 0 || shape.heads % shape.kvHeads !== 0) {
    throw new CpuKernelError(
      `${what}: kvHeads (${shape.kvHeads}) must be positive and divide heads (${shape.heads})`,
    );
  }
  return shape;
}

/** The softmax's window (0 for all keys) and score scale (default D^-0.5), checked. */
function softmaxParameters(
  what: string,
  shape: CausalAttentionShape,
  d: number,
): { window: number; scale: number } {
  const window = shape.window ?? 0;
  if (!Number.isInteger(window) || window < 0) {
    throw new CpuKernelError(`${what}: window must be a positive integer or null, got ${window}`);
  }
  const scale = shape.scale ?? 1 / Math.sqrt(d);
  if (!(scale > 0) || !Number.isFinite(scale)) {
    throw new CpuKernelError(`${what}: scale must be a positive number, got ${scale}`);
  }
  return { window, scale };
}

function checkShape(what: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new CpuKernelError(`${what}: ${name} must be a non-negative integer, got ${value}`);
  }
}

/** Arrays may be longer than their operand (pooled buffers): only the first `needed` floats are used. */
function checkLength(what: string, name: string, array: Float32Array, needed: number): void {
  if (!(array instanceof Float32Array)) {
    throw new CpuKernelError(`${what}: ${name} must be a Float32Array`);
  }
  if (array.length < needed) {
    throw new CpuKernelError(`${what}: ${name} holds ${array.length} floats, needs ${needed}`);
  }
}

/** Where a {@link CpuGemm} product chunk's scratch and fixed arrays are (byte addresses). */
interface ProductsAt {
  /** The chunk's scratch, its rows × the call's floats per row. */
  readonly extra: number;
  /** Each fixed array, copied in once. */
  readonly fixed: readonly number[];
  /** Per product, the host address its chunk was written to in place, else null. */
  readonly hosts: readonly (bigint | null)[];
}

/** Checks a Walsh–Hadamard transform's signs (n) and base (stride²), naming `what`. */
function checkTransformFactors(
  what: string,
  n: number,
  stride: number,
  options: Omit<WalshHadamardOptions, "out">,
): void {
  if (options.signs !== undefined) checkLength(what, "signs", options.signs, n);
  if (options.base !== undefined) checkLength(what, "base", options.base, stride * stride);
}

/**
 * The float32 products on one memory and thread pool of their own; the
 * module-level functions use a shared default instance.
 *
 * @example
 * ```ts
 * import { CpuGemm } from "./gemm.ts";
 * const gemm = new CpuGemm({ threads: 2 });
 * const h = new Float32Array(4);
 * gemm.accumulateGram(h, new Float32Array([1, 2, 3, 4]), 2, 2);
 * console.log(h, gemm.info()); // Float32Array [10, 14, 14, 20] { threads: 2, … }
 * gemm.close();
 * ```
 */
export class CpuGemm {
  readonly #rt: GemmRuntime;
  readonly #stream: number;

  /** @param options thread count, kernel build, streaming chunk size */
  constructor(options: CpuGemmOptions = {}) {
    const stream = options.streamBytes ?? STREAM_BYTES;
    if (!(stream >= 1)) {
      throw new CpuKernelError(`CpuGemm: streamBytes must be at least 1, got ${stream}`);
    }
    this.#rt = new GemmRuntime(options);
    this.#stream = stream;
  }

  /**
   * y[m,n] = x[m,k] · w[n,k]ᵀ (row-major f32).
   *
   * @param x activations, m × k
   * @param w weight, n × k (a linear layer's layout)
   * @param out written when given (its first m*n floats), else allocated
   * @returns y
   */
  matmulTransposed(
    x: Float32Array,
    w: Float32Array,
    m: number,
    n: number,
    k: number,
    out?: Float32Array,
  ): Float32Array {
    const what = "matmulTransposed";
    for (const [name, v] of [["m", m], ["n", n], ["k", k]] as const) checkShape(what, name, v);
    checkLength(what, "x", x, m * k);
    checkLength(what, "w", w, n * k);
    const y = out ?? new Float32Array(m * n);
    checkLength(what, "out", y, m * n);
    return this.#product(what, x, w, m, n, k, y, true);
  }

  /**
   * y[m,n] = a[m,k] · b[k,n] (row-major f32).
   *
   * @param a m × k
   * @param b k × n
   * @param out written when given (length m*n), else allocated
   * @returns y
   */
  matmul(
    a: Float32Array,
    b: Float32Array,
    m: number,
    n: number,
    k: number,
    out?: Float32Array,
  ): Float32Array {
    const what = "matmul";
    for (const [name, v] of [["m", m], ["n", n], ["k", k]] as const) checkShape(what, name, v);
    checkLength(what, "a", a, m * k);
    checkLength(what, "b", b, k * n);
    const y = out ?? new Float32Array(m * n);
    checkLength(what, "out", y, m * n);
    return this.#product(what, a, b, m, n, k, y, false);
  }

  /**
   * Σ_{i,j} y[i, j] · x[i, j] for y = x · wᵀ (x [m, k], w [k, k]): the
   * quadratic form tr(x·wᵀ·xᵀ), with y rounded to float32 as
   * {@link matmulTransposed} gives it and the products y·x added in float64,
   * in row-major order, from 0. y is never copied out of the kernels' memory.
   *
   * @param x m × k
   * @param w k × k
   * @returns the sum
   */
  quadraticSum(x: Float32Array, w: Float32Array, m: number, k: number): number {
    const what = "quadraticSum";
    checkShape(what, "m", m);
    checkShape(what, "k", k);
    checkLength(what, "x", x, m * k);
    checkLength(what, "w", w, k * k);
    if (m === 0 || k === 0) return 0;
    const at = this.#rt.heapBase;
    this.#rt.reserve(8, what);
    new Float64Array(this.#rt.memory.buffer, at, 1)[0] = 0;
    this.#product(what, x, w, m, k, k, x, true, true);
    return new Float64Array(this.#rt.memory.buffer, at, 1)[0];
  }

  /**
   * {@link quadraticSum} of W and of each W − Ĉ (the reconstruction errors'
   * three sums, `cpuReconstructionErrors`) with w packed once: per x, the
   * rows in chunks of `chunkRows`, each chunk's sum from 0 as one
   * quadraticSum of it gives (the same row steps, products and ordered
   * float64 dot), the chunks' sums added in order. W − Ĉ is rounded to
   * float32 straight into the kernels' memory.
   *
   * @param original W, m × k
   * @param candidates the Ĉ, each m × k
   * @param w k × k
   * @param m rows of W
   * @param k its columns (and the order of w)
   * @param rowsPerChunk rows per chunk (≥ 1)
   * @returns the sums of W, then of each W − Ĉ
   */
  quadraticSums(
    original: Float32Array,
    candidates: readonly Float32Array[],
    w: Float32Array,
    m: number,
    k: number,
    rowsPerChunk: number,
  ): number[] {
    const what = "quadraticSums";
    checkShape(what, "m", m);
    checkShape(what, "k", k);
    checkShape(what, "rowsPerChunk", rowsPerChunk);
    checkLength(what, "original", original, m * k);
    candidates.forEach((c, i) => checkLength(what, `candidate ${i}`, c, m * k));
    checkLength(what, "w", w, k * k);
    const sums = new Array<number>(1 + candidates.length).fill(0);
    if (m === 0 || k === 0 || rowsPerChunk === 0) return sums;
    const rt = this.#rt;
    // #product's layout for a quadratic sum of rowsPerChunk rows.
    const sumAt = rt.heapBase;
    const packedAt = sumAt + 64;
    const workAt = align(packedAt + k * align(k, NR) * 4, 64);
    const stepOf = (rows: number) => Math.min(rows, chunkRows(this.#stream, 2 * k * 4, 4));
    const step = stepOf(Math.min(m, rowsPerChunk));
    const aAt = workAt;
    const cAt = align(aAt + step * k * 4, 64);
    const chunk = Math.min(k, chunkRows(this.#stream, k * 4, NR));
    const end = Math.max(cAt + step * k * 4, workAt + chunk * k * 4);
    rt.reserve(end - rt.heapBase, `${what} of ${m} × ${k}`);
    this.#packTransposed(w, k, k, packedAt, workAt, chunk);
    for (let x = 0; x <= candidates.length; x++) {
      const candidate = x === 0 ? null : candidates[x - 1];
      for (let c0 = 0; c0 < m; c0 += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, m - c0);
        const rowStep = stepOf(rows);
        new Float64Array(rt.memory.buffer, sumAt, 1)[0] = 0;
        for (let r0 = c0; r0 < c0 + rows; r0 += rowStep) {
          const r = Math.min(rowStep, c0 + rows - r0);
          const from = r0 * k;
          if (candidate === null) rt.copyIn(original.subarray(from, from + r * k), aAt);
          else {
            const d = rt.f32(aAt, r * k);
            for (let i = 0; i < r * k; i++) d[i] = original[from + i] - candidate[from + i];
          }
          rt.runPacked({
            m: r,
            n: k,
            k,
            a: aAt,
            aRowStride: k,
            aColStride: 1,
            packed: packedAt,
            c: cAt,
            ldc: k,
            accumulate: false,
          });
          rt.orderedDot({ a: cAt, b: aAt, n: r * k, acc: sumAt });
        }
        sums[x] += new Float64Array(rt.memory.buffer, sumAt, 1)[0];
      }
    }
    return sums;
  }

  /**
   * h[k,k] += xᵀ·x for x[rows,k]. `h` must be symmetric on entry (a sum of
   * Grams, or zeros): the upper triangle is accumulated and then copied onto
   * the lower one, so the full symmetric matrix is written.
   *
   * @param h k × k accumulator, updated in place
   * @param x rows × k
   */
  accumulateGram(h: Float32Array, x: Float32Array, rows: number, k: number): void {
    this.#gramBlocks(
      "accumulateGram",
      h,
      x,
      rows,
      k,
      (block, i0, r, width) => {
        for (let i = 0; i < r; i++) {
          const from = (i0 + i) * k + i0;
          block.set(h.subarray(from, from + width), i * width);
        }
      },
      (done, i0, r, width) => {
        for (let i = 0; i < r; i++) {
          // The row from its diagonal on; the lower part comes from the mirror.
          h.set(done.subarray(i * width + i, (i + 1) * width), (i0 + i) * k + i0 + i);
        }
      },
    );
    if (rows > 0) mirrorUpperTriangle(h, k);
  }

  /**
   * The upper triangle (j ≥ i) of h ← beta·h + alpha·xᵀx: each element
   * `h·beta + alpha·g` in float64, rounded to float32 once, g the element
   * {@link accumulateGram} gives from a zero h. The strict lower triangle is
   * neither read nor written. It is GPTQ's running-Hessian update without
   * a k × k Gram buffer, its copies or either triangle's mirror.
   *
   * @param h k × k, its upper triangle updated in place
   * @param x rows × k
   * @param rows rows of x
   * @param k columns of x
   * @param beta the factor of h
   * @param alpha the factor of xᵀx
   */
  scaleAddGramUpper(
    h: Float32Array,
    x: Float32Array,
    rows: number,
    k: number,
    beta: number,
    alpha: number,
  ): void {
    this.#gramBlocks(
      "scaleAddGramUpper",
      h,
      x,
      rows,
      k,
      null,
      (done, i0, r, width, blockAt) => {
        // Natively the threads update h in place; else this thread does.
        if (this.#rt.gramScaleAdd({ h, k, i0, rows: r, block: blockAt, ldc: width, beta, alpha })) {
          return;
        }
        for (let i = 0; i < r; i++) {
          let at = (i0 + i) * k + i0 + i;
          const end = (i0 + i + 1) * k;
          for (let from = i * width + i; at < end; at++, from++) {
            h[at] = h[at] * beta + alpha * done[from];
          }
        }
      },
    );
  }

  /**
   * Runs xᵀx's upper triangle on the kernels into blocks of h's rows held in
   * the kernels' memory: `start` fills each block (row i0 + i from its
   * column i0 at i·width) and the kernels add the Gram, or without `start`
   * the first chunk's Gram is stored (the same bits as added to zeros: a
   * fused multiply-add chain from +0 never ends in −0); `finish` reads it
   * back (also given the block's byte address).
   */
  #gramBlocks(
    what: string,
    h: Float32Array,
    x: Float32Array,
    rows: number,
    k: number,
    start: ((block: Float32Array, i0: number, r: number, width: number) => void) | null,
    finish: (done: Float32Array, i0: number, r: number, width: number, at: number) => void,
  ): void {
    checkShape(what, "rows", rows);
    checkShape(what, "k", k);
    checkLength(what, "h", h, k * k);
    checkLength(what, "x", x, rows * k);
    if (rows === 0 || k === 0) return;
    const rt = this.#rt;
    const step = Math.min(rows, chunkRows(this.#stream, k * 4, GRAM_ROW_QUANTUM));
    // h is held in the kernels' memory by blocks of its rows, each from its
    // diagonal rightwards (the upper triangle), about a streaming chunk's
    // worth: a k × k accumulator would grow that memory, which never
    // shrinks, to the largest Hessian. With more than one block, every chunk
    // of x's rows passes once per block; each element still sums the same
    // chunks and slices in the same order.
    const blockRows = Math.min(k, chunkRows(this.#stream, k * 4, 4));
    // Each chunk of x is packed once per block into NR-wide micro-panels
    // that every column stripe of the triangle shares (rt.gramUpper); the
    // native threads pack it straight from x where they can read x in
    // place, else from a copy staged in the kernels' memory.
    const chunks: { r0: number; c: number; host: bigint | null }[] = [];
    for (let r0 = 0; r0 < rows; r0 += step) {
      const c = Math.min(step, rows - r0);
      chunks.push({ r0, c, host: rt.hostAddress(x.subarray(r0 * k, (r0 + c) * k)) });
    }
    const staged = chunks.some((chunk) => chunk.host === null);
    const xAt = rt.heapBase;
    const packedAt = align(xAt + (staged ? step * k * 4 : 0), 64);
    const hAt = align(packedAt + step * align(k, NR) * 4, 64);
    rt.reserve(hAt + blockRows * k * 4 - rt.heapBase, `${what} of ${rows} × ${k}`);
    for (let i0 = 0; i0 < k; i0 += blockRows) {
      const r = Math.min(blockRows, k - i0);
      const width = k - i0;
      start?.(rt.f32(hAt, r * width), i0, r, width);
      for (const { r0, c, host } of chunks) {
        // One staged chunk of x serves every block without copying it again.
        if (host === null && (i0 === 0 || chunks.length > 1)) {
          rt.copyIn(x.subarray(r0 * k, (r0 + c) * k), xAt);
        }
        rt.packB({
          k: c,
          n: width,
          stage: xAt + i0 * 4,
          rowStride: k,
          colStride: 1,
          packed: packedAt,
          p0: 0,
          p1: c,
          j0: 0,
          j1: width,
          stageHost: host === null ? null : host + BigInt(i0 * 4),
        });
        // Without `start` the first chunk stores its Gram into the block.
        const accumulate = start !== null || r0 > 0;
        rt.gramUpper({ m: r, n: width, k: c, packed: packedAt, c: hAt, ldc: width, accumulate });
      }
      finish(rt.f32(hAt, r * width), i0, r, width, hAt);
    }
  }

  /**
   * Every head's attention scores, unscaled and unmasked:
   * scores[h, i, j] = Σ_d q[i, h·D + d] · k[j, g·D + d] with g = ⌊h / (heads / kvHeads)⌋
   * (grouped-query attention: consecutive query heads share a key head).
   *
   * @param q [seq, heads·D]
   * @param k [kvLen, kvHeads·D]
   * @param shape sequence lengths, head counts and head dimension D
   * @param out written when given (its first heads·seq·kvLen floats), else allocated
   * @returns scores, [heads, seq, kvLen]
   */
  attentionScores(
    q: Float32Array,
    k: Float32Array,
    shape: AttentionGemmShape,
    out?: Float32Array,
  ): Float32Array {
    const what = "attentionScores";
    const { seq, kvLen, heads, kvHeads, headDim: d } = checkAttention(what, shape);
    checkLength(what, "q", q, seq * heads * d);
    checkLength(what, "k", k, kvLen * kvHeads * d);
    const y = out ?? new Float32Array(heads * seq * kvLen);
    checkLength(what, "out", y, heads * seq * kvLen);
    return this.#batched(what, q, seq * heads * d, k, kvLen * kvHeads * d, y, heads * seq * kvLen, {
      m: seq,
      n: kvLen,
      k: d,
      aRowStride: heads * d,
      aColStride: 1,
      aBatchStride: d,
      bRowStride: 1,
      bColStride: kvHeads * d,
      bBatchStride: d,
      ldc: kvLen,
      cBatchStride: seq * kvLen,
      batch: heads,
      bGroup: heads / kvHeads,
      causal: shape.causal ? { kind: "scores", offset: kvLen - seq } : undefined,
    });
  }

  /**
   * Every head's attention output from its probabilities:
   * out[i, h·D + d] = Σ_j p[h, i, j] · v[j, g·D + d] with g = ⌊h / (heads / kvHeads)⌋.
   *
   * @param p [heads, seq, kvLen]
   * @param v [kvLen, kvHeads·D]
   * @param shape sequence lengths, head counts and head dimension D
   * @param out written when given (its first seq·heads·D floats), else allocated
   * @returns [seq, heads·D]
   */
  attentionValues(
    p: Float32Array,
    v: Float32Array,
    shape: AttentionGemmShape,
    out?: Float32Array,
  ): Float32Array {
    const what = "attentionValues";
    const { seq, kvLen, heads, kvHeads, headDim: d } = checkAttention(what, shape);
    checkLength(what, "p", p, heads * seq * kvLen);
    checkLength(what, "v", v, kvLen * kvHeads * d);
    const y = out ?? new Float32Array(seq * heads * d);
    checkLength(what, "out", y, seq * heads * d);
    return this.#batched(what, p, heads * seq * kvLen, v, kvLen * kvHeads * d, y, seq * heads * d, {
      m: seq,
      n: d,
      k: kvLen,
      aRowStride: kvLen,
      aColStride: 1,
      aBatchStride: seq * kvLen,
      bRowStride: kvHeads * d,
      bColStride: 1,
      bBatchStride: d,
      ldc: heads * d,
      cBatchStride: d,
      batch: heads,
      bGroup: heads / kvHeads,
      causal: shape.causal ? { kind: "values", offset: kvLen - seq } : undefined,
    });
  }

  /**
   * Attention probabilities in place: each row i of each head's scores
   * `[heads, seq, kvLen]` becomes softmax(scale · row) over the keys it sees
   * ((i + kvLen − seq − window, i + kvLen − seq], all earlier ones when
   * window is 0 or absent) and 0 elsewhere (float32 sums; exp to about 1 ulp).
   *
   * @param p scores from {@linkcode attentionScores}, overwritten
   * @param shape sequence lengths, head counts, D, window and scale (default D^-0.5)
   */
  attentionSoftmax(p: Float32Array, shape: CausalAttentionShape): void {
    const what = "attentionSoftmax";
    const { seq, kvLen, heads, headDim: d } = checkAttention(what, { ...shape, causal: true });
    const { window, scale } = softmaxParameters(what, shape, d);
    const length = heads * seq * kvLen;
    checkLength(what, "p", p, length);
    if (length === 0) return;
    const rt = this.#rt;
    const pAt = rt.heapBase;
    rt.reserve(length * 4, `${what} of ${heads} heads × ${seq} × ${kvLen}`);
    rt.f32(pAt, length).set(p.subarray(0, length));
    rt.softmax({ p: pAt, heads, seq, kvLen, window, scale });
    p.set(rt.f32(pAt, length));
  }

  /**
   * Causal grouped-query attention of one sequence, every head at once:
   * out[i, h·D:(h+1)·D] = Σ_j softmax_j(scale · q_i·k_j) · v_j over the keys
   * query i sees (j ≤ i + kvLen − seq, and within `window` of it). One job:
   * each task takes a key/value head (its keys packed once) and the query
   * rows of every head that shares it, block by block, through the scores,
   * the softmax (float32 sums; exp to about 1 ulp) and the values in its own
   * scratch, with the bits of {@linkcode attentionScores}, {@linkcode attentionSoftmax}
   * and {@linkcode attentionValues} run one after another (keys a row does
   * not see are not multiplied).
   *
   * @param q [seq, heads·D]
   * @param k [kvLen, kvHeads·D]
   * @param v [kvLen, kvHeads·D]
   * @param shape sequence lengths, head counts, D, window and scale
   * @param out written when given (its first seq·heads·D floats), else allocated
   * @returns [seq, heads·D]
   */
  causalAttention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    shape: CausalAttentionShape,
    out?: Float32Array,
  ): Float32Array {
    const what = "causalAttention";
    const { seq, kvLen, heads, kvHeads, headDim: d } = checkAttention(what, {
      ...shape,
      causal: true,
    });
    const { window, scale } = softmaxParameters(what, shape, d);
    const sequences = shape.sequences ?? 1;
    checkShape(what, "sequences", sequences);
    // Per sequence.
    const qLength = seq * heads * d, kvLength = kvLen * kvHeads * d;
    checkLength(what, "q", q, sequences * qLength);
    checkLength(what, "k", k, sequences * kvLength);
    checkLength(what, "v", v, sequences * kvLength);
    const y = out ?? new Float32Array(sequences * qLength);
    checkLength(what, "out", y, sequences * qLength);
    if (sequences * qLength === 0) return y;
    if (kvLen === 0 || d === 0) {
      y.fill(0, 0, sequences * qLength);
      return y;
    }
    const rt = this.#rt;
    const rows = ATTENTION_ROWS;
    const scratchBytes = attentionScratchBytes(kvLen, d, rows);
    // Whole sequences a job, about a streaming chunk's worth (at least one),
    // no more tasks than the job's counter holds.
    const tasksPerSequence = heads * Math.ceil(seq / rows);
    const group = Math.min(
      sequences,
      Math.max(1, Math.floor(0xffff / tasksPerSequence)),
      chunkRows(this.#stream, (2 * qLength + 2 * kvLength) * 4, 1),
    );
    const qAt = rt.heapBase;
    const kAt = align(qAt + group * qLength * 4, 64);
    const vAt = align(kAt + group * kvLength * 4, 64);
    const oAt = align(vAt + group * kvLength * 4, 64);
    const scratchAt = align(oAt + group * qLength * 4, 64);
    rt.reserve(
      scratchAt + rt.threads * scratchBytes - rt.heapBase,
      `${what} of ${group} × ${heads} heads × ${seq} × ${kvLen}`,
    );
    for (let b0 = 0; b0 < sequences; b0 += group) {
      const n = Math.min(group, sequences - b0);
      // Natively large operands are read (and out written) in place.
      const ys = y.subarray(b0 * qLength, (b0 + n) * qLength);
      const hosts = {
        q: this.#stageRows(q.subarray(b0 * qLength, (b0 + n) * qLength), qAt),
        k: this.#stageRows(k.subarray(b0 * kvLength, (b0 + n) * kvLength), kAt),
        v: this.#stageRows(v.subarray(b0 * kvLength, (b0 + n) * kvLength), vAt),
        out: rt.hostAddress(ys),
      };
      rt.attention({
        q: qAt,
        k: kAt,
        v: vAt,
        out: oAt,
        sequences: n,
        seq,
        kvLen,
        heads,
        kvHeads,
        headDim: d,
        window,
        scale,
        rows,
        scratch: scratchAt,
        scratchBytes,
        hosts,
      });
      if (hosts.out === null) rt.copyOut(oAt, ys);
    }
    return y;
  }

  /**
   * y = silu(gate) · up element-wise (a SwiGLU MLP's activation), with a SIMD
   * exp of about 1 ulp, in chunks the threads share.
   *
   * @param gate n floats
   * @param up n floats
   * @param n elements
   * @param out written when given (its first n floats), else allocated
   * @returns y
   */
  siluMul(gate: Float32Array, up: Float32Array, n: number, out?: Float32Array): Float32Array {
    const what = "siluMul";
    checkShape(what, "n", n);
    checkLength(what, "gate", gate, n);
    checkLength(what, "up", up, n);
    const y = out ?? new Float32Array(n);
    checkLength(what, "out", y, n);
    if (n === 0) return y;
    const rt = this.#rt;
    // Multiples of 4 floats: every element but the array's last n % 4 takes the SIMD path.
    const step = Math.min(n, chunkRows(this.#stream, 3 * 4, 4));
    const gAt = rt.heapBase;
    const uAt = align(gAt + step * 4, 64);
    const yAt = align(uAt + step * 4, 64);
    rt.reserve(yAt + step * 4 - rt.heapBase, `${what} of ${n}`);
    for (let i0 = 0; i0 < n; i0 += step) {
      const c = Math.min(step, n - i0);
      rt.f32(gAt, c).set(gate.subarray(i0, i0 + c));
      rt.f32(uAt, c).set(up.subarray(i0, i0 + c));
      rt.siluMul(gAt, uAt, yAt, c);
      y.set(rt.f32(yAt, c), i0);
    }
    return y;
  }

  /**
   * y_i[m, n_i] = x[m, k] · w_iᵀ (+ bias_i) for several weights of one x
   * (q, k and v of attention): the bits of {@link matmulTransposed} for each
   * (and of a float32 sum per element with a bias), with x copied into the
   * kernels' memory once for all of them rather than once a product. With
   * `rope`, the products marked `rope` then get RoPE (rotate_half) in place
   * in the kernels' memory, with the bits of the CPU engine's ropeInPlace:
   * row r of x is position r mod `rope.seqLen` (rows are whole sequences).
   *
   * @param x activations, m × k
   * @param ws the weights, each n_i × k, with n_i, optional bias and whether RoPE applies
   * @param m rows of x
   * @param k columns of x
   * @param outs written when given (out i: its first m·n_i floats), else allocated
   * @param rope the RoPE tables and head dimension, for the products marked `rope`
   * @returns the products, in the order of ws
   */
  matmulTransposedMany(
    x: Float32Array,
    ws: readonly ManyProduct[],
    m: number,
    k: number,
    outs?: readonly Float32Array[],
    rope?: RopeTables,
  ): Float32Array[] {
    const what = "matmulTransposedMany";
    if (outs !== undefined && outs.length !== ws.length) {
      throw new CpuKernelError(`${what}: ${ws.length} weights but ${outs.length} outputs`);
    }
    const ys = ws.map(({ n }, i) => outs?.[i] ?? new Float32Array(m * n));
    ys.forEach((y, i) => checkLength(what, `out ${i}`, y, m * ws[i].n));
    for (const [i, { n, bias }] of ws.entries()) {
      if (bias !== undefined) checkLength(what, `bias ${i}`, bias, n);
    }
    const half = checkRope(what, ws, rope);
    const rt = this.#rt;
    const tables = rope === undefined
      ? []
      : [rope.cos, rope.sin].map((t) => t.subarray(0, rope.seqLen * half));
    const widths = ws.map(({ n }) => n);
    const transforms = this.#rowTransforms(what, widths, ws.map((p) => p.after), tables);
    this.#products(what, x, ws, m, k, (r0, r, c, at) => {
      for (const [i, { n, bias }] of ws.entries()) {
        // matmul's bias: float32 sums, before RoPE as a Linear's output has it.
        if (bias !== undefined) {
          const y = rt.f32(c[i], r * n);
          for (let row = 0; row < r; row++) for (let j = 0; j < n; j++) y[row * n + j] += bias[j];
        }
      }
      // Then the online output transforms, then RoPE (as the forward applies them apart).
      const results = transforms.run(c, r, at);
      for (const [i, { n }] of ws.entries()) {
        // Natively the product may be in ys[i] already (at.hosts[i]; never with
        // a bias or a transform).
        const host = at.hosts[i];
        if (rope !== undefined && ws[i].rope) {
          rt.rope({
            x: results[i],
            xHost: host,
            rows: r,
            n,
            headDim: rope.headDim,
            first: r0,
            seqLen: rope.seqLen,
            cos: at.fixed[0],
            sin: at.fixed[1],
          });
        }
        if (host === null) rt.copyOut(results[i], ys[i].subarray(r0 * n, (r0 + r) * n));
      }
    }, {
      ...transforms.layout,
      // Not an out that shares x's memory (the threads would overwrite rows of
      // x that other column groups still read), nor one with a bias or an
      // output transform (both run on the product in the kernels' memory).
      outs: ys.map((y, i) =>
        ws[i].bias === undefined && ws[i].after === undefined && y.buffer !== x.buffer ? y : null
      ),
    });
    return ys;
  }

  /**
   * y = residual + x·wᵀ (a residual connection around a Linear without a
   * bias): the bits of {@link matmulTransposed} and a float32 sum per
   * element; the product stays in the kernels' memory for the sum, so the
   * residual is copied in and only y copied out (in the native build the
   * threads read the residual and write y in place, from 1 MiB).
   *
   * @param x activations, m × k
   * @param w weight, n × k
   * @param residual m × n
   * @param m rows of x
   * @param n rows of w
   * @param k columns of x
   * @param out written when given (its first m·n floats; may be residual), else allocated
   * @param after the product's {@link RowTransform} (an online output
   *   transform), run on its chunk in the kernels' memory before the sum
   * @returns y, m × n
   */
  matmulTransposedAdd(
    x: Float32Array,
    w: Float32Array,
    residual: Float32Array,
    m: number,
    n: number,
    k: number,
    out?: Float32Array,
    after?: RowTransform,
  ): Float32Array {
    const what = "matmulTransposedAdd";
    checkShape(what, "n", n);
    checkLength(what, "residual", residual, m * n);
    const y = out ?? new Float32Array(m * n);
    checkLength(what, "out", y, m * n);
    const rt = this.#rt;
    const transforms = this.#rowTransforms(what, n, [after]);
    // The residual's rows go after the transforms' scratch.
    const { extraPerRow, fixed } = transforms.layout;
    this.#products(what, x, [{ w, n }], m, k, (r0, r, c, at) => {
      const [product] = transforms.run(c, r, at);
      const rows = residual.subarray(r0 * n, (r0 + r) * n);
      const ys = y.subarray(r0 * n, (r0 + r) * n);
      // Natively the sum goes straight from the residual into y.
      if (rt.addToHost(rows, product, ys)) return;
      const sum = at.extra + extraPerRow * r * 4;
      rt.copyIn(rows, sum);
      rt.add(sum, product, product, r * n);
      rt.copyOut(product, ys);
    }, { extraPerRow: extraPerRow + n, fixed });
    return y;
  }

  /**
   * A SwiGLU MLP's activation from its input: y = silu(x·gateᵀ) · (x·upᵀ),
   * with the bits of two {@link matmulTransposed} calls and a
   * {@link siluMul} on their results. Both products of a chunk of x's rows
   * stay in the kernels' memory for the activation: x is copied in once,
   * only y is copied out (in the native build the threads write y in place,
   * from 1 MiB).
   *
   * @param x activations, m × k
   * @param gate the gate weight, n × k
   * @param up the up weight, n × k
   * @param m rows of x
   * @param n rows of each weight
   * @param k columns of x
   * @param out written when given (its first m·n floats), else allocated
   * @param after each product's {@link RowTransform} (an online output
   *   transform), run on its chunk in the kernels' memory before the
   *   activation: the bits of {@link walshHadamard} on the whole product
   * @returns y, m × n
   */
  swiGlu(
    x: Float32Array,
    gate: Float32Array,
    up: Float32Array,
    m: number,
    n: number,
    k: number,
    out?: Float32Array,
    after: { readonly gate?: RowTransform; readonly up?: RowTransform } = {},
  ): Float32Array {
    const what = "swiGlu";
    const y = out ?? new Float32Array(m * n);
    checkLength(what, "out", y, m * n);
    const transforms = this.#rowTransforms(what, n, [after.gate, after.up]);
    // A chunk starts at a multiple of 4 rows, so each element takes the
    // SIMD or scalar path of one siluMul over the whole array.
    this.#products(what, x, [{ w: gate, n }, { w: up, n }], m, k, (r0, r, c, at) => {
      const [g, u] = transforms.run(c, r, at);
      const ys = y.subarray(r0 * n, (r0 + r) * n);
      // Natively the activation is written straight into y.
      if (this.#rt.siluMulToHost(g, u, ys)) return;
      this.#rt.siluMul(g, u, g, r * n);
      this.#rt.copyOut(g, ys);
    }, transforms.layout);
    return y;
  }

  /**
   * One block of GPTQ's column loop on an integer grid, without pruning (see
   * {@link IntColumnBlock}): the kernels' twin of `cpuColumnBlock` in
   * second_order.ts for that case, with the same bits, its rows shared out
   * among the threads.
   *
   * @param block the block's weight columns, U's block, the grid, and the outputs
   * @returns the sum of the loss terms, in float64 from 0 in row-major order
   */
  gptqColumnBlock(block: IntColumnBlock): number {
    const what = "gptqColumnBlock";
    const { rows, count } = block;
    checkShape(what, "rows", rows);
    checkShape(what, "count", count);
    if (count > COLUMN_BLOCK_MAX_COUNT) {
      throw new CpuKernelError(
        `${what}: ${count} columns, the kernels run at most ${COLUMN_BLOCK_MAX_COUNT}`,
      );
    }
    checkLength(what, "w", block.w, rows * count);
    checkLength(what, "u", block.u, count * count);
    checkLength(what, "err", block.err, rows * count);
    for (const [name, array] of [["slot", block.slot], ["terms", block.terms]] as const) {
      const needed = name === "slot" ? count : rows * count;
      if (array !== undefined && array.length < needed) {
        throw new CpuKernelError(`${what}: ${name} holds ${array.length} values, needs ${needed}`);
      }
    }
    const slots = block.scale.length;
    if (block.zero.length !== slots) {
      throw new CpuKernelError(`${what}: ${slots} scales but ${block.zero.length} zero points`);
    }
    const mask = block.mask;
    if (mask !== undefined && mask.length < rows * count) {
      throw new CpuKernelError(`${what}: mask holds ${mask.length} values, needs ${rows * count}`);
    }
    // The grid and the mask follow the loss terms, offsets from the tail.
    const zeroOff = align(slots * 4, 64);
    const slotOff = align(zeroOff + slots * 4, 64);
    const maskOff = align(slotOff + count * 4, 64);
    const tailBytes = mask === undefined ? slotOff + count * 4 : maskOff + rows * count;
    return this.#runColumnBlock(what, block, tailBytes, (at) => {
      const rt = this.#rt;
      const mem = rt.memory.buffer;
      rt.f32(at.tail, slots).set(block.scale);
      rt.f32(at.tail + zeroOff, slots).set(block.zero);
      new Uint32Array(mem, at.tail + slotOff, count).set(block.slot.subarray(0, count));
      if (mask !== undefined) {
        new Uint8Array(mem, at.tail + maskOff, rows * count).set(mask.subarray(0, rows * count));
      }
      rt.columnBlock({
        rows,
        count,
        w: at.w,
        u: at.u,
        err: at.err,
        terms: at.terms,
        scale: at.tail,
        zero: at.tail + zeroOff,
        slot: at.tail + slotOff,
        rowDiv: block.rowDiv,
        slotRowStride: block.slotRowStride,
        qmin: block.qmin,
        qmax: block.qmax,
        mask: mask === undefined ? 0 : at.tail + maskOff,
      });
    });
  }

  /**
   * One block of SparseGPT's column loop with N:M pruning (see
   * {@link PruneColumnBlock}): the kernels' twin of `cpuColumnBlock` in
   * second_order.ts for that case, with the same bits, its rows shared out
   * among the threads.
   *
   * @param block the block's weight columns, U's block, N:M, the keep mask, the errors
   * @returns the sum of the loss terms `(w − q)² / U[i, i]²`, in float64 from 0 in row-major order
   */
  sparsegptColumnBlock(block: PruneColumnBlock): number {
    const what = "sparsegptColumnBlock";
    const { rows, count, n, m, keep } = block;
    checkShape(what, "rows", rows);
    checkShape(what, "count", count);
    checkLength(what, "w", block.w, rows * count);
    checkLength(what, "u", block.u, count * count);
    checkLength(what, "err", block.err, rows * count);
    if (!Number.isInteger(m) || m < 1 || m > 32 || !Number.isInteger(n) || n < 0 || n > m) {
      throw new CpuKernelError(`${what}: N:M must have 1 ≤ M ≤ 32 and 0 ≤ N ≤ M, got ${n}:${m}`);
    }
    if (count > COLUMN_BLOCK_MAX_COUNT) {
      throw new CpuKernelError(
        `${what}: ${count} columns, the kernels run at most ${COLUMN_BLOCK_MAX_COUNT}`,
      );
    }
    if (keep !== undefined && keep.length < rows * count) {
      throw new CpuKernelError(`${what}: keep holds ${keep.length} values, needs ${rows * count}`);
    }
    if (rows === 0 || count === 0) return 0;
    // The keep mask follows the loss terms.
    const tailBytes = keep === undefined ? 0 : rows * count;
    return this.#runColumnBlock(what, block, tailBytes, (at) => {
      const rt = this.#rt;
      if (keep !== undefined) {
        new Uint8Array(rt.memory.buffer, at.tail, rows * count).set(keep.subarray(0, rows * count));
      }
      rt.pruneBlock({
        rows,
        count,
        w: at.w,
        u: at.u,
        err: at.err,
        terms: at.terms,
        n,
        m,
        keep: keep === undefined ? 0 : at.tail,
      });
    });
  }

  /**
   * A column block's shared staging: a float64 sum slot, w, U, err and the
   * loss terms in the kernels' memory, then `tailBytes` for the op's own
   * operands at `at.tail`; `run` records the op. Copies w and err (and the
   * terms, when asked) back and returns the terms' ordered float64 sum.
   */
  #runColumnBlock(
    what: string,
    block: {
      readonly rows: number;
      readonly count: number;
      readonly w: Float32Array;
      readonly u: Float32Array;
      readonly err: Float32Array;
      readonly terms?: Float64Array;
    },
    tailBytes: number,
    run: (at: { w: number; u: number; err: number; terms: number; tail: number }) => void,
  ): number {
    const { rows, count } = block;
    if (rows === 0 || count === 0) return 0;
    const rt = this.#rt;
    const sumAt = rt.heapBase;
    const wAt = align(sumAt + 8, 64);
    const uAt = align(wAt + rows * count * 4, 64);
    const errAt = align(uAt + count * count * 4, 64);
    const termsAt = align(errAt + rows * count * 4, 64);
    const tailAt = align(termsAt + rows * count * 8, 64);
    rt.reserve(tailAt + tailBytes - rt.heapBase, `${what} of ${rows} × ${count}`);
    rt.f32(wAt, rows * count).set(block.w.subarray(0, rows * count));
    rt.f32(uAt, count * count).set(block.u.subarray(0, count * count));
    run({ w: wAt, u: uAt, err: errAt, terms: termsAt, tail: tailAt });
    block.w.set(rt.f32(wAt, rows * count));
    block.err.set(rt.f32(errAt, rows * count));
    block.terms?.set(new Float64Array(rt.memory.buffer, termsAt, rows * count));
    rt.orderedSum({ v: termsAt, n: rows * count, out: sumAt });
    return new Float64Array(rt.memory.buffer, sumAt, 1)[0];
  }

  /**
   * The Cholesky factor L (L·Lᵀ = A) of a `[b, b]` block in place: its lower  /**
   * The Cholesky factor L (L·Lᵀ = A) of a `[b, b]` block in place: its lower
   * triangle is read and becomes L, the upper one is left as it was. Float32
   * values, float64 sums (see run_cholesky_block in kernels/gemm.c); the
   * diagonal blocks of the CPU inverse factor.
   *
   * @param a `[b, b]` row-major, modified in place
   * @param b the order
   * @returns false when A is not (numerically) positive definite (`a` then
   *   holds a partial factor)
   */
  choleskyBlock(a: Float32Array, b: number): boolean {
    const what = "choleskyBlock";
    checkShape(what, "b", b);
    checkLength(what, "a", a, b * b);
    if (b === 0) return true;
    const rt = this.#rt;
    const statusAt = rt.heapBase;
    const aAt = align(statusAt + 4, 64);
    rt.reserve(aAt + b * b * 4 - rt.heapBase, `${what} of ${b}`);
    rt.f32(aAt, b * b).set(a.subarray(0, b * b));
    rt.choleskyBlock({ a: aAt, b, status: statusAt });
    a.set(rt.f32(aAt, b * b));
    return new Int32Array(rt.memory.buffer, statusAt, 1)[0] === 0;
  }

  /**
   * X = L⁻¹ of a lower-triangular `[b, b]` L (only its lower triangle is
   * read) by forward substitution in float64, rounded to float32 (see
   * run_lower_inverse_block in kernels/gemm.c), its columns shared by the
   * threads.
   *
   * @param l `[b, b]` row-major
   * @param b the order
   * @param out written when given (its first b·b floats), else allocated
   * @returns X, zeros above the diagonal, or null when a value is not finite
   */
  lowerTriangularInverse(l: Float32Array, b: number, out?: Float32Array): Float32Array | null {
    const what = "lowerTriangularInverse";
    checkShape(what, "b", b);
    checkLength(what, "l", l, b * b);
    const x = out ?? new Float32Array(b * b);
    checkLength(what, "out", x, b * b);
    if (b === 0) return x;
    const rt = this.#rt;
    const statusAt = rt.heapBase;
    const lAt = align(statusAt + 4, 64);
    const xAt = align(lAt + b * b * 4, 64);
    const workAt = align(xAt + b * b * 4, 64);
    rt.reserve(workAt + b * lowerInverseStride(b) * 8 - rt.heapBase, `${what} of ${b}`);
    rt.f32(lAt, b * b).set(l.subarray(0, b * b));
    rt.lowerInverseBlock({ l: lAt, work: workAt, x: xAt, b, status: statusAt });
    x.set(rt.f32(xAt, b * b));
    return new Int32Array(rt.memory.buffer, statusAt, 1)[0] === 0 ? x : null;
  }

  /**
   * RMS norm of each row: y = x / sqrt(mean(x²) + eps) · w, the squares
   * summed in float64 in column order, the inverse rounded to float32, then
   * two float32 products (Llama's RMSNorm at float32), rows shared by the threads.
   *
   * @param x rows × cols
   * @param w cols
   * @param rows rows of x
   * @param cols its columns
   * @param eps added to the mean square
   * @param out written when given, else allocated
   * @returns y, rows × cols
   */
  rmsnorm(
    x: Float32Array,
    w: Float32Array,
    rows: number,
    cols: number,
    eps: number,
    out?: Float32Array,
  ): Float32Array {
    const what = "rmsnorm";
    checkShape(what, "rows", rows);
    checkShape(what, "cols", cols);
    checkLength(what, "x", x, rows * cols);
    checkLength(what, "w", w, cols);
    const y = out ?? new Float32Array(rows * cols);
    checkLength(what, "out", y, rows * cols);
    if (rows === 0 || cols === 0) return y;
    const rt = this.#rt;
    const wAt = rt.heapBase;
    const xAt = align(wAt + cols * 4, 64);
    // Rows in chunks of about the stream budget, x and y each.
    const step = Math.min(rows, chunkRows(this.#stream, 2 * cols * 4, 4));
    const yAt = align(xAt + step * cols * 4, 64);
    rt.reserve(yAt + step * cols * 4 - rt.heapBase, `${what} of ${rows} × ${cols}`);
    rt.f32(wAt, cols).set(w.subarray(0, cols));
    // Natively (large x and y) the threads read x and write y in place.
    const [xs, ys] = [x, y].map((a) => a.subarray(0, rows * cols));
    if (rt.rmsnormHost({ x: xs, w: wAt, y: ys, rows, cols, eps })) return y;
    for (let r0 = 0; r0 < rows; r0 += step) {
      const n = Math.min(step, rows - r0);
      rt.copyIn(x.subarray(r0 * cols, (r0 + n) * cols), xAt);
      rt.rmsnorm({ x: xAt, w: wAt, y: yAt, rows: n, cols, eps });
      rt.copyOut(yAt, y.subarray(r0 * cols, (r0 + n) * cols));
    }
    return y;
  }

  /**
   * Fast Walsh–Hadamard transform of each run of `n` floats of `x`, in place
   * (or into `options.out`): butterflies of span `stride`, 2·stride, … n/2
   * (stride 1: the whole transform; a larger stride leaves the stride-sized
   * blocks to a product with the base matrix), then × `scale`. The bits of
   * `fastWalshHadamard` in src/transform/block_apply.ts; runs shared by the
   * threads, streamed through the kernels' memory in whole runs. With
   * `options.signs`, each run's position i is also multiplied by `signs[i]`
   * as a float32 product (a random-hadamard rotation's diagonal), before the
   * butterflies when `signsFirst`, else after the scale. With `options.base`
   * (K × K, K = stride), each run of K values is multiplied by it before the
   * butterflies: the whole factored product `(S_m ⊗ H_K) · diag(signs)` on
   * each chunk while it is in the kernels' memory.
   *
   * @param x a whole number of runs of n floats, transformed in place unless `out` is given
   * @param n run length: `stride` times a power of two
   * @param scale multiplies every result (float64, rounded once)
   * @param stride the span of the first butterflies
   * @param options `out` (x's length; x then stays as it is), `signs` (n factors), `signsFirst`, `base`
   */
  walshHadamard(
    x: Float32Array,
    n: number,
    scale = 1,
    stride = 1,
    options: WalshHadamardOptions = {},
  ): void {
    const what = "walshHadamard";
    if (
      !(x instanceof Float32Array) || !Number.isInteger(n) || n < 1 ||
      !Number.isInteger(stride) || stride < 1 || n % stride !== 0 ||
      !Number.isInteger(Math.log2(n / stride)) || x.length % n !== 0
    ) {
      throw new CpuKernelError(
        `${what}: a Float32Array of whole runs of n = ${n}, a stride (${stride}) times a power of ` +
          `two, expected; got ${x.length} values`,
      );
    }
    const { signs, base, out = x } = options;
    checkTransformFactors(what, n, stride, options);
    checkLength(what, "out", out, x.length);
    if (x.length === 0) return;
    const rt = this.#rt;
    const runs = x.length / n;
    const signsAt = rt.heapBase;
    // With a base: its packed B, then each chunk's rows and their product.
    const packedAt = align(signsAt + (signs === undefined ? 0 : n * 4), 64);
    const xAt = align(packedAt + (base === undefined ? 0 : stride * align(stride, NR) * 4), 64);
    const step = Math.min(runs, chunkRows(this.#stream, n * 4, 1));
    const yAt = base === undefined ? xAt : align(xAt + step * n * 4, 64);
    const end = Math.max(yAt + step * n * 4, xAt + (base === undefined ? 0 : base.length * 4));
    rt.reserve(end - rt.heapBase, `${what} of ${runs} runs of ${n}`);
    if (signs !== undefined) rt.f32(signsAt, n).set(signs.subarray(0, n));
    // B's staging shares the space the chunks use afterwards.
    if (base !== undefined) this.#packTransposed(base, stride, stride, packedAt, xAt, stride);
    const at = {
      signs: signs === undefined ? 0 : signsAt,
      packed: base === undefined ? 0 : packedAt,
    };
    for (let r0 = 0; r0 < runs; r0 += step) {
      const r = Math.min(step, runs - r0);
      rt.f32(xAt, r * n).set(x.subarray(r0 * n, (r0 + r) * n));
      this.#transformChunk({ n, scale, stride, options }, at, xAt, yAt, r);
      out.set(rt.f32(yAt, r * n), r0 * n);
    }
  }

  /**
   * Row transforms of the products of one {@link #products} call (each
   * product `widths[i]` wide; undefined: none), checked: `layout` is the
   * fixed arrays (each transform's signs, base and the space of its packed
   * base, after `fixedBefore` of the caller's) and the scratch per row (a
   * product with a base is transformed into scratch of its own); `run`
   * transforms a chunk's products (packing the bases on its first call) and
   * returns where each result is.
   */
  #rowTransforms(
    what: string,
    widths: number | readonly number[],
    transforms: readonly (RowTransform | undefined)[],
    fixedBefore: readonly Float32Array[] = [],
  ): {
    layout: { extraPerRow: number; fixed: readonly Float32Array[] };
    run: (c: readonly number[], r: number, at: ProductsAt) => number[];
  } {
    const widthOf = (i: number) => (typeof widths === "number" ? widths : widths[i]);
    const fixed = [...fixedBefore];
    const take = (a: Float32Array) => fixed.push(a) - 1;
    const slots = transforms.map((t, i) => {
      if (t === undefined) return null;
      const { n, stride, options } = t;
      const width = widthOf(i);
      if (
        !Number.isInteger(n) || n < 1 || width % n !== 0 || !Number.isInteger(stride) ||
        stride < 1 || n % stride !== 0 || !Number.isInteger(Math.log2(n / stride))
      ) {
        throw new CpuKernelError(
          `${what}: a transform of runs of ${n} (stride ${stride}, a stride times a power of ` +
            `two dividing ${width}) expected`,
        );
      }
      checkTransformFactors(what, n, stride, options);
      const signs = options.signs === undefined ? -1 : take(options.signs.subarray(0, n));
      if (options.base === undefined) return { t, signs, base: -1, packed: -1, scratch: -1 };
      const base = take(options.base.subarray(0, stride * stride));
      const packed = take(new Float32Array(stride * align(stride, NR)));
      return { t, signs, base, packed, scratch: 0 };
    });
    // Each product with a base gets `width` floats a row of scratch, one after another.
    let extraPerRow = 0;
    for (const [i, slot] of slots.entries()) {
      if (slot?.scratch !== 0) continue;
      slot.scratch = extraPerRow;
      extraPerRow += widthOf(i);
    }
    let packed = false;
    const run = (c: readonly number[], r: number, at: ProductsAt) => {
      const rt = this.#rt;
      if (!packed) {
        // Each base packed as matmulTransposed packs a [K, K] weight, once.
        for (const slot of slots) {
          if (slot === null || slot.base < 0) continue;
          const K = slot.t.stride;
          const job = { k: K, n: K, stage: at.fixed[slot.base], rowStride: 1, colStride: K };
          rt.packB({ ...job, packed: at.fixed[slot.packed], p0: 0, p1: K, j0: 0, j1: K });
        }
        packed = true;
      }
      return c.map((product, i) => {
        const slot = slots[i];
        if (slot === null || slot === undefined) return product;
        const into = slot.base < 0 ? product : at.extra + slot.scratch * r * 4;
        const factors = {
          signs: slot.signs < 0 ? 0 : at.fixed[slot.signs],
          packed: slot.base < 0 ? 0 : at.fixed[slot.packed],
        };
        this.#transformChunk(slot.t, factors, product, into, (r * widthOf(i)) / slot.t.n);
        return into;
      });
    };
    return { layout: { extraPerRow, fixed }, run };
  }

  /**
   * {@link walshHadamard} of `runs` runs at byte address `x` in the kernels'
   * memory, with the signs and the packed base at `at` (0: none): in place
   * without a base; with one, the signs first (a transform without
   * butterflies), the rows of K times baseᵀ into `y` (the packed product
   * matmulTransposed runs, same bits), then the butterflies and the signs
   * after in place there.
   */
  #transformChunk(
    t: RowTransform,
    at: { signs: number; packed: number },
    x: number,
    y: number,
    runs: number,
  ): void {
    const rt = this.#rt;
    const { n, stride } = t;
    const signsFirst = at.signs !== 0 && (t.options.signsFirst ?? false);
    const job = { runs, n, scale: 1, signs: 0, signsFirst: false };
    if (at.packed !== 0) {
      if (signsFirst) rt.walshHadamard({ ...job, x, stride: n, signs: at.signs, signsFirst });
      rt.runPacked({
        m: (runs * n) / stride,
        n: stride,
        k: stride,
        a: x,
        aRowStride: stride,
        aColStride: 1,
        packed: at.packed,
        c: y,
        ldc: stride,
        accumulate: false,
      });
    }
    rt.walshHadamard({
      ...job,
      x: at.packed !== 0 ? y : x,
      stride,
      scale: t.scale,
      signs: at.packed !== 0 && signsFirst ? 0 : at.signs,
      signsFirst,
    });
  }

  /**
   * FP8 E4M3 fake quantization of each row r of `x` with its scale
   * `scale[r]`, with float32 ops and no zero point: `e4m3(clamp(x / s,
   * −qMax, qMax)) · s`, the bits of `fakeQuantizeFp8RunF32`
   * (src/quant/_quantize_kernels.ts), rows shared by the threads and
   * streamed through the kernels' memory.
   *
   * @param x rows × cols
   * @param scale rows
   * @param rows rows of x
   * @param cols its columns
   * @param qMax the clamp bound (448 for E4M3)
   * @param out written when given (x's length), else allocated
   * @returns y, rows × cols
   */
  fakeQuantizeFp8Rows(
    x: Float32Array,
    scale: Float32Array,
    rows: number,
    cols: number,
    qMax: number,
    out?: Float32Array,
  ): Float32Array {
    const what = "fakeQuantizeFp8Rows";
    checkShape(what, "rows", rows);
    checkShape(what, "cols", cols);
    checkLength(what, "x", x, rows * cols);
    checkLength(what, "scale", scale, rows);
    return this.#fakeQuantizeRowChunks(what, x, scale, null, rows, cols, out, (at) => {
      this.#rt.fakeQuantizeFp8({ ...at, cols, qMax });
    });
  }

  /**
   * Integer-grid fake quantization of each row r of `x` with its scale
   * `scale[r]` (and zero point `zero[r]`), with float32 ops: `(rne(clamp(x /
   * s + z, qMin, qMax)) − z) · s` (no `z` without zero points), the bits of `fakeQuantizeIntRunF32`
   * (src/quant/_quantize_kernels.ts), rows shared by the threads and
   * streamed through the kernels' memory.
   *
   * @param x rows × cols
   * @param scale rows
   * @param zero rows, or null (no zero point: not the same as zeros, whose
   *   sum turns a −0 quotient into +0)
   * @param rows rows of x
   * @param cols its columns
   * @param qMin the lower clamp bound, an integer in (−2^22, 0)
   * @param qMax the upper one, an integer in (0, 2^22)
   * @param out written when given (x's length), else allocated
   * @returns y, rows × cols
   * @throws {CpuKernelError} on a bad shape or length, or bounds the kernel does not take
   */
  fakeQuantizeIntRows(
    x: Float32Array,
    scale: Float32Array,
    zero: Float32Array | null,
    rows: number,
    cols: number,
    qMin: number,
    qMax: number,
    out?: Float32Array,
  ): Float32Array {
    const what = "fakeQuantizeIntRows";
    checkShape(what, "rows", rows);
    checkShape(what, "cols", cols);
    checkLength(what, "x", x, rows * cols);
    checkLength(what, "scale", scale, rows);
    if (zero !== null) checkLength(what, "zero", zero, rows);
    if (!checkIntBound(qMin, -1) || !checkIntBound(qMax, 1)) {
      throw new CpuKernelError(
        `${what}: bounds [${qMin}, ${qMax}] must be integers with qMin < 0 < qMax and |q| < 2^22`,
      );
    }
    return this.#fakeQuantizeRowChunks(what, x, scale, zero, rows, cols, out, (at) => {
      this.#rt.fakeQuantizeInt({ ...at, cols, qMin, qMax });
    });
  }

  /**
   * The row streaming of {@link fakeQuantizeFp8Rows} and
   * {@link fakeQuantizeIntRows} (shapes checked by the caller): rows in
   * chunks of about the stream budget (x and y each), each chunk's scales
   * and zero points (when given) copied in beside it; `run` records the op
   * on one chunk (zero 0: none); y (`out` when given) gets the results.
   */
  #fakeQuantizeRowChunks(
    what: string,
    x: Float32Array,
    scale: Float32Array,
    zero: Float32Array | null,
    rows: number,
    cols: number,
    out: Float32Array | undefined,
    run: (at: { x: number; scale: number; zero: number; y: number; rows: number }) => void,
  ): Float32Array {
    const y = out ?? new Float32Array(rows * cols);
    checkLength(what, "out", y, rows * cols);
    if (rows === 0 || cols === 0) return y;
    const rt = this.#rt;
    const perRow = 2 * cols * 4 + (zero === null ? 4 : 8);
    const step = Math.min(rows, chunkRows(this.#stream, perRow, 1));
    const sAt = rt.heapBase;
    const zAt = align(sAt + step * 4, 64);
    const xAt = zero === null ? zAt : align(zAt + step * 4, 64);
    const yAt = align(xAt + step * cols * 4, 64);
    rt.reserve(yAt + step * cols * 4 - rt.heapBase, `${what} of ${rows} × ${cols}`);
    for (let r0 = 0; r0 < rows; r0 += step) {
      const n = Math.min(step, rows - r0);
      rt.f32(sAt, n).set(scale.subarray(r0, r0 + n));
      if (zero !== null) rt.f32(zAt, n).set(zero.subarray(r0, r0 + n));
      rt.f32(xAt, n * cols).set(x.subarray(r0 * cols, (r0 + n) * cols));
      run({ x: xAt, scale: sAt, zero: zero === null ? 0 : zAt, y: yAt, rows: n });
      y.set(rt.f32(yAt, n * cols), r0 * cols);
    }
    return y;
  }

  /**
   * The minimum and the maximum of each row of `x` in one pass, with the
   * values JavaScript's Math.min and Math.max fold (−0 below +0, NaN if any
   * value is NaN, as the quiet NaN), rows shared by the threads and
   * streamed through the kernels' memory.
   *
   * @param x rows × cols
   * @param rows rows of x
   * @param cols its columns (≥ 1 when rows > 0)
   * @param min receives the minima (its first rows floats)
   * @param max receives the maxima
   */
  rowMinMax(
    x: Float32Array,
    rows: number,
    cols: number,
    min: Float32Array,
    max: Float32Array,
  ): void {
    const what = "rowMinMax";
    checkShape(what, "rows", rows);
    checkShape(what, "cols", cols);
    checkLength(what, "x", x, rows * cols);
    checkLength(what, "min", min, rows);
    checkLength(what, "max", max, rows);
    if (rows === 0) return;
    if (cols === 0) throw new CpuKernelError(`${what}: ${rows} rows of no columns have no minimum`);
    const rt = this.#rt;
    const step = Math.min(rows, chunkRows(this.#stream, cols * 4 + 8, 1));
    const loAt = rt.heapBase;
    const hiAt = align(loAt + step * 4, 64);
    const xAt = align(hiAt + step * 4, 64);
    rt.reserve(xAt + step * cols * 4 - rt.heapBase, `${what} of ${rows} × ${cols}`);
    for (let r0 = 0; r0 < rows; r0 += step) {
      const n = Math.min(step, rows - r0);
      rt.f32(xAt, n * cols).set(x.subarray(r0 * cols, (r0 + n) * cols));
      rt.rowMinMax({ x: xAt, min: loAt, max: hiAt, rows: n, cols });
      min.set(rt.f32(loAt, n), r0);
      max.set(rt.f32(hiAt, n), r0);
    }
  }

  /**
   * Each row's sum of squared differences, `y[r] = Σ_c (a − b)²` (`Σ_c a²`
   * when `b` is null), rows shared by the threads: the bits of the loop
   * `acc += fround(fround(a − b)²)` over the columns in order with a float64
   * `acc` from +0, stored as a float32 (CpuEngine.rowSquaredError's
   * reference). Natively, large `a` and `b` are read in place; otherwise
   * rows are streamed through the kernels' memory.
   *
   * @param a rows × cols
   * @param b rows × cols, or null
   * @param rows rows of a
   * @param cols its columns
   * @param out written when given (its first rows floats), else allocated
   * @returns y, rows floats (0 for every row when cols is 0)
   * @throws {CpuKernelError} on a bad shape or length
   */
  rowSquaredError(
    a: Float32Array,
    b: Float32Array | null,
    rows: number,
    cols: number,
    out?: Float32Array,
  ): Float32Array {
    const what = "rowSquaredError";
    checkShape(what, "rows", rows);
    checkShape(what, "cols", cols);
    checkLength(what, "a", a, rows * cols);
    if (b !== null) checkLength(what, "b", b, rows * cols);
    const y = out ?? new Float32Array(rows);
    checkLength(what, "out", y, rows);
    if (rows === 0) return y;
    if (cols === 0) {
      y.fill(0, 0, rows);
      return y;
    }
    const rt = this.#rt;
    const [as, bs] = [a.subarray(0, rows * cols), b?.subarray(0, rows * cols) ?? null];
    const aHost = rt.hostAddress(as);
    const bHost = bs === null ? null : rt.hostAddress(bs);
    if (aHost !== null && (bs === null || bHost !== null)) {
      // Read in place: only the row sums go through the memory.
      rt.reserve(rows * 4, `${what} of ${rows} × ${cols}`);
      rt.rowSquaredError({
        a: 0,
        b: bs === null ? null : 0,
        y: rt.heapBase,
        rows,
        cols,
        aHost,
        bHost,
      });
      y.set(rt.f32(rt.heapBase, rows));
      return y;
    }
    const inputs = b === null ? 1 : 2;
    const step = Math.min(rows, chunkRows(this.#stream, inputs * cols * 4 + 4, 8));
    const yAt = rt.heapBase;
    const aAt = align(yAt + step * 4, 64);
    const bAt = align(aAt + step * cols * 4, 64);
    rt.reserve(
      (b === null ? bAt : bAt + step * cols * 4) - rt.heapBase,
      `${what} of ${rows} × ${cols}`,
    );
    for (let r0 = 0; r0 < rows; r0 += step) {
      const n = Math.min(step, rows - r0);
      rt.copyIn(a.subarray(r0 * cols, (r0 + n) * cols), aAt);
      if (b !== null) rt.copyIn(b.subarray(r0 * cols, (r0 + n) * cols), bAt);
      rt.rowSquaredError({ a: aAt, b: b === null ? null : bAt, y: yAt, rows: n, cols });
      y.set(rt.f32(yAt, n), r0);
    }
    return y;
  }

  /**
   * The minimum and the maximum of each column of `x` in one pass, with the
   * values Math.min and Math.max fold (−0 below +0, NaN if any value is
   * NaN, as the quiet NaN), columns shared by the threads; rows streamed
   * through the kernels' memory in chunks whose results are folded the same
   * way (min and max do not depend on the order).
   *
   * @param x rows × cols
   * @param rows rows of x (≥ 1 when cols > 0)
   * @param cols its columns
   * @param min receives the minima (its first cols floats)
   * @param max receives the maxima
   */
  columnMinMax(
    x: Float32Array,
    rows: number,
    cols: number,
    min: Float32Array,
    max: Float32Array,
  ): void {
    const what = "columnMinMax";
    checkShape(what, "rows", rows);
    checkShape(what, "cols", cols);
    checkLength(what, "x", x, rows * cols);
    checkLength(what, "min", min, cols);
    checkLength(what, "max", max, cols);
    if (cols === 0) return;
    if (rows === 0) throw new CpuKernelError(`${what}: ${cols} columns of no rows have no minimum`);
    const rt = this.#rt;
    const step = Math.min(rows, chunkRows(this.#stream, cols * 4, 1));
    const loAt = rt.heapBase;
    const hiAt = align(loAt + cols * 4, 64);
    const xAt = align(hiAt + cols * 4, 64);
    rt.reserve(xAt + step * cols * 4 - rt.heapBase, `${what} of ${rows} × ${cols}`);
    for (let r0 = 0; r0 < rows; r0 += step) {
      const n = Math.min(step, rows - r0);
      rt.f32(xAt, n * cols).set(x.subarray(r0 * cols, (r0 + n) * cols));
      rt.columnMinMax({ x: xAt, min: loAt, max: hiAt, rows: n, cols });
      const lo = rt.f32(loAt, cols);
      const hi = rt.f32(hiAt, cols);
      if (r0 === 0) {
        min.set(lo);
        max.set(hi);
        continue;
      }
      for (let c = 0; c < cols; c++) {
        min[c] = Math.min(min[c], lo[c]);
        max[c] = Math.max(max[c], hi[c]);
      }
    }
  }

  /** @returns threads and kernel build in use */
  info(): CpuKernelInfo {
    return {
      threads: this.#rt.threads,
      variant: this.#rt.variant,
      relaxedSimd: this.#rt.variant !== "simd",
      simd: true,
      nativeNote: this.#rt.nativeNote,
    };
  }

  /** Bytes of WebAssembly memory the kernels hold (it grows to the largest call, never shrinks). */
  get memoryBytes(): number {
    return this.#rt.memory.buffer.byteLength;
  }

  /** Column stripes run by worker threads so far: shows that the pool takes part. */
  get workerTasks(): number {
    return this.#rt.workerTasks;
  }

  /** Stops this instance's worker threads; it cannot be used afterwards. */
  close(): void {
    this.#rt.close();
  }

  #batched(
    what: string,
    a: Float32Array,
    aLength: number,
    b: Float32Array,
    bLength: number,
    y: Float32Array,
    yLength: number,
    job: Omit<GemmJob, "a" | "b" | "c" | "accumulate" | "upper">,
  ): Float32Array {
    if (yLength === 0) return y;
    if (job.k === 0) {
      y.fill(0, 0, yLength);
      return y;
    }
    const rt = this.#rt;
    const aAt = rt.heapBase;
    const bAt = align(aAt + aLength * 4, 64);
    const cAt = align(bAt + bLength * 4, 64);
    rt.reserve(cAt + yLength * 4 - rt.heapBase, `${what} of ${job.batch} heads`);
    rt.f32(aAt, aLength).set(a.subarray(0, aLength));
    rt.f32(bAt, bLength).set(b.subarray(0, bLength));
    // Causal scores leave tiles unwritten: make them 0, not an earlier call's data.
    if (job.causal?.kind === "scores") rt.f32(cAt, yLength).fill(0);
    rt.run({ ...job, a: aAt, b: bAt, c: cAt, accumulate: false });
    y.set(rt.f32(cAt, yLength));
    return y;
  }

  /**
   * y = a·b (or a·bᵀ when `transposed`): B is packed once into the kernels'
   * memory (staged through it in chunks of whole rows of w, or whole KC
   * slices of b's rows), then the rows of a and y stream through in chunks.
   * With `quadratic` (n = k), y stays in the kernels' memory: each chunk's
   * Σ y ⊙ a is added in order to the float64 at heapBase instead.
   */
  #product(
    what: string,
    a: Float32Array,
    b: Float32Array,
    m: number,
    n: number,
    k: number,
    y: Float32Array,
    transposed: boolean,
    quadratic = false,
  ): Float32Array {
    if (m === 0 || n === 0) return y;
    if (k === 0) {
      y.fill(0, 0, m * n);
      return y;
    }
    const rt = this.#rt;
    const sumAt = rt.heapBase;
    const packedAt = quadratic ? sumAt + 64 : rt.heapBase;
    const workAt = align(packedAt + k * align(n, NR) * 4, 64);
    // Rows of a and y stream through in chunks (a multiple of the 4-row micro-tile).
    const step = Math.min(m, chunkRows(this.#stream, (k + n) * 4, 4));
    const aAt = workAt;
    const cAt = align(aAt + step * k * 4, 64);
    // B's staging chunk shares the space a and y use afterwards.
    const chunk = transposed
      ? Math.min(n, chunkRows(this.#stream, k * 4, NR))
      : Math.min(k, chunkRows(this.#stream, n * 4, KC));
    const end = Math.max(cAt + step * n * 4, workAt + chunk * (transposed ? k : n) * 4);
    rt.reserve(end - rt.heapBase, `${what} of ${m} × ${n} × ${k}`);
    if (transposed) this.#packTransposed(b, n, k, packedAt, workAt, chunk);
    else {
      for (let c0 = 0; c0 < k; c0 += chunk) {
        const p1 = Math.min(k, c0 + chunk);
        rt.f32(workAt, (p1 - c0) * n).set(b.subarray(c0 * n, p1 * n));
        rt.packB({
          k,
          n,
          stage: workAt,
          rowStride: n,
          colStride: 1,
          packed: packedAt,
          p0: c0,
          p1,
          j0: 0,
          j1: n,
        });
      }
    }
    for (let r0 = 0; r0 < m; r0 += step) {
      const r = Math.min(step, m - r0);
      // The quadratic form reads the chunk of a back from the memory.
      const rows = a.subarray(r0 * k, (r0 + r) * k);
      let aHost: bigint | null = null;
      if (quadratic) rt.copyIn(rows, aAt);
      else aHost = this.#stageRows(rows, aAt);
      rt.runPacked({
        m: r,
        n,
        k,
        a: aAt,
        aRowStride: k,
        aColStride: 1,
        packed: packedAt,
        c: cAt,
        ldc: n,
        accumulate: false,
        aHost,
      });
      if (quadratic) rt.orderedDot({ a: cAt, b: aAt, n: r * n, acc: sumAt });
      else rt.copyOut(cAt, y.subarray(r0 * n, (r0 + r) * n));
    }
    return y;
  }

  /**
   * The host address of `rows` (a chunk of a product's A, or attention's
   * q, k, v) when the native threads can read it in place, else null after
   * copying it to byte address `at`: the operand is then not copied into
   * the kernels' memory (run_rows and run_attention in gemm.c read it
   * there; same bits).
   */
  #stageRows(rows: Float32Array, at: number): bigint | null {
    const host = this.#rt.hostAddress(rows);
    if (host === null) this.#rt.copyIn(rows, at);
    return host;
  }

  /**
   * Packs w [n, k] (a Linear's layout, the B of y = x·wᵀ) into the packed B
   * at `packedAt`, staged through `workAt` in chunks of `chunk` whole rows.
   */
  #packTransposed(
    w: Float32Array,
    n: number,
    k: number,
    packedAt: number,
    workAt: number,
    chunk: number,
  ): void {
    const rt = this.#rt;
    for (let c0 = 0; c0 < n; c0 += chunk) {
      const j1 = Math.min(n, c0 + chunk);
      rt.f32(workAt, (j1 - c0) * k).set(w.subarray(c0 * k, j1 * k));
      rt.packB({
        k,
        n,
        stage: workAt,
        rowStride: 1,
        colStride: k,
        packed: packedAt,
        p0: 0,
        p1: k,
        j0: c0,
        j1,
      });
    }
  }

  /**
   * y_i = x·w_iᵀ for every weight, as {@link matmulTransposed} computes each
   * (the same packed B, the same row chunks of x, the same kernels): every
   * weight is packed once, then each chunk of x's rows is copied into the
   * kernels' memory once for all the products, and `finish(r0, r, c)` takes
   * the chunk's results at byte addresses `c` (rows r0 … r0 + r − 1; c[i]
   * holds r × ws[i].n floats, the next chunk overwrites them), with
   * `extraPerRow` floats a row of scratch at byte address `at.extra` and
   * the `fixed` arrays copied in once, at `at.fixed[i]`. Where `outs[i]` is
   * given and the native threads can write its chunk in place, product i
   * goes there instead of to c[i] (`at.hosts[i]` its address, else null).
   * The chunks are whole multiples of 4 rows but the last.
   */
  #products(
    what: string,
    x: Float32Array,
    ws: readonly { readonly w: Float32Array; readonly n: number }[],
    m: number,
    k: number,
    finish: (r0: number, r: number, c: readonly number[], at: ProductsAt) => void,
    { extraPerRow = 0, fixed = [], outs = [] }: {
      extraPerRow?: number;
      fixed?: readonly Float32Array[];
      outs?: readonly (Float32Array | null)[];
    } = {},
  ): void {
    checkShape(what, "m", m);
    checkShape(what, "k", k);
    checkLength(what, "x", x, m * k);
    for (const [i, { w, n }] of ws.entries()) {
      checkShape(what, `n of weight ${i}`, n);
      checkLength(what, `weight ${i}`, w, n * k);
    }
    if (m === 0) return;
    const rt = this.#rt;
    const nSum = ws.reduce((a, { n }) => a + n, 0);
    const packedAt: number[] = [];
    let at = rt.heapBase;
    for (const { n } of ws) {
      packedAt.push(at);
      at = align(at + k * align(n, NR) * 4, 64);
    }
    const fixedAt: number[] = [];
    for (const f of fixed) {
      fixedAt.push(at);
      at = align(at + f.length * 4, 64);
    }
    const workAt = at;
    const step = Math.min(m, chunkRows(this.#stream, (k + nSum + extraPerRow) * 4, 4));
    const aAt = workAt;
    const cAt: number[] = [];
    at = align(aAt + step * k * 4, 64);
    for (const { n } of ws) {
      cAt.push(at);
      at = align(at + step * n * 4, 64);
    }
    const extraAt = at;
    at = align(at + step * extraPerRow * 4, 64);
    // Each weight's staging chunk shares the space x and the results use afterwards.
    const chunks = ws.map(({ n }) => Math.min(n, chunkRows(this.#stream, k * 4, NR)));
    const end = Math.max(at, workAt + Math.max(...chunks) * k * 4);
    rt.reserve(end - rt.heapBase, `${what} of ${m} × ${nSum} × ${k}`);
    // With k = 0 there is nothing to pack: the products are zeros.
    for (const [i, { w, n }] of ws.entries()) {
      if (k > 0) this.#packTransposed(w, n, k, packedAt[i], workAt, chunks[i]);
    }
    fixed.forEach((f, i) => rt.f32(fixedAt[i], f.length).set(f));
    for (let r0 = 0; r0 < m; r0 += step) {
      const r = Math.min(step, m - r0);
      const aHost = k > 0 ? this.#stageRows(x.subarray(r0 * k, (r0 + r) * k), aAt) : null;
      const hosts = ws.map(({ n }, i) =>
        k > 0 && outs[i] ? rt.hostAddress(outs[i].subarray(r0 * n, (r0 + r) * n)) : null
      );
      for (const [i, { n }] of ws.entries()) {
        if (k === 0) rt.f32(cAt[i], r * n).fill(0);
        else {
          rt.runPacked({
            m: r,
            n,
            k,
            a: aAt,
            aRowStride: k,
            aColStride: 1,
            packed: packedAt[i],
            c: cAt[i],
            ldc: n,
            accumulate: false,
            aHost,
            cHost: hosts[i],
          });
        }
      }
      finish(r0, r, cAt, { extra: extraAt, fixed: fixedAt, hosts });
    }
  }
}

/**
 * Makes a separate set of CPU kernels with its own memory and threads (for
 * tests and benchmarks that compare thread counts or builds). Call `close()`
 * when done.
 *
 * @example
 * ```ts
 * import { createCpuGemm } from "./gemm.ts";
 * const gemm = createCpuGemm({ threads: 1, variant: "simd" });
 * const y = gemm.matmul(new Float32Array([1, 2]), new Float32Array([3, 4]), 1, 1, 2);
 * console.log(y[0]); // 11
 * gemm.close();
 * ```
 *
 * @param options thread count and kernel build
 * @returns the instance
 */
export function createCpuGemm(options: CpuGemmOptions = {}): CpuGemm {
  return new CpuGemm(options);
}

let shared: CpuGemm | undefined;
let sharedWorkers: PoolWorkers = "node";

/**
 * Sets what the shared default instance's pool threads will be when it is
 * created (it is created once, on first use; later calls change nothing for
 * it). "web" starts the kernels ~50 ms sooner but keeps the process alive
 * until `Deno.exit` (see {@linkcode PoolWorkers}): only for a program that
 * always ends that way, such as the CLI's entry point.
 *
 * @param kind the pool threads' kind
 * @example
 * ```ts ignore
 * import { setSharedPoolWorkers } from "./gemm.ts";
 * setSharedPoolWorkers("web");
 * Deno.exit(await main(Deno.args));
 * ```
 */
export function setSharedPoolWorkers(kind: PoolWorkers): void {
  sharedWorkers = kind;
}

function defaultGemm(): CpuGemm {
  if (!shared) {
    const env = Deno.env.get("LLMC_CPU_THREADS");
    const threads = env === undefined ? undefined : Number(env);
    if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) {
      throw new CpuKernelError(`LLMC_CPU_THREADS must be a positive integer, got "${env}"`);
    }
    shared = new CpuGemm({ threads, workers: sharedWorkers });
  }
  return shared;
}

/**
 * y[m,n] = x[m,k] · w[n,k]ᵀ (row-major f32). Writes into `out` when given (length m*n), else allocates.
 *
 * @example
 * ```ts
 * import { matmulTransposed } from "./gemm.ts";
 * const y = matmulTransposed(new Float32Array([1, 2]), new Float32Array([3, 4, 5, 6]), 1, 2, 2);
 * console.log(y); // Float32Array [11, 17]
 * ```
 *
 * @param x m × k
 * @param w n × k
 * @param m rows of x
 * @param n rows of w
 * @param k shared inner dimension
 * @param out optional destination, length m*n
 * @returns y, m × n
 */
export function matmulTransposed(
  x: Float32Array,
  w: Float32Array,
  m: number,
  n: number,
  k: number,
  out?: Float32Array,
): Float32Array {
  return defaultGemm().matmulTransposed(x, w, m, n, k, out);
}

/**
 * y[m,n] = a[m,k] · b[k,n] (row-major f32).
 *
 * @example
 * ```ts
 * import { matmul } from "./gemm.ts";
 * const y = matmul(new Float32Array([1, 2]), new Float32Array([3, 4, 5, 6]), 1, 2, 2);
 * console.log(y); // Float32Array [13, 16]
 * ```
 *
 * @param a m × k
 * @param b k × n
 * @param m rows of a
 * @param n columns of b
 * @param k shared inner dimension
 * @param out optional destination, length m*n
 * @returns y, m × n
 */
export function matmul(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  out?: Float32Array,
): Float32Array {
  return defaultGemm().matmul(a, b, m, n, k, out);
}

/**
 * h[k,k] += xᵀ·x for x[rows,k] (the Hessian / Gram update; the full symmetric matrix is written).
 * `h` must be symmetric on entry, as every sum of Grams is.
 *
 * @example
 * ```ts
 * import { accumulateGram } from "./gemm.ts";
 * const h = new Float32Array(4);
 * accumulateGram(h, new Float32Array([1, 2, 3, 4]), 2, 2);
 * console.log(h); // Float32Array [10, 14, 14, 20]
 * ```
 *
 * @param h k × k, symmetric, updated in place
 * @param x rows × k
 * @param rows rows of x
 * @param k columns of x
 */
export function accumulateGram(h: Float32Array, x: Float32Array, rows: number, k: number): void {
  defaultGemm().accumulateGram(h, x, rows, k);
}

/**
 * {@link CpuGemm.scaleAddGramUpper} on the default pool: the upper triangle
 * of h ← beta·h + alpha·xᵀx, each element in float64 rounded once.
 *
 * @example
 * ```ts
 * import { scaleAddGramUpper } from "./gemm.ts";
 * const h = new Float32Array([1, 1, 1, 1]);
 * scaleAddGramUpper(h, new Float32Array([1, 2]), 1, 2, 0.5, 2);
 * console.log(h); // Float32Array [2.5, 4.5, 1, 8.5]: the lower 1 untouched
 * ```
 *
 * @param h k × k, its upper triangle updated in place
 * @param x rows × k
 * @param rows rows of x
 * @param k columns of x
 * @param beta the factor of h
 * @param alpha the factor of xᵀx
 */
export function scaleAddGramUpper(
  h: Float32Array,
  x: Float32Array,
  rows: number,
  k: number,
  beta: number,
  alpha: number,
): void {
  defaultGemm().scaleAddGramUpper(h, x, rows, k, beta, alpha);
}

/**
 * Copies the upper triangle of a k × k row-major matrix onto its lower one.
 *
 * @example
 * ```ts
 * import { mirrorUpperTriangle } from "./gemm.ts";
 * const h = new Float32Array([1, 2, 0, 3]);
 * mirrorUpperTriangle(h, 2);
 * console.log(h); // Float32Array [1, 2, 2, 3]
 * ```
 *
 * @param h k × k, its strict lower triangle overwritten
 * @param k rows and columns
 */
export function mirrorUpperTriangle(h: Float32Array, k: number): void {
  // In blocks for the cache.
  const B = 32;
  for (let ib = 0; ib < k; ib += B) {
    for (let jb = 0; jb <= ib; jb += B) {
      const iEnd = Math.min(ib + B, k);
      for (let i = ib; i < iEnd; i++) {
        const jEnd = Math.min(jb + B, i);
        for (let j = jb; j < jEnd; j++) h[i * k + j] = h[j * k + i];
      }
    }
  }
}

/**
 * Every head's attention scores, unscaled and unmasked: scores[h, i, j] =
 * q[i, h·D:(h+1)·D] · k[j, g·D:(g+1)·D], g = ⌊h / (heads / kvHeads)⌋.
 *
 * @example
 * ```ts
 * import { attentionScores } from "./gemm.ts";
 * // one head of dimension 2, two positions
 * const s = attentionScores(
 *   new Float32Array([1, 0, 0, 1]),
 *   new Float32Array([1, 2, 3, 4]),
 *   { seq: 2, kvLen: 2, heads: 1, kvHeads: 1, headDim: 2 },
 * );
 * console.log(s); // Float32Array [1, 3, 2, 4]
 * ```
 *
 * @param q [seq, heads·D]
 * @param k [kvLen, kvHeads·D]
 * @param shape sequence lengths, head counts and D
 * @param out optional destination
 * @returns [heads, seq, kvLen]
 */
export function attentionScores(
  q: Float32Array,
  k: Float32Array,
  shape: AttentionGemmShape,
  out?: Float32Array,
): Float32Array {
  return defaultGemm().attentionScores(q, k, shape, out);
}

/**
 * Every head's attention output: out[i, h·D + d] = Σ_j p[h, i, j] · v[j, g·D + d],
 * g = ⌊h / (heads / kvHeads)⌋.
 *
 * @example
 * ```ts
 * import { attentionValues } from "./gemm.ts";
 * const o = attentionValues(
 *   new Float32Array([1, 0, 0.5, 0.5]),
 *   new Float32Array([1, 2, 3, 4]),
 *   { seq: 2, kvLen: 2, heads: 1, kvHeads: 1, headDim: 2 },
 * );
 * console.log(o); // Float32Array [1, 2, 2, 3]
 * ```
 *
 * @param p [heads, seq, kvLen]
 * @param v [kvLen, kvHeads·D]
 * @param shape sequence lengths, head counts and D
 * @param out optional destination
 * @returns [seq, heads·D]
 */
export function attentionValues(
  p: Float32Array,
  v: Float32Array,
  shape: AttentionGemmShape,
  out?: Float32Array,
): Float32Array {
  return defaultGemm().attentionValues(p, v, shape, out);
}

/**
 * Causal grouped-query attention of one sequence, every head at once (see
 * {@linkcode CpuGemm.causalAttention}).
 *
 * @example
 * ```ts
 * import { causalAttention } from "./gemm.ts";
 * // one head of dimension 1, two positions: the second query weighs both keys
 * const o = causalAttention(
 *   new Float32Array([0, 0]),
 *   new Float32Array([1, 1]),
 *   new Float32Array([2, 4]),
 *   { seq: 2, kvLen: 2, heads: 1, kvHeads: 1, headDim: 1 },
 * );
 * console.log(o); // Float32Array [2, 3]
 * ```
 *
 * @param q [seq, heads·D]
 * @param k [kvLen, kvHeads·D]
 * @param v [kvLen, kvHeads·D]
 * @param shape sequence lengths, head counts, D, window and scale
 * @param out optional destination
 * @returns [seq, heads·D]
 */
export function causalAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  shape: CausalAttentionShape,
  out?: Float32Array,
): Float32Array {
  return defaultGemm().causalAttention(q, k, v, shape, out);
}

/**
 * y = silu(gate) · up element-wise (see {@linkcode CpuGemm.siluMul}).
 *
 * @example
 * ```ts
 * import { siluMul } from "./gemm.ts";
 * const y = siluMul(new Float32Array([0, 1]), new Float32Array([5, 2]), 2);
 * console.log(y); // Float32Array [0, 1.4621172]
 * ```
 *
 * @param gate n floats
 * @param up n floats
 * @param n elements
 * @param out optional destination
 * @returns y
 */
export function siluMul(
  gate: Float32Array,
  up: Float32Array,
  n: number,
  out?: Float32Array,
): Float32Array {
  return defaultGemm().siluMul(gate, up, n, out);
}

/**
 * y = silu(x·gateᵀ) · (x·upᵀ) on the shared default instance (see {@linkcode CpuGemm.swiGlu}).
 *
 * @example
 * ```ts
 * import { swiGlu } from "./gemm.ts";
 * // x = [1, 2]; gate row [1, 0] gives 1, up row [0, 1] gives 2: silu(1) · 2
 * const y = swiGlu(new Float32Array([1, 2]), new Float32Array([1, 0]), new Float32Array([0, 1]), 1, 1, 2);
 * console.assert(Math.abs(y[0] - 2 / (1 + Math.exp(-1))) < 1e-6);
 * ```
 *
 * @param x m × k
 * @param gate n × k
 * @param up n × k
 * @param m rows of x
 * @param n rows of each weight
 * @param k columns of x
 * @param out optional destination, m·n floats
 * @param after transforms of the gate and up products' rows before the activation
 * @returns y, m × n
 */
export function swiGlu(
  x: Float32Array,
  gate: Float32Array,
  up: Float32Array,
  m: number,
  n: number,
  k: number,
  out?: Float32Array,
  after?: { readonly gate?: RowTransform; readonly up?: RowTransform },
): Float32Array {
  return defaultGemm().swiGlu(x, gate, up, m, n, k, out, after);
}

/**
 * y = residual + x·wᵀ on the shared default instance (see
 * {@linkcode CpuGemm.matmulTransposedAdd}).
 *
 * @example
 * ```ts
 * import { matmulTransposedAdd } from "./gemm.ts";
 * // [1, 2] · [3, 4]ᵀ = 11, plus 0.5
 * const y = matmulTransposedAdd(new Float32Array([1, 2]), new Float32Array([3, 4]), new Float32Array([0.5]), 1, 1, 2);
 * console.log(y); // Float32Array [11.5]
 * ```
 *
 * @param x m × k
 * @param w n × k
 * @param residual m × n
 * @param m rows of x
 * @param n rows of w
 * @param k columns of x
 * @param out optional destination, m·n floats (may be residual)
 * @param after the product's row transform, before the sum
 * @returns y, m × n
 */
export function matmulTransposedAdd(
  x: Float32Array,
  w: Float32Array,
  residual: Float32Array,
  m: number,
  n: number,
  k: number,
  out?: Float32Array,
  after?: RowTransform,
): Float32Array {
  return defaultGemm().matmulTransposedAdd(x, w, residual, m, n, k, out, after);
}

/**
 * x·w_iᵀ for several weights of one x on the shared default instance (see
 * {@linkcode CpuGemm.matmulTransposedMany}).
 *
 * @example
 * ```ts
 * import { matmulTransposedMany } from "./gemm.ts";
 * const x = new Float32Array([1, 2]);
 * const [a, b] = matmulTransposedMany(x, [
 *   { w: new Float32Array([3, 4]), n: 1 },
 *   { w: new Float32Array([1, 0, 0, 1]), n: 2 },
 * ], 1, 2);
 * console.log(a, b); // Float32Array [11] Float32Array [1, 2]
 * ```
 *
 * @param x m × k
 * @param ws the weights, each n_i × k, with n_i, optional bias and whether RoPE applies
 * @param m rows of x
 * @param k columns of x
 * @param outs optional destinations, one per weight
 * @param rope the RoPE tables, for the products marked `rope`
 * @returns the products, in the order of ws
 */
export function matmulTransposedMany(
  x: Float32Array,
  ws: readonly ManyProduct[],
  m: number,
  k: number,
  outs?: readonly Float32Array[],
  rope?: RopeTables,
): Float32Array[] {
  return defaultGemm().matmulTransposedMany(x, ws, m, k, outs, rope);
}

/**
 * RMS norm of each row on the shared default instance (see {@linkcode CpuGemm.rmsnorm}).
 *
 * @example
 * ```ts
 * import { rmsnorm } from "./gemm.ts";
 * const y = rmsnorm(new Float32Array([3, 4]), new Float32Array([1, 2]), 1, 2, 0);
 * console.assert(Math.abs(y[0] - 3 / Math.sqrt(12.5)) < 1e-6);
 * ```
 *
 * @param x rows × cols
 * @param w cols
 * @param rows rows of x
 * @param cols its columns
 * @param eps added to the mean square
 * @param out written when given, else allocated
 * @returns y, rows × cols
 */
export function rmsnorm(
  x: Float32Array,
  w: Float32Array,
  rows: number,
  cols: number,
  eps: number,
  out?: Float32Array,
): Float32Array {
  return defaultGemm().rmsnorm(x, w, rows, cols, eps, out);
}

/**
 * Fast Walsh–Hadamard transform of each run of `n` floats of `x` in place (or
 * into `options.out`, with `options.signs` multiplied in), on the shared
 * default instance (see {@linkcode CpuGemm.walshHadamard}).
 *
 * @example
 * ```ts
 * import { walshHadamard } from "./gemm.ts";
 * const x = new Float32Array([1, 0, 0, 0]);
 * walshHadamard(x, 4, 0.5);
 * console.assert(x.every((v) => v === 0.5));
 * ```
 *
 * @param x a whole number of runs of n floats, transformed in place unless `out` is given
 * @param n run length: `stride` times a power of two
 * @param scale multiplies every result (float64, rounded once)
 * @param stride the span of the first butterflies
 * @param options `out`, `signs`, `signsFirst` (see {@linkcode WalshHadamardOptions})
 */
export function walshHadamard(
  x: Float32Array,
  n: number,
  scale = 1,
  stride = 1,
  options: WalshHadamardOptions = {},
): void {
  defaultGemm().walshHadamard(x, n, scale, stride, options);
}

/**
 * The minimum and the maximum of each column in one pass, on the shared
 * default instance (see {@linkcode CpuGemm.columnMinMax}).
 *
 * @example
 * ```ts
 * import { columnMinMax } from "./gemm.ts";
 * const [min, max] = [new Float32Array(3), new Float32Array(3)];
 * columnMinMax(new Float32Array([3, -1, 2, 0, -0, 5]), 2, 3, min, max);
 * console.assert(min[0] === 0 && Object.is(min[1], -1) && max[2] === 5);
 * ```
 *
 * @param x rows × cols
 * @param rows rows of x
 * @param cols its columns
 * @param min receives the minima
 * @param max receives the maxima
 */
export function columnMinMax(
  x: Float32Array,
  rows: number,
  cols: number,
  min: Float32Array,
  max: Float32Array,
): void {
  defaultGemm().columnMinMax(x, rows, cols, min, max);
}

/**
 * The minimum and the maximum of each row in one pass, on the shared default
 * instance (see {@linkcode CpuGemm.rowMinMax}).
 *
 * @example
 * ```ts
 * import { rowMinMax } from "./gemm.ts";
 * const [min, max] = [new Float32Array(2), new Float32Array(2)];
 * rowMinMax(new Float32Array([3, -1, 2, 0, -0, 5]), 2, 3, min, max);
 * console.assert(min[0] === -1 && max[0] === 3 && Object.is(min[1], -0) && max[1] === 5);
 * ```
 *
 * @param x rows × cols
 * @param rows rows of x
 * @param cols its columns
 * @param min receives the minima
 * @param max receives the maxima
 */
export function rowMinMax(
  x: Float32Array,
  rows: number,
  cols: number,
  min: Float32Array,
  max: Float32Array,
): void {
  defaultGemm().rowMinMax(x, rows, cols, min, max);
}

/**
 * Each row's sum of squared differences on the shared default instance (see
 * {@linkcode CpuGemm.rowSquaredError}).
 *
 * @example
 * ```ts
 * import { rowSquaredError } from "./gemm.ts";
 * // Rows [1, 2] and [3, 4] against [0, 0] and [3, 2]: 1 + 4 and 0 + 4.
 * const y = rowSquaredError(new Float32Array([1, 2, 3, 4]), new Float32Array([0, 0, 3, 2]), 2, 2);
 * console.assert(y[0] === 5 && y[1] === 4);
 * ```
 *
 * @param a rows × cols
 * @param b rows × cols, or null (then each row's sum of squares)
 * @param rows rows of a
 * @param cols its columns
 * @param out written when given, else allocated
 * @returns y, rows floats
 */
export function rowSquaredError(
  a: Float32Array,
  b: Float32Array | null,
  rows: number,
  cols: number,
  out?: Float32Array,
): Float32Array {
  return defaultGemm().rowSquaredError(a, b, rows, cols, out);
}

/**
 * FP8 E4M3 fake quantization of rows, one scale per row, on the shared
 * default instance (see {@linkcode CpuGemm.fakeQuantizeFp8Rows}).
 *
 * @example
 * ```ts
 * import { fakeQuantizeFp8Rows } from "./gemm.ts";
 * // 0.3 / 0.25 = 1.2 → e4m3 1.25 → 0.3125; 1000 saturates at 448 · 0.25 = 112.
 * const y = fakeQuantizeFp8Rows(new Float32Array([0.3, 1000]), new Float32Array([0.25]), 1, 2, 448);
 * console.assert(y[0] === 0.3125 && y[1] === 112);
 * ```
 *
 * @param x rows × cols
 * @param scale rows
 * @param rows rows of x
 * @param cols its columns
 * @param qMax the clamp bound (448 for E4M3)
 * @param out written when given, else allocated
 * @returns y, rows × cols
 */
export function fakeQuantizeFp8Rows(
  x: Float32Array,
  scale: Float32Array,
  rows: number,
  cols: number,
  qMax: number,
  out?: Float32Array,
): Float32Array {
  return defaultGemm().fakeQuantizeFp8Rows(x, scale, rows, cols, qMax, out);
}

/**
 * One block of GPTQ's column loop on an integer grid, on the shared default
 * instance (see {@linkcode CpuGemm.gptqColumnBlock}).
 *
 * @example
 * ```ts
 * import { gptqColumnBlock } from "./gemm.ts";
 * // One row, two columns, U = I, int grid [-8, 7] with scale 0.5: 1.3 → 1.5, then 2.1 → 2.
 * const block = {
 *   w: new Float32Array([1.3, 2.1]), rows: 1, count: 2, u: new Float32Array([1, 0, 0, 1]),
 *   err: new Float32Array(2), terms: new Float64Array(2), scale: new Float32Array([0.5]),
 *   zero: new Float32Array([0]), slot: new Uint32Array([0, 0]), rowDiv: 1, slotRowStride: 1,
 *   qmin: -8, qmax: 7,
 * };
 * gptqColumnBlock(block);
 * console.assert(block.w[0] === 1.5 && block.w[1] === 2);
 * ```
 *
 * @param block the block's weight columns, U's block, the grid, and the outputs
 * @returns the sum of the loss terms (see {@linkcode CpuGemm.gptqColumnBlock})
 */
export function gptqColumnBlock(block: IntColumnBlock): number {
  return defaultGemm().gptqColumnBlock(block);
}

/**
 * tr(x·wᵀ·xᵀ) for x [m, k] and w [k, k], on the shared default instance
 * (see {@linkcode CpuGemm.quadraticSum}).
 *
 * @example
 * ```ts
 * import { quadraticSum } from "./gemm.ts";
 * // x = [1, 2], w = [[2, 0], [0, 3]]: 1·2·1 + 2·3·2 = 14
 * console.assert(quadraticSum(new Float32Array([1, 2]), new Float32Array([2, 0, 0, 3]), 1, 2) === 14);
 * ```
 *
 * @param x m × k
 * @param w k × k
 * @param m rows of x
 * @param k columns of x (and the order of w)
 * @returns the sum
 */
export function quadraticSum(x: Float32Array, w: Float32Array, m: number, k: number): number {
  return defaultGemm().quadraticSum(x, w, m, k);
}

/**
 * The reconstruction errors' quadratic sums on the shared default instance
 * (see {@linkcode CpuGemm.quadraticSums}).
 *
 * @example
 * ```ts
 * import { quadraticSums } from "./gemm.ts";
 * // W = [1, 2], Ĉ = [1, 1], w = diag(2, 3): W·w·Wᵀ = 14, (W − Ĉ)·w·(W − Ĉ)ᵀ = 3
 * const [all, diff] = quadraticSums(new Float32Array([1, 2]), [new Float32Array([1, 1])], new Float32Array([2, 0, 0, 3]), 1, 2, 1);
 * console.assert(all === 14 && diff === 3);
 * ```
 *
 * @param original W, m × k
 * @param candidates the Ĉ
 * @param w k × k
 * @param m rows of W
 * @param k its columns
 * @param rowsPerChunk rows per chunk
 * @returns the sums of W, then of each W − Ĉ
 */
export function quadraticSums(
  original: Float32Array,
  candidates: readonly Float32Array[],
  w: Float32Array,
  m: number,
  k: number,
  rowsPerChunk: number,
): number[] {
  return defaultGemm().quadraticSums(original, candidates, w, m, k, rowsPerChunk);
}

/**
 * Integer-grid fake quantization of each row on the shared default instance
 * (see {@linkcode CpuGemm.fakeQuantizeIntRows}).
 *
 * @example
 * ```ts
 * import { fakeQuantizeIntRows } from "./gemm.ts";
 * const y = fakeQuantizeIntRows(new Float32Array([0.3, -9]), new Float32Array([0.25]), null, 1, 2, -8, 7);
 * console.assert(y[0] === 0.25 && y[1] === -2);
 * ```
 *
 * @param x rows × cols
 * @param scale rows
 * @param zero rows, or null
 * @param rows rows of x
 * @param cols its columns
 * @param qMin the lower clamp bound
 * @param qMax the upper one
 * @param out written when given, else allocated
 * @returns y, rows × cols
 */
export function fakeQuantizeIntRows(
  x: Float32Array,
  scale: Float32Array,
  zero: Float32Array | null,
  rows: number,
  cols: number,
  qMin: number,
  qMax: number,
  out?: Float32Array,
): Float32Array {
  return defaultGemm().fakeQuantizeIntRows(x, scale, zero, rows, cols, qMin, qMax, out);
}

/**
 * Whether a clamp bound suits the kernels' integer fake quantization: an
 * integer of the given sign below 2^22 in magnitude (where a float32 sum
 * with 1.5·2^23 rounds half to even).
 *
 * @param q the bound
 * @param sign −1 for the lower bound, 1 for the upper
 * @returns true when the kernels take it
 * @example
 * ```ts
 * import { checkIntBound } from "./gemm.ts";
 * console.assert(checkIntBound(-128, -1) && !checkIntBound(2 ** 31, 1));
 * ```
 */
export function checkIntBound(q: number, sign: -1 | 1): boolean {
  return Number.isInteger(q) && q * sign > 0 && Math.abs(q) < 2 ** 22;
}

/**
 * The Cholesky factor of a `[b, b]` block in place, on the shared default
 * instance (see {@linkcode CpuGemm.choleskyBlock}).
 *
 * @example
 * ```ts
 * import { choleskyBlock } from "./gemm.ts";
 * const a = new Float32Array([4, 0, 2, 5]); // lower triangle of [[4, 2], [2, 5]]
 * console.assert(choleskyBlock(a, 2) && a[0] === 2 && a[2] === 1 && a[3] === 2);
 * ```
 *
 * @param a `[b, b]` row-major, its lower triangle read and replaced by L
 * @param b the order
 * @returns false when the block is not (numerically) positive definite
 */
export function choleskyBlock(a: Float32Array, b: number): boolean {
  return defaultGemm().choleskyBlock(a, b);
}

/**
 * L⁻¹ of a lower-triangular `[b, b]` block, on the shared default instance
 * (see {@linkcode CpuGemm.lowerTriangularInverse}).
 *
 * @example
 * ```ts
 * import { lowerTriangularInverse } from "./gemm.ts";
 * const x = lowerTriangularInverse(new Float32Array([2, 0, 1, 4]), 2)!;
 * console.assert(x[0] === 0.5 && x[2] === -0.125 && x[3] === 0.25);
 * ```
 *
 * @param l `[b, b]` row-major, its lower triangle read
 * @param b the order
 * @param out written when given, else allocated
 * @returns X, or null when a value is not finite
 */
export function lowerTriangularInverse(
  l: Float32Array,
  b: number,
  out?: Float32Array,
): Float32Array | null {
  return defaultGemm().lowerTriangularInverse(l, b, out);
}

/**
 * One block of SparseGPT's column loop with N:M pruning, on the shared
 * default instance (see {@linkcode CpuGemm.sparsegptColumnBlock}).
 *
 * @example
 * ```ts
 * import { sparsegptColumnBlock } from "./gemm.ts";
 * // One row, U = I, 1:2: the smaller of the pair is pruned.
 * const block = { w: new Float32Array([0.5, -2]), rows: 1, count: 2, u: new Float32Array([1, 0, 0, 1]),
 *   err: new Float32Array(2), n: 1, m: 2 };
 * console.assert(sparsegptColumnBlock(block) === 0.25 && block.w[0] === 0 && block.w[1] === -2);
 * ```
 *
 * @param block the block's weight columns, U's block, N:M, the keep mask, the errors
 * @returns the sum of the loss terms
 */
export function sparsegptColumnBlock(block: PruneColumnBlock): number {
  return defaultGemm().sparsegptColumnBlock(block);
}

/**
 * Threads in use and whether relaxed-SIMD FMA is used, for banners and benches.
 *
 * @example
 * ```ts
 * import { cpuKernelInfo } from "./gemm.ts";
 * const { threads, relaxedSimd } = cpuKernelInfo();
 * console.log(`${threads} threads, relaxed SIMD: ${relaxedSimd}`);
 * ```
 *
 * @returns the default instance's threads and kernel build
 */
export function cpuKernelInfo(): CpuKernelInfo {
  return defaultGemm().info();
}
