/**
 * Loading WGSL kernels from `kernels/` into compute pipelines, cached per
 * (device, file, entry point, override constants).
 *
 * A kernel shares functions with others through a function library in
 * kernels/ (e.g. `quantize_common.wgsl`) and a whole line
 * `//! include "quantize_common.wgsl"`, which the loader replaces with that
 * file's text: each file once per kernel, nested includes allowed, cycles
 * and unreadable files rejected with the including file:line. Compile errors
 * name the file and line the failing code came from, included or not.
 *
 * @module
 */

import { type Gpu, reportGpuFailure } from "./device.ts";
import { KernelCompileError } from "./errors.ts";
import {
  describeCompileErrors,
  includeDirectives,
  includeError,
  type SplicedWgsl,
  spliceIncludes,
} from "./_wgsl_include.ts";
import { registerWritableBindings } from "./_writable_bindings.ts";

/** How to build a pipeline from a kernel file. */
export interface KernelOptions {
  /** The @compute function to use (default: the file's only one, "main"). */
  entryPoint?: string;
  /** Values for the file's `override` declarations. */
  constants?: Record<string, number>;
}

const sources = new Map<string, Promise<string>>();
const syncSources = new Map<string, string>();
const splicedSources = new Map<string, SplicedWgsl>();
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
 * @param file a basename in kernels/, e.g. "rmsnorm.wgsl"; its
 *   `//! include "lib.wgsl"` lines are spliced in first
 * @param options entry point and override constants
 * @returns the pipeline (the same object for the same arguments)
 * @throws {KernelCompileError} with the file name and compiler messages
 *   (file:line of included code where it came from an include), or a bad include
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
 * @throws {KernelCompileError} when the source or one of its includes cannot
 *   be read synchronously, or an include is malformed or cyclic
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
  const source = readSplicedSync(file);
  const module = shaderModule(gpu, source, (error) => {
    reportGpuFailure(gpu, error);
  });
  const pipeline = gpu.device.createComputePipeline(pipelineDescriptor(module, file, options));
  registerWritableBindings(pipeline, source.code);
  cache.set(key, pipeline);
  return pipeline;
}

/**
 * Compiles WGSL source text into a pipeline (layout "auto"), uncached: for
 * kernels generated at run time. Files in kernels/ go through `loadKernel`.
 * `//! include "lib.wgsl"` lines include files from kernels/, as in a kernel file.
 *
 * @param gpu the device
 * @param name names the source in error messages, e.g. "rope_generated.wgsl"
 * @param code the WGSL source
 * @param options entry point and override constants
 * @returns the pipeline
 * @throws {KernelCompileError} with `name` (or the included file), line:column
 *   and the compiler's messages, or a bad include
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
  await fetchIncludes(name, code);
  const source = spliceIncludes(name, code, readSourceSync);
  const module = gpu.device.createShaderModule({ label: name, code: source.code });
  return await pipelineFrom(gpu, source, module, options);
}

async function buildPipeline(
  gpu: Gpu,
  file: string,
  options: KernelOptions,
  key: string,
): Promise<GPUComputePipeline> {
  const source = await readSpliced(file);
  const module = shaderModule(gpu, source, () => {});
  const pipeline = await pipelineFrom(gpu, source, module, options);
  perDevice(ready, gpu.device, () => new Map()).set(key, pipeline);
  return pipeline;
}

async function pipelineFrom(
  gpu: Gpu,
  source: SplicedWgsl,
  module: GPUShaderModule,
  options: KernelOptions,
): Promise<GPUComputePipeline> {
  const file = source.name;
  const messages = await module.getCompilationInfo();
  const errors = messages.messages.filter((m) => m.type === "error");
  if (errors.length > 0) throw compilerError(source, errors);
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
  registerWritableBindings(pipeline, source.code);
  return pipeline;
}

function shaderModule(
  gpu: Gpu,
  source: SplicedWgsl,
  onError: (e: KernelCompileError) => void,
): GPUShaderModule {
  const file = source.name;
  const cache = perDevice(modules, gpu.device, () => new Map());
  let module = cache.get(file);
  if (!module) {
    module = gpu.device.createShaderModule({ label: file, code: source.code });
    cache.set(file, module);
    const created = module;
    created.getCompilationInfo().then((info: GPUCompilationInfo) => {
      const errors = info.messages.filter((m: GPUCompilationMessage) => m.type === "error");
      if (errors.length > 0) {
        cache.delete(file); // a fixed file can be retried in the same process
        onError(compilerError(source, errors));
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

function compilerError(
  source: SplicedWgsl,
  errors: readonly GPUCompilationMessage[],
): KernelCompileError {
  return new KernelCompileError(
    `${source.name} failed to compile:\n${describeCompileErrors(source, errors)}`,
  );
}

/** A kernel file with its includes spliced in, every file read without blocking. */
async function readSpliced(file: string): Promise<SplicedWgsl> {
  if (!splicedSources.has(file)) await fetchIncludes(file, await readSource(file));
  return readSplicedSync(file);
}

/** A kernel file with its includes spliced in (file: URLs, or files already fetched). */
function readSplicedSync(file: string): SplicedWgsl {
  let source = splicedSources.get(file);
  if (!source) {
    source = spliceIncludes(file, readSourceSync(file), readSourceSync);
    splicedSources.set(file, source);
  }
  return source;
}

/**
 * Fetches the files `code` includes, and theirs, so that splicing can read
 * them synchronously (https: imports of llmc included).
 */
async function fetchIncludes(
  name: string,
  code: string,
  seen: Set<string> = new Set([name]),
): Promise<void> {
  await Promise.all(
    includeDirectives(name, code).map(async ({ file, line }) => {
      if (seen.has(file)) return;
      seen.add(file);
      let text: string;
      try {
        text = await readSource(file);
      } catch (cause) {
        throw includeError(name, line, file, cause);
      }
      await fetchIncludes(file, text, seen);
    }),
  );
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
