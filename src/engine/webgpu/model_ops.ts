/**
 * The decoder's own GPU operations: one method per model kernel
 * (`kernels/rmsnorm.wgsl`, `rope.wgsl`, `attention_causal.wgsl`,
 * `silu_mul.wgsl`, `embedding_gather.wgsl`, `log_softmax_nll.wgsl`,
 * `copy_columns.wgsl`). Each
 * method only records a dispatch into the caller's {@link CommandBatch}; the
 * caller decides when to submit. Matmul and elementwise add come from the
 * shared runtime (`src/gpu/ops.ts`).
 *
 * @module
 */

import type { CommandBatch } from "../../gpu/batch.ts";
import type { Gpu } from "../../gpu/device.ts";
import { kernelSync, loadKernel } from "../../gpu/kernel.ts";
import { GpuTensor } from "../../gpu/tensor.ts";
import { foldWorkgroups, workgroupsFor } from "../../gpu/workgroups.ts";
import { type AttentionShape, MAX_HEAD_DIM } from "../engine.ts";
import { EngineError } from "../engine_error.ts";

export type { AttentionShape };

/** Most query states (positions × heads) one attention invocation owns (the kernel's MAX_STATES). */
const MAX_ATTENTION_STATES = 16;
/** Most vec4s of q (and of accumulators) one attention invocation owns (its MAX_STATE_VEC4). */
const MAX_ATTENTION_STATE_VEC4 = 64;
/**
 * The vec4s of state `attentionTiling` gives one invocation on a software
 * adapter: up to 32 Mesa's NIR unrolled every state loop on llvmpipe; at 64
 * some stayed loops and the states went to memory (up to 5.7x slower).
 */
const SOFTWARE_STATE_VEC4 = 32;
/** f32 lanes of llvmpipe's SIMD (256-bit); the lanes `attentionTiling` tries to keep busy. */
const SOFTWARE_LANES = 8;

/**
 * How `attention` maps queries to invocations (the override constants of
 * `attention_causal.wgsl`): each invocation owns `queries` consecutive
 * positions of `group` query heads that share a KV head, and every K/V row it
 * loads serves all `queries · group` of them.
 */
export interface AttentionTiling {
  /** Consecutive query positions per invocation (≥ 1). */
  queries: number;
  /** Query heads sharing one KV head per invocation; divides heads / kvHeads. */
  group: number;
  /**
   * Whether neighbouring invocations take neighbouring (sequence, head group)s
   * at the same positions, rather than neighbouring positions of one head.
   */
  headsInLanes: boolean;
}

/** How `rmsnorm` lays rows out over invocations (the entry points of `rmsnorm.wgsl`). */
export type RmsnormLayout = "workgroup_per_row" | "row_per_invocation";

/**
 * The attention tiling for a device: one query per invocation on real GPUs,
 * where neighbouring lanes reading the same K/V row keep it in cache; on a
 * software adapter as many states per invocation as stay in registers (KV-head
 * groups first, then positions), and heads in lanes where that leaves fewer
 * SIMD lanes idle than positions in lanes would (those lanes loop until the
 * last one's position). See the header of `kernels/attention_causal.wgsl`.
 *
 * @param shape the attention call
 * @param software whether the adapter is a software one (`gpu.isFallback`)
 * @returns the tiling `attention` uses by default
 * @example
 * ```ts
 * import { attentionTiling } from "./model_ops.ts";
 * const shape = { sequences: 16, seqLen: 256, heads: 8, kvHeads: 4, headDim: 8, window: null };
 * console.assert(attentionTiling(shape, false).queries === 1);
 * console.assert(attentionTiling(shape, true).group === 2);
 * ```
 */
