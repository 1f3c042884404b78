/**
 * y = x·wᵀ (+ bias) fed from uniform-buffer windows: the matmul for software
 * (fallback) adapters.
 *
 * Why: Mesa's llvmpipe compiles every storage-buffer load into a per-lane
 * scalar loop with a bounds check (measured on a 2-core Zen 2 without
 * AVX-512: about 0.25 G floats/s for the machine), while a uniform-buffer
 * load is a plain vector load (about 3 G floats/s). The storage-fed
 * register-tiled kernel (kernels/matmul_f32.wgsl) is therefore capped near
 * 2 GFLOP/s there, whatever its tiling. This path:
 *
 * 1. packs x and w on the device (kernels/pack_tiles_vec4.wgsl, four floats
 *    per storage access, when rows start on 16-byte boundaries, else
 *    kernels/pack_tiles.wgsl) into tiles of `rb` rows × `kc` terms, each
 *    small enough for one uniform binding (the adapter's
 *    maxUniformBufferBindingSize, at most 64 KiB) and starting at a multiple
 *    of minUniformBufferOffsetAlignment; an immutable weight's tiles are kept
 *    with it, and products in one batch that share an input pack it once;
 * 2. dispatches, per block of rb × rb outputs and per group of up to
 *    `chunks` k-tiles, a generated kernel whose inner loop reads only uniform
 *    windows (16 × 8 outputs per invocation, 32 vec4 accumulators, two terms
 *    per loop iteration), adding into y from the second group on.
 *
 * Everything is recorded into the caller's CommandBatch: one submit per op
 * batch, never one per tile. One pipeline per device (its text depends only
 * on the adapter's limits), plus the two pack kernels.
 *
 * @module
 */

import type { Binding, CommandBatch } from "./batch.ts";
import { BufferPool, PACK_USAGE } from "./buffer_pool.ts";
import { ChunkedWeight } from "./chunked.ts";
import { type Gpu, reportGpuFailure } from "./device.ts";
import { KernelCompileError, ShapeError } from "./errors.ts";
import { kernelSync, loadKernel } from "./kernel.ts";
import { flushWritersOf, whenUnused } from "./_pending.ts";
import { placeholder } from "./_placeholder.ts";
import { registerWritableBindings } from "./_writable_bindings.ts";
import { registerDynamicBindings } from "./_dynamic_bindings.ts";
import type { GpuTensor } from "./tensor.ts";
import { workgroupsFor } from "./workgroups.ts";

/** Which matmul kernel `matmul` records: storage-fed (real GPUs) or uniform-fed (software). */
export type MatmulPath = "storage" | "uniform";

/** Windows never exceed 64 KiB, even where the adapter allows more: the tiles stay cache-sized. */
const MAX_WINDOW_BYTES = 65536;
const PACK_WG = 64;

/** How the uniform-window matmul cuts its operands, derived from the adapter's limits. */
export interface UniformTiling {
  /** Bytes of one uniform binding (a multiple of 16). */
  windowBytes: number;
  /** Rows per tile of x and of w. */
  rb: number;
  /** Most terms (k) per tile, a multiple of 4: rb · kcMax floats fill one window. */
  kcMax: number;
  /** k-tiles read per dispatch: x and w windows bound side by side. */
  chunks: number;
  /** Alignment of a window's offset in bytes (minUniformBufferOffsetAlignment). */
  align: number;
  /** x rows per invocation (a multiple of 4). */
  tm: number;
  /** w rows per invocation (a multiple of 4). */
  tn: number;
  /** Invocations per workgroup row: a workgroup covers wx·tn w rows. */
  wx: number;
  /** Invocations per workgroup column: a workgroup covers wy·tm x rows. */
  wy: number;
  /** Terms per inner-loop iteration (1, 2 or 4); every tile's kc is a multiple of it. */
  unroll: number;
  /** Loop body order: every load first, or each x vector's loads just before its FMAs. */
  interleave: boolean;
  /** Write-out picks each accumulator by a select chain instead of indexing an array. */
  selectStores: boolean;
}

/** The kernel's shape knobs (bench sweeps; the defaults are the measured best). */
export interface UniformShape {
  /** x rows per invocation: 4, 8, 16 or 32 (default 16). */
  tm?: number;
  /** w rows per invocation: 4, 8, 16 or 32 (default 8). */
  tn?: number;
  /** Most k-tiles per dispatch (default 4; fewer when the adapter binds fewer uniform buffers). */
  chunks?: number;
  /** Rows per tile, 64, 128 or 256 (default 128). A workgroup covers half a tile of w rows. */
  rb?: number;
  /** Invocations per workgroup column (default rb/2/tm: a workgroup covers half a tile of x rows). */
  wy?: number;
  /** Invocations per workgroup row (default rb/2/tn: a workgroup covers half a tile of w rows). */
  wx?: number;
  /** Terms per inner-loop iteration, 1, 2 or 4 (default 2). */
  unroll?: number;
  /** Load each x vector just before the FMAs that use it (default true), or all loads first. */
  interleave?: boolean;
  /** Write-out picks accumulators by a select chain (default true) instead of indexing an array. */
  selectStores?: boolean;
}

