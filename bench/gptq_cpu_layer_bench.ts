/**
 * GPTQ on one synthetic Linear on the CPU engine: the float32 algorithm
 * (`quantizeWeight` on `CPU_SECOND_ORDER`: blocked Cholesky, triangular
 * inverse and trailing updates through the WebAssembly SIMD gemm) against
 * the float64 TypeScript reference (`gptqReference`, what the CPU engine ran
 * before), on the same weight and Hessian (default 2048 × 768, W4 group 128,
 * actorder static: the 13M synthetic Llama's gate/up projection with the
 * W4A16 preset). Also times SparseGPT 2:4 on the same layer.
 *
 * ```sh
 * deno run -A bench/gptq_cpu_layer_bench.ts [--rows 2048] [--cols 768] [--runs 3] [--skip-reference]
 * ```
 *
 * Prints wall and process CPU time (user + sys, all threads) per run, the
 * best of each, and one JSON line. It reports, it does not fail.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { CPU_SECOND_ORDER } from "../src/engine/cpu/second_order.ts";
import { CpuHessian } from "../src/engine/cpu/hessian.ts";
import { quantizeWeight } from "../src/modifiers/gptq/quantize_weight.ts";
import { gptqReference } from "../src/modifiers/gptq/reference.ts";
import { sparsifyWeight } from "../src/modifiers/sparsegpt/sparsify_weight.ts";
import { seededRandom } from "../src/model/seeded_random.ts";
import { parseQuantizationArgs } from "../src/quant/args.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rows: { type: "string", default: "2048" },
    cols: { type: "string", default: "768" },
    tokens: { type: "string", default: "4096" },
    runs: { type: "string", default: "3" },
    "skip-reference": { type: "boolean", default: false },
  },
});
const rows = Number(values.rows);
const cols = Number(values.cols);
const tokens = Number(values.tokens);
const runs = Number(values.runs);

const u = seededRandom(7);
const gauss = () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
const weight = Float32Array.from({ length: rows * cols }, () => 0.02 * gauss());
const latent = Float32Array.from({ length: tokens * 16 }, gauss);
const x = new Float32Array(tokens * cols);
for (let t = 0; t < tokens; t++) {
  for (let c = 0; c < cols; c++) x[t * cols + c] = latent[t * 16 + (c % 16)] + 0.5 * gauss();
}
const hessian = new CpuHessian(cols);
hessian.add(x, 16);
const h = hessian.matrix;
const args = parseQuantizationArgs(
  { num_bits: 4, group_size: 128, symmetric: true, actorder: "static" },
  "w",
);

function measure(label: string, fn: () => unknown): { wallMs: number; cpuMs: number } {
  let best = { wallMs: Infinity, cpuMs: Infinity };
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    const wallMs = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const cpuMs = (c.user + c.system) / 1000;
    console.log(`${label} run ${i + 1}: wall ${wallMs.toFixed(0)} ms, CPU ${cpuMs.toFixed(0)} ms`);
    best = { wallMs: Math.min(best.wallMs, wallMs), cpuMs: Math.min(best.cpuMs, cpuMs) };
  }
  return best;
}

console.log(`GPTQ W4 group 128 (actorder static) on one ${rows} × ${cols} Linear, CPU engine`);
console.log(`load average ${Deno.loadavg().map((v) => v.toFixed(1)).join(" ")}`);
const f32 = measure(
  "float32 quantizeWeight",
  () => quantizeWeight(CPU_SECOND_ORDER, weight, [rows, cols], h, args),
);
const sparse = measure(
  "float32 sparsifyWeight 2:4",
  () =>
    sparsifyWeight(CPU_SECOND_ORDER, weight, [rows, cols], h, {
      sparsity: 0.5,
      maskStructure: "2:4",
    }),
);
const ref = values["skip-reference"]
  ? null
  : measure("float64 gptqReference", () => gptqReference(weight, [rows, cols], h, args));
console.log(
  `best: float32 ${f32.wallMs.toFixed(0)} ms wall / ${f32.cpuMs.toFixed(0)} ms CPU` +
    (ref
      ? `; float64 reference ${ref.wallMs.toFixed(0)} ms wall / ${ref.cpuMs.toFixed(0)} ms CPU ` +
        `(${(ref.cpuMs / f32.cpuMs).toFixed(1)}× the CPU time)`
      : "") +
    `; SparseGPT 2:4 ${sparse.wallMs.toFixed(0)} ms wall / ${sparse.cpuMs.toFixed(0)} ms CPU`,
);
console.log(JSON.stringify({ rows, cols, float32: f32, reference: ref, sparsegpt24: sparse }));
