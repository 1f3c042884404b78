/**
 * Typed errors of the WebGPU runtime. Each names what was tried or what was
 * too large, so a user can act on the message alone.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/**
 * No WebGPU adapter or device could be obtained.
 *
 * @example
 * ```ts
 * import { GpuUnavailableError } from "./errors.ts";
 * const e = new GpuUnavailableError("no adapter (tried: hardware, software)");
 * console.assert(e.name === "GpuUnavailableError");
 * ```
 */
export class GpuUnavailableError extends LlmcError {}

/**
 * The device was lost, or reported a validation / out-of-memory / internal
 * error that nobody captured. Later GPU work on that device rejects with it.
 *
 * @example
 * ```ts
 * import { GpuDeviceError } from "./errors.ts";
 * const e = new GpuDeviceError("device lost: destroyed");
 * console.assert(e instanceof Error);
 * ```
 */
export class GpuDeviceError extends LlmcError {}

/**
 * A WGSL kernel failed to load, compile or build into a pipeline.
 *
 * @example
 * ```ts
 * import { KernelCompileError } from "./errors.ts";
 * const e = new KernelCompileError("matmul_f32.wgsl: 3:7 expected identifier");
 * console.assert(e.message.startsWith("matmul_f32.wgsl"));
 * ```
 */
export class KernelCompileError extends LlmcError {}

/**
 * A tensor is larger than one storage binding (or one buffer) may be on this
 * device; large weights must be split with `ChunkedWeight`.
 *
 * @example
 * ```ts
 * import { TensorTooLargeError } from "./errors.ts";
 * const e = new TensorTooLargeError("[100000,4096] f32 is 1.5 GiB > 128 MiB");
 * console.assert(e.name === "TensorTooLargeError");
 * ```
 */
export class TensorTooLargeError extends LlmcError {}

/**
 * A kernel would be able to write an immutable tensor (an uploaded weight,
 * whose derived copies such as packed tiles must never go stale).
 *
 * @example
 * ```ts
 * import { ImmutableTensorError } from "./errors.ts";
 * const e = new ImmutableTensorError("scale: binding 0 may write the immutable tensor [4,4]");
 * console.assert(e.name === "ImmutableTensorError");
 * ```
 */
export class ImmutableTensorError extends LlmcError {}

/**
 * Tensor shapes or dtypes do not fit the operation.
 *
 * @example
 * ```ts
 * import { ShapeError } from "./errors.ts";
 * const e = new ShapeError("matmul: x is [4,8] but w is [3,7]; K must match");
 * console.assert(e.name === "ShapeError");
 * ```
 */
export class ShapeError extends LlmcError {}
