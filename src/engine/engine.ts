/**
 * The compute-engine seam: the one interface the model forward and the
 * calibration statistics are written against, so that nothing above it knows
 * which device runs (tinygrad's runtime layer is the model: thin, typed, and
 * the only place that knows the device).
 *
 * An engine hands out {@link Tensor} handles, records ops on them, and
 * brings values back with exactly one call, {@link Engine.read}, which
 * resolves every tensor it is given together (on WebGPU: one device poll).
 * Ops are recorded in order into the engine's current unit of work; WebGPU
 * submits it on {@link Engine.flush} or a read, the CPU engine computes
 * eagerly. Results are the same under any interleaving of flushes.
 *
 * Ownership: a tensor an op returns belongs to the caller, who destroys it;
 * destroying a tensor that recorded-but-unflushed work still reads is safe
 * (the engine keeps it alive until that work ran).
 *
 * @module
 */

import type { QuantizationArgs } from "../quant/args.ts";

/** What {@link Engine.reduceRows} folds each row into. */
export type RowReduction = "sum" | "min" | "max" | "absmax";

/** How {@link Engine.accumulateWeighted} weighs a row. */
export interface AccumulateOptions {
  /** Write instead of add (the first term of a sum). */
  overwrite?: boolean;
  /** Weigh with the sigmoid of the weight instead of the weight itself. */
  sigmoid?: boolean;
}

/** Which engine runs. */
export type EngineKind = "webgpu" | "cpu";

/** Element types a tensor may hold. */
export type TensorDType = "f32" | "u32" | "i32";

/** A host array an engine uploads from or reads into. */
export type HostArray = Float32Array | Uint32Array | Int32Array;

/**
 * An engine's handle to an array. Only the engine that made it may use it.
 *
 * @example
 * ```ts ignore
 * const t: Tensor = engine.upload(new Float32Array(6), [2, 3]);
 * console.assert(t.numel === 6);
 * t.destroy();
 * ```
 */
export interface Tensor {
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Number of elements. */
  readonly numel: number;
  /** Element type. */
  readonly dtype: TensorDType;
  /** Releases the storage; the handle must not be used afterwards. */
  destroy(): void;
}

/**
 * The largest head size {@link Engine.attention} takes on every engine (the
 * WGSL kernel's per-invocation arrays, `attention_causal.wgsl`); head sizes
 * are multiples of 4 as well.
 *
 * @example
 * ```ts
 * import { MAX_HEAD_DIM } from "./engine.ts";
 * console.assert(MAX_HEAD_DIM === 256);
 * ```
 */
export const MAX_HEAD_DIM = 256;

/**
 * The diagonal factors {@link Engine.walshHadamard} multiplies every run of
 * `n` values by, in the transform's own pass.
 */
export interface WalshHadamardSigns {
  /** The n factors (a random-hadamard's signs). */
  readonly values: Tensor;
  /** true: multiply before the butterflies; false: after the scale. */
  readonly first: boolean;
}

/**
 * An online transform of every row of a product (QuIP's `u` on a Linear's
 * output), as {@link Engine.walshHadamard} takes it: `walshHadamard(y, n,
 * scale, stride, signs, base)`.
 *
 * @example
 * ```ts
 * import type { ProductTransform } from "./engine.ts";
 * // A plain Hadamard transform of each run of 256 values, scaled by 1/√256.
 * const u: ProductTransform = { n: 256, scale: 1 / 16, stride: 1 };
 * console.assert(u.signs === undefined && u.base === undefined);
 * ```
 */
export interface ProductTransform {
  /** The run length. */
  readonly n: number;
  /** Multiplies every result (see {@link Engine.walshHadamard}). */
  readonly scale: number;
  /** The span of the first butterflies (K with a base). */
  readonly stride: number;
  /** The diagonal factors, if any. */
  readonly signs?: WalshHadamardSigns;
  /** A random-hadamard's `[K, K]` base, if any. */
  readonly base?: Tensor;
}