export function attentionTiling(shape: AttentionShape, software: boolean): AttentionTiling {
  if (!software) return { queries: 1, group: 1, headsInLanes: false };
  const vec4s = shape.headDim / 4;
  const perKvHead = shape.heads / shape.kvHeads;
  let group = 1;
  for (let g = 2; g <= Math.min(perKvHead, MAX_ATTENTION_STATES); g++) {
    if (perKvHead % g === 0 && g * vec4s <= SOFTWARE_STATE_VEC4) group = g;
  }
  let queries = 1;
  while (
    2 * queries * group <= MAX_ATTENTION_STATES &&
    2 * queries * group * vec4s <= SOFTWARE_STATE_VEC4 &&
    2 * queries <= shape.seqLen
  ) queries *= 2;
  // Idle lanes as a fraction: heads in lanes leave the last SIMD group part
  // empty; positions in lanes make each lane wait ~3.5 · queries keys for the last.
  const lanes = (shape.sequences * shape.heads) / group;
  const headsIdle = 1 - lanes / (SOFTWARE_LANES * Math.ceil(lanes / SOFTWARE_LANES));
  const keys = Math.min(shape.window ?? Infinity, (shape.seqLen + 1) / 2);
  const wait = ((SOFTWARE_LANES - 1) / 2) * queries;
  const positionsIdle = wait / (keys + wait);
  return { queries, group, headsInLanes: headsIdle < positionsIdle };
}

const NO_WINDOW = 0xffffffff;
const ATTENTION = "attention_causal.wgsl";
const RMSNORM = "rmsnorm.wgsl";
const SILU_MUL = "silu_mul.wgsl";
const ROPE = "rope.wgsl";

function attentionOptions(headDim: number, tiling: AttentionTiling) {
  return {
    constants: {
      HEAD_DIM: headDim,
      QUERIES: tiling.queries,
      GROUP: tiling.group,
      HEADS_IN_LANES: tiling.headsInLanes ? 1 : 0,
    },
  };
}

function rmsnormEntryPoint(layout: RmsnormLayout, cols: number): string {
  if (layout === "workgroup_per_row") return "main";
  return cols % 4 === 0 ? "row_per_invocation_vec4" : "row_per_invocation";
}

function u32s(...values: number[]): { uniform: Uint32Array } {
  return { uniform: new Uint32Array(values) };
}

/**
 * The model kernels of one device, compiled once.
 *
 * @example
 * ```ts ignore
 * import { getGpu } from "../../gpu/device.ts";
 * import { CommandBatch } from "../../gpu/batch.ts";
 * import { GpuTensor } from "../../gpu/tensor.ts";
 * import { ModelOps } from "./model_ops.ts";
 * const gpu = await getGpu();
 * const ops = await ModelOps.load(gpu);
 * const batch = new CommandBatch(gpu);
 * const x = GpuTensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const w = GpuTensor.fromArray(gpu, new Float32Array([1, 1]), [2]);
 * const y = ops.rmsnorm(batch, x, w, 1e-6);
 * console.log(await y.readF32());
 * ```
 */
export class ModelOps {
  private constructor(
    readonly gpu: Gpu,
    private readonly pipelines: {
      embeddingGather: GPUComputePipeline;
      rope: GPUComputePipeline;
      siluMul: GPUComputePipeline;
      logSoftmaxNll: GPUComputePipeline;
      copyColumns: GPUComputePipeline;
    },
  ) {}

  /**
   * Compiles (or fetches from the runtime's cache) every model kernel.
   * Attention is specialised per head size (and, on a software adapter, per
   * tiling, which depends on the call's shape); what is not compiled here
   * compiles on first use.
   *
   * @param gpu the device
   * @param headDims head sizes to compile attention for now
   * @returns the operations bound to that device
   * @example
   * ```ts ignore
   * import { getGpu } from "../../gpu/device.ts";
   * import { ModelOps } from "./model_ops.ts";
   * const ops = await ModelOps.load(await getGpu(), [64]);
   * ```
   */
  static async load(gpu: Gpu, headDims: readonly number[] = []): Promise<ModelOps> {
    const rmsnormEntryPoints = gpu.isFallback
      ? ["row_per_invocation", "row_per_invocation_vec4"]
      : ["main"];
    // The hardware tiling does not depend on the shape; a software one does.
    const hardware: AttentionTiling = { queries: 1, group: 1, headsInLanes: false };
    const attentionHeadDims = gpu.isFallback ? [] : headDims;
    const [[embeddingGather, rope, siluMul, logSoftmaxNll, copyColumns]] = await Promise.all([
      Promise.all([
        loadKernel(gpu, "embedding_gather.wgsl"),
        loadKernel(gpu, ROPE),
        loadKernel(gpu, SILU_MUL),
        loadKernel(gpu, "log_softmax_nll.wgsl"),
        loadKernel(gpu, "copy_columns.wgsl"),
      ]),
      // Fetched later through kernelSync, which finds them in the cache.
      Promise.all([
        loadKernel(gpu, ROPE, { entryPoint: "vec4s" }),
        loadKernel(gpu, SILU_MUL, { entryPoint: "vec4s" }),
        ...rmsnormEntryPoints.map((entryPoint) => loadKernel(gpu, RMSNORM, { entryPoint })),
        ...attentionHeadDims.map((d) => loadKernel(gpu, ATTENTION, attentionOptions(d, hardware))),
      ]),
    ]);
    return new ModelOps(gpu, {
      embeddingGather,
      rope,
      siluMul,
      logSoftmaxNll,
      copyColumns,
    });
  }

