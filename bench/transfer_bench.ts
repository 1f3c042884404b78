/**
 * Host↔GPU transfer rates: `deno run -A bench/transfer_bench.ts [--mib 64]`.
 *
 * Upload: GpuTensor.fromArray (queue.writeBuffer) until the queue has
 * finished. Readback: GpuTensor.read (copy to a staging buffer, mapAsync,
 * copy out). Best of several runs; prints a table and one JSON line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { CommandBatch, describeGpu, getGpu, GpuTensor } from "../src/gpu/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { mib: { type: "string", default: "64" }, runs: { type: "string", default: "5" } },
});
const mib = Number(values.mib);
const runs = Number(values.runs);

const gpu = await getGpu();
console.log(`adapter: ${describeGpu(gpu)}`);
const bytes = mib * 2 ** 20;
const data = new Float32Array(bytes / 4).map((_, i) => i % 1024);
const batch = new CommandBatch(gpu);

async function best(fn: () => Promise<void>): Promise<number> {
  await fn(); // warm-up: first-touch allocation of the staging memory
  let ms = Infinity;
  for (let r = 0; r < runs; r++) {
    const start = performance.now();
    await fn();
    ms = Math.min(ms, performance.now() - start);
  }
  return ms;
}

const uploadMs = await best(async () => {
  const t = GpuTensor.fromArray(gpu, data, [data.length]);
  await batch.done(); // waits for the queued write too
  t.destroy();
});
const resident = GpuTensor.fromArray(gpu, data, [data.length]);
await batch.done();
let check = 0;
const readMs = await best(async () => {
  const host = await resident.readF32();
  check = host[1023];
});
if (check !== 1023) throw new Error(`readback returned ${check} at [1023], expected 1023`);

const gbps = (ms: number) => bytes / (ms * 1e6);
console.log("\n| direction | MiB | ms | GB/s |\n|---|---:|---:|---:|");
console.log(`| upload | ${mib} | ${uploadMs.toFixed(1)} | ${gbps(uploadMs).toFixed(2)} |`);
console.log(`| readback | ${mib} | ${readMs.toFixed(1)} | ${gbps(readMs).toFixed(2)} |`);
console.log(JSON.stringify({
  bench: "transfer",
  adapter: gpu.adapterName,
  fallback: gpu.isFallback,
  mib,
  upload_gbps: Number(gbps(uploadMs).toFixed(3)),
  readback_gbps: Number(gbps(readMs).toFixed(3)),
}));
