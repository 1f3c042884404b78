/**
 * The process-wide WebGPU device: adapter choice, the limits llmc asks for,
 * and the surfacing of device loss and uncaptured errors.
 *
 * @module
 */

import { GpuDeviceError, GpuUnavailableError } from "./errors.ts";

/** Which adapter to use: a real GPU, the software fallback, or the best available. */
export type AdapterChoice = "auto" | "hardware" | "software";

/** An opened WebGPU device with what llmc needs to know about it. */
export interface Gpu {
  /** The device all llmc buffers and pipelines belong to. */
  readonly device: GPUDevice;
  /** The adapter's description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly adapterName: string;
  /** The native backend, when the runtime reports it ("unknown (…)" otherwise). */
  readonly backend: string;
  /** True for a software (fallback) adapter such as llvmpipe or SwiftShader. */
  readonly isFallback: boolean;
  /** The device's limits (raised to the adapter's maxima for what llmc uses). */
  readonly limits: GPUSupportedLimits;
  /** Whether `shader-f16` is enabled on the device. */
  readonly hasF16: boolean;
}

/** Limits raised to the adapter's maxima: big weights and wide workgroups need them. */
const RAISED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupStorageSize",
  "maxComputeWorkgroupsPerDimension",
  // The uniform-window matmul binds its 9 windows with dynamic offsets where allowed.
  "maxDynamicUniformBuffersPerPipelineLayout",
] as const;

/** Descriptions of software rasterizers, for runtimes that do not set isFallbackAdapter. */
const SOFTWARE_NAMES = /llvmpipe|lavapipe|softpipe|swiftshader|basic render driver/i;

interface DeviceState {
  /** Set once the device is lost: every later wait rejects with it. */
  lost?: Error;
  /** Uncaptured errors not yet reported; each rejects one later wait. */
  errors: Error[];
  /** Rejects when the device is lost. */
  failed: Promise<never>;
}

const states = new WeakMap<GPUDevice, DeviceState>();
const opened = new Map<AdapterChoice, Promise<Gpu>>();
const resolved = new Map<AdapterChoice, Gpu>();

/**
 * Opens (once per process and adapter choice) the WebGPU device llmc runs on.
 * The env var `LLMC_GPU=auto|hardware|software` overrides `options.adapter`.
 * "auto" prefers a real adapter and falls back to the software one.
 *
 * @param options.adapter which adapter to use (default "auto")
 * @returns the opened device and its properties
 * @throws {GpuUnavailableError} when no adapter of the asked kind exists
 *
 * @example
 * ```ts
 * import { describeGpu, getGpu } from "./device.ts";
 * const gpu = await getGpu();
 * console.log(describeGpu(gpu));
 * ```
 */
export function getGpu(options: { adapter?: AdapterChoice } = {}): Promise<Gpu> {
  let choice: AdapterChoice;
  try {
    choice = adapterChoice(options.adapter);
  } catch (e) {
    return Promise.reject(e);
  }
  // "auto" already opened the kind asked for: share its device (one device per adapter).
  const auto = resolved.get("auto");
  if (choice !== "auto" && auto && auto.isFallback === (choice === "software")) {
    return Promise.resolve(auto);
  }
  let gpu = opened.get(choice);
  if (!gpu) {
    gpu = openGpu(choice).then((g) => (resolved.set(choice, g), g));
    opened.set(choice, gpu);
    // A failed open is not memoized, so a caller may retry after fixing the cause.
    gpu.catch(() => opened.delete(choice));
  }
  return gpu;
}

/**
 * One line naming the adapter, backend and the limits llmc depends on.
 *
 * @param gpu the opened device
 * @returns e.g. "llvmpipe (…) [software, backend unknown] binding 128 MiB, buffer 2048 MiB, f16 no"
 *
 * @example
 * ```ts
 * import { describeGpu, getGpu } from "./device.ts";
 * console.log(describeGpu(await getGpu()));
 * ```
 */
export function describeGpu(gpu: Gpu): string {
  const mib = (n: number) => `${Math.floor(n / 2 ** 20)} MiB`;
  const l = gpu.limits;
  return `${gpu.adapterName} [${
    gpu.isFallback ? "software" : "hardware"
  }, backend ${gpu.backend}]` +
    ` storage binding ${mib(l.maxStorageBufferBindingSize)}, buffer ${mib(l.maxBufferSize)},` +
    ` ${l.maxStorageBuffersPerShaderStage} storage buffers/stage,` +
    ` ${l.maxComputeInvocationsPerWorkgroup} invocations/workgroup,` +
    ` ${l.maxComputeWorkgroupsPerDimension} workgroups/dim, shader-f16 ${
      gpu.hasF16 ? "yes" : "no"
    }`;
}