  /**
   * Copies the rows of `ids` that fall in `[rowStart, rowStart + tableChunk.rows)`
   * from a chunk of the embedding table into `out`; call once per chunk.
   *
   * @param batch the batch to record into
   * @param tableChunk rows rowStart… of the [vocab, hidden] table, [rows, hidden]
   * @param rowStart the chunk's first row
   * @param ids token ids, i32 [n]
   * @param out the embeddings, [n, hidden]
   * @example
   * ```ts ignore
   * ops.embeddingGather(batch, table, 0, ids, out);
   * ```
   */
  embeddingGather(
    batch: CommandBatch,
    tableChunk: GpuTensor,
    rowStart: number,
    ids: GpuTensor,
    out: GpuTensor,
  ): void {
    const [rows, hidden] = tableChunk.shape;
    const n = ids.numel;
    batch.dispatch(
      this.pipelines.embeddingGather,
      [tableChunk, ids, out, u32s(rowStart, rows, hidden, n)],
      foldWorkgroups(this.gpu, workgroupsFor(n * hidden, 64)),
      "embedding_gather",
    );
  }

  /**
   * RMSNorm of every row: `x / sqrt(mean(x²) + eps) · weight`.
   *
   * @param batch the batch to record into
   * @param x [rows, cols] (any shape whose last dimension is `weight`'s length)
   * @param weight [cols]
   * @param eps the config's rms_norm_eps
   * @param layout one invocation per row (the default on a software adapter,
   *   where workgroup barriers are slow) or one workgroup per row (the default
   *   on real GPUs, where its reads coalesce); both compute the same norm
   * @returns a new tensor shaped like x
   * @example
   * ```ts ignore
   * const xn = ops.rmsnorm(batch, x, inputLayernorm, config.rmsNormEps);
   * ```
   */
  rmsnorm(
    batch: CommandBatch,
    x: GpuTensor,
    weight: GpuTensor,
    eps: number,
    layout: RmsnormLayout = this.gpu.isFallback ? "row_per_invocation" : "workgroup_per_row",
  ): GpuTensor {
    const cols = weight.numel;
    const rows = x.numel / cols;
    if (!Number.isInteger(rows)) {
      throw new EngineError(`rmsnorm: [${x.shape}] is not a whole number of rows of ${cols}`);
    }
    const y = GpuTensor.allocate(this.gpu, [...x.shape]);
    const params = new ArrayBuffer(16);
    new Uint32Array(params, 0, 2).set([rows, cols]);
    new Float32Array(params, 8, 1)[0] = eps;
    const entryPoint = rmsnormEntryPoint(layout, cols);
    batch.dispatch(
      kernelSync(this.gpu, RMSNORM, { entryPoint }),
      [x, weight, y, { uniform: new Uint8Array(params) }],
      foldWorkgroups(this.gpu, layout === "workgroup_per_row" ? rows : workgroupsFor(rows, 64)),
      `rmsnorm:${entryPoint}`,
    );
    return y;
  }

