/**
 * matmul_f32 throughput: `deno run -A bench/matmul_bench.ts [--shapes]`.
 *
 * Prints a table and one JSON line with GFLOP/s at 1024³ and 4096³. Every
 * timing waits for the GPU to finish (batch.done()). After a warm-up on a
 * small size (shader JIT), 1024³ is the best of several runs and 4096³ a
 * single run, since it takes seconds on a software adapter. `--shapes` also
 * sweeps the kernel's workgroup shapes at 1024³.
 *
 * @module
 */

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
  prepareOps,
} from "../src/gpu/mod.ts";

const { values } = parseArgs({ args: Deno.args, options: { shapes: { type: "boolean" } } });

const gpu = await getGpu();
await prepareOps(gpu);
console.log(`adapter: ${describeGpu(gpu)}`);

function operands(gpu: Gpu, m: number, k: number, n: number): [GpuTensor, GpuTensor] {
  // Deterministic, bounded values; their magnitude does not affect speed.
  const x = new Float32Array(m * k).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const w = new Float32Array(n * k).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
  return [GpuTensor.fromArray(gpu, x, [m, k]), GpuTensor.fromArray(gpu, w, [n, k])];
}

async function timeMatmul(size: number, runs: number): Promise<{ ms: number; gflops: number }> {
  const [x, w] = operands(gpu, size, size, size);
  const batch = new CommandBatch(gpu);
  await batch.done(); // uploads finished before the clock starts
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const start = performance.now();
    const y = matmul(batch, x, w);
    await batch.done();
    best = Math.min(best, performance.now() - start);
    y.destroy();
  }
  x.destroy();
  w.destroy();
  return { ms: best, gflops: (2 * size ** 3) / (best * 1e6) };
}

await timeMatmul(256, 2); // warm-up: JIT compile both the pipeline and the driver paths

const rows: Array<{ case: string; ms: number; gflops: number }> = [];
const r1024 = await timeMatmul(1024, 5);
rows.push({ case: "1024x1024x1024 (best of 5)", ...r1024 });
const r4096 = await timeMatmul(4096, 1);
rows.push({ case: "4096x4096x4096 (1 run)", ...r4096 });

const sweep: Record<string, number> = {};
if (values.shapes) {
  const size = 1024;
  const [x, w] = operands(gpu, size, size, size);
  const y = GpuTensor.allocate(gpu, [size, size]);
  const bias = GpuTensor.empty(gpu, [4]);
  for (const [wx, wy] of [[8, 8], [16, 4], [4, 16], [16, 16], [8, 4], [32, 2], [4, 4]]) {
    const pipeline = await loadKernel(gpu, "matmul_f32.wgsl", {
      constants: { WG_X: wx, WG_Y: wy },
    });
    const batch = new CommandBatch(gpu);
    const run = () =>
      batch.dispatch(
        pipeline,
        [x, w, y, bias, { uniform: new Uint32Array([size, size, size, size, 0, 0]) }],
        [Math.ceil(size / (8 * wx)), Math.ceil(size / (8 * wy))],
      );
    run();
    await batch.done();
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
      const start = performance.now();
      run();
      await batch.done();
      best = Math.min(best, performance.now() - start);
    }
    const gflops = (2 * size ** 3) / (best * 1e6);
    sweep[`${wx}x${wy}`] = Number(gflops.toFixed(2));
    rows.push({ case: `1024³ workgroup ${wx}x${wy}`, ms: best, gflops });
  }
}

console.log("\n| case | ms | GFLOP/s |\n|---|---:|---:|");
for (const r of rows) console.log(`| ${r.case} | ${r.ms.toFixed(1)} | ${r.gflops.toFixed(2)} |`);
console.log(JSON.stringify({
  bench: "matmul_f32",
  adapter: gpu.adapterName,
  fallback: gpu.isFallback,
  workgroup: `${MATMUL_WORKGROUP.x}x${MATMUL_WORKGROUP.y}`,
  gflops_1024: Number(r1024.gflops.toFixed(2)),
  gflops_4096: Number(r4096.gflops.toFixed(2)),
  ...(values.shapes ? { workgroup_sweep_1024: sweep } : {}),
}));