/**
 * The transforms {@link Engine.swiGlu} applies to its two products; absent: none.
 *
 * @example
 * ```ts
 * import type { SwiGluTransforms } from "./engine.ts";
 * // QuIP's u on gate_proj only; up_proj's product goes to the activation as it is.
 * const after: SwiGluTransforms = { gate: { n: 768, scale: 1, stride: 3 } };
 * console.assert(after.up === undefined);
 * ```
 */
export interface SwiGluTransforms {
  /** On the gate product, before the SiLU. */
  readonly gate?: ProductTransform;
  /** On the up product. */
  readonly up?: ProductTransform;
}

/**
 * RoPE for {@link Engine.matmulMany}: rotate_half in place on its first
 * `count` products, as `ropeInPlace` with the tables `[seqLen, headDim/2]`.
 */
export interface ManyRope {
  /** RoPE cos table, [seqLen, headDim / 2]. */
  cos: Tensor;
  /** RoPE sin table, [seqLen, headDim / 2]. */
  sin: Tensor;
  /** Dimension of one head (every rotated product has whole heads). */
  headDim: number;
  /** How many of the products, from the first, RoPE applies to. */
  count: number;
}

/** Shapes of one attention call. */
export interface AttentionShape {
  /** Sequences in the batch. */
  sequences: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads; divides `heads`. */
  kvHeads: number;
  /** The head size. */
  headDim: number;
  /** Keys visible to each query including itself; null for plain causal attention. */
  window: number | null;
}

/**
 * How the column loop fake-quantizes element (row r, column position p):
 * slot `floor(r / rowDiv) · slotRowStride + columnSlot[p]` holds its scale
 * (already divided by a tensor_group global scale) and zero point;
 * `x̂ = (cast(clamp(x / s + zp, qmin, qmax)) − zp) · s` in float32, with
 * cast = round half to even (int), float8 e4m3 or fp4 e2m1 rounding.
 */
export interface ColumnQuantization {
  /** 1 int, 2 fp8 e4m3, 3 fp4 e2m1. */
  readonly kind: 1 | 2 | 3;
  /** Lower clamp of x/s + zp. */
  readonly qmin: number;
  /** Upper clamp. */
  readonly qmax: number;
  /** s_eff per slot: the scale, divided by the global scale for tensor_group (f32). */
  readonly effectiveScale: Float32Array;
  /** Zero point per slot. */
  readonly zeroPoint: Float32Array;
  /** Slot column part of each (processing-order) column position. */
  readonly columnSlot: Uint32Array;
  /** Rows sharing a slot row (block height; 1 otherwise). */
  readonly rowDiv: number;
  /** Slots per slot row (0 for tensor). */
  readonly slotRowStride: number;
}

/** SparseGPT's pruning inside the column loop. */
export type ColumnPruning =
  | {
    /** Per-block threshold on W²/diag(U)² over every row of the block. */
    readonly kind: "unstructured";
    /** Fraction of each block to prune, in [0, 1). */
    readonly sparsity: number;
    /** Keep existing zeros pruned (extend only if the target sparsity is higher). */
    readonly preserve: boolean;
  }
  | {
    /** N of every M consecutive columns per row. */
    readonly kind: "n:m";
    /** Pruned per group. */
    readonly n: number;
    /** Group length (≤ 32, divides the block size). */
    readonly m: number;
    /** Existing zeros count as pruned first. */
    readonly preserve: boolean;
  };

/** What the column loop does to each column besides propagating its error. */
export interface ColumnLoopWork {
  /** Fake quantization (GPTQ; SparseGPT with quantization args). */
  readonly quantization?: ColumnQuantization;
  /** Pruning (SparseGPT). */
  readonly pruning?: ColumnPruning;
  /**
   * 1 where the weight was non-zero on entry, `[rows, cols]` in processing
   * order, or null. The trailing update never changes a 0 entry of it; the
   * in-block update skips them too when {@link ColumnLoopWork.maskInBlock}
   * is set (GPTQ's zero preservation), and pruning's `preserve` keeps them
   * pruned.
   */
  readonly nonZero: Uint8Array | null;
  /** Apply `nonZero` to the in-block updates too (GPTQ). */
  readonly maskInBlock: boolean;
}

