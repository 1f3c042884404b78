/**
 * HessianAccumulator: GPTQ's and SparseGPT's running average of 2·XᵀX over
 * the calibration inputs of a Linear, kept on the GPU (§4.4):
 *
 * ```
 * H ← H · n/(n + b);  n ← n + b;  H ← H + (2/n)·XᵀX
 * ```
 *
 * where b counts sequences (not tokens), as llm-compressor 0.9 does. Only
 * the lower triangle is accumulated (half the flops); the upper one is
 * filled when the matrix is consumed.
 *
 * On a software adapter (`defaultMatmulPath(gpu) === "uniform"`) the update
 * runs on the uniform-window Gram (src/gpu/matmul_uniform.ts); real GPUs
 * keep the storage kernel (matmul_at_b_update.wgsl).
 *
 * Sharing: q_proj, k_proj and v_proj read the same input (and so do
 * gate_proj and up_proj), so their Hessians are equal. The caller keeps one
 * accumulator per distinct input tensor, calls `add` once per calibration
 * batch, and passes that accumulator (or one InverseHessianFactor computed
 * from it) to the quantization of every module reading that input. Nothing
 * downstream modifies it; `destroy` it after the last of those modules.
 *
 * @module
 */

import type { CommandBatch } from "../../../gpu/batch.ts";
import type { Gpu } from "../../../gpu/device.ts";
import type { GpuTensor } from "../../../gpu/tensor.ts";
import { defaultMatmulPath, recordUniformGramRows } from "../../../gpu/matmul_uniform.ts";
import { GptqShapeError } from "../../../modifiers/gptq/errors.ts";
import { recordAtBUpdate } from "./matmul_at_b_update.ts";
import { PanelMatrix, type PanelMatrixOptions, roundUp } from "./panel_matrix.ts";
import { recordMirrorLower } from "./panel_ops.ts";

/**
 * Tokens per update dispatch for inputs of `cols` columns: sums over a
 * token chunk of about 192 Ki values (768 KiB) keep the operands in cache,
 * and narrow inputs take longer chunks so each dispatch has work enough to
 * outweigh its cost. Measured on llvmpipe, one 4096-token update: 64 columns
 * 3.9 ms at 256 tokens vs 3.0 at 2048; 176 columns 10.3 vs 7.0 at 1024; 768
 * columns 141 ms at 256 vs 148 at 1024 and 176 at 4096.
 *
 * @param cols the input's columns
 * @returns a power of two, at least 256
 * @example
 * ```ts
 * import { hessianTokenChunk } from "./hessian_accumulator.ts";
 * console.assert(hessianTokenChunk(64) === 2048 && hessianTokenChunk(4096) === 256);
 * ```
 */
export function hessianTokenChunk(cols: number): number {
  return Math.max(256, 2 ** Math.floor(Math.log2((192 * 1024) / cols)));
}

/**
 * The running Hessian of one Linear's input (or of several Linears that
 * share it).
 *
 * @example
 * ```ts
 * import { CommandBatch } from "../../../gpu/batch.ts";
 * import { getGpu } from "../../../gpu/device.ts";
 * import { GpuTensor } from "../../../gpu/tensor.ts";
 * import { HessianAccumulator } from "./hessian_accumulator.ts";
 * const gpu = await getGpu();
 * const h = HessianAccumulator.create(gpu, 4);
 * const batch = new CommandBatch(gpu);
 * const x = GpuTensor.fromArray(gpu, new Float32Array([1, 0, 0, 2]), [1, 4]);
 * h.add(batch, x, 1);
 * const full = await h.read();
 * console.assert(full[0] === 2 && full[15] === 8 && h.numSamples === 1);
 * h.destroy();
 * ```
 */
export class HessianAccumulator {
  #numSamples = 0;
  #mirrored = false;

  /**
   * @param gpu the device
   * @param columns the Linear's in_features
   * @param matrix H, padded, in row panels (lower triangle accumulated)
   */
  private constructor(
    readonly gpu: Gpu,
    readonly columns: number,
    readonly matrix: PanelMatrix,
  ) {}

