/**
 * The engines correctness tests run on: every test that checks a forward or
 * a calibration result against a reference runs once per engine.
 */

import { CpuEngine } from "../src/engine/cpu_engine.ts";
import type { Engine, EngineKind, Tensor } from "../src/engine/engine.ts";
import { WebGpuEngine } from "../src/engine/webgpu_engine.ts";
import { getGpu } from "../src/gpu/device.ts";

/** Both engines, WebGPU first (the reference the suite was written against). */
export const ENGINE_KINDS: readonly EngineKind[] = ["webgpu", "cpu"];

/**
 * A fresh engine of a kind (the WebGPU ones share the process's device).
 *
 * @param kind which
 * @returns the engine
 */
export async function testEngine(kind: EngineKind): Promise<Engine> {
  return kind === "cpu" ? new CpuEngine() : await WebGpuEngine.create(await getGpu());
}

/**
 * Reads one f32 tensor back.
 *
 * @param engine its engine
 * @param t the tensor
 * @returns its values
 */
export async function readF32(engine: Engine, t: Tensor): Promise<Float32Array> {
  const [host] = await engine.read([t]);
  return host as Float32Array;
}