/**
 * A Hessian `[n, n]` as an engine holds it (from
 * {@link SecondOrderOps.hessian}, or a {@link RunningHessian}). Only the
 * engine that made it may use it.
 */
export interface SecondOrderHessian {
  /** n, the in_features of the weights reading it. */
  readonly columns: number;
  /** Releases it (work already recorded on it still runs). */
  destroy(): void;
}

/**
 * GPTQ's and SparseGPT's running Hessian of one Linear input, held by the
 * engine that made it ({@link SecondOrderOps.runningHessian}):
 * `H ← H · n₀/n₁ + 2/n₁ · xᵀx` with n counting sequences, as upstream. It
 * is itself a {@link SecondOrderHessian}: second-order ops of its engine
 * read it as it stands when they are called.
 *
 * @example
 * ```ts ignore
 * const h = engine.secondOrder.runningHessian(64);
 * h.add(x, 4); // x [tokens, 64] from this engine, 4 sequences
 * const host = await h.read();
 * h.destroy();
 * ```
 */
export interface RunningHessian extends SecondOrderHessian {
  /** n: the sequences folded in so far. */
  readonly numSamples: number;
  /**
   * Folds one forward's inputs in (WebGPU: records only, no wait).
   *
   * @throws {GptqShapeError} when x's last dimension is not `columns` or sequences < 1
   */
  add(x: Tensor, sequences: number): void;
  /** H as a full symmetric `[columns, columns]` host matrix, row-major. */
  read(): Promise<Float32Array>;
}

/** How one attempt of {@link SecondOrderOps.inverseFactor} orders and dampens H. */
export interface FactorPlan {
  /** Processing position → column (activation order), or null for column order. */
  readonly perm: Int32Array | null;
  /** 1 per column whose diag(H) is 0: its diagonal entry becomes 1 before dampening. */
  readonly dead: Uint8Array;
  /** Added to every diagonal entry (float32), after the dead-column fix. */
  readonly damp: number;
  /** Columns per block of the loops that will read U (the engine may lay U out for it). */
  readonly blockSize: number;
}

/**
 * U of one factorization attempt (upper, H⁻¹ = UᵀU, processing order), as
 * an engine holds it. Whether the attempt succeeded is known only when a
 * column loop on it is read ({@link ColumnLoopOutput.ok}): engines may
 * record the factorization and the loops on it without waiting.
 */
export interface InverseFactor {
  /** n. */
  readonly columns: number;
  /** Releases U (loops recorded on it still run). */
  destroy(): void;
}

/** A weight in the column loop, in the engine's own layout. */
export interface ColumnLoop {
  /** Rows of the weight. */
  readonly rows: number;
  /** Columns of the weight. */
  readonly cols: number;
}

/** What {@link SecondOrderOps.readLoop} brings back. */
export interface ColumnLoopOutput {
  /** The processed weight `[rows, cols]`, row-major, processing order. */
  readonly weight: Float32Array;
  /** Σ (w − q)² / U[i, i]² / 2 over every block. */
  readonly loss: number;
  /**
   * Whether the factor's attempt succeeded; when false, `weight` and `loss`
   * are meaningless and the caller retries with more dampening.
   */
  readonly ok: boolean;
}

/** One task of {@link SecondOrderOps.runConcurrently}. */
export interface SecondOrderTask<T> {
  /** Estimated device bytes the task holds while it runs (its factor's share and its weight). */
  readonly bytes: number;
  /** The work: records ops and awaits their reads. */
  run(): Promise<T>;
}

/**
 * The dense linear algebra GPTQ and SparseGPT are written against
 * (src/modifiers/gptq/quantize_weight.ts): the Hessian's diagonal, the
 * inverse-Hessian factor, the in-block column loop and the trailing
 * update, on handles the engine lays out as it likes. The algorithm calls
 * them in order and awaits exactly two reads per weight (the diagonal, the
 * finished loop); the engine decides how they run (threads, SIMD, how many
 * weights' work one device poll carries: {@link SecondOrderOps.runConcurrently}).
 */
