/**
 * The WebGPU engine's {@link RunningHessian}: a {@link HessianAccumulator}
 * whose `add` records into the engine's current batch.
 *
 * @module
 */

import { GpuTensor } from "../../../gpu/tensor.ts";
import type { RunningHessian, SecondOrderHessian, Tensor } from "../../engine.ts";
import { EngineError } from "../../engine_error.ts";
import type { WebGpuBatchSource } from "../../webgpu_second_order.ts";
import { HessianAccumulator } from "./hessian_accumulator.ts";

/**
 * A running Hessian on a WebGPU device.
 *
 * @example
 * ```ts ignore
 * const h = GpuRunningHessian.create(engine, 64);
 * h.add(x, 4);
 * const host = await h.read();
 * h.destroy();
 * ```
 */
export class GpuRunningHessian implements RunningHessian {
  private constructor(
    private readonly source: WebGpuBatchSource,
    /** The accumulator itself. */
    readonly accumulator: HessianAccumulator,
  ) {}

  /**
   * A zero Hessian of order `columns` on `source`'s device.
   *
   * @param source the engine (its device and current batch)
   * @param columns in_features; a multiple of 4
   * @returns the Hessian
   * @throws {GptqShapeError} when columns is not a positive multiple of 4
   * @example
   * ```ts ignore
   * GpuRunningHessian.create(engine, 64).destroy();
   * ```
   */
  static create(source: WebGpuBatchSource, columns: number): GpuRunningHessian {
    return new GpuRunningHessian(source, HessianAccumulator.create(source.gpu, columns));
  }

  /** The order. */
  get columns(): number {
    return this.accumulator.columns;
  }

  /** The sequences folded in so far. */
  get numSamples(): number {
    return this.accumulator.numSamples;
  }

  /**
   * Records one forward's inputs into the engine's current batch.
   *
   * @param x the input `[tokens, columns]`, a tensor of this engine
   * @param sequences samples in x
   * @example
   * ```ts ignore
   * h.add(x, 4);
   * ```
   */
  add(x: Tensor, sequences: number): void {
    if (!(x instanceof GpuTensor)) {
      throw new EngineError(`Hessian: a ${x.constructor.name} [${x.shape}] is not a WebGPU tensor`);
    }
    this.accumulator.add(this.source.batch, x, sequences);
  }

  /**
   * H as a full symmetric host matrix (one wait).
   *
   * @returns H, row-major
   * @example
   * ```ts ignore
   * const host = await h.read();
   * ```
   */
  read(): Promise<Float32Array> {
    return this.accumulator.read();
  }

  /**
   * Releases the device memory.
   *
   * @example
   * ```ts ignore
   * h.destroy();
   * ```
   */
  destroy(): void {
    this.accumulator.destroy();
  }
}

/**
 * The accumulator behind a Hessian of the WebGPU engine: a running one, or
 * a {@link HessianAccumulator} made directly (tests, uploaded Hessians).
 *
 * @param h a Hessian
 * @returns its accumulator
 * @throws {TypeError} for a Hessian of another engine
 * @example
 * ```ts ignore
 * const acc = accumulatorOf(h);
 * ```
 */
export function accumulatorOf(h: SecondOrderHessian): HessianAccumulator {
  if (h instanceof GpuRunningHessian) return h.accumulator;
  if (!(h instanceof HessianAccumulator)) {
    throw new TypeError("WebGPU second-order ops: a Hessian of another engine");
  }
  return h;
}
