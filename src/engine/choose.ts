/**
 * Which engine runs: the one asked for, or by default the fastest for the
 * machine, decided from what the WebGPU adapter reports without opening a
 * device. A hardware adapter gets the WebGPU engine; a software (fallback)
 * adapter such as llvmpipe or lavapipe, or none at all, gets the CPU engine,
 * which does the same work without emulating a GPU on the same cores (and
 * without compiling shaders). When the CPU engine is chosen no WebGPU device
 * is requested; on Linux without a GPU device node not even the adapter is
 * probed (see _gpu_device_nodes.ts: probing loads the driver stack, ~60 MiB).
 * The WebGPU modules are imported only when a run probes or opens a device,
 * so a CPU run does not load them.
 *
 * @module
 */

import { readEnvQuietly } from "../_env.ts";
import { gpuDeviceNodes } from "./_gpu_device_nodes.ts";
import { CpuEngine } from "./cpu_engine.ts";
import { cpuKernelInfo } from "./cpu/gemm.ts";
import type { Engine, EngineKind } from "./engine.ts";
import { EngineError } from "./engine_error.ts";

/** What a user may ask for: an engine, or "auto" for the fastest on this machine. */
export type EngineChoice = EngineKind | "auto";

/** The engine names {@link parseEngineChoice} accepts. */
export const ENGINE_CHOICES: readonly EngineChoice[] = Object.freeze(["auto", "webgpu", "cpu"]);

/** An engine and why it was chosen. */
export interface ChosenEngine {
  /** The engine. */
  readonly engine: Engine;
  /** One line: which engine and why, e.g. "cpu (software adapter llvmpipe …)". */
  readonly reason: string;
}

/**
 * Validates an engine name from a flag or an option.
 *
 * @param value the name; undefined means "auto"
 * @param where what gave it, for the error (e.g. "--engine")
 * @returns the choice
 * @throws {EngineError} for an unknown name
 * @example
 * ```ts
 * import { parseEngineChoice } from "./choose.ts";
 * console.assert(parseEngineChoice("cpu", "--engine") === "cpu");
 * console.assert(parseEngineChoice(undefined, "--engine") === "auto");
 * ```
 */
export function parseEngineChoice(value: string | undefined, where: string): EngineChoice {
  return engineChoiceOf(value ?? "auto", `${where} ${value}`);
}

/** `value` as an engine choice; `given` names it in the error (e.g. "--engine tpu"). */
function engineChoiceOf(value: string, given: string): EngineChoice {
  const v = value.toLowerCase();
  if (!(ENGINE_CHOICES as readonly string[]).includes(v)) {
    throw new EngineError(`${given}: expected one of ${ENGINE_CHOICES.join(", ")}`);
  }
  return v as EngineChoice;
}

/**
 * The environment variable that decides what "auto" means: `webgpu`, `cpu`
 * or `auto` (the machine decides). An engine asked for by name (`--engine`,
 * the `engine` option) wins over it. Why: a script, notebook or test suite
 * that leaves the engine to "auto" can then be run on either engine
 * unchanged (the test runner runs its pipeline tests once more on the engine
 * "auto" does not pick).
 */
export const ENGINE_ENV = "LLMC_ENGINE";

/**
 * The engine {@link ENGINE_ENV} names, or undefined when it is unset, empty,
 * "auto", or unreadable (no env permission: never a prompt).
 *
 * @returns the engine kind, or undefined
 * @throws {EngineError} when the variable holds anything else
 * @example
 * ```ts
 * import { engineFromEnv } from "./choose.ts";
 * const kind = engineFromEnv(); // "webgpu" under LLMC_ENGINE=webgpu
 * console.assert(kind === undefined || kind === "webgpu" || kind === "cpu");
 * ```
 */
export function engineFromEnv(): EngineKind | undefined {
  const value = readEnvQuietly(ENGINE_ENV);
  if (value === undefined || value === "") return undefined;
  const choice = engineChoiceOf(value, `${ENGINE_ENV}=${value}`);
  return choice === "auto" ? undefined : choice;
}

/**
 * Decides which engine "auto" means on this machine, without opening a
 * device: the one {@link ENGINE_ENV} names, else the fastest for the machine.
 *
 * @returns the engine kind and the reason
 * @throws {EngineError} when {@link ENGINE_ENV} names no engine
 * @example
 * ```ts ignore
 * import { autoEngineKind } from "./choose.ts";
 * const { kind, reason } = await autoEngineKind();
 * ```
 */
