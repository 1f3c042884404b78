/**
 * WGSL matmul throughput, both kernels: `deno run -A bench/matmul_bench.ts
 * [--large] [--shapes] [--paths storage,uniform]`.
 *
 * - storage: kernels/matmul_f32.wgsl, operands read from storage buffers
 *   (the real-GPU layout);
 * - uniform: src/gpu/matmul_uniform.ts, operands packed on the device and
 *   read through 64 KiB uniform windows (the default on software adapters).
 *
 * Prints per path: the time to build its pipelines and run a first small
 * product (shader compilation; run once with MESA_SHADER_CACHE_DIR pointed
 * at an empty folder for the cold figure), GFLOP/s at 1024³ (best and median of
 * `--runs` products, default 3,
 * each timing waits for the device), GFLOP per CPU-second (llvmpipe runs in
 * this process, so on a software adapter the CPU time is the device's
 * work; on a busy machine it is the steadier figure), and 4096³ with
 * `--large` (one run; minutes on a storage-fed software adapter). The uniform
 * path is also timed with an immutable weight, whose packed tiles are kept
 * across products (what a forward pass does with each layer's weights), and
 * with four independent products per host wait (each wait costs about 11 ms
 * in Deno 2.9, whatever the work), and with three kept weights multiplying
 * one x in one batch (a layer's q, k and v: x is packed once for the three).
 * `--shapes`
 * sweeps the uniform kernel's shapes at 1024³. One JSON line at the end.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import {
  CommandBatch,
  describeGpu,
  getGpu,
  type Gpu,
  GpuTensor,
  loadKernel,
  matmul,
  MATMUL_WORKGROUP,
  type MatmulPath,
  prepareUniformMatmul,
  type UniformShape,
  uniformTiling,
} from "../src/gpu/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    shapes: { type: "boolean" },
    large: { type: "boolean" },
    paths: { type: "string", default: "storage,uniform" },
    runs: { type: "string", default: "3" },
  },
});
/** Timed products per case (each its own host wait); the best and the median are printed. */
const RUNS = Math.max(1, Number(values.runs));
const paths = values.paths.split(",") as MatmulPath[];

const gpu = await getGpu();
console.log(`adapter: ${describeGpu(gpu)}`);
console.log(
  `uniform limits: maxUniformBufferBindingSize ${gpu.limits.maxUniformBufferBindingSize}, ` +
    `maxUniformBuffersPerShaderStage ${gpu.limits.maxUniformBuffersPerShaderStage}, ` +
    `minUniformBufferOffsetAlignment ${gpu.limits.minUniformBufferOffsetAlignment}; ` +
    `tiling ${JSON.stringify(uniformTiling(gpu.limits))}`,
);
console.log(
  `MESA_SHADER_CACHE_DIR=${Deno.env.get("MESA_SHADER_CACHE_DIR") ?? "(default)"}` +
    ` MESA_SHADER_CACHE_DISABLE=${Deno.env.get("MESA_SHADER_CACHE_DISABLE") ?? "(unset)"}`,
);

function operand(
  gpu: Gpu,
  rows: number,
  cols: number,
  seed: number,
  immutable = false,
): GpuTensor {
  // Deterministic, bounded values; their magnitude does not affect speed.
  const a = new Float32Array(rows * cols).map((_, i) => ((i * seed) % 1000) / 1000 - 0.5);
  return GpuTensor.fromArray(gpu, a, [rows, cols], { immutable });
}

/** Pipelines plus a first 64³ product: what the first matmul of a process pays. */
async function firstUse(
  path: MatmulPath,
  shape?: UniformShape,
): Promise<{ ms: number; cpuMs: number }> {
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  if (path === "uniform") await prepareUniformMatmul(gpu, shape);
  else {await loadKernel(gpu, "matmul_f32.wgsl", {
      entryPoint: "main",
      constants: MATMUL_CONSTANTS,
    });}
  const x = operand(gpu, 64, 64, 7919);
  const batch = new CommandBatch(gpu);
  matmul(batch, x, x, undefined, { path, shape });
  await batch.done();
  x.destroy();
  const cpu = process.cpuUsage(cpu0);
  return { ms: performance.now() - start, cpuMs: (cpu.user + cpu.system) / 1000 };
}