  /**
   * A zero Hessian for a Linear with `columns` inputs.
   *
   * @param gpu the device
   * @param columns in_features; a multiple of 4 (the kernel loads vec4s)
   * @param options panel layout (tests use a small maxPanelBytes to exercise chunking)
   * @returns the accumulator
   * @throws {GptqShapeError} when columns is not a positive multiple of 4
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { HessianAccumulator } from "./hessian_accumulator.ts";
   * const h = HessianAccumulator.create(await getGpu(), 96);
   * console.assert(h.matrix.order === 128);
   * h.destroy();
   * ```
   */
  static create(gpu: Gpu, columns: number, options: PanelMatrixOptions = {}): HessianAccumulator {
    if (!Number.isInteger(columns) || columns < 4 || columns % 4 !== 0) {
      throw new GptqShapeError(
        `HessianAccumulator: in_features must be a positive multiple of 4, got ${columns}`,
      );
    }
    return new HessianAccumulator(gpu, columns, PanelMatrix.create(gpu, columns, options));
  }

  /**
   * An accumulator holding a given Hessian: the way back from `read` for
   * offloaded Hessians (llm-compressor's `offload_hessians`), and a way to
   * test the factorization on matrices no XᵀX produces (indefinite ones).
   *
   * @param gpu the device
   * @param hessian a symmetric [columns, columns] matrix, row-major
   * @param columns its order; a multiple of 4
   * @param numSamples the n it was accumulated over (later `add`s keep averaging)
   * @param options panel layout
   * @returns the accumulator, its upload queued
   * @throws {GptqShapeError} when the sizes disagree
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { HessianAccumulator } from "./hessian_accumulator.ts";
   * const h = HessianAccumulator.fromMatrix(await getGpu(), new Float32Array(16).fill(1), 4, 3);
   * console.assert(h.numSamples === 3 && (await h.read())[5] === 1);
   * h.destroy();
   * ```
   */
  static fromMatrix(
    gpu: Gpu,
    hessian: Float32Array,
    columns: number,
    numSamples: number,
    options: PanelMatrixOptions = {},
  ): HessianAccumulator {
    if (hessian.length !== columns * columns) {
      throw new GptqShapeError(
        `HessianAccumulator.fromMatrix: ${hessian.length} values for ${columns} columns`,
      );
    }
    const acc = HessianAccumulator.create(gpu, columns, options);
    const m = acc.matrix;
    for (let q = 0; q < m.panels.length; q++) {
      const r0 = m.panelStart(q);
      const r1 = Math.min(m.panelEnd(q), columns);
      if (r1 <= r0) break;
      const data = new Float32Array((m.panelEnd(q) - r0) * m.order);
      for (let r = r0; r < r1; r++) {
        data.set(hessian.subarray(r * columns, (r + 1) * columns), (r - r0) * m.order);
      }
      gpu.device.queue.writeBuffer(m.panels[q].buffer, 0, data);
    }
    acc.#numSamples = numSamples;
    acc.#mirrored = true;
    return acc;
  }

  /** n: the number of sequences folded in so far. */
  get numSamples(): number {
    return this.#numSamples;
  }

