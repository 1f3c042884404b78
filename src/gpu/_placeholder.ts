/**
 * A tiny zero tensor per device, bound where a kernel declares an optional
 * input (a bias) that a call does not have: layout "auto" keeps every binding
 * the shader uses, so something must be bound there.
 *
 * @module
 */

import type { Gpu } from "./device.ts";
import { GpuTensor } from "./tensor.ts";

const placeholders = new WeakMap<GPUDevice, GpuTensor>();

/** The device's placeholder: 4 zero f32, never destroyed. */
export function placeholder(gpu: Gpu): GpuTensor {
  let t = placeholders.get(gpu.device);
  if (!t) placeholders.set(gpu.device, t = GpuTensor.empty(gpu, [4]));
  return t;
}