/**
 * The tiling the uniform path uses on a device with these limits, or null
 * when the limits are too small for it (then the storage path runs).
 *
 * @param limits the device's limits (only the uniform-buffer ones are read)
 * @param shape kernel shape knobs (defaults: the measured best)
 * @returns the tiling, or null
 *
 * @example
 * ```ts
 * import { uniformTiling } from "./matmul_uniform.ts";
 * const t = uniformTiling({
 *   maxUniformBufferBindingSize: 65536,
 *   maxUniformBuffersPerShaderStage: 12,
 *   minUniformBufferOffsetAlignment: 256,
 * });
 * console.assert(t !== null && t.rb === 128 && t.kcMax === 128 && t.chunks === 4);
 * ```
 */
export function uniformTiling(
  limits: Pick<
    GPUSupportedLimits,
    | "maxUniformBufferBindingSize"
    | "maxUniformBuffersPerShaderStage"
    | "minUniformBufferOffsetAlignment"
  >,
  shape: UniformShape = {},
): UniformTiling | null {
  const tm = shape.tm ?? 16;
  const tn = shape.tn ?? 8;
  if (![4, 8, 16, 32].includes(tm) || ![4, 8, 16, 32].includes(tn)) {
    throw new ShapeError(`uniform matmul shape: tm ${tm} and tn ${tn} must be 4, 8, 16 or 32`);
  }
  const windowBytes = Math.floor(
    Math.min(limits.maxUniformBufferBindingSize, MAX_WINDOW_BYTES) / 16,
  ) * 16;
  const rb = shape.rb ?? 128;
  if (![64, 128, 256].includes(rb)) {
    throw new ShapeError(`uniform matmul shape: rb ${rb} must be 64, 128 or 256`);
  }
  const kcMax = Math.floor(windowBytes / 4 / rb / 4) * 4;
  // One uniform binding holds the parameters; x and w windows come in pairs.
  const chunks = Math.min(
    shape.chunks ?? 4,
    4,
    Math.floor((limits.maxUniformBuffersPerShaderStage - 1) / 2),
  );
  const wx = shape.wx ?? rb / 2 / tn;
  if (!Number.isInteger(wx) || wx < 1 || (rb / tn) % wx !== 0) {
    throw new ShapeError(`uniform matmul shape: wx ${wx} must divide rb/tn = ${rb / tn}`);
  }
  const wy = shape.wy ?? rb / 2 / tm;
  if (!Number.isInteger(wy) || wy < 1 || (rb / tm) % wy !== 0) {
    throw new ShapeError(`uniform matmul shape: wy ${wy} must divide rb/tm = ${rb / tm}`);
  }
  const unroll = shape.unroll ?? 2;
  if (![1, 2, 4].includes(unroll)) {
    throw new ShapeError(`uniform matmul shape: unroll ${unroll} must be 1, 2 or 4`);
  }
  if (kcMax < 4 || chunks < 1) return null;
  return {
    windowBytes,
    rb,
    kcMax,
    chunks,
    align: limits.minUniformBufferOffsetAlignment,
    tm,
    tn,
    wx,
    wy,
    unroll,
    interleave: shape.interleave ?? true,
    selectStores: shape.selectStores ?? true,
  };
}

/**
 * The matmul path for a device: `LLMC_WGSL_MATMUL=storage|uniform` when set,
 * otherwise uniform windows on a software (fallback) adapter whose limits
 * allow them, and storage buffers on real GPUs.
 *
 * @param gpu the device
 * @returns the path `matmul` takes when its caller does not name one
 *
 * @example
 * ```ts
 * import { getGpu } from "./device.ts";
 * import { defaultMatmulPath } from "./matmul_uniform.ts";
 * const gpu = await getGpu();
 * console.log(defaultMatmulPath(gpu)); // "uniform" on llvmpipe
 * ```
 */
export function defaultMatmulPath(gpu: Gpu): MatmulPath {
  let env: string | undefined;
  try {
    env = Deno.env.get("LLMC_WGSL_MATMUL");
  } catch {
    env = undefined; // no --allow-env: decide from the adapter
  }
  if (env) {
    if (env !== "storage" && env !== "uniform") {
      throw new ShapeError(`LLMC_WGSL_MATMUL=${env}: expected "storage" or "uniform"`);
    }
    return env;
  }
  return gpu.isFallback && uniformTiling(gpu.limits) !== null ? "uniform" : "storage";
}