export interface SecondOrderOps {
  /**
   * A host Hessian as this engine holds Hessians.
   *
   * @param h symmetric `[n, n]`, row-major (copied or kept read-only)
   * @param n the order
   */
  hessian(h: Float32Array, n: number): SecondOrderHessian;
  /**
   * A zero running Hessian of order `columns`, accumulated from this
   * engine's tensors.
   *
   * @throws {GptqShapeError} for an order the engine cannot hold (WebGPU: not a multiple of 4)
   */
  runningHessian(columns: number): RunningHessian;
  /** diag(H); concurrent calls may share one device read. */
  diagonal(h: SecondOrderHessian): Promise<Float32Array>;
  /**
   * Records U with `H⁻¹ = UᵀU` (upstream's
   * `cholesky(cholesky_inverse(cholesky(H')), upper=True)`) of H' = H in
   * `plan.perm` order with dead columns' diagonal 1, plus `plan.damp` on
   * the diagonal. The attempt fails when a pivot is not positive and finite
   * or the inverse overflows; that shows in the loops read on it.
   */
  inverseFactor(h: SecondOrderHessian, plan: FactorPlan): InverseFactor;
  /** U = I of order n (no error propagation: the fallback); never fails. */
  identityFactor(n: number, blockSize: number): InverseFactor;
  /**
   * Starts a column loop: the weight `[rows, cols]` in processing order
   * (dead columns already zeroed) laid out for the engine, on `u`.
   *
   * @throws {GptqConfigError} for a block size or pruning the engine cannot run
   */
  columnLoop(
    u: InverseFactor,
    w: Float32Array,
    shape: readonly [number, number],
    blockSize: number,
    work: ColumnLoopWork,
  ): ColumnLoop;
  /**
   * The sequential part of block `[i1, i2)`: per row, each column in turn is
   * pruned and/or fake-quantized, its error `e = (w − q) / U[i, i]` is
   * propagated to the block's later columns (`w[:, j] −= e · U[i, j]`) and
   * kept for {@link SecondOrderOps.trailingUpdate}.
   */
  columnBlock(loop: ColumnLoop, i1: number, i2: number): void;
  /**
   * The block's errors to every later column: `w[:, i2:] −= err · U[i1:i2, i2:]`,
   * never changing a 0 entry of the loop's `nonZero`.
   */
  trailingUpdate(loop: ColumnLoop, i1: number, i2: number): void;
  /**
   * Reads the loop's weight and loss and its factor's status back and
   * releases the loop. Concurrent reads may share one device poll.
   */
  readLoop(loop: ColumnLoop): Promise<ColumnLoopOutput>;
  /**
   * Runs tasks so that their reads share device polls where the engine
   * has polls to share (WebGPU: every task of a wave records before any
   * read, waves bounded by their bytes: `budgetBytes`, or the engine's
   * default), and returns their results in order. Engines that run tasks
   * one after another ignore the budget.
   */
  runConcurrently<T>(tasks: readonly SecondOrderTask<T>[], budgetBytes?: number): Promise<T[]>;
  /**
   * Relative output errors `tr(Δ H Δᵀ) / tr(W H Wᵀ)` of candidates Ŵ of a
   * weight W `[out, in]` (Δ = W − Ŵ) on H: with H = 2XᵀX/n, the ratio
   * ‖XΔᵀ‖²_F / ‖XWᵀ‖²_F on the inputs X it was accumulated from. Sums in
   * float64 on the host; concurrent calls may share one device poll.
   *
   * @returns one error per candidate (0 when W H Wᵀ = 0)
   */
  reconstructionErrors(
    h: SecondOrderHessian,
    original: Float32Array,
    shape: readonly [number, number],
    candidates: readonly Float32Array[],
  ): Promise<number[]>;
  /**
   * `tr(M H Mᵀ)` of a matrix M `[out, in]` on H: with H = 2XᵀX/n, the output
   * square sum `2/n · ‖XMᵀ‖²_F` on the inputs X it was accumulated from,
   * at `out·in²` multiply-adds instead of `tokens·out·in` (AWQ's grid losses
   * of a Linear parent, M = W − Ŵ). The same sums as
   * {@link SecondOrderOps.reconstructionErrors}, in float64 on the host;
   * concurrent calls may share one device poll, and M may be reused as soon
   * as the call returns its promise.
   */
  outputSquareSum(
    h: SecondOrderHessian,
    m: Float32Array,
    shape: readonly [number, number],
  ): Promise<number>;
}