  /**
   * Folds one calibration batch in; records dispatches only (no wait).
   *
   * @param batch the batch the activations were produced in
   * @param x the Linear's input, [tokens, columns] (leading dims flattened)
   * @param numSequences b: how many sequences x holds (llm-compressor weights by sequences)
   * @returns nothing
   * @throws {GptqShapeError} when x's last dimension is not `columns` or b < 1
   *
   * @example
   * ```ts
   * import { CommandBatch } from "../../../gpu/batch.ts";
   * import { getGpu } from "../../../gpu/device.ts";
   * import { GpuTensor } from "../../../gpu/tensor.ts";
   * import { HessianAccumulator } from "./hessian_accumulator.ts";
   * const gpu = await getGpu();
   * const h = HessianAccumulator.create(gpu, 4);
   * const batch = new CommandBatch(gpu);
   * h.add(batch, GpuTensor.fromArray(gpu, new Float32Array(8).fill(1), [2, 4]), 2);
   * console.assert((await h.read())[1] === 2);
   * h.destroy();
   * ```
   */
  add(batch: CommandBatch, x: GpuTensor, numSequences: number): void {
    const cols = this.columns;
    const last = x.shape[x.shape.length - 1];
    if (x.dtype !== "f32" || last !== cols) {
      throw new GptqShapeError(
        `HessianAccumulator of ${cols} columns got ${x.dtype} activations [${x.shape}]`,
      );
    }
    if (!Number.isInteger(numSequences) || numSequences < 1) {
      throw new GptqShapeError(
        `HessianAccumulator.add: numSequences must be ≥ 1, got ${numSequences}`,
      );
    }
    const tokens = x.numel / cols;
    const n0 = this.#numSamples;
    const n1 = n0 + numSequences;
    this.#numSamples = n1;
    this.#mirrored = false;
    const m = this.matrix;
    if (defaultMatmulPath(this.gpu) === "uniform") {
      // Software adapter: the uniform-window Gram (storage loads are per-lane loops there).
      // Each panel receives its own rows; padding rows and columns stay as they are.
      recordUniformGramRows(
        batch,
        x,
        m.panels.map((panel, q) => ({
          tensor: panel,
          row0: m.panelStart(q),
          rows: panel.shape[0],
          ld: m.order,
        })),
        2 / n1,
        n0 / n1,
        { lowerOnly: true },
      );
      return;
    }
    // Rows/columns past `cols` (up to the next multiple of 8) may pick up the
    // next token's values; they are padding that nothing reads.
    const span = roundUp(cols, 8);
    for (let q = 0; q < m.panels.length; q++) {
      const r0 = m.panelStart(q);
      const r1 = Math.min(m.panelEnd(q), span);
      if (r1 <= r0) break;
      // Chunked sums (see hessianTokenChunk); only the first one rescales H.
      const chunk = hessianTokenChunk(cols);
      for (let t0 = 0; t0 < tokens; t0 += chunk) {
        recordAtBUpdate(batch, {
          m: r1 - r0,
          n: r1,
          k: Math.min(chunk, tokens - t0),
          a: { tensor: x, offset: t0 * cols + r0, ld: cols },
          b: { tensor: x, offset: t0 * cols, ld: cols },
          c: { tensor: m.panels[q], offset: 0, ld: m.order },
          beta: t0 === 0 ? n0 / n1 : 1,
          alpha: 2 / n1,
          lowerOnly: { row0: r0, col0: 0 },
        });
      }
    }
  }

  /**
   * Records the copy of the lower triangle onto the upper one, once per
   * state (consumers that gather whole rows call this; later `add`s redo it).
   *
   * @param batch the batch to record into
   * @returns nothing
   *
   * @example
   * ```ts
   * import { CommandBatch } from "../../../gpu/batch.ts";
   * import { getGpu } from "../../../gpu/device.ts";
   * import { HessianAccumulator } from "./hessian_accumulator.ts";
   * const gpu = await getGpu();
   * const h = HessianAccumulator.create(gpu, 8);
   * h.recordSymmetrize(new CommandBatch(gpu));
   * h.destroy();
   * ```
   */
  recordSymmetrize(batch: CommandBatch): void {
    if (this.#mirrored) return;
    recordMirrorLower(batch, this.matrix);
    this.#mirrored = true;
  }

  /**
   * Reads H back as a full symmetric [columns, columns] matrix (one wait).
   *
   * @returns H, row-major
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { HessianAccumulator } from "./hessian_accumulator.ts";
   * const h = HessianAccumulator.create(await getGpu(), 4);
   * console.assert((await h.read()).every((v) => v === 0));
   * h.destroy();
   * ```
   */
  async read(): Promise<Float32Array> {
    const n = this.columns;
    const full = await this.matrix.read();
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) full[i * n + j] = full[j * n + i];
    }
    return full;
  }

  /**
   * Releases the GPU memory.
   *
   * @returns nothing
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { HessianAccumulator } from "./hessian_accumulator.ts";
   * HessianAccumulator.create(await getGpu(), 4).destroy();
   * ```
   */
  destroy(): void {
    this.matrix.destroy();
  }
}
