/**
 * llmc's compute engines: one typed interface ({@link Engine}) for the
 * model forward and the calibration statistics, a WebGPU engine over the
 * WGSL kernels and a CPU engine over host arrays, and the default choice of
 * one for the machine.
 *
 * @example
 * ```ts ignore
 * import { createEngine } from "./mod.ts";
 * const { engine, reason } = await createEngine(); // the fastest for this machine
 * console.log(reason);
 * const x = engine.upload(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const [y] = await engine.read([engine.matmul(x, x)]);
 * ```
 *
 * @module
 */

export type {
  AccumulateOptions,
  AttentionShape,
  BlockTransform,
  BlockTransformFactors,
  BlockTransformOps,
  BlockTransformPlacement,
  ColumnLoop,
  ColumnLoopOutput,
  ColumnLoopWork,
  ColumnPruning,
  ColumnQuantization,
  Engine,
  EngineKind,
  FactorPlan,
  HostArray,
  InverseFactor,
  ManyRope,
  ProductTransform,
  RowReduction,
  RunningHessian,
  SecondOrderHessian,
  SecondOrderOps,
  SecondOrderTask,
  SwiGluTransforms,
  Tensor,
  TensorDType,
  WalshHadamardSigns,
} from "./engine.ts";
export { EngineError } from "./engine_error.ts";
export { CpuEngine, CpuTensor, cpuTensor } from "./cpu_engine.ts";
export { CPU_SECOND_ORDER } from "./cpu/second_order.ts";
export { CpuHessian } from "./cpu/hessian.ts";
export { BlockTransformKernels, hostBlockTransform } from "./cpu/block_transform.ts";
export { hostFakeQuantizeRows, hostRowMinMax } from "./host_kernels.ts";
export { WebGpuEngine, webGpuOf } from "./webgpu_engine.ts";
export {
  SECOND_ORDER_WAVE_BYTES,
  type WebGpuBatchSource,
  webGpuSecondOrder,
  type WebGpuSecondOrderOptions,
} from "./webgpu_second_order.ts";
export { HessianAccumulator } from "./webgpu/second_order/hessian_accumulator.ts";
export { RECONSTRUCTION_CHUNK_BYTES } from "./webgpu/second_order/reconstruction_errors.ts";
export {
  autoEngineKind,
  type ChosenEngine,
  createEngine,
  ENGINE_CHOICES,
  ENGINE_ENV,
  type EngineChoice,
  engineFromEnv,
  parseEngineChoice,
} from "./choose.ts";