/**
 * Throws if the device was lost (always, from then on) or reported uncaptured
 * errors since the last check (once: they are cleared when thrown).
 *
 * @param gpu the device to check
 * @returns nothing; throws {GpuDeviceError} when the device has failed
 *
 * @example
 * ```ts
 * import { getGpu, throwIfGpuFailed } from "./device.ts";
 * throwIfGpuFailed(await getGpu());
 * ```
 */
export function throwIfGpuFailed(gpu: Gpu): void {
  const state = states.get(gpu.device);
  if (!state) return;
  if (state.lost) throw state.lost;
  const first = state.errors.shift();
  if (first) {
    // The first error is the cause; the ones queued behind it usually follow from it.
    const more = state.errors.splice(0).length;
    if (more === 0) throw first;
    throw new GpuDeviceError(`${first.message} (and ${more} more GPU errors)`, { cause: first });
  }
}

/**
 * Races a GPU promise (mapAsync, onSubmittedWorkDone) against the device
 * failing, so a lost device rejects instead of hanging forever.
 *
 * @param gpu the device the work runs on
 * @param work the promise to wait for
 * @returns `work`'s value, or a rejection with the device's {GpuDeviceError}
 *
 * @example
 * ```ts
 * import { getGpu, unlessGpuFails } from "./device.ts";
 * const gpu = await getGpu();
 * await unlessGpuFails(gpu, gpu.device.queue.onSubmittedWorkDone());
 * ```
 */
export async function unlessGpuFails<T>(gpu: Gpu, work: Promise<T>): Promise<T> {
  const state = states.get(gpu.device);
  const value = await (state ? Promise.race([work, state.failed]) : work);
  throwIfGpuFailed(gpu);
  return value;
}

/**
 * Records an asynchronously detected failure (e.g. a kernel that failed to
 * compile on a synchronous path) so the next wait on this device rejects
 * with it.
 *
 * @param gpu the device
 * @param error what went wrong
 * @returns nothing
 *
 * @example
 * ```ts
 * import { getGpu, reportGpuFailure } from "./device.ts";
 * import { GpuDeviceError } from "./errors.ts";
 * const gpu = await getGpu();
 * if (Math.random() > 2) reportGpuFailure(gpu, new GpuDeviceError("never"));
 * ```
 */
export function reportGpuFailure(gpu: Gpu, error: Error): void {
  states.get(gpu.device)?.errors.push(error);
}

function adapterChoice(asked: AdapterChoice | undefined): AdapterChoice {
  const env = readEnv("LLMC_GPU");
  const choice = (env || asked || "auto").toLowerCase();
  if (choice !== "auto" && choice !== "hardware" && choice !== "software") {
    throw new GpuUnavailableError(
      `${env ? "LLMC_GPU" : "adapter"}=${choice}: expected auto, hardware or software`,
    );
  }
  return choice;
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: the option decides
  }
}