/**
 * An orthogonal block T of size n, applied block-diagonally by
 * {@link Engine.blockTransform}: its normalized float64 matrix, and for the
 * Hadamard types the factors that let products run in O(n (log m + K)) per
 * vector instead of O(n²).
 *
 * @example
 * ```ts
 * import type { BlockTransform } from "./engine.ts";
 * const swap: BlockTransform = { matrix: new Float64Array([0, 1, 1, 0]), size: 2 };
 * ```
 */
export interface BlockTransform {
  /**
   * The normalized n × n matrix, row-major. With `fast` it may be built on
   * first read (128 MiB at n = 4096), so products that have the factors use
   * them and never read it.
   */
  readonly matrix: Float64Array;
  /** n. */
  readonly size: number;
  /**
   * `matrix = scale · (S_m ⊗ H_K) · diag(signs)`, when known (S_m
   * Sylvester's matrix of order m = sylvesterSize, H_K the ±1 `base` of order
   * K = baseSize); with `perm` (`randomize: true`), `matrix = F[perm][:, perm]`
   * for that F.
   */
  readonly fast?: BlockTransformFactors;
}

/** The Hadamard factors of a {@link BlockTransform} (see its `fast`). */
export interface BlockTransformFactors {
  /** m, a power of two. */
  readonly sylvesterSize: number;
  /** H_K, row-major ±1. */
  readonly base: Int8Array;
  /** K (1 for a power-of-two order). */
  readonly baseSize: number;
  /** The ±1 diagonal, n values. */
  readonly signs: Float64Array;
  /** The normalization, 1/√n. */
  readonly scale: number;
  /** The permutation of `randomize: true`, or none. */
  readonly perm?: Int32Array;
}

/**
 * Where {@link Engine.blockTransform} applies a block: `right`:
 * `X ← X · diag(T, …, T)` (each run of n columns of every row); `left`:
 * `X ← diag(T, …, T) · X` (each run of n rows). With `transpose`, Tᵀ.
 */
export interface BlockTransformPlacement {
  /** Rows of X. */
  readonly rows: number;
  /** Columns of X. */
  readonly cols: number;
  /** Which side T multiplies. */
  readonly side: "right" | "left";
  /** Use Tᵀ. */
  readonly transpose: boolean;
  /** The tensor's name, for errors. */
  readonly what: string;
}

/**
 * The one op fused rotations need ({@link Engine.blockTransform}): what a
 * weight source that rotates weights as it reads them is given.
 *
 * @example
 * ```ts ignore
 * import { hostBlockTransform } from "./cpu/block_transform.ts";
 * const ops: BlockTransformOps = engine ?? hostBlockTransform();
 * ```
 */
export type BlockTransformOps = Pick<Engine, "blockTransform">;

/**
 * The ops of a Llama-family forward and of the calibration statistics, on
 * one device.
 *
 * @example
 * ```ts ignore
 * import { createEngine } from "./mod.ts";
 * const { engine } = await createEngine({ engine: "cpu" });
 * const x = engine.upload(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const y = engine.matmul(x, x); // x·xᵀ
 * const [host] = await engine.read([y]);
 * console.assert(host.join() === "5,11,11,25");
 * ```
 */