/**
 * The WGSL of the uniform-window matmul for a tiling. Generated because the
 * window's array length and the number of window bindings depend on the
 * adapter's limits, and because every k-tile's loop must name its own
 * binding (WGSL cannot index bindings); the loop body is written out in
 * full so the accumulators stay in registers.
 *
 * Each invocation owns a tm × tn block of y and, per term, loads tm/4 + tn/4
 * vec4s and does tm·tn FMAs. llvmpipe runs one invocation per SIMD lane and
 * gathers every uniform load per lane (measured: even an address the whole
 * workgroup shares costs as much as a per-lane one), so the FMAs per loaded
 * float, tm·tn/(tm + tn), is what sets the speed. (Only a load whose offset
 * is a compile-time constant becomes one scalar load and a broadcast:
 * Mesa 22.3 asks `nir_src_is_always_uniform`, which a loop counter never is.
 * A kernel that reads x only at constant offsets must unroll every term it
 * reads, and measured slower: see the README.) Two terms per loop iteration
 * (`unroll`, default 2) load and store each spilled accumulator once per two
 * FMAs; the padded tiles hold zeros past k, so odd k needs no tail loop and
 * every accumulator takes the same terms in the same order as with one term
 * per iteration. Measured at 1024³ on a
 * 2-core Zen 2 (llvmpipe, GL): 32 × 8 (6.4 FMAs per float) 10.3–11.3 GFLOP
 * per CPU-second against 9.0–10.6 for 16 × 8 (5.3), at 1.9 s CPU to compile
 * cold against 0.7 s. llvmpipe fills its 8 lanes from a workgroup's rows
 * of `wx` invocations, so wx must be at least 8: 16 × 16 with the default
 * wx = rb/2/tn = 4 ran half-empty vectors (6.3–6.9); with wx 8 it measures
 * level with 16 × 8 (11.7–12.3 against 11.1–13.2 GFLOP per CPU-second,
 * alternated in one process, machine loaded), as do 32 × 16 and 8 × 16:
 * fewer gathered floats per FMA no longer buy speed here. The loop body
 * gathers w first and each x vector just before the FMAs that use it
 * (`interleave`, default true): the gathers' shuffles then run beside
 * earlier FMAs, and fewer gathered values wait on the stack (the JIT loop of
 * 16 × 8: 2,157 instructions per iteration against 2,385 with every load
 * first; 8 of 12 alternated runs faster, about 3 % per CPU-second). A loop
 * body past about 2,500 instructions runs slower per instruction on Zen 3
 * (16 × 8 with four terms: 15 % fewer instructions per FMA, 15 % slower),
 * which is why four terms, or 16 × 16 with two, do not pay.
 *
 * @param t the tiling
 * @returns the kernel source, entry point "main"
 *
 * @example
 * ```ts
 * import { uniformMatmulSource, uniformTiling } from "./matmul_uniform.ts";
 * const t = uniformTiling({
 *   maxUniformBufferBindingSize: 65536,
 *   maxUniformBuffersPerShaderStage: 12,
 *   minUniformBufferOffsetAlignment: 256,
 * })!;
 * console.assert(uniformMatmulSource(t).includes("var<uniform> x3"));
 * ```
 */
export function uniformMatmulSource(t: UniformTiling): string {
  const { tm, tn, rb } = t;
  const chunks = Array.from({ length: t.chunks }, (_, c) => c);
  const xv = Array.from({ length: tm / 4 }, (_, v) => v);
  const wv = Array.from({ length: tn / 4 }, (_, v) => v);
  // acc(i, v) holds y[row i, columns 4v .. 4v + 3] of the invocation's block.
  const acc = (i: number, v: number) => `a${i}_${v}`;
  const accs = Array.from({ length: tm }, (_, i) => wv.map((v) => acc(i, v))).flat();
  const windows = chunks.map((c) =>
    `@group(0) @binding(${3 + c}) var<uniform> x${c}: Window;\n` +
    `@group(0) @binding(${3 + t.chunks + c}) var<uniform> w${c}: Window;`
  ).join("\n");
  const body = (c: number) => {
    const lines: string[] = [];
    const terms = Array.from({ length: t.unroll }, (_, u) => u);
    const at = (q: string, u: number, v: number) =>
      `${q}${u || v ? ` + ${u * (rb / 4) + v}u` : ""}`;
    const loadX = (v: number) => terms.map((u) => `    let x${u}_${v} = x${c}[${at("xo", u, v)}];`);
    for (const u of terms) {
      lines.push(...wv.map((v) => `    let w${u}_${v} = w${c}[${at("wo", u, v)}];`));
    }
    if (!t.interleave) lines.push(...xv.flatMap(loadX));
    // Each accumulator takes its terms in order, back to back (the same sums as one term per
    // iteration), so a spilled accumulator is loaded and stored once per iteration.
    for (let i = 0; i < tm; i++) {
      // Interleaved: x vector i/4's gathers sit right before the FMAs that use them, so the CPU
      // can run gathers (shuffle ports) beside earlier FMAs (float ports) instead of in a phase.
      if (t.interleave && i % 4 === 0) lines.push(...loadX(i / 4));
      for (const v of wv) {
        for (const u of terms) {
          const xs = `vec4(x${u}_${Math.floor(i / 4)}.${"xyzw"[i % 4]})`;
          lines.push(`    ${acc(i, v)} = fma(${xs}, w${u}_${v}, ${acc(i, v)});`);
        }
      }
    }
    return `  for (var l = 0u; l < p.kc[${c}]; l += ${t.unroll}u) {
    let xo = l * ${rb / 4}u + xq;
    let wo = l * ${rb / 4}u + wq;
${lines.join("\n")}
  }`;
  };
  // One store site in a loop: every inlined storage access is a per-lane loop in llvmpipe's
  // code, so unrolled stores would multiply the compile time.
  const stores = t.selectStores
    ? `  for (var j = 0u; j < ${accs.length}u; j++) {
    // Accumulator j by a chain of selects: an array indexed by j costs llvmpipe far more to
    // compile (about 1.7 s for 16 × 16 at first use).
    var a = ${accs[0]};
${accs.slice(1).map((a, j) => `    a = select(a, ${a}, j == ${j + 1}u);`).join("\n")}
    put4(m0 + j / ${tn / 4}u, n0 + 4u * (j % ${tn / 4}u), a);
  }`
    : `  let acc = array<vec4<f32>, ${accs.length}>(${accs.join(", ")});
  for (var i = 0u; i < ${tm}u; i++) {
    for (var v = 0u; v < ${tn / 4}u; v++) {
      put4(m0 + i, n0 + 4u * v, acc[i * ${tn / 4}u + v]);
    }
  }`;
  return `// Generated by src/gpu/matmul_uniform.ts (uniform-window matmul, tm ${tm}, tn ${tn}, unroll ${t.unroll}).
// y[m - row0, col0 + n] (+)= sum over this dispatch's k-tiles of x[m, l] * w[n, l] (+ bias[col0 + n])
// for row0 <= m < p.m (row0 > 0: y holds only rows from row0 on, e.g. one panel of a Hessian)
// x and w come as term-major tiles of ${rb} rows packed by kernels/pack_tiles.wgsl,
// bound as ${t.windowBytes}-byte uniform windows; p.kc[c] = terms of tile c (0: slot unused).
// y = alpha · (this dispatch's sum) [+ beta · y when flags bit 0] [+ bias when flags bit 1].

struct Params {
  m: u32,
  n: u32,
  ldy: u32,
  col0: u32,
  m0: u32,
  n0: u32,
  flags: u32,
  alpha: f32,
  beta: f32,
  row0: u32,
  _pad1: u32,
  _pad2: u32,
  kc: vec4<u32>,
}

alias Window = array<vec4<f32>, ${t.windowBytes / 16}>;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
${windows}

fn put(m: u32, n: u32, v: f32) {
  if (m < p.row0 || m >= p.m || n >= p.n) {
    return;
  }
  let at = (m - p.row0) * p.ldy + p.col0 + n;
  var s = p.alpha * v;
  if ((p.flags & 1u) != 0u) {
    s += p.beta * y[at];
  }
  if ((p.flags & 2u) != 0u) {
    s += bias[p.col0 + n];
  }
  y[at] = s;
}

fn put4(m: u32, n: u32, v: vec4<f32>) {
  put(m, n, v.x);
  put(m, n + 1u, v.y);
  put(m, n + 2u, v.z);
  put(m, n + 3u, v.w);
}

@compute @workgroup_size(${t.wx}, ${t.wy})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let xq = gid.y * ${tm / 4}u;
  let wq = gid.x * ${tn / 4}u;
${accs.map((a) => `  var ${a} = vec4<f32>();`).join("\n")}
${chunks.map(body).join("\n")}
  let m0 = p.m0 + gid.y * ${tm}u;
  let n0 = p.n0 + gid.x * ${tn}u;
${stores}
}
`;
}

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