function isFallbackAdapter(adapter: GPUAdapter): boolean {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const flagged = info.isFallbackAdapter ??
    (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  return flagged === true || SOFTWARE_NAMES.test(info.description ?? "");
}

async function findAdapter(choice: AdapterChoice): Promise<GPUAdapter> {
  if (typeof navigator === "undefined" || !navigator.gpu) {
    throw new GpuUnavailableError(
      "WebGPU is not available in this runtime (Deno needs --unstable-webgpu or " +
        '"unstable": ["webgpu"] in deno.json)',
    );
  }
  const tried: string[] = [];
  const found: string[] = [];
  const request = async (label: string, opts: GPURequestAdapterOptions) => {
    tried.push(label);
    const adapter = await navigator.gpu.requestAdapter(opts);
    if (adapter) found.push(`${label}: ${adapter.info.description || "unnamed"}`);
    return adapter;
  };
  if (choice !== "software") {
    for (const power of ["high-performance", "low-power"] as const) {
      const adapter = await request(`hardware (${power})`, { powerPreference: power });
      if (adapter && !isFallbackAdapter(adapter)) return adapter;
    }
  }
  if (choice !== "hardware") {
    // Some runtimes ignore forceFallbackAdapter and answer with the real GPU;
    // "software" must then keep looking rather than silently use hardware.
    const candidates = [
      await request("software (forceFallbackAdapter)", { forceFallbackAdapter: true }),
      await request("software (default)", {}),
    ];
    const adapter = candidates.find((a) => a && (choice === "auto" || isFallbackAdapter(a)));
    if (adapter) return adapter;
  }
  throw new GpuUnavailableError(
    `no ${choice === "auto" ? "" : choice + " "}WebGPU adapter; tried ${tried.join(", ")}` +
      (found.length ? `; found only ${found.join(", ")}` : "; none answered") +
      (choice === "hardware" ? ". Set LLMC_GPU=software or auto to use a software adapter" : ""),
  );
}

async function openGpu(choice: AdapterChoice): Promise<Gpu> {
  const adapter = await findAdapter(choice);
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const value = adapter.limits[name];
    if (typeof value === "number") requiredLimits[name] = value;
  }
  const hasF16 = adapter.features.has("shader-f16");
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      requiredFeatures: hasF16 ? ["shader-f16"] : [],
      requiredLimits,
    });
  } catch (cause) {
    throw new GpuUnavailableError(
      `adapter ${adapter.info.description} refused a device: ${String(cause)}`,
      { cause },
    );
  }
  return adoptDevice(adapter, device);
}

/**
 * Wraps a device opened elsewhere (an embedding app's, or a test's private
 * one) as a Gpu, watching it for loss and uncaptured errors like getGpu's.
 *
 * @param adapter the adapter `device` came from
 * @param device the device to use
 * @returns the Gpu view of it (not memoized)
 *
 * @example
 * ```ts
 * import { adoptDevice } from "./device.ts";
 * const adapter = await navigator.gpu.requestAdapter();
 * if (adapter) {
 *   const gpu = adoptDevice(adapter, await adapter.requestDevice());
 *   console.assert(gpu.limits === gpu.device.limits);
 * }
 * ```
 */
export function adoptDevice(adapter: GPUAdapter, device: GPUDevice): Gpu {
  if (!states.has(device)) watchDevice(device);
  const info = adapter.info as GPUAdapterInfo & { backend?: string };
  return {
    device,
    adapterName: info.description || `${info.vendor} ${info.device}`.trim() || "unnamed adapter",
    backend: info.backend ?? `unknown (not reported; ${Deno.build.os})`,
    isFallback: isFallbackAdapter(adapter),
    limits: device.limits,
    hasF16: device.features.has("shader-f16"),
  };
}

function watchDevice(device: GPUDevice): void {
  let fail!: (e: Error) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {}); // only awaited through races; never unhandled
  const state: DeviceState = { errors: [], failed };
  device.lost.then((info) => {
    state.lost = new GpuDeviceError(`WebGPU device lost (${info.reason}): ${info.message}`);
    fail(state.lost);
  });
  device.addEventListener("uncapturederror", (event) => {
    const error = (event as GPUUncapturedErrorEvent).error;
    const kind = error?.constructor?.name ?? "GPUError";
    state.errors.push(new GpuDeviceError(`WebGPU ${kind}: ${error?.message ?? String(error)}`));
    event.preventDefault();
  });
  states.set(device, state);
}

/**
 * Which adapter {@link getGpu} would open, without opening a device (so no
 * shader is compiled and no device is held): what an engine choice needs.
 *
 * @param options.adapter as for getGpu (LLMC_GPU overrides it)
 * @returns the adapter's name and whether it is a software one, or null when there is none
 * @example
 * ```ts
 * import { probeAdapter } from "./device.ts";
 * const found = await probeAdapter();
 * console.log(found ? `${found.name} (software: ${found.isFallback})` : "no adapter");
 * ```
 */
export async function probeAdapter(
  options: { adapter?: AdapterChoice } = {},
): Promise<{ name: string; isFallback: boolean } | null> {
  const choice = adapterChoice(options.adapter);
  const open = resolved.get(choice);
  if (open) return { name: open.adapterName, isFallback: open.isFallback };
  try {
    const adapter = await findAdapter(choice);
    const info = adapter.info;
    return {
      name: info.description || `${info.vendor} ${info.device}`.trim() || "unnamed adapter",
      isFallback: isFallbackAdapter(adapter),
    };
  } catch (e) {
    if (e instanceof GpuUnavailableError) return null;
    throw e;
  }
}