export interface Engine {
  /** Which engine this is. */
  readonly kind: EngineKind;
  /** A one-line description of the device, for banners. */
  readonly description: string;
  /**
   * The most bytes one tensor may hold (WebGPU: one storage binding); larger
   * weights go through {@link Engine.uploadWeight}, larger work in blocks.
   */
  readonly maxTensorBytes: number;

  /** Copies a host array into a new tensor of `shape` (the array may be reused at once). */
  upload(data: HostArray, shape: readonly number[]): Tensor;
  /**
   * Uploads a Linear weight `[out, in]`, split into row blocks when it is
   * larger than {@link Engine.maxTensorBytes}; only {@link Engine.matmul}
   * may take the result.
   */
  uploadWeight(data: Float32Array, shape: readonly [number, number]): Tensor;
  /** A new f32 tensor whose contents the next op writing it defines. */
  allocate(shape: readonly number[]): Tensor;
  /**
   * Reads tensors back, all together (WebGPU: one poll for the lot). The
   * values are those after every op recorded before the call; the caller may
   * destroy the tensors as soon as this returns its promise.
   */
  read(tensors: readonly Tensor[]): Promise<HostArray[]>;
  /**
   * Starts the work recorded so far; the promise resolves when it has run
   * and rejects with the device's error if it failed.
   */
  flush(): Promise<void>;