function tilingKey(t: UniformTiling): string {
  return `${t.windowBytes}/${t.rb}/${t.chunks}/${t.tm}x${t.tn}/${t.wx}x${t.wy}/${t.unroll}` +
    (t.interleave ? "/interleaved" : "") + (t.selectStores ? "/select" : "");
}

/**
 * The parameters and every window take dynamic offsets where the device
 * allows that many (llvmpipe: 15): one bind group then serves all of a
 * product's dispatches, instead of one bind group per dispatch (about 40 µs
 * of the main thread each on llvmpipe, while its workers wait).
 */
function dynamicWindows(gpu: Gpu, t: UniformTiling): boolean {
  return gpu.limits.maxDynamicUniformBuffersPerPipelineLayout >= 1 + 2 * t.chunks;
}

/** Binding 0: parameters; 1: y; 2: bias; 3 …: the x windows, then the w windows. */
function pipelineLayout(gpu: Gpu, t: UniformTiling): GPUPipelineLayout | "auto" {
  if (!dynamicWindows(gpu, t)) return "auto";
  const visibility = GPUShaderStage.COMPUTE;
  const uniform = { visibility, buffer: { type: "uniform" as const, hasDynamicOffset: true } };
  const entries: GPUBindGroupLayoutEntry[] = [
    { binding: 0, ...uniform },
    { binding: 1, visibility, buffer: { type: "storage" } },
    { binding: 2, visibility, buffer: { type: "read-only-storage" } },
    ...Array.from({ length: 2 * t.chunks }, (_, i) => ({ binding: 3 + i, ...uniform })),
  ];
  const layout = gpu.device.createBindGroupLayout({ label: "matmul_uniform_f32", entries });
  return gpu.device.createPipelineLayout({ bindGroupLayouts: [layout] });
}

function registerPipeline(gpu: Gpu, pipeline: GPUComputePipeline, t: UniformTiling): void {
  registerWritableBindings(pipeline, uniformMatmulSource(t));
  if (dynamicWindows(gpu, t)) {
    registerDynamicBindings(pipeline, [
      0,
      ...Array.from({ length: 2 * t.chunks }, (_, i) => 3 + i),
    ]);
  }
}

function uniformPipeline(gpu: Gpu, t: UniformTiling): GPUComputePipeline {
  let cache = pipelines.get(gpu.device);
  if (!cache) pipelines.set(gpu.device, cache = new Map());
  const key = tilingKey(t);
  let pipeline = cache.get(key);
  if (!pipeline) {
    const label = `matmul_uniform_f32 (generated, ${key})`;
    const module = gpu.device.createShaderModule({ label, code: uniformMatmulSource(t) });
    module.getCompilationInfo().then((info) => {
      const errors = info.messages.filter((m) => m.type === "error");
      if (errors.length > 0) {
        cache!.delete(key);
        reportGpuFailure(
          gpu,
          new KernelCompileError(
            `${label} failed to compile:\n${errors.map((e) => e.message).join("\n")}`,
          ),
        );
      }
    });
    pipeline = gpu.device.createComputePipeline({
      label,
      layout: pipelineLayout(gpu, t),
      compute: { module, entryPoint: "main" },
    });
    registerPipeline(gpu, pipeline, t);
    cache.set(key, pipeline);
  }
  return pipeline;
}

