/**
 * PanelMatrix: a square f32 matrix on the GPU split into row panels, each
 * its own storage buffer. Why: a Hessian of a 14336-column down_proj is
 * 784 MiB while one storage binding may hold 128 MiB (llvmpipe, and the
 * WebGPU default on real GPUs); every GPTQ kernel binds the one or two
 * panels it needs per dispatch.
 *
 * The order is padded to `order` (a multiple of 64, the Cholesky block);
 * panel heights are multiples of `rowAlign` (128 by default, so a GPTQ
 * column block never straddles two panels of U).
 *
 * @module
 */

import type { Gpu } from "../../../gpu/device.ts";
import { readMany } from "../../../gpu/tensor.ts";
import { GpuTensor } from "../../../gpu/tensor.ts";
import { GptqShapeError } from "../../../modifiers/gptq/errors.ts";

/** The Cholesky / triangular-inverse block: the padded order is a multiple of it. */
export const PANEL_BLOCK = 64;

/** Options of {@link PanelMatrix.create}. */
export interface PanelMatrixOptions {
  /** Panel heights are multiples of this (default 128; a multiple of 64). */
  rowAlign?: number;
  /** Upper bound on a panel's bytes (default and cap: the device's binding and buffer limits). */
  maxPanelBytes?: number;
  /** Zero-fill the panels (default true); false leaves reused buffers as they were. */
  zeroed?: boolean;
}

/**
 * A square `order × order` f32 matrix stored as row panels.
 *
 * @example
 * ```ts
 * import { getGpu } from "../../../gpu/device.ts";
 * import { PanelMatrix } from "./panel_matrix.ts";
 * const m = PanelMatrix.create(await getGpu(), 100);
 * console.assert(m.order === 128 && m.panels.length === 1);
 * m.destroy();
 * ```
 */
export class PanelMatrix {
  /**
   * @param gpu the device
   * @param size the logical size n (rows/columns that carry data)
   * @param order the padded order (row stride of every panel), a multiple of 64
   * @param rowsPerPanel rows of every panel but possibly the last
   * @param panels the panels, top to bottom
   */
  constructor(
    readonly gpu: Gpu,
    readonly size: number,
    readonly order: number,
    readonly rowsPerPanel: number,
    readonly panels: readonly GpuTensor[],
  ) {}

  /**
   * Allocates a matrix for logical size `n`.
   *
   * @param gpu the device
   * @param n the logical size
   * @param options panel alignment, size bound, zero fill
   * @returns the matrix
   * @throws {GptqShapeError} when not even `rowAlign` rows fit one binding
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { PanelMatrix } from "./panel_matrix.ts";
   * const m = PanelMatrix.create(await getGpu(), 1024, { maxPanelBytes: 1024 * 1024 * 4 / 4 });
   * console.assert(m.panels.length === 4 && m.rowsPerPanel === 256);
   * m.destroy();
   * ```
   */
  static create(gpu: Gpu, n: number, options: PanelMatrixOptions = {}): PanelMatrix {
    if (!Number.isInteger(n) || n < 1) {
      throw new GptqShapeError(`PanelMatrix: size must be a positive integer, got ${n}`);
    }
    const order = roundUp(n, PANEL_BLOCK);
    const rowAlign = options.rowAlign ?? 128;
    if (!Number.isInteger(rowAlign) || rowAlign < PANEL_BLOCK || rowAlign % PANEL_BLOCK !== 0) {
      // A Cholesky diagonal block must never straddle two panels.
      throw new GptqShapeError(
        `PanelMatrix: rowAlign must be a positive multiple of ${PANEL_BLOCK}, got ${rowAlign}`,
      );
    }
    const limit = Math.min(
      gpu.limits.maxStorageBufferBindingSize,
      gpu.limits.maxBufferSize,
      options.maxPanelBytes ?? Infinity,
    );
    const fit = Math.floor(limit / (order * 4) / rowAlign) * rowAlign;
    if (fit < rowAlign) {
      throw new GptqShapeError(
        `PanelMatrix: ${rowAlign} rows of ${order} f32 (${
          rowAlign * order * 4
        } bytes) do not fit ` +
          `one storage binding of ${limit} bytes on this device`,
      );
    }
    // Balance the panels so the last one is not a sliver.
    const count = Math.ceil(order / fit);
    const rowsPerPanel = Math.min(fit, roundUp(Math.ceil(order / count), rowAlign));
    const panels: GpuTensor[] = [];
    for (let r0 = 0; r0 < order; r0 += rowsPerPanel) {
      const rows = Math.min(rowsPerPanel, order - r0);
      panels.push(
        options.zeroed === false
          ? GpuTensor.allocate(gpu, [rows, order])
          : GpuTensor.empty(gpu, [rows, order]),
      );
    }
    return new PanelMatrix(gpu, n, order, rowsPerPanel, panels);
  }