  /** `y = x · wᵀ (+ bias)`: x `[..., K]`, w `[N, K]` (from upload or uploadWeight), bias `[N]`. */
  matmul(x: Tensor, w: Tensor, bias?: Tensor): Tensor;
  /**
   * `matmul(x, ws[i], biases[i])` for every weight of one input (q, k and v
   * of attention), bit for bit; the engine may share the input's staging
   * among them. `biases`, when given, has one entry (or undefined) per weight.
   * With `after`, product i (with its bias) is replaced by its transform's
   * `walshHadamard` (an online output transform, QuIP's `u`; one entry, or
   * undefined, per weight). With `rope`, the first `rope.count` products
   * then get `ropeInPlace(y, rope.cos, rope.sin, n / rope.headDim,
   * rope.headDim)` (queries and keys), with its bits.
   */
  matmulMany(
    x: Tensor,
    ws: readonly Tensor[],
    biases?: readonly (Tensor | undefined)[],
    rope?: ManyRope,
    after?: readonly (ProductTransform | undefined)[],
  ): Tensor[];
  /**
   * `residual + x · wᵀ` (a residual connection around a Linear without a
   * bias): x `[..., K]`, w `[N, K]`, residual of the product's shape; the bits
   * of `add(residual, matmul(x, w))` without handing the product out. With
   * `after`, of `add(residual, walshHadamard(matmul(x, w), …))`.
   */
  matmulAdd(x: Tensor, w: Tensor, residual: Tensor, after?: ProductTransform): Tensor;
  /** `a + b` elementwise; b may be a trailing-dimension broadcast of a. */
  add(a: Tensor, b: Tensor): Tensor;
  /** `a · b` elementwise; b may be a trailing-dimension broadcast of a. */
  mul(a: Tensor, b: Tensor): Tensor;
  /** `x · s` for a scalar s (f32). */
  scale(x: Tensor, s: number): Tensor;
  /** A copy of `x` (any dtype) that outlives it. */
  copy(x: Tensor): Tensor;
  /** RMSNorm of every row: `x / sqrt(mean(x²) + eps) · weight`. */
  rmsnorm(x: Tensor, weight: Tensor, eps: number): Tensor;
  /** RoPE (rotate_half) in place: rows `[sequences · seqLen, heads · headDim]`, tables `[seqLen, headDim/2]`. */
  ropeInPlace(x: Tensor, cos: Tensor, sin: Tensor, heads: number, headDim: number): void;
  /** Causal GQA attention with an optional sliding window; scale head_dim^-0.5. */
  attention(q: Tensor, k: Tensor, v: Tensor, shape: AttentionShape): Tensor;
  /** `silu(gate) · up` elementwise. */
  siluMul(gate: Tensor, up: Tensor): Tensor;
  /**
   * A SwiGLU MLP's activation from its input, `silu(x · gateᵀ) · (x · upᵀ)`:
   * x `[..., K]`, gate and up `[N, K]` (no bias); the bits of
   * `siluMul(matmul(x, gate), matmul(x, up))` without handing the two
   * products out. With `after`, each product first goes through its
   * transform: the bits of `walshHadamard(matmul(x, gate), …)` (an online
   * output transform, QuIP's `u`) in place of the product.
   */
  swiGlu(x: Tensor, gate: Tensor, up: Tensor, after?: SwiGluTransforms): Tensor;
  /**
   * Copies the rows of `ids` in `[rowStart, rowStart + table rows)` from a
   * block of the embedding table into `out` `[ids, hidden]`.
   */
  embeddingGather(tableBlock: Tensor, rowStart: number, ids: Tensor, out: Tensor): void;
  /**
   * Folds a block of vocabulary columns `[rows, block]` (ids v0 …) into each
   * row's running log-softmax `state` `[rows, 3]`; the `last` block writes
   * the NLL of each row's target into `nll` (0 for a negative target).
   */
  logSoftmaxNll(
    logits: Tensor,
    targets: Tensor,
    state: Tensor,
    nll: Tensor,
    v0: number,
    first: boolean,
    last: boolean,
  ): void;
  /**
   * Mixture-of-experts routing of every row of `logits` `[rows, experts]`:
   * softmax, the `topK` largest kept (ties: the lower index), renormalized to
   * sum 1 when `normalize`, every other entry 0. Returns `[rows, experts]`.
   */
  routeTopK(logits: Tensor, topK: number, normalize: boolean): Tensor;
  /**
   * `acc[r, :] = (overwrite ? 0 : acc[r, :]) + g(weights[r, col]) · y[r, :]`
   * for `y`, `acc` `[rows, cols]` and `weights` `[rows, stride]`; g is the
   * identity, or the sigmoid with `options.sigmoid`. Modifies `acc`.
   */
  accumulateWeighted(
    acc: Tensor,
    y: Tensor,
    weights: Tensor,
    col: number,
    options?: AccumulateOptions,
  ): void;
  /** The rows of `x` `[rows, cols]` whose `weights[r, col]` is non-zero; the others zeroed. */
  maskRows(x: Tensor, weights: Tensor, col: number): Tensor;
  /** Writes a `[rows, cols]` block into columns col0 … of `out` `[rows, ld]`. */
  copyColumns(block: Tensor, out: Tensor, col0: number): void;
  /**
   * The fast Walsh–Hadamard transform of every run of `n` values (an online
   * rotation of type `hadamard`): `x · diag(H_n, …, H_n) · scale` with H_n
   * Sylvester's matrix, n a power of two dividing x's size; O(n log n) per
   * run. With `stride` K (default 1), H_n is `S_{n/K} ⊗ I_K` (n/K a power
   * of two): the Sylvester factor of a random-hadamard matrix `S_m ⊗ H_K`.
   * With `signs` (n values: the random-hadamard's diagonal), every run is
   * also multiplied by them element-wise, bit for bit as `mul` would (before
   * the transform when `signs.first`, else after the scale), in the same pass.
   * With `base` (`[K, K]`, K = stride: a random-hadamard matrix's H_K as a
   * matmul weight), every run of K values is multiplied by it, bit for bit
   * as `matmul(reshape(·, [·, K]), base)`, after the leading signs and before
   * the butterflies: the whole `x · (S_m ⊗ H_K) · diag(signs)` in one op.
   * Returns a new tensor of x's shape.
   */
  walshHadamard(
    x: Tensor,
    n: number,
    scale: number,
    stride?: number,
    signs?: WalshHadamardSigns,
    base?: Tensor,
  ): Tensor;