/**
 * Compiles the uniform-window matmul and the pack kernel for this device
 * now (asynchronously), so the first `matmul` does not stall on it.
 *
 * @param gpu the device
 * @param shape kernel shape knobs (defaults: the measured best)
 * @returns resolves when both pipelines are built (at once when the limits rule the path out)
 *
 * @example
 * ```ts
 * import { getGpu } from "./device.ts";
 * import { prepareUniformMatmul } from "./matmul_uniform.ts";
 * await prepareUniformMatmul(await getGpu());
 * ```
 */
export async function prepareUniformMatmul(gpu: Gpu, shape: UniformShape = {}): Promise<void> {
  const t = uniformTiling(gpu.limits, shape);
  if (!t) return;
  let cache = pipelines.get(gpu.device);
  if (!cache) pipelines.set(gpu.device, cache = new Map());
  const key = tilingKey(t);
  if (!cache.has(key)) {
    const label = `matmul_uniform_f32 (generated, ${key})`;
    const module = gpu.device.createShaderModule({ label, code: uniformMatmulSource(t) });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error");
    if (errors.length > 0) {
      throw new KernelCompileError(
        `${label} failed to compile:\n${errors.map((e) => e.message).join("\n")}`,
      );
    }
    const pipeline = await gpu.device.createComputePipelineAsync({
      label,
      layout: pipelineLayout(gpu, t),
      compute: { module, entryPoint: "main" },
    });
    registerPipeline(gpu, pipeline, t);
    if (!cache.has(key)) cache.set(key, pipeline);
  }
  for (const file of ["pack_tiles.wgsl", "pack_tiles_vec4.wgsl"]) {
    await loadKernel(gpu, file, { constants: { RB: t.rb } });
  }
}

const packPools = new WeakMap<GPUDevice, BufferPool>();

/** Per-call packs' buffers, reused across batches; at most 32 MiB kept free (a few 1024² packs). */
function packPool(gpu: Gpu): BufferPool {
  let pool = packPools.get(gpu.device);
  if (!pool) packPools.set(gpu.device, pool = new BufferPool(gpu, PACK_USAGE, 32 * 2 ** 20));
  return pool;
}

/** A packed operand: its buffer and where each tile starts. */
interface Packed {
  buffer: GPUBuffer;
  /** Bytes from one tile to the next. */
  strideBytes: number;
  /** Row blocks of rb rows. */
  blocks: number;
}

/**
 * Tiles of the `rows` × `k` matrix in `src` ([rows, k] row-major, or its
 * transpose stored as [k, rows]), recorded into `batch`.
 */
function pack(
  batch: CommandBatch,
  t: UniformTiling,
  src: GpuTensor,
  rows: number,
  k: number,
  kc: number,
  kTiles: number,
  transposed = false,
  offset = 0,
  keep = false,
): Packed {
  const gpu = batch.gpu;
  const blocks = Math.ceil(rows / t.rb);
  const strideBytes = Math.ceil((t.rb * kc * 4) / t.align) * t.align;
  const tiles = blocks * kTiles;
  // The last window may reach past the last tile: the buffer covers it.
  const bytes = (tiles - 1) * strideBytes + t.windowBytes;
  if (bytes > gpu.limits.maxStorageBufferBindingSize) {
    throw new ShapeError(
      `matmul (uniform windows): packing [${rows}, ${k}] needs ${bytes} bytes, ` +
        `more than maxStorageBufferBindingSize ${gpu.limits.maxStorageBufferBindingSize}`,
    );
  }
  // A kept pack gets a buffer of its own (it belongs to the caller). A per-call pack takes one
  // from the pack pool and returns it once its batch is submitted: no pack of the same batch can
  // alias it, and queue order runs every later batch's writes after this batch's reads. Why:
  // creating a buffer of a few MiB and wgpu's zero fill of it on first use cost 1–5 ms of the
  // main thread per 1024² operand on llvmpipe (measured), while its workers wait.
  const buffer = keep
    ? gpu.device.createBuffer({ size: bytes, usage: PACK_USAGE })
    : packPool(gpu).acquire(bytes);
  if (!keep) batch.afterSubmit(() => packPool(gpu).release(buffer));
  const ld = transposed ? rows : k;
  // Rows on 16-byte boundaries: 4 × 4 blocks per invocation, else four rows of one term.
  const vec4 = ld % 4 === 0 && offset % 4 === 0 && kc % 4 === 0;
  const file = vec4 ? "pack_tiles_vec4.wgsl" : "pack_tiles.wgsl";
  const pipeline = kernelSync(gpu, file, { constants: { RB: t.rb } });
  const perTile = workgroupsFor((t.rb / (vec4 ? 16 : 4)) * kc, PACK_WG);
  const maxBlocks = gpu.limits.maxComputeWorkgroupsPerDimension;
  for (let b0 = 0; b0 < blocks; b0 += maxBlocks) {
    const params = new Uint32Array([
      rows,
      k,
      ld,
      transposed ? 1 : 0,
      kc,
      kTiles,
      strideBytes / 4,
      b0,
      offset,
      0,
      0,
      0,
    ]);
    batch.dispatch(
      pipeline,
      // The pack's own bytes: a pooled buffer may be larger (its size class) than the binding limit.
      [src, { buffer, offset: 0, size: bytes }, { uniform: params }],
      [perTile, kTiles, Math.min(maxBlocks, blocks - b0)],
      `pack_tiles [${rows},${k}]${transposed ? "ᵀ" : ""}`,
    );
  }
  return { buffer, strideBytes, blocks };
}

