/**
 * Loading WGSL kernels from `kernels/` into compute pipelines, cached per
 * (device, file, entry point, override constants).
 *
 * @module
 */

import { type Gpu, reportGpuFailure } from "./device.ts";
import { KernelCompileError } from "./errors.ts";

/** How to build a pipeline from a kernel file. */
export interface KernelOptions {
  /** The @compute function to use (default: the file's only one, "main"). */
  entryPoint?: string;
  /** Values for the file's `override` declarations. */
  constants?: Record<string, number>;
}

const sources = new Map<string, Promise<string>>();
const syncSources = new Map<string, string>();
const modules = new WeakMap<GPUDevice, Map<string, GPUShaderModule>>();
const pipelines = new WeakMap<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();
const ready = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/**
 * The URL of a kernel file; works for file: and https: imports of llmc.
 *
 * @param file a basename in kernels/, e.g. "matmul_f32.wgsl"
 * @returns its URL relative to this module
 *
 * @example
 * ```ts
 * import { kernelUrl } from "./kernel.ts";
 * console.assert(kernelUrl("transpose.wgsl").pathname.endsWith("/kernels/transpose.wgsl"));
 * ```
 */
export function kernelUrl(file: string): URL {
  if (!/^[\w.-]+\.wgsl$/.test(file)) {
    throw new KernelCompileError(`kernel file "${file}": expected a basename ending in .wgsl`);
  }
  return new URL(`../../kernels/${file}`, import.meta.url);
}

/**
 * Loads, compiles and caches a compute pipeline (layout "auto").
 *
 * @param gpu the device
 * @param file a basename in kernels/, e.g. "rmsnorm.wgsl"
 * @param options entry point and override constants
 * @returns the pipeline (the same object for the same arguments)
 * @throws {KernelCompileError} with the file name and compiler messages
 *
 * @example
 * ```ts
 * import { getGpu } from "./device.ts";
 * import { loadKernel } from "./kernel.ts";
 * const gpu = await getGpu();
 * const p = await loadKernel(gpu, "transpose.wgsl");
 * console.assert(p === await loadKernel(gpu, "transpose.wgsl"));
 * ```
 */
export function loadKernel(
  gpu: Gpu,
  file: string,
  options: KernelOptions = {},
): Promise<GPUComputePipeline> {
  const key = cacheKey(file, options);
  const cache = perDevice(pipelines, gpu.device, () => new Map());
  let pipeline = cache.get(key);
  if (!pipeline) {
    pipeline = buildPipeline(gpu, file, options, key);
    cache.set(key, pipeline);
    pipeline.catch(() => cache.delete(key));
  }
  return pipeline;
}

/**
 * The pipeline for a kernel without waiting: from the cache when
 * `loadKernel` already built it, otherwise built synchronously (file: URLs
 * only; for https: imports, `await loadKernel` first). A compile error found
 * on this path surfaces at the next `done()` or read on the device.
 *
 * @param gpu the device
 * @param file a basename in kernels/
 * @param options entry point and override constants
 * @returns the pipeline
 * @throws {KernelCompileError} when the source cannot be read synchronously
 *
 * @example
 * ```ts
 * import { getGpu } from "./device.ts";
 * import { kernelSync } from "./kernel.ts";
 * const p = kernelSync(await getGpu(), "transpose.wgsl");
 * console.assert(p !== undefined);
 * ```
 */
export function kernelSync(
  gpu: Gpu,
  file: string,
  options: KernelOptions = {},
): GPUComputePipeline {
  const key = cacheKey(file, options);
  const cache = perDevice(ready, gpu.device, () => new Map());
  const cached = cache.get(key);
  if (cached) return cached;
  const module = shaderModule(gpu, file, readSourceSync(file), (error) => {
    reportGpuFailure(gpu, error);
  });
  const pipeline = gpu.device.createComputePipeline(pipelineDescriptor(module, file, options));
  cache.set(key, pipeline);
  return pipeline;
}

/**
 * Compiles WGSL source text into a pipeline (layout "auto"), uncached: for
 * kernels generated at run time. Files in kernels/ go through `loadKernel`.
 *
 * @param gpu the device
 * @param name names the source in error messages, e.g. "rope_generated.wgsl"
 * @param code the WGSL source
 * @param options entry point and override constants
 * @returns the pipeline
 * @throws {KernelCompileError} with `name`, line:column and the compiler's messages
 *
 * @example
 * ```ts
 * import { getGpu } from "./device.ts";
 * import { compileKernel } from "./kernel.ts";
 * const code = `@group(0) @binding(0) var<storage, read_write> y: array<f32>;
 * @compute @workgroup_size(1) fn main() { y[0] = 1.0; }`;
 * await compileKernel(await getGpu(), "one.wgsl", code);
 * ```
 */