  /**
   * A block-diagonal orthogonal transform of a float64 host matrix `x`
   * `[rows, cols]`, in place, in float64 arithmetic (a fused SpinQuant/QuIP
   * rotation of a weight): Hadamard-type blocks with factors through the
   * fast Walsh–Hadamard butterflies and their K × K base, others as a dense
   * product. Results are bit-for-bit those of the float64 reference in
   * src/transform/block_apply.ts, on every engine (WGSL has no float64, so
   * the WebGPU engine runs the same host kernels). Host memory holds x and
   * one cache-sized strip of it.
   *
   * @throws {EngineError} when n does not divide the transformed dimension
   */
  blockTransform(x: Float64Array, t: BlockTransform, at: BlockTransformPlacement): void;

  /**
   * The same values seen with another shape of the same element count; the
   * view does not own them (destroying it frees nothing, and it must not
   * outlive `t`).
   */
  reshape(t: Tensor, shape: readonly number[]): Tensor;
  /** One value per row of the last axis: `[..., C]` → `[...]` (`[1]` for 1-D). */
  reduceRows(x: Tensor, op: RowReduction): Tensor;
  /**
   * `reduceRows(x, "min")` and `reduceRows(x, "max")` bit for bit (a NaN
   * result may be any quiet NaN), in one pass where the engine can (static
   * observers' per-token ranges).
   */
  reduceRowsMinMax(x: Tensor): { min: Tensor; max: Tensor };
  /**
   * One value per column of a 2-D tensor: `[R, C]` → `[C]`, the values of
   * `reduceRows(transpose(x), op)` bit for bit, without the transpose
   * (SmoothQuant's per-channel activation ranges).
   */
  reduceColumns(x: Tensor, op: RowReduction): Tensor;
  /**
   * `reduceColumns(x, "min")` and `reduceColumns(x, "max")` bit for bit (a
   * NaN result may be any quiet NaN), in one pass where the engine can
   * (SmoothQuant's per-channel activation ranges).
   */
  reduceColumnsMinMax(x: Tensor): { min: Tensor; max: Tensor };
  /**
   * Per row of the last axis, `Σ_c (a − b)²` (`b` omitted: `Σ_c a²`), for
   * `a` and `b` of one shape: `[..., C]` → `[...]` (`[1]` for 1-D). The
   * values are those of `reduceRows(mul(d, d), "sum")` with
   * `d = add(a, scale(b, −1))` (each difference and square rounded to
   * float32), bit for bit, in one pass and without the temporaries: AWQ's
   * grid search reduces every candidate's output error with it.
   */
  rowSquaredError(a: Tensor, b?: Tensor): Tensor;
  /** The transpose of a 2-D tensor. */
  transpose(x: Tensor): Tensor;
  /**
   * Fake quantization of each row r of `x` `[rows, cols]` with its own
   * scale s = `scale[r]` and zero point zp = `zeroPoint[r]` (0 when null):
   * `x̂ = (cast(clamp(x / s + zp, qmin, qmax)) − zp) · s` in float32, cast and
   * range from `args` (int, fp8 e4m3, fp4 e2m1), bit for bit the reference
   * `fakeQuantize` (src/quant/quantize.ts) of each row as one
   * tensor-strategy block. Calibration forwards quantize Linear inputs
   * with it (src/graph/activation_fake_quant.ts).
   *
   * @param scale one f32 value per row (any shape of `rows` elements)
   * @param zeroPoint one per row, or null (symmetric)
   * @param args the activation args: type and bits (the strategy is per row)
   * @returns a new tensor of x's shape
   */
  fakeQuantizeRows(
    x: Tensor,
    scale: Tensor,
    zeroPoint: Tensor | null,
    args: QuantizationArgs,
  ): Tensor;
  /**
   * Frees the buffers or arrays the engine keeps for reuse (WebGPU: its
   * buffer pool, whose buffers are host memory on unified-memory and
   * software devices; CPU: its array pool); tensors handed out stay valid.
   * Called between layers and phases whose tensors differ.
   */
  trim(): void;

  /** GPTQ's and SparseGPT's dense linear algebra. */
  readonly secondOrder: SecondOrderOps;

  /** Releases the engine's caches; tensors already handed out stay valid until destroyed. */
  close(): void;
}