/**
 * The tiles of a mutable operand, packed once per batch: later products in
 * the same batch reuse them until a dispatch may write the operand's buffer
 * (`CommandBatch.memo`). A tensor always binds its buffer from offset 0, so
 * the buffer, the shape and the tiling fix what the tiles hold.
 */
function packedInput(
  batch: CommandBatch,
  t: UniformTiling,
  src: GpuTensor,
  rows: number,
  k: number,
  kc: number,
  kTiles: number,
): Packed {
  const key = `uniform tiles ${tilingKey(t)}/${rows}x${k}/${kc}`;
  return batch.memo(src.buffer, key, () => pack(batch, t, src, rows, k, kc, kTiles));
}

/**
 * w's tiles: packed once per tiling and kept with w when w is immutable (an
 * uploaded weight no kernel can write, so the copy never goes stale; freed
 * when w is destroyed), packed per call otherwise. A forward multiplies by
 * each weight many times; packing it once saves about half the pack work.
 */
function packedWeight(
  batch: CommandBatch,
  t: UniformTiling,
  w: GpuTensor,
  rows: number,
  k: number,
  kc: number,
  kTiles: number,
): Packed {
  if (!w.immutable || rows !== w.shape[0] || k !== w.shape[1]) {
    return packedInput(batch, t, w, rows, k, kc, kTiles);
  }
  const device = batch.gpu.device;
  const packed = w.derived(`uniform tiles ${tilingKey(t)}/${kc}`, () => {
    const fresh = pack(batch, t, w, rows, k, kc, kTiles, false, 0, true);
    // Destroyed with w, once no unsubmitted batch still reads it.
    const destroy = () => whenUnused(device, fresh.buffer, () => fresh.buffer.destroy());
    return { ...fresh, destroy };
  });
  // The pack may sit in another batch not yet submitted: submit it first, so this batch's
  // products read the tiles after they are written. (When this batch binds the buffer already,
  // that was checked at its first use here.)
  if (!batch.uses(packed.buffer)) flushWritersOf(device, packed.buffer);
  return packed;
}

/**
 * y = x·wᵀ (+ bias) through uniform windows; the same contract as `matmul`
 * (which calls this on the uniform path), so it is normally reached through
 * `matmul(batch, x, w, bias, { path: "uniform" })`.
 *
 * @param batch where the pack and matmul dispatches are recorded
 * @param x activations [M, K] (leading dimensions already flattened by the caller)
 * @param w weight [N, K], as one tensor or as row chunks
 * @param y the output [M, N], written whole
 * @param dims M, K and N
 * @param bias optional [N]
 * @param shape kernel shape knobs (defaults: the measured best)
 * @returns nothing; y is written when the batch runs
 * @throws {ShapeError} when the device's limits rule the path out or a packed operand exceeds a binding
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { matmul } from "./ops.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const x = GpuTensor.fromArray(gpu, new Float32Array([1, 2]), [1, 2]);
 * const w = GpuTensor.fromArray(gpu, new Float32Array([3, 4, 5, 6]), [2, 2]);
 * const y = matmul(new CommandBatch(gpu), x, w, undefined, { path: "uniform" });
 * console.assert((await y.readF32()).join() === "11,17");
 * ```
 */
export function recordUniformMatmul(
  batch: CommandBatch,
  x: GpuTensor,
  w: GpuTensor | ChunkedWeight,
  y: GpuTensor,
  dims: { m: number; k: number; n: number },
  bias?: GpuTensor,
  shape: UniformShape = {},
): void {
  const t = requireTiling(batch.gpu, shape);
  const { m, k, n } = dims;
  if (m === 0 || n === 0) return;
  const kc = Math.max(1, Math.min(t.kcMax, roundUp(k, t.unroll)));
  const kTiles = Math.max(1, Math.ceil(k / kc));
  // Products that share x in one batch (q, k and v; gate and up) pack it once.
  const xp = packedInput(batch, t, x, m, k, kc, kTiles);
  const chunks = w instanceof ChunkedWeight ? w.chunks : [{ tensor: w, row0: 0, rows: n }];
  for (const chunk of chunks) {
    const wp = packedWeight(batch, t, chunk.tensor, chunk.rows, k, kc, kTiles);
    recordProducts(batch, t, {
      xp,
      wp,
      y,
      bias,
      m,
      n: chunk.rows,
      ldy: n,
      col0: chunk.row0,
      k,
      kc,
      kTiles,
      alpha: 1,
      beta: 0,
      label: `matmul (uniform) [${m},${k}]x[${chunk.rows},${k}]ᵀ`,
    });
  }
}