export async function autoEngineKind(): Promise<{ kind: EngineKind; reason: string }> {
  const fromEnv = engineFromEnv();
  if (fromEnv !== undefined) return { kind: fromEnv, reason: `${ENGINE_ENV}=${fromEnv}` };
  if (gpuDeviceNodes()?.length === 0) {
    return {
      kind: "cpu",
      reason: "no GPU device in /dev (dri, nvidia, dxg), so any WebGPU adapter would be a " +
        "software one; the CPU engine runs the same work without emulating a GPU",
    };
  }
  const { probeAdapter } = await import("../gpu/device.ts");
  const adapter = await probeAdapter();
  if (adapter === null) return { kind: "cpu", reason: "no WebGPU adapter" };
  if (adapter.isFallback) {
    return {
      kind: "cpu",
      reason: `the WebGPU adapter is a software one (${adapter.name}); the CPU engine runs ` +
        "the same work without emulating a GPU",
    };
  }
  return { kind: "webgpu", reason: `hardware WebGPU adapter ${adapter.name}` };
}

/**
 * Makes the engine asked for (default: the fastest for this machine).
 *
 * @param options `engine`: "webgpu", "cpu" or "auto" (default); `headDims`:
 *   attention head sizes to compile now on WebGPU
 * @returns the engine and why it was chosen
 * @throws {GpuUnavailableError} when "webgpu" is asked for and there is no adapter
 * @example
 * ```ts ignore
 * import { createEngine } from "./choose.ts";
 * const { engine, reason } = await createEngine({ engine: "cpu" });
 * console.log(`engine: ${reason}`);
 * ```
 */
export async function createEngine(
  options: { engine?: EngineChoice; headDims?: readonly number[] } = {},
): Promise<ChosenEngine> {
  const asked = options.engine ?? "auto";
  const { kind, reason } = asked === "auto"
    ? await autoEngineKind()
    : { kind: asked, reason: "asked for" };
  if (kind === "cpu") {
    const engine = new CpuEngine();
    return { engine, reason: `cpu (${reason}): ${engine.description}` };
  }
  const [{ getGpu }, { WebGpuEngine }] = await Promise.all([
    import("../gpu/device.ts"),
    import("./webgpu_engine.ts"),
  ]);
  let gpu;
  try {
    gpu = await getGpu();
  } catch (e) {
    // Say where the choice came from when the environment, not the caller, asked for WebGPU.
    if (e instanceof Error && reason.startsWith(ENGINE_ENV)) e.message = `${reason}: ${e.message}`;
    throw e;
  }
  const engine = await WebGpuEngine.create(gpu, options.headDims ?? []);
  return { engine, reason: `webgpu (${reason}): ${engine.description}` };
}

/**
 * Starts the CPU kernels (their worker threads, the native library) now when
 * `choice` will make the CPU engine without probing an adapter ("cpu", or
 * "auto" on a machine with no GPU device node); otherwise does nothing.
 *
 * Starting a worker thread blocks the caller until the thread's runtime
 * exists (~60 ms here), and the thread then loads the kernels on its own; a
 * command that calls this before its other preparation (reading the recipe,
 * tokenizing the calibration text) has the kernels ready when the first
 * product runs instead of starting them then. {@link createEngine} makes the
 * same engine either way (the kernels are one shared instance per process).
 *
 * @param choice what the run will ask {@link createEngine} for
 * @returns whether the kernels were started (or already running); false when
 *   they cannot start here (the run's createEngine then reports why)
 * @example
 * ```ts
 * import { prestartEngine } from "./choose.ts";
 * prestartEngine("webgpu"); // nothing: that engine starts with its device
 * ```
 */
export function prestartEngine(choice: EngineChoice): boolean {
  try {
    const kind = choice === "auto" ? engineFromEnv() ?? "auto" : choice;
    if (kind === "webgpu" || (kind === "auto" && gpuDeviceNodes()?.length !== 0)) return false;
    cpuKernelInfo();
    return true;
  } catch {
    // createEngine meets the same failure (a bad LLMC_ENGINE, kernels that cannot start) and
    // reports it where the run reports errors.
    return false;
  }
}