export async function compileKernel(
  gpu: Gpu,
  name: string,
  code: string,
  options: KernelOptions = {},
): Promise<GPUComputePipeline> {
  const module = gpu.device.createShaderModule({ label: name, code });
  return await pipelineFrom(gpu, name, module, options);
}

async function buildPipeline(
  gpu: Gpu,
  file: string,
  options: KernelOptions,
  key: string,
): Promise<GPUComputePipeline> {
  const code = await readSource(file);
  const module = shaderModule(gpu, file, code, () => {});
  const pipeline = await pipelineFrom(gpu, file, module, options);
  perDevice(ready, gpu.device, () => new Map()).set(key, pipeline);
  return pipeline;
}

async function pipelineFrom(
  gpu: Gpu,
  file: string,
  module: GPUShaderModule,
  options: KernelOptions,
): Promise<GPUComputePipeline> {
  const messages = await module.getCompilationInfo();
  const errors = messages.messages.filter((m) => m.type === "error");
  if (errors.length > 0) throw compilerError(file, errors);
  gpu.device.pushErrorScope("validation");
  let pipeline: GPUComputePipeline | undefined;
  let failure: unknown;
  try {
    pipeline = await gpu.device.createComputePipelineAsync(
      pipelineDescriptor(module, file, options),
    );
  } catch (e) {
    failure = e;
  }
  const scoped = await gpu.device.popErrorScope();
  if (!pipeline || scoped) {
    const why = scoped?.message ?? (failure instanceof Error ? failure.message : String(failure));
    throw new KernelCompileError(
      `${file}: pipeline for entry point "${options.entryPoint ?? "main"}"` +
        `${describeConstants(options)} failed: ${why}`,
      { cause: failure ?? scoped },
    );
  }
  return pipeline;
}

function shaderModule(
  gpu: Gpu,
  file: string,
  code: string,
  onError: (e: KernelCompileError) => void,
): GPUShaderModule {
  const cache = perDevice(modules, gpu.device, () => new Map());
  let module = cache.get(file);
  if (!module) {
    module = gpu.device.createShaderModule({ label: file, code });
    cache.set(file, module);
    const created = module;
    created.getCompilationInfo().then((info: GPUCompilationInfo) => {
      const errors = info.messages.filter((m: GPUCompilationMessage) => m.type === "error");
      if (errors.length > 0) {
        cache.delete(file); // a fixed file can be retried in the same process
        onError(compilerError(file, errors));
      }
    });
  }
  return module;
}

function pipelineDescriptor(
  module: GPUShaderModule,
  file: string,
  options: KernelOptions,
): GPUComputePipelineDescriptor {
  return {
    label: `${file}:${options.entryPoint ?? "main"}`,
    layout: "auto",
    compute: { module, entryPoint: options.entryPoint ?? "main", constants: options.constants },
  };
}

function compilerError(file: string, errors: readonly GPUCompilationMessage[]): KernelCompileError {
  const lines = errors.map((m) => `${file}:${m.lineNum}:${m.linePos}: ${m.message.trim()}`);
  return new KernelCompileError(`${file} failed to compile:\n${lines.join("\n")}`);
}

function readSource(file: string): Promise<string> {
  let source = sources.get(file);
  if (!source) {
    const url = kernelUrl(file);
    source = fetch(url).then(async (response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const text = await response.text();
      syncSources.set(file, text);
      return text;
    }).catch((cause) => {
      sources.delete(file);
      throw new KernelCompileError(`${file}: cannot load ${url.href}: ${cause}`, { cause });
    });
    sources.set(file, source);
  }
  return source;
}

function readSourceSync(file: string): string {
  const known = syncSources.get(file);
  if (known !== undefined) return known;
  const url = kernelUrl(file);
  if (url.protocol !== "file:") {
    throw new KernelCompileError(
      `${file}: ${url.href} cannot be read synchronously; await loadKernel(gpu, "${file}") first`,
    );
  }
  try {
    const text = Deno.readTextFileSync(url);
    syncSources.set(file, text);
    return text;
  } catch (cause) {
    throw new KernelCompileError(`${file}: cannot read ${url.pathname}: ${cause}`, { cause });
  }
}

function cacheKey(file: string, options: KernelOptions): string {
  return `${file}#${options.entryPoint ?? "main"}${describeConstants(options)}`;
}

function describeConstants(options: KernelOptions): string {
  const entries = Object.entries(options.constants ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length ? ` {${entries.map(([k, v]) => `${k}=${v}`).join(",")}}` : "";
}

function perDevice<V>(map: WeakMap<GPUDevice, V>, device: GPUDevice, make: () => V): V {
  let value = map.get(device);
  if (value === undefined) map.set(device, value = make());
  return value;
}