/**
 * h ← beta·h + alpha·xᵀx through uniform windows: the Hessian accumulation
 * (H ← H·n₀/n₁ + 2/n₁·XᵀX) of GPTQ and SparseGPT on a software adapter. x is
 * packed once, transposed on the fly, and bound as both operands; h is
 * written whole (both triangles).
 *
 * @param batch where the pack and product dispatches are recorded
 * @param x samples [T, K] (leading dimensions are flattened into T)
 * @param h the f32 accumulator [K, K], updated in place
 * @param alpha factor of xᵀx
 * @param beta factor of h's current value (0: h's old contents are not read)
 * @param shape kernel shape knobs (defaults: the measured best)
 * @returns nothing; h is updated when the batch runs
 * @throws {ShapeError} when shapes disagree or the device's limits rule the path out
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { recordUniformGram } from "./matmul_uniform.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const x = GpuTensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const h = GpuTensor.fromArray(gpu, new Float32Array([1, 1, 1, 1]), [2, 2]);
 * recordUniformGram(new CommandBatch(gpu), x, h, 1, 1);
 * console.assert((await h.readF32()).join() === "11,15,15,21");
 * ```
 */
export function recordUniformGram(
  batch: CommandBatch,
  x: GpuTensor,
  h: GpuTensor,
  alpha: number,
  beta: number,
  shape: UniformShape = {},
): void {
  const k = x.shape[x.shape.length - 1] ?? 0;
  if (h.dtype !== "f32" || h.shape.length !== 2 || h.shape[0] !== k || h.shape[1] !== k) {
    throw new ShapeError(
      `gram (uniform windows): expected f32 x [..., K] and h [K, K], got x [${x.shape}] ${x.dtype} ` +
        `and h [${h.shape}] ${h.dtype}`,
    );
  }
  recordUniformGramRows(batch, x, [{ tensor: h, row0: 0, rows: k, ld: k }], alpha, beta, { shape });
}

/** Rows `row0 .. row0 + rows` of a Gram's K × K output, held by `tensor` with row stride `ld`. */
export interface GramRows {
  /** Holds row `row0 + i`, column j at element i·ld + j. */
  tensor: GpuTensor;
  /** The first row this tensor holds. */
  row0: number;
  /** Rows it holds (those at or past K are padding and are left alone). */
  rows: number;
  /** Its row stride in elements, at least K. */
  ld: number;
}

/** Options of {@link recordUniformGramRows}. */
export interface GramOptions {
  /** Compute only the blocks that touch the lower triangle (column ≤ row); default false. */
  lowerOnly?: boolean;
  /** Kernel shape knobs (defaults: the measured best). */
  shape?: UniformShape;
  /** Upper bound on one packed chunk of x in bytes (default 64 MiB; tests use less to cover chunking). */
  maxPackBytes?: number;
}

/**
 * h ← beta·h + alpha·xᵀx through uniform windows, with h stored as row
 * panels (the padded layout of GPTQ's Hessian): each `GramRows` receives its
 * own rows, columns 0 .. K − 1; padding rows and columns are never written.
 * x is packed transposed, in token chunks whose packed copy stays under
 * `maxPackBytes` (and the adapter's binding limit), and each chunk is bound
 * as both operands. With `lowerOnly`, blocks strictly above the diagonal
 * are skipped: the diagonal blocks are written whole, so the upper triangle
 * holds partial values until the caller mirrors the lower one onto it.
 *
 * @param batch where the pack and product dispatches are recorded
 * @param x samples [T, K] (leading dimensions are flattened into T)
 * @param out the row panels of h, updated in place
 * @param alpha factor of xᵀx
 * @param beta factor of h's current value (0: h's old contents are not read)
 * @param options lower triangle only, kernel shape, pack chunk bound
 * @returns nothing; h is updated when the batch runs
 * @throws {ShapeError} when shapes disagree or the device's limits rule the path out
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { recordUniformGramRows } from "./matmul_uniform.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const x = GpuTensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [2, 2]);
 * // Row 1 of h only, stored with a padded stride of 3.
 * const row1 = GpuTensor.fromArray(gpu, new Float32Array([0, 0, 7]), [1, 3]);
 * recordUniformGramRows(new CommandBatch(gpu), x, [{ tensor: row1, row0: 1, rows: 1, ld: 3 }], 1, 0);
 * console.assert((await row1.readF32()).join() === "14,20,7");
 * ```
 */
