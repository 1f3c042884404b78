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

import type { CommandBatch } from "../gpu/batch.ts";
import type { Gpu } from "../gpu/device.ts";
import { kernelSync, loadKernel } from "../gpu/kernel.ts";
import { GpuTensor } from "../gpu/tensor.ts";
import { foldWorkgroups, workgroupsFor } from "../gpu/workgroups.ts";
import { DecoderModelError } from "./model_error.ts";

/** The largest head_dim `attention_causal.wgsl` handles (its MAX_HEAD_DIM). */
export const MAX_HEAD_DIM = 256;

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

const NO_WINDOW = 0xffffffff;
const ATTENTION = "attention_causal.wgsl";

function attentionOptions(headDim: number) {
  return { constants: { HEAD_DIM: headDim } };
}

function u32s(...values: number[]): { uniform: Uint32Array } {
  return { uniform: new Uint32Array(values) };
}

/**
 * The model kernels of one device, compiled once.
 *
 * @example
 * ```ts ignore
 * import { getGpu } from "../gpu/device.ts";
 * import { CommandBatch } from "../gpu/batch.ts";
 * import { GpuTensor } from "../gpu/tensor.ts";
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
      rmsnorm: GPUComputePipeline;
      rope: GPUComputePipeline;
      siluMul: GPUComputePipeline;
      logSoftmaxNll: GPUComputePipeline;
      copyColumns: GPUComputePipeline;
    },
  ) {}

  /**
   * Compiles (or fetches from the runtime's cache) every model kernel.
   * Attention is specialised per head size; sizes not listed here compile
   * on first use.
   *
   * @param gpu the device
   * @param headDims head sizes to compile attention for now
   * @returns the operations bound to that device
   * @example
   * ```ts ignore
   * import { getGpu } from "../gpu/device.ts";
   * import { ModelOps } from "./model_ops.ts";
   * const ops = await ModelOps.load(await getGpu(), [64]);
   * ```
   */
  static async load(gpu: Gpu, headDims: readonly number[] = []): Promise<ModelOps> {
    const [embeddingGather, rmsnorm, rope, siluMul, logSoftmaxNll, copyColumns] = await Promise.all(
      [
        loadKernel(gpu, "embedding_gather.wgsl"),
        loadKernel(gpu, "rmsnorm.wgsl"),
        loadKernel(gpu, "rope.wgsl"),
        loadKernel(gpu, "silu_mul.wgsl"),
        loadKernel(gpu, "log_softmax_nll.wgsl"),
        loadKernel(gpu, "copy_columns.wgsl"),
        ...headDims.map((d) => loadKernel(gpu, ATTENTION, attentionOptions(d))),
      ],
    );
    return new ModelOps(gpu, {
      embeddingGather,
      rmsnorm,
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
   * @returns a new tensor shaped like x
   * @example
   * ```ts ignore
   * const xn = ops.rmsnorm(batch, x, inputLayernorm, config.rmsNormEps);
   * ```
   */
  rmsnorm(batch: CommandBatch, x: GpuTensor, weight: GpuTensor, eps: number): GpuTensor {
    const cols = weight.numel;
    const rows = x.numel / cols;
    if (!Number.isInteger(rows)) {
      throw new DecoderModelError(`rmsnorm: [${x.shape}] is not a whole number of rows of ${cols}`);
    }
    const y = GpuTensor.allocate(this.gpu, [...x.shape]);
    const params = new ArrayBuffer(16);
    new Uint32Array(params, 0, 2).set([rows, cols]);
    new Float32Array(params, 8, 1)[0] = eps;
    batch.dispatch(
      this.pipelines.rmsnorm,
      [x, weight, y, { uniform: new Uint8Array(params) }],
      foldWorkgroups(this.gpu, rows),
      "rmsnorm",
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
    batch.dispatch(
      this.pipelines.rope,
      [x, cos, sin, u32s(rows, seqLen, heads, headDim)],
      foldWorkgroups(this.gpu, workgroupsFor(rows * heads * half, 64)),
      "rope",
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
   * @returns the attention output, [sequences · seqLen, heads · headDim]
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
  ): GpuTensor {
    const { sequences, seqLen, heads, kvHeads, headDim } = shape;
    if (headDim > MAX_HEAD_DIM || headDim % 4 !== 0) {
      throw new DecoderModelError(
        `head_dim ${headDim}: attention_causal.wgsl needs a multiple of 4 up to ${MAX_HEAD_DIM}`,
      );
    }
    const max = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    if (seqLen > max || sequences > max) {
      throw new DecoderModelError(
        `attention over ${sequences} sequences of ${seqLen} tokens exceeds this device's ` +
          `${max} workgroups per dimension`,
      );
    }
    const out = GpuTensor.allocate(this.gpu, [sequences * seqLen, heads * headDim]);
    const params = new ArrayBuffer(32);
    new Uint32Array(params, 0, 5).set([seqLen, heads, kvHeads, headDim, shape.window ?? NO_WINDOW]);
    new Float32Array(params, 20, 1)[0] = 1 / Math.sqrt(headDim);
    batch.dispatch(
      kernelSync(this.gpu, ATTENTION, attentionOptions(headDim)),
      [q, k, v, out, { uniform: new Uint8Array(params) }],
      [Math.ceil(seqLen / 64), heads, sequences],
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
    batch.dispatch(
      this.pipelines.siluMul,
      [gate, up, out, u32s(gate.numel, 0, 0, 0)],
      foldWorkgroups(this.gpu, workgroupsFor(gate.numel, 64)),
      "silu_mul",
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