  /**
   * Rotates every head of `x` in place by its token's position.
   *
   * @param batch the batch to record into
   * @param x [sequences · seqLen, heads · headDim]
   * @param cos the cos table, [seqLen, headDim/2]
   * @param sin the sin table, [seqLen, headDim/2]
   * @param heads heads per row
   * @param headDim the head size
   * @example
   * ```ts ignore
   * ops.ropeInPlace(batch, q, cos, sin, config.numAttentionHeads, config.headDim);
   * ```
   */
  ropeInPlace(
    batch: CommandBatch,
    x: GpuTensor,
    cos: GpuTensor,
    sin: GpuTensor,
    heads: number,
    headDim: number,
  ): void {
    const half = headDim / 2;
    const seqLen = cos.numel / half;
    const rows = x.numel / (heads * headDim);
    const vec4s = half % 4 === 0;
    batch.dispatch(
      vec4s ? kernelSync(this.gpu, ROPE, { entryPoint: "vec4s" }) : this.pipelines.rope,
      [x, cos, sin, u32s(rows, seqLen, heads, headDim)],
      foldWorkgroups(this.gpu, workgroupsFor((rows * heads * half) / (vec4s ? 4 : 1), 64)),
      vec4s ? "rope:vec4s" : "rope",
    );
  }

  /**
   * Causal grouped-query attention with a stable f32 softmax and an optional
   * sliding window; the scale is head_dim^-0.5. head_dim must be a multiple
   * of 4 up to {@link MAX_HEAD_DIM}.
   *
   * @param batch the batch to record into
   * @param q post-RoPE queries, [sequences · seqLen, heads · headDim]
   * @param k post-RoPE keys, [sequences · seqLen, kvHeads · headDim]
   * @param v values, [sequences · seqLen, kvHeads · headDim]
   * @param shape the sizes and window
   * @param tiling how queries map to invocations; by default
   *   {@link attentionTiling} for this device. Every valid tiling computes
   *   the same attention.
   * @returns the attention output, [sequences · seqLen, heads · headDim]
   * @throws {EngineError} for an unsupported head_dim, a tiling that
   *   does not fit the shape or the kernel, or a grid beyond the device's limits
   * @example
   * ```ts ignore
   * const att = ops.attention(batch, q, k, v, {
   *   sequences: 1, seqLen: 16, heads: 8, kvHeads: 4, headDim: 8, window: null,
   * });
   * ```
   */
  attention(
    batch: CommandBatch,
    q: GpuTensor,
    k: GpuTensor,
    v: GpuTensor,
    shape: AttentionShape,
    tiling: AttentionTiling = attentionTiling(shape, this.gpu.isFallback),
  ): GpuTensor {
    const { sequences, seqLen, heads, kvHeads, headDim } = shape;
    if (headDim > MAX_HEAD_DIM || headDim % 4 !== 0) {
      throw new EngineError(
        `head_dim ${headDim}: attention_causal.wgsl needs a multiple of 4 up to ${MAX_HEAD_DIM}`,
      );
    }
    const { queries, group } = tiling;
    if (
      !Number.isInteger(queries) || queries < 1 || !Number.isInteger(group) || group < 1 ||
      (heads / kvHeads) % group !== 0 || queries * group > MAX_ATTENTION_STATES ||
      (queries * group * headDim) / 4 > MAX_ATTENTION_STATE_VEC4
    ) {
      throw new EngineError(
        `attention tiling ${JSON.stringify(tiling)} does not fit ${heads} heads over ` +
          `${kvHeads} KV heads of ${headDim}: group must divide heads / kvHeads, ` +
          `queries · group ≤ ${MAX_ATTENTION_STATES} and queries · group · headDim / 4 ≤ ` +
          `${MAX_ATTENTION_STATE_VEC4}`,
      );
    }
    const lanes = (sequences * heads) / group;
    const grid: [number, number, number] = tiling.headsInLanes
      ? [Math.ceil(lanes / 64), Math.ceil(seqLen / queries), 1]
      : [Math.ceil(seqLen / (64 * queries)), heads / group, sequences];
    const max = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    if (grid.some((n) => n > max)) {
      throw new EngineError(
        `attention over ${sequences} sequences of ${seqLen} tokens needs workgroups ` +
          `[${grid}], beyond this device's ${max} per dimension`,
      );
    }
    const out = GpuTensor.allocate(this.gpu, [sequences * seqLen, heads * headDim]);
    const params = new ArrayBuffer(32);
    new Uint32Array(params, 0, 5).set([seqLen, heads, kvHeads, headDim, shape.window ?? NO_WINDOW]);
    new Float32Array(params, 20, 1)[0] = 1 / Math.sqrt(headDim);
    new Uint32Array(params, 24, 1)[0] = sequences;
    batch.dispatch(
      kernelSync(this.gpu, ATTENTION, attentionOptions(headDim, tiling)),
      [q, k, v, out, { uniform: new Uint8Array(params) }],
      grid,
      "attention_causal",
    );
    return out;
  }

