/**
 * llmc's WebGPU runtime: the device, tensors in pooled buffers, the kernel
 * loader, batched command submission, and the core ops built on them.
 *
 * @example
 * ```ts
 * import { CommandBatch, getGpu, GpuTensor, matmul } from "./mod.ts";
 * const gpu = await getGpu();
 * const batch = new CommandBatch(gpu);
 * const x = GpuTensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const y = matmul(batch, x, x); // x·xᵀ
 * console.assert((await y.readF32()).join() === "5,11,11,25");
 * ```
 *
 * @module
 */

export {
  type AdapterChoice,
  adoptDevice,
  describeGpu,
  getGpu,
  type Gpu,
  throwIfGpuFailed,
} from "./device.ts";
export {
  GpuDeviceError,
  GpuUnavailableError,
  ImmutableTensorError,
  KernelCompileError,
  ShapeError,
  TensorTooLargeError,
} from "./errors.ts";
export { type GpuDType, GpuTensor, type HostArray, readMany } from "./tensor.ts";
export {
  BufferPool,
  PACK_USAGE,
  sizeClass,
  STORAGE_USAGE,
  storagePool,
  UNIFORM_USAGE,
  uniformPool,
} from "./buffer_pool.ts";
export { compileKernel, type KernelOptions, kernelSync, kernelUrl, loadKernel } from "./kernel.ts";
export { type Binding, CommandBatch } from "./batch.ts";
export { foldCount, foldWorkgroups, workgroupsFor } from "./workgroups.ts";
export { ChunkedWeight, type WeightChunk } from "./chunked.ts";
export {
  add,
  copy,
  matmul,
  MATMUL_WORKGROUP,
  mul,
  prepareOps,
  reduceRows,
  type RowReduction,
  scale,
  transpose,
} from "./ops.ts";
export { matmulF16, packF16, prepareMatmulF16 } from "./matmul_f16.ts";
export {
  defaultMatmulPath,
  type GramOptions,
  type GramRows,
  type MatmulPath,
  prepareUniformMatmul,
  recordUniformGram,
  recordUniformGramRows,
  recordUniformMatmul,
  uniformMatmulSource,
  type UniformShape,
  type UniformTiling,
  uniformTiling,
} from "./matmul_uniform.ts";