export function recordUniformGramRows(
  batch: CommandBatch,
  x: GpuTensor,
  out: readonly GramRows[],
  alpha: number,
  beta: number,
  options: GramOptions = {},
): void {
  const k = x.shape[x.shape.length - 1] ?? 0;
  const t = x.numel === 0 ? 0 : x.numel / k;
  if (x.dtype !== "f32") {
    throw new ShapeError(`gram (uniform windows): expected f32 x, got ${x.dtype} [${x.shape}]`);
  }
  for (const o of out) {
    const rows = Math.min(o.row0 + o.rows, k) - o.row0;
    if (
      o.tensor.dtype !== "f32" || !Number.isInteger(o.row0) || o.row0 < 0 || o.ld < k ||
      (rows > 0 && o.tensor.numel < (rows - 1) * o.ld + k)
    ) {
      throw new ShapeError(
        `gram (uniform windows): rows ${o.row0}..${o.row0 + o.rows} with stride ${o.ld} of a ` +
          `[${k}, ${k}] Gram do not fit ${o.tensor.dtype} [${o.tensor.shape}]`,
      );
    }
  }
  const tiling = requireTiling(batch.gpu, options.shape ?? {});
  if (k === 0) return;
  const kc = Math.max(1, Math.min(tiling.kcMax, roundUp(t, tiling.unroll)));
  // Token chunks: whole dispatch groups of k-tiles, packed into at most cap bytes.
  const limits = batch.gpu.limits;
  const cap = Math.min(
    options.maxPackBytes ?? 64 * 1024 * 1024,
    limits.maxStorageBufferBindingSize,
    limits.maxBufferSize,
  );
  const blocks = Math.ceil(k / tiling.rb);
  const strideBytes = Math.ceil((tiling.rb * kc * 4) / tiling.align) * tiling.align;
  const groups = Math.floor(
    Math.floor((cap - tiling.windowBytes) / strideBytes + 1) / blocks / tiling.chunks,
  );
  const tilesPerChunk = Math.max(1, groups) * tiling.chunks;
  const chunkTokens = tilesPerChunk * kc;
  for (let t0 = 0; t0 === 0 || t0 < t; t0 += chunkTokens) {
    const terms = Math.min(chunkTokens, t - t0);
    const kTiles = Math.max(1, Math.ceil(terms / kc));
    // The product's rows are x's columns and its terms x's rows: pack xᵀ.
    const xp = pack(batch, tiling, x, k, terms, kc, kTiles, true, t0 * k);
    for (const o of out) {
      const end = Math.min(o.row0 + o.rows, k);
      if (end <= o.row0) continue;
      recordProducts(batch, tiling, {
        xp,
        wp: xp,
        y: o.tensor,
        row0: o.row0,
        m: end,
        n: k,
        ldy: o.ld,
        col0: 0,
        k: terms,
        kc,
        kTiles,
        alpha,
        beta: t0 === 0 ? beta : 1,
        lowerOnly: options.lowerOnly,
        label: `gram (uniform) [${terms},${k}] rows ${o.row0}..${end}`,
      });
    }
  }
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

function requireTiling(gpu: Gpu, shape: UniformShape): UniformTiling {
  const t = uniformTiling(gpu.limits, shape);
  if (!t) {
    throw new ShapeError(
      `matmul (uniform windows): the adapter's uniform-buffer limits are too small ` +
        `(maxUniformBufferBindingSize ${gpu.limits.maxUniformBufferBindingSize}, ` +
        `maxUniformBuffersPerShaderStage ${gpu.limits.maxUniformBuffersPerShaderStage})`,
    );
  }
  return t;
}

/** One product of packed operands into y: a dispatch per output block and group of k-tiles. */
function recordProducts(
  batch: CommandBatch,
  t: UniformTiling,
  o: {
    xp: Packed;
    wp: Packed;
    y: GpuTensor;
    bias?: GpuTensor;
    /** y's first row: output rows row0 .. m − 1 are written (default 0). */
    row0?: number;
    m: number;
    n: number;
    ldy: number;
    col0: number;
    k: number;
    kc: number;
    kTiles: number;
    alpha: number;
    beta: number;
    /** Skip the blocks strictly above the diagonal (a Gram's lower triangle). */
    lowerOnly?: boolean;
    label: string;
  },
): void {
  const gpu = batch.gpu;
  const pipeline = uniformPipeline(gpu, t);
  const window = (p: Packed, block: number, tile: number): Binding => ({
    buffer: p.buffer,
    offset: (block * o.kTiles + tile) * p.strideBytes,
    size: t.windowBytes,
  });
  const row0 = o.row0 ?? 0;
  for (let bx = Math.floor(row0 / t.rb); bx * t.rb < o.m; bx++) {
    const rowsHere = Math.min(t.rb, o.m - bx * t.rb);
    const bwEnd = o.lowerOnly ? Math.min(bx + 1, o.wp.blocks) : o.wp.blocks;
    for (let bw = 0; bw < bwEnd; bw++) {
      const colsHere = Math.min(t.rb, o.n - bw * t.rb);
      for (let g = 0; g * t.chunks < o.kTiles; g++) {
        const kcs = [0, 0, 0, 0];
        const xs: Binding[] = [];
        const ws: Binding[] = [];
        for (let c = 0; c < t.chunks; c++) {
          const tile = g * t.chunks + c;
          const live = tile < o.kTiles;
          // Whole loop iterations: the tile's terms past k are zeros (the pack writes them).
          kcs[c] = live ? roundUp(Math.min(o.kc, o.k - tile * o.kc), t.unroll) : 0;
          // An unused slot still needs a valid binding: the group's first window.
          xs.push(window(o.xp, bx, live ? tile : g * t.chunks));
          ws.push(window(o.wp, bw, live ? tile : g * t.chunks));
        }
        // Later groups add to what the first wrote; the first adds beta·y only when asked.
        const addY = g > 0 || o.beta !== 0;
        const flags = (addY ? 1 : 0) | (g === 0 && o.bias ? 2 : 0);
        const params = new ArrayBuffer(64);
        new Uint32Array(params, 0, 7).set([o.m, o.n, o.ldy, o.col0, bx * t.rb, bw * t.rb, flags]);
        new Float32Array(params, 28, 2).set([o.alpha, g > 0 ? 1 : o.beta]);
        new Uint32Array(params, 36, 1)[0] = row0;
        new Uint32Array(params, 48, 4).set(kcs);
        batch.dispatch(
          pipeline,
          [{ uniform: new Uint8Array(params) }, o.y, o.bias ?? placeholder(gpu), ...xs, ...ws],
          [workgroupsFor(colsHere, t.tn * t.wx), workgroupsFor(rowsHere, t.tm * t.wy)],
          `${o.label} block ${bx},${bw} k-group ${g}`,
        );
      }
    }
  }
}