  /**
   * The gated activation of Llama's MLP: `silu(gate) · up`.
   *
   * @param batch the batch to record into
   * @param gate gate_proj's output
   * @param up up_proj's output, same shape
   * @returns a new tensor shaped like gate
   * @example
   * ```ts ignore
   * const act = ops.siluMul(batch, gate, up);
   * ```
   */
  siluMul(batch: CommandBatch, gate: GpuTensor, up: GpuTensor): GpuTensor {
    const out = GpuTensor.allocate(this.gpu, [...gate.shape]);
    const n = gate.numel;
    const vec4s = n % 4 === 0;
    batch.dispatch(
      vec4s ? kernelSync(this.gpu, SILU_MUL, { entryPoint: "vec4s" }) : this.pipelines.siluMul,
      [gate, up, out, u32s(n, 0, 0, 0)],
      foldWorkgroups(this.gpu, workgroupsFor(vec4s ? n / 4 : n, 64)),
      vec4s ? "silu_mul:vec4s" : "silu_mul",
    );
    return out;
  }

  /**
   * Folds one block of vocabulary columns into each row's running
   * log-softmax state and, on the last block, writes the NLL of each row's
   * target: `logsumexp(logits[r, :]) − logits[r, target[r]]`, 0 for a
   * negative target. Blocks may come in any order but each exactly once,
   * the first with `first`, the last with `last` (one block can be both).
   *
   * @param batch the batch to record into
   * @param logits the block's logits, [rows, block] for columns v0 … v0 + block − 1
   * @param targets i32 [rows]
   * @param state running (max, sum, target logit) per row, [rows, 3]; caller-allocated
   * @param nll output, [rows]; written by the last block
   * @param v0 the block's first vocabulary id
   * @param first whether this block starts the state
   * @param last whether this block finishes it
   * @example
   * ```ts ignore
   * ops.logSoftmaxNll(batch, logits, targets, state, nll, 0, true, true); // one block
   * ```
   */
  logSoftmaxNll(
    batch: CommandBatch,
    logits: GpuTensor,
    targets: GpuTensor,
    state: GpuTensor,
    nll: GpuTensor,
    v0: number,
    first: boolean,
    last: boolean,
  ): void {
    const [rows, block] = logits.shape;
    batch.dispatch(
      this.pipelines.logSoftmaxNll,
      [logits, targets, state, nll, u32s(rows, block, v0, (first ? 1 : 0) | (last ? 2 : 0))],
      foldWorkgroups(this.gpu, rows),
      "log_softmax_nll",
    );
  }

  /**
   * Writes a [rows, cols] block into columns col0 … col0 + cols − 1 of `out`.
   *
   * @param batch the batch to record into
   * @param block [rows, cols]
   * @param out [rows, ld], ld ≥ col0 + cols
   * @param col0 the first destination column
   * @example
   * ```ts ignore
   * ops.copyColumns(batch, logitsBlock, logits, v0);
   * ```
   */
  copyColumns(batch: CommandBatch, block: GpuTensor, out: GpuTensor, col0: number): void {
    const [rows, cols] = block.shape;
    const ld = out.shape[out.shape.length - 1];
    batch.dispatch(
      this.pipelines.copyColumns,
      [block, out, u32s(rows, cols, ld, col0)],
      foldWorkgroups(this.gpu, workgroupsFor(rows * cols, 64)),
      "copy_columns",
    );
  }
}