  /**
   * The panel holding global row `row`.
   *
   * @param row a row index < order
   * @returns the panel index
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { PanelMatrix } from "./panel_matrix.ts";
   * const m = PanelMatrix.create(await getGpu(), 64);
   * console.assert(m.panelOf(63) === 0);
   * m.destroy();
   * ```
   */
  panelOf(row: number): number {
    return Math.floor(row / this.rowsPerPanel);
  }

  /**
   * The first global row of panel `p`.
   *
   * @param p a panel index
   * @returns its first row
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { PanelMatrix } from "./panel_matrix.ts";
   * const m = PanelMatrix.create(await getGpu(), 64);
   * console.assert(m.panelStart(0) === 0);
   * m.destroy();
   * ```
   */
  panelStart(p: number): number {
    return p * this.rowsPerPanel;
  }

  /**
   * One past the last global row of panel `p`.
   *
   * @param p a panel index
   * @returns its end row
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { PanelMatrix } from "./panel_matrix.ts";
   * const m = PanelMatrix.create(await getGpu(), 100);
   * console.assert(m.panelEnd(0) === 128);
   * m.destroy();
   * ```
   */
  panelEnd(p: number): number {
    return Math.min((p + 1) * this.rowsPerPanel, this.order);
  }

  /**
   * Reads the leading `size × size` block back (one submit, one wait).
   *
   * @returns the block, row-major
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { PanelMatrix } from "./panel_matrix.ts";
   * const m = PanelMatrix.create(await getGpu(), 3);
   * console.assert((await m.read()).length === 9);
   * m.destroy();
   * ```
   */
  async read(): Promise<Float32Array> {
    const n = this.size;
    const out = new Float32Array(n * n);
    const host = await readMany([...this.panels]);
    for (let p = 0; p < host.length; p++) {
      const data = host[p] as Float32Array;
      const r0 = this.panelStart(p);
      for (let r = r0; r < Math.min(this.panelEnd(p), n); r++) {
        const src = (r - r0) * this.order;
        out.set(data.subarray(src, src + n), r * n);
      }
    }
    return out;
  }

  /**
   * Returns every panel's buffer to the pool.
   *
   * @returns nothing
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { PanelMatrix } from "./panel_matrix.ts";
   * PanelMatrix.create(await getGpu(), 8).destroy();
   * ```
   */
  destroy(): void {
    for (const p of this.panels) p.destroy();
  }
}

/**
 * The smallest multiple of `m` that is ≥ `x`.
 *
 * @param x a non-negative integer
 * @param m a positive integer
 * @returns ceil(x / m) · m
 *
 * @example
 * ```ts
 * import { roundUp } from "./panel_matrix.ts";
 * console.assert(roundUp(100, 64) === 128);
 * ```
 */
export function roundUp(x: number, m: number): number {
  return Math.ceil(x / m) * m;
}

/**
 * The least common multiple of two positive integers.
 *
 * @param a a positive integer
 * @param b a positive integer
 * @returns lcm(a, b)
 *
 * @example
 * ```ts
 * import { lcm } from "./panel_matrix.ts";
 * console.assert(lcm(128, 96) === 384);
 * ```
 */
export function lcm(a: number, b: number): number {
  let [x, y] = [a, b];
  while (y !== 0) [x, y] = [y, x % y];
  return (a / x) * b;
}