const MATMUL_CONSTANTS = { WG_X: MATMUL_WORKGROUP.x, WG_Y: MATMUL_WORKGROUP.y };

interface Timing {
  ms: number;
  gflops: number;
  gflopsPerCpuSecond: number;
  /** Median over the runs of GFLOP/s and of GFLOP per CPU-second. */
  median?: { gflops: number; gflopsPerCpuSecond: number };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Best of `runs` timings of `products` products xᵢ·wᵢᵀ recorded into one batch
 * and awaited once (every host wait costs about 11 ms in Deno 2.9 whatever the
 * work, so several products per wait show the kernels' throughput). With
 * `sharedX` all products read one x, as a layer's q, k and v do, and the
 * uniform path packs it once per batch. `ms` is per product.
 */
async function timeMatmul(
  path: MatmulPath,
  size: number,
  runs: number,
  shape?: UniformShape,
  keptWeight = false,
  products = 1,
  sharedX = true,
): Promise<Timing> {
  const xs = Array.from(
    { length: sharedX ? 1 : products },
    (_, i) => operand(gpu, size, size, 7919 + 2 * i),
  );
  const xOf = (i: number) => xs[sharedX ? 0 : i];
  // An immutable weight (as the engine uploads them) keeps its packed tiles on the uniform
  // path: the first product packs it, the timed ones reuse it, as a forward's later tokens do.
  const ws = Array.from(
    { length: products },
    (_, i) => operand(gpu, size, size, 104729 + 2 * i, keptWeight),
  );
  const batch = new CommandBatch(gpu);
  if (keptWeight) {
    for (const [i, w] of ws.entries()) {
      matmul(batch, xOf(i), w, undefined, { path, shape }).destroy();
    }
  }
  await batch.done(); // uploads (and the kept packs) finished before the clock starts
  let best: Timing = { ms: Infinity, gflops: 0, gflopsPerCpuSecond: 0 };
  const all: Array<[number, number]> = [];
  const flop = 2 * size ** 3 * products;
  for (let r = 0; r < runs; r++) {
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const ys = ws.map((w, i) => matmul(batch, xOf(i), w, undefined, { path, shape }));
    await batch.done();
    const ms = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    all.push([flop / (ms * 1e6), flop / (cpuMs * 1e6)]);
    if (ms < best.ms * products) {
      best = {
        ms: ms / products,
        gflops: flop / (ms * 1e6),
        gflopsPerCpuSecond: flop / (cpuMs * 1e6),
      };
    }
    for (const y of ys) y.destroy();
  }
  for (const t of [...xs, ...ws]) t.destroy();
  best.median = {
    gflops: median(all.map((r) => r[0])),
    gflopsPerCpuSecond: median(all.map((r) => r[1])),
  };
  return best;
}

const rows: Array<{ case: string } & Partial<Timing>> = [];
const json: Record<string, unknown> = {};
for (const path of paths) {
  const first = await firstUse(path);
  rows.push({
    case: `${path}: pipelines + first 64³ product (${first.cpuMs.toFixed(0)} ms CPU)`,
    ms: first.ms,
  });
  await timeMatmul(path, 256, 1); // driver paths warm
  const r1024 = await timeMatmul(path, 1024, RUNS);
  rows.push({ case: `${path}: 1024³ (best of ${RUNS})`, ...r1024 });
  json[path] = {
    first_use_ms: Math.round(first.ms),
    first_use_cpu_ms: Math.round(first.cpuMs),
    gflops_1024: Number(r1024.gflops.toFixed(2)),
    gflops_per_cpu_s_1024: Number(r1024.gflopsPerCpuSecond.toFixed(2)),
    gflops_1024_median: Number(r1024.median!.gflops.toFixed(2)),
    gflops_per_cpu_s_1024_median: Number(r1024.median!.gflopsPerCpuSecond.toFixed(2)),
  };
  if (path === "uniform") {
    const kept = await timeMatmul(path, 1024, RUNS, undefined, true);
    rows.push({ case: `${path}: 1024³, weight packed once and kept (best of ${RUNS})`, ...kept });
    const four = await timeMatmul(path, 1024, RUNS, undefined, false, 4, false);
    rows.push({
      case:
        `${path}: 1024³ ×4 per wait, every operand packed per call (best of ${RUNS}, per product)`,
      ...four,
    });
    const qkv = await timeMatmul(path, 1024, RUNS, undefined, true, 3);
    rows.push({
      case: `${path}: 1024³ ×3 sharing x (q, k, v), weights kept (best of ${RUNS}, per product)`,
      ...qkv,
    });
    Object.assign(json[path] as Record<string, number>, {
      gflops_1024_kept_weight: Number(kept.gflops.toFixed(2)),
      gflops_per_cpu_s_1024_kept_weight: Number(kept.gflopsPerCpuSecond.toFixed(2)),
      gflops_1024_kept_weight_median: Number(kept.median!.gflops.toFixed(2)),
      gflops_1024_4_per_wait: Number(four.gflops.toFixed(2)),
      gflops_per_cpu_s_1024_4_per_wait: Number(four.gflopsPerCpuSecond.toFixed(2)),
      gflops_1024_qkv_kept_weights: Number(qkv.gflops.toFixed(2)),
      gflops_per_cpu_s_1024_qkv_kept_weights: Number(qkv.gflopsPerCpuSecond.toFixed(2)),
    });
  }
  if (values.large) {
    const r4096 = await timeMatmul(path, 4096, 1);
    rows.push({ case: `${path}: 4096³ (1 run)`, ...r4096 });
    (json[path] as Record<string, number>).gflops_4096 = Number(r4096.gflops.toFixed(2));
  }
}

if (values.shapes) {
  const sweep: Record<string, number> = {};
  for (
    const shape of [
      { tm: 8, tn: 8 },
      { tm: 16, tn: 8 },
      { tm: 16, tn: 8, wy: 1 },
      { tm: 32, tn: 8 },
      { tm: 32, tn: 8, wy: 1 },
      { tm: 32, tn: 4 },
      // tn 16: wx 8 fills llvmpipe's 8-lane vectors (the default rb/2/tn = 4 leaves half idle).
      { tm: 16, tn: 16, wx: 8, wy: 2 },
      { tm: 16, tn: 16, wx: 8, wy: 2, unroll: 1 },
      { tm: 8, tn: 16, wx: 8 },
      { tm: 16, tn: 4 },
      { tm: 16, tn: 8, rb: 256 },
      { tm: 16, tn: 16, rb: 256 },
      { tm: 16, tn: 8, chunks: 2 },
      { unroll: 1 },
      { unroll: 4 },
      { interleave: false },
      { tm: 16, tn: 16, wx: 8, wy: 2, unroll: 1 },
    ]
  ) {
    const first = await firstUse("uniform", shape);
    const r = await timeMatmul("uniform", 1024, 3, shape);
    const name = JSON.stringify(shape);
    rows.push({
      case: `uniform ${name}: first use ${first.ms.toFixed(0)} ms (${
        first.cpuMs.toFixed(0)
      } ms CPU); 1024³`,
      ...r,
    });
    sweep[name] = Number(r.gflops.toFixed(2));
  }
  json.uniform_shape_sweep_1024 = sweep;
}

const fmt = (v: number | undefined, digits: number) => v === undefined ? "" : v.toFixed(digits);
console.log(
  "\n| case | ms | GFLOP/s | GFLOP per CPU-s | median GFLOP/s (per CPU-s) |\n|---|---:|---:|---:|---:|",
);
for (const r of rows) {
  console.log(
    `| ${r.case} | ${fmt(r.ms, 1)} | ${fmt(r.gflops, 2)} | ${fmt(r.gflopsPerCpuSecond, 2)} | ${
      r.median ? `${fmt(r.median.gflops, 2)} (${fmt(r.median.gflopsPerCpuSecond, 2)})` : ""
    } |`,
  );
}
console.log(JSON.stringify({
  bench: "matmul_f32",
  adapter: gpu.adapterName,
  fallback: gpu.isFallback,
  ...json,
}));
