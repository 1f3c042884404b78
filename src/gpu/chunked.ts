/**
 * ChunkedWeight: a [N, K] weight too large for one storage binding, split
 * into row chunks that each fit. matmul over it writes each chunk's output
 * columns into one y.
 *
 * @module
 */

import type { Gpu } from "./device.ts";
import { ShapeError, TensorTooLargeError } from "./errors.ts";
import { GpuTensor } from "./tensor.ts";

/** One chunk: rows [row0, row0 + rows) of the weight. */
export interface WeightChunk {
  /** The chunk's rows, shape [rows, K]. */
  readonly tensor: GpuTensor;
  /** Index of the chunk's first row in the whole weight. */
  readonly row0: number;
  /** Number of rows in the chunk. */
  readonly rows: number;
}

/**
 * A [N, K] f32 weight stored as row chunks on the GPU.
 *
 * @example
 * ```ts
 * import { ChunkedWeight } from "./chunked.ts";
 * import { getGpu } from "./device.ts";
 * const w = ChunkedWeight.fromArray(await getGpu(), new Float32Array(10 * 4), [10, 4], {
 *   maxChunkBytes: 3 * 4 * 4,
 * });
 * console.assert(w.chunks.length === 4 && w.chunks[3].rows === 1);
 * w.destroy();
 * ```
 */
export class ChunkedWeight {
  /**
   * Wraps chunks already on the GPU (see {@link ChunkedWeight.fromArray}).
   *
   * @param gpu the device
   * @param shape [N, K]
   * @param chunks row chunks covering 0..N in order
   */
  constructor(
    readonly gpu: Gpu,
    readonly shape: readonly [number, number],
    readonly chunks: readonly WeightChunk[],
  ) {}

  /** Elements of the whole weight. */
  get numel(): number {
    return this.shape[0] * this.shape[1];
  }

  /** Always f32. */
  readonly dtype = "f32" as const;

  /**
   * Uploads a weight in row chunks of at most `maxChunkBytes` (default and
   * upper bound: the device's maxStorageBufferBindingSize and maxBufferSize).
   *
   * @param gpu the device
   * @param data the weight, row-major [N, K]
   * @param shape [N, K]
   * @param options.maxChunkBytes a smaller chunk bound (tests, memory pressure)
   * @returns the chunked weight
   * @throws {TensorTooLargeError} when a single row does not fit a chunk
   *
   * @example
   * ```ts
   * import { ChunkedWeight } from "./chunked.ts";
   * import { getGpu } from "./device.ts";
   * const w = ChunkedWeight.fromArray(await getGpu(), new Float32Array(6), [3, 2]);
   * console.assert(w.chunks.length === 1);
   * ```
   */
  static fromArray(
    gpu: Gpu,
    data: Float32Array,
    shape: [number, number],
    options: { maxChunkBytes?: number } = {},
  ): ChunkedWeight {
    const [n, k] = shape;
    if (data.length !== n * k) {
      throw new ShapeError(
        `ChunkedWeight: shape [${shape}] needs ${n * k} values, got ${data.length}`,
      );
    }
    const limit = Math.min(
      gpu.limits.maxStorageBufferBindingSize,
      gpu.limits.maxBufferSize,
      options.maxChunkBytes ?? Infinity,
    );
    const rowsPerChunk = Math.floor(limit / (Math.max(k, 1) * 4));
    if (rowsPerChunk < 1) {
      throw new TensorTooLargeError(
        `ChunkedWeight: one row of ${k} f32 (${k * 4} bytes) exceeds the chunk limit ${limit}`,
      );
    }
    const chunks: WeightChunk[] = [];
    for (let row0 = 0; row0 < n; row0 += rowsPerChunk) {
      const rows = Math.min(rowsPerChunk, n - row0);
      const tensor = GpuTensor.fromArray(
        gpu,
        data.subarray(row0 * k, (row0 + rows) * k),
        [rows, k],
        { immutable: true },
      );
      chunks.push({ tensor, row0, rows });
    }
    return new ChunkedWeight(gpu, [n, k], chunks);
  }

  /**
   * Returns every chunk's buffer to the pool.
   *
   * @returns nothing
   *
   * @example
   * ```ts
   * import { ChunkedWeight } from "./chunked.ts";
   * import { getGpu } from "./device.ts";
   * ChunkedWeight.fromArray(await getGpu(), new Float32Array(4), [2, 2]).destroy();
   * ```
   */
  destroy(): void {
    for (const c of this.chunks) c.tensor.destroy();
  }
}
